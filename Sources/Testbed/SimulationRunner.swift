import Balancers
import EventLoop
import Foundation
import LoadGen
import Report
import Simulator

/// `ballast simulate`: an experiment file run through the simulator instead of real processes. Point
/// files use the sweep's schema (marked `"simulated"`), so `report`, `compare` and `gate` read them.
public struct SimulationRunner {
    public struct Options: Sendable {
        public var experimentFile: String
        public var outRoot = "results"
        /// Per-request cost and round trip; nil: taken from `calibrateFrom`, else the nominal worker cost
        /// and a 50 us round trip.
        public var cost: Double?
        public var roundTrip: Double?
        /// A measured sweep to take cost, round trip and cost distribution from.
        public var calibrateFrom: String?
        /// fixed, exponential or empirical (needs calibrateFrom).
        public var costShape = CostShape.fixed
        /// Open loop at this utilisation of the workers (lambda = u * workers / cost) instead of the
        /// experiment's closed loop.
        public var utilisation: Double?
        public var rampSeconds: Double?
        /// Live rebalancing of idle connections with this margin (requests above the mean); nil: off.
        public var rebalanceMargin: Int?
        public var durationSeconds: Double?
        public var repetitions: Int?
        public var version: String
        public var command: String

        public init(experimentFile: String, version: String, command: String) {
            self.experimentFile = experimentFile
            self.version = version
            self.command = command
        }
    }

    public enum CostShape: String, Sendable, CaseIterable { case fixed, exponential, empirical, nominal }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Outcome: Sendable {
        public var directory: String
        public var headlines: [String]
    }

    let options: Options
    let experiment: Experiment

    public init(options: Options) throws {
        self.options = options
        var e = try Experiment.load(file: options.experimentFile)
        if let r = options.repetitions { e.repetitions = r }
        experiment = e
    }

    /// The simulation model of one variant at one connection count (placement by strategy).
    public func model(for variant: Experiment.Variant, connections: Int, repetition: Int,
                      calibration: SimulationCalibration?) throws -> SimulationModel {
        let args = experiment.system(for: variant).args + variant.args
        let workers = try Self.workerCount(args)
        let balance = try Self.balance(args)
        if let margin = balance.rebalanceMargin {
            throw Failure("variant \(variant.name): --balance \(balance) rebalances the live server by \(balance.metric.rawValue); the simulator rebalances by requests in flight only: drop rebalance=\(margin) from the variant and pass --rebalance MARGIN to simulate")
        }
        guard balance.metric == .connections else {
            throw Failure("variant \(variant.name): the simulator places connections by open connections only, not by \(balance.metric.rawValue)")
        }
        let nominal = try Self.nominalCost(args)
        let costMean = options.cost ?? calibration?.cost ?? nominal?.mean
        guard let costMean else {
            throw Failure("variant \(variant.name): no --worker-cost to simulate; give --cost or --calibrate-from")
        }
        let cost: CostDistribution
        switch options.costShape {
        case .fixed: cost = .fixed(costMean)
        case .exponential: cost = .exponential(mean: costMean)
        case .nominal: cost = nominal.map { $0.scaled(to: costMean) } ?? .fixed(costMean)
        case .empirical:
            guard let samples = calibration?.costSamples, !samples.isEmpty else {
                throw Failure("--cost-shape empirical needs --calibrate-from a measured sweep")
            }
            cost = .empirical(samples)
        }
        let loop: LoadLoop = options.utilisation.map { .open($0 * Double(workers) / costMean) } ?? .closed
        let duration = options.durationSeconds ?? Double(experiment.durationNanos) / 1e9
        var model = SimulationModel(workers: workers, connections: connections, placement: .strategy(balance.strategy),
                               arrival: options.rampSeconds.map { .ramp($0) } ?? .allAtOnce, loop: loop, cost: cost,
                               roundTrip: options.roundTrip ?? calibration?.roundTrip ?? 50e-6, duration: duration,
                               warmup: max(0.2, Double(experiment.warmupNanos) / 1e9, (options.rampSeconds ?? 0) + 0.2),
                               seed: experiment.seed &+ UInt64(repetition) &* 1_000_003 &+ UInt64(connections))
        model.rebalance = options.rebalanceMargin.map { Rebalance(margin: $0) }
        return model
    }

    public func run() throws -> Outcome {
        let e = experiment
        let calibration = try options.calibrateFrom.map { try SimulationCalibration.from(ResultSet.load($0)) }
        let directory = ResultFiles.runDirectory(root: options.outRoot, experiment: e.name + "-sim")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var manifest = Manifest(experiment: e.name + "-sim")
        manifest.description = "simulated: " + e.description
        manifest.startedAt = ISO8601DateFormatter().string(from: Date())
        manifest.command = options.command
        manifest.experimentFile = options.experimentFile
        manifest.baseline = e.baseline ?? e.variants.first?.name
        manifest.variants = e.variants.map(\.name)
        manifest.order = e.order.rawValue
        manifest.seed = e.seed
        manifest.environment = RunEnvironment(ballastVersion: options.version, notes: "simulated (ballast simulate)")
        manifest.points = []
        let points = SweepPlan.points(e)
        var rows: [(variant: String, result: SimulationResult)] = []
        Log.line("simulate \(e.name): \(points.count) points" + (calibration.map {
            String(format: "; calibrated: cost %.1f us, round trip %.1f us (%d saturated, %d unqueued points)",
                   $0.cost * 1e6, $0.roundTrip * 1e6, $0.saturatedPoints, $0.unqueuedPoints)
        } ?? ""))
        for (i, point) in points.enumerated() {
            let model = try model(for: point.variant, connections: point.connections, repetition: point.repetition, calibration: calibration)
            let result = try Simulation(model).run()
            rows.append((point.variant.name, result))
            var axes: [String: AxisValue] = ["connections": .int(point.connections), "repetition": .int(point.repetition)]
            for (k, v) in point.variant.axes { axes[k] = .string(v) }
            let file = ResultFiles.pointFileName(variant: point.variant.name, axes: axes)
            try Self.pointResult(result, variant: point.variant.name, axes: axes, environment: manifest.environment)
                .write(to: "\(directory)/\(file)")
            manifest.points!.append(ManifestPoint(file: file, variant: point.variant.name, axes: axes, status: .ok))
            if (i + 1) % 10 == 0 || i + 1 == points.count { Log.line("[\(i + 1)/\(points.count)] simulated") }
        }
        if let u = options.utilisation { try boundsTable(rows, utilisation: u).write(toFile: "\(directory)/bounds.md", atomically: true, encoding: .utf8) }
        manifest.finishedAt = ISO8601DateFormatter().string(from: Date())
        manifest.complete = true
        try manifest.write(to: "\(directory)/manifest.json")
        let set = try ResultSet.load(directory)
        let report = try ReportWriter.write(set, to: directory, options: ReportOptions(baseline: manifest.baseline))
        return Outcome(directory: directory, headlines: report.headlines)
    }

    /// Open loop: each point's TP90 beside the two textbook bounds at the same utilisation (the median
    /// over repetitions): c x M/M/1 (connection-level balancing at its best) and M/M/c (request-level).
    func boundsTable(_ rows: [(variant: String, result: SimulationResult)], utilisation u: Double) -> String {
        var out = "# TP90 against the queueing bounds (open loop, utilisation \(u))\n\n"
        out += "Costs: \(rows.first?.result.model.cost.name ?? "-"); round trip \(CostDistribution.fixed(rows.first?.result.model.roundTrip ?? 0).name.dropFirst(6)) added to every bound.\n"
        out += "The bounds assume exponential costs and Poisson arrivals (`--cost-shape exponential`).\n\n"
        out += "A worker busy 98% of the window or more is overloaded (its queue grows for as long as the run lasts: the TP90 shown is\n"
        out += "then only a lower bound). Share: the busiest worker's connections over the mean.\n\n"
        out += "| series | workers | connections | TP90 | c x M/M/1 | M/M/c | TP90 / M/M/c | busiest worker's share | overloaded workers | moves |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        var groups: [String: [SimulationResult]] = [:]
        var order: [String] = []
        for (variant, r) in rows {
            let key = "\(variant)|\(r.model.connections)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        order.sort { a, b in
            let (ra, rb) = (groups[a]![0].model, groups[b]![0].model)
            let (va, vb) = (String(a.split(separator: "|")[0]), String(b.split(separator: "|")[0]))
            return (ra.connections, ra.workers, va) < (rb.connections, rb.workers, vb)
        }
        for key in order {
            let results = groups[key]!
            let r = results[0]
            let p90s = results.map { $0.percentile(90) }.sorted()
            let p90 = p90s[p90s.count / 2]
            let cost = r.model.cost.mean
            let rt = r.model.roundTrip
            let mm1 = QueueingBounds.mm1ResponseQuantile(0.9, utilisation: u, cost: cost) + rt
            let mmc = QueueingBounds.mmcResponseQuantile(0.9, servers: r.model.workers, utilisation: u, cost: cost) + rt
            let share = Double(r.connectionsPerWorker.max() ?? 0) / Double(max(1, r.model.connections)) * Double(r.model.workers)
            out += "| \(key.split(separator: "|")[0]) | \(r.model.workers) | \(r.model.connections) | \(Self.ms(p90)) | \(Self.ms(mm1)) | \(Self.ms(mmc)) | "
            let overloaded = r.busyFraction.filter { $0 >= 0.98 }.count
            out += String(format: "%.2f | %.2fx | %d | %d |\n", p90 / mmc, share, overloaded, r.moves)
        }
        return out
    }

    static func ms(_ seconds: Double) -> String { seconds.isFinite ? String(format: "%.2fms", seconds * 1000) : "unstable" }

    /// A simulated point in the sweep's schema.
    public static func pointResult(_ r: SimulationResult, variant: String, axes: [String: AxisValue],
                                   environment: RunEnvironment?) -> PointResult {
        let percentiles = [50.0, 75, 90, 99, 99.9].map { FortioHistogram.Percentile(percentile: $0, value: r.percentile($0)) }
        let histogram = FortioHistogram(count: r.requests, min: r.sortedLatencies.first ?? 0, max: r.sortedLatencies.last ?? 0,
                                        sum: r.sortedLatencies.reduce(0, +), avg: r.mean, stdDev: r.standardDeviation,
                                        data: buckets(r.sortedLatencies), percentiles: percentiles)
        var p = PointResult(variant: variant, axes: axes, actualQPS: r.qps, durationHistogram: histogram,
                            workers: (0..<r.model.workers).map {
                                WorkerFigures(worker: $0, accepted: r.connectionsPerWorker[$0], active: r.connectionsPerWorker[$0],
                                              requests: r.requestsPerWorker[$0], busyFraction: r.busyFraction[$0])
                            },
                            environment: environment)
        p.runType = "HTTP"
        p.requestedQPS = { if case .open(let rate) = r.model.loop { return String(rate) } else { return "max" } }()
        p.requestedDuration = "\(r.model.duration)s"
        p.actualDuration = Int64(r.model.duration * 1e9)
        p.numThreads = r.model.connections
        p.socketCount = r.model.connections
        p.retCodes = ["200": r.requests]
        p.otherFields["simulated"] = .object([
            "workers": .number(Double(r.model.workers)),
            "placement": .string(r.model.placement.name),
            "cost": .string(r.model.cost.name),
            "roundTripSeconds": .number(r.model.roundTrip),
            "loop": .string({ if case .open(let rate) = r.model.loop { return "open \(Int(rate)) req/s" } else { return "closed" } }()),
            "seed": .number(Double(r.model.seed)),
            "rebalance": r.model.rebalance.map { .string("margin \($0.margin), \(r.moves) moves") } ?? .string("off"),
        ])
        return p
    }

    /// fortio-style histogram buckets: 50 log-spaced buckets between the extremes.
    static func buckets(_ sorted: [Double]) -> [FortioHistogram.Bucket] {
        guard let low = sorted.first, let high = sorted.last, high > 0 else { return [] }
        let start = max(low, 1e-7)
        let edges = (0...50).map { start * Foundation.pow(high / start, Double($0) / 50) }
        var out: [FortioHistogram.Bucket] = []
        var index = 0
        for b in 0..<50 {
            let end = b == 49 ? high : edges[b + 1]
            var count = 0
            while index < sorted.count && (sorted[index] <= end || b == 49) { count += 1; index += 1 }
            if count > 0 {
                out.append(.init(start: b == 0 ? low : edges[b], end: end, percent: 100 * Double(index) / Double(sorted.count), count: count))
            }
        }
        return out
    }

    // MARK: reading the variant's flags

    static func value(after flag: String, in args: [String]) -> String? {
        guard let i = args.lastIndex(of: flag), i + 1 < args.count else { return nil }
        return args[i + 1]
    }

    static func workerCount(_ args: [String]) throws -> Int {
        guard let text = value(after: "--workers", in: args) ?? value(after: "--concurrency", in: args) else {
            throw Failure("the system's args name no --workers or --concurrency: how many workers to simulate?")
        }
        guard let n = Int(text), (1...4096).contains(n) else { throw Failure("--workers \(text): expected 1...4096") }
        return n
    }

    static func balance(_ args: [String]) throws -> BalanceSpec {
        let text = value(after: "--balance", in: args) ?? "reuseport"
        do { return try BalanceSpec.parse(text) } catch { throw Failure("--balance \(text): \(error.description)") }
    }

    static func nominalCost(_ args: [String]) throws -> CostDistribution? {
        guard let text = value(after: "--worker-cost", in: args) else { return nil }
        let cost: WorkerCost
        do { cost = try WorkerCost.parse(text, parseDuration: GoDuration.parseNanos) } catch {
            throw Failure("--worker-cost \(text): \(error.description)")
        }
        let mean = Double(cost.meanNanos) / 1e9
        return cost.exponential ? .exponential(mean: mean) : .fixed(mean)
    }
}

extension CostDistribution {
    /// The same shape with another mean.
    func scaled(to newMean: Double) -> CostDistribution {
        switch self {
        case .fixed: .fixed(newMean)
        case .exponential: .exponential(mean: newMean)
        case .empirical(let s): .empirical(s.map { $0 * newMean / max(mean, 1e-12) })
        }
    }
}
