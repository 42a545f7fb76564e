import Dispatch
import EventLoop
import Foundation
import Glibc
import LoadGen
import Report

/// Runs an experiment: for every point, a fresh system under test (so each point is an independent
/// draw of, say, the kernel's reuseport hash), `ballast load` against it, `/workers` scraped before,
/// during and after, one point file written, the system stopped. Ctrl-C or a dead process stops the
/// sweep, keeps the finished points and marks the manifest incomplete.
public final class SweepRunner {
    public struct Options: Sendable {
        public var experimentFile: String
        public var outRoot = "results"
        public var quick = false
        /// Overrides of the experiment's duration per point and repetitions (recorded in the manifest's command).
        public var durationNanos: Int64?
        public var repetitions: Int?
        /// The `ballast` binary to start for systems, backends and the load.
        public var ballast: String
        public var version: String
        public var command: String
        /// `--validate`: check every variant's command line and config, run nothing.
        public var validateOnly = false

        public init(experimentFile: String, ballast: String, version: String, command: String) {
            self.experimentFile = experimentFile
            self.ballast = ballast
            self.version = version
            self.command = command
        }
    }

    public struct Outcome: Sendable {
        public var directory: String
        public var complete: Bool
        public var failedPoints: Int
        public var headlines: [String]
        public var reportPath: String?
    }

    let options: Options
    let experiment: Experiment
    let experimentText: String
    /// The experiment file's duration and repetitions (before --duration/--repetitions/--quick).
    let fileDurationNanos: Int64
    let fileRepetitions: Int
    private let interrupted = InterruptFlag()
    /// The Envoy binary, when a variant runs Envoy (found or installed by `preflight`).
    private var envoy: String?

    public init(options: Options) throws {
        self.options = options
        experimentText = (try? String(contentsOfFile: options.experimentFile, encoding: .utf8)) ?? ""
        var e = try Experiment.load(file: options.experimentFile)
        fileDurationNanos = e.durationNanos
        fileRepetitions = e.repetitions
        if let d = options.durationNanos { e.durationNanos = d }
        if let r = options.repetitions { e.repetitions = r }
        experiment = options.quick ? SweepPlan.quick(e) : e
    }

    /// Fails before anything starts when a needed program is missing; finds (or installs) Envoy.
    func preflight() throws {
        guard FileManager.default.isExecutableFile(atPath: options.ballast) else { throw SweepError.missingBinary(options.ballast) }
        if envoy == nil && experiment.variants.contains(where: { experiment.system(for: $0).kind == .envoy }) {
            envoy = try EnvoySystem.resolve(ballast: options.ballast)
        }
        for variant in experiment.variants {
            let system = experiment.system(for: variant)
            if system.kind == .command, let program = system.command.first, !Self.onPath(program) {
                throw SweepError.missingBinary(program)
            }
        }
        if !experiment.placement.isEmpty && !Self.onPath("taskset") { throw SweepError.missingBinary("taskset") }
        if experiment.instructionRequests != nil && !Self.onPath("valgrind") {
            throw SweepError.missingBinary("valgrind (for `instructions:`; scripts/ensure-packages.sh valgrind installs it)")
        }
    }

    static func onPath(_ program: String) -> Bool {
        if program.contains("/") { return FileManager.default.isExecutableFile(atPath: program) }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(program)") }
    }

    public func run() throws -> Outcome {
        try preflight()
        let e = experiment
        if options.validateOnly {
            let scratch = NSTemporaryDirectory() + "ballast-validate-\(getpid())"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let lines = try ExperimentValidation.check(e, ballast: options.ballast, envoy: envoy, directory: scratch)
            return Outcome(directory: "", complete: true, failedPoints: 0, headlines: lines, reportPath: nil)
        }
        let directory = ResultFiles.runDirectory(root: options.outRoot, experiment: e.name)
        // Absolute: peers resolve a relative config path against their own prefix (nginx: /usr/share/nginx).
        let logs = URL(fileURLWithPath: "\(directory)/logs").standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let allArgs = e.system.args + e.variants.flatMap(\.args)
        let costFlag = allArgs.firstIndex(of: "--worker-cost")
        let workerCost = costFlag.flatMap { $0 + 1 < allArgs.count ? allArgs[$0 + 1] : nil }
        var environment = RunEnvironmentProbe.capture(placement: e.placement, workerCost: workerCost,
                                                      configHash: RunEnvironmentProbe.fingerprint(experimentText), version: options.version)
        environment.gitCommit = RunEnvironmentProbe.buildCommit(binary: options.ballast)
        // A typo in any variant fails here, in seconds, not when its first point runs.
        do {
            _ = try ExperimentValidation.check(e, ballast: options.ballast, envoy: envoy, directory: logs)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        var manifest = Manifest(experiment: e.name)
        manifest.description = e.description
        manifest.startedAt = Self.timestamp()
        manifest.complete = false
        manifest.command = options.command
        manifest.experimentFile = options.experimentFile
        manifest.experimentHash = RunEnvironmentProbe.fingerprint(experimentText)
        manifest.baseline = e.baseline ?? e.variants.first?.name
        manifest.reference = e.reference
        manifest.variants = e.variants.map(\.name)
        manifest.order = e.order.rawValue
        manifest.seed = e.seed
        manifest.environment = environment
        manifest.runSettings = RunSettings(durationNanos: e.durationNanos, warmupNanos: e.warmupNanos, repetitions: e.repetitions,
                                           fileDurationNanos: fileDurationNanos, fileRepetitions: fileRepetitions, quick: options.quick)
        manifest.tables = e.tables.isEmpty ? nil : e.tables
        manifest.points = []
        var axes: [String: [AxisValue]] = ["connections": e.connections.map { .int($0) }, "repetition": (1...e.repetitions).map { .int($0) }]
        for key in Set(e.variants.flatMap(\.axes.keys)) {
            axes[key] = Array(Set(e.variants.compactMap { $0.axes[key] })).sorted().map { .string($0) }
        }
        manifest.axes = axes
        try manifest.write(to: "\(directory)/manifest.json")

        let signals = installInterruptHandler()
        defer { signals.cancel(); signal(SIGINT, SIG_DFL); signal(SIGTERM, SIG_DFL) }

        var backend: ChildProcess? = nil
        var upstreamPort = 0
        defer { backend?.stop() }
        if e.variants.contains(where: { e.system(for: $0).kind != .server }) {
            let b = try ChildProcess(name: "backend", arguments: [options.ballast, "server", "--port", "0", "--address", "127.0.0.1"] + e.backendArgs,
                                     cpus: e.placement["backend"], logDirectory: logs)
            backend = b
            let line = try b.waitForLine(containing: "listening on")
            upstreamPort = Self.port(after: "listening on ", in: line) ?? 0
        }

        let points = SweepPlan.points(e)
        let perPoint = Double(e.durationNanos + e.warmupNanos) / 1e9 + 0.6
        let started = Date()
        var failed = 0
        Log.line("sweep \(e.name): \(points.count) points (\(e.variants.count) variants x \(e.connections.count) connection counts x \(e.repetitions) repetitions), about \(Self.duration(Double(points.count) * perPoint))")
        if !e.placement.isEmpty { Log.line("placement: " + e.placement.sorted { $0.key < $1.key }.map { "\($0.key) on CPU \($0.value)" }.joined(separator: ", ")) }
        for (i, point) in points.enumerated() {
            if interrupted.isSet { break }
            var pointAxes: [String: AxisValue] = ["connections": .int(point.connections), "repetition": .int(point.repetition)]
            for (k, v) in point.variant.axes { pointAxes[k] = .string(v) }
            let file = ResultFiles.pointFileName(variant: point.variant.name, axes: pointAxes)
            do {
                var result = try runPoint(point, axes: pointAxes, upstreamPort: upstreamPort, logs: logs, environment: environment, index: i)
                if let requests = e.instructionRequests {
                    result.cpu?.instructionsPerRequest = try countInstructions(point, requests: requests, logs: logs, index: i)
                }
                try result.write(to: "\(directory)/\(file)")
                manifest.points!.append(ManifestPoint(file: file, variant: point.variant.name, axes: pointAxes, status: .ok))
                let p90 = result.durationHistogram.value(atPercentile: 90).map { String(format: "%.2fms", $0 * 1000) } ?? "-"
                let elapsed = Date().timeIntervalSince(started)
                let eta = elapsed / Double(i + 1) * Double(points.count - i - 1)
                Log.line("[\(i + 1)/\(points.count)] \(point.variant.name) c=\(point.connections) r\(point.repetition): \(Int(result.actualQPS)) qps, p90 \(p90) (ETA \(Self.duration(eta)))")
            } catch {
                if interrupted.isSet { break }
                failed += 1
                manifest.points!.append(ManifestPoint(file: file, variant: point.variant.name, axes: pointAxes, status: .failed, error: "\(error)"))
                Log.error("[\(i + 1)/\(points.count)] \(point.variant.name) c=\(point.connections) r\(point.repetition) failed: \(error)")
                if case SweepError.rejected = error {
                    // The system refused its config (Envoy's message is above): every later
                    // point of it would fail alike.
                    Log.error("stopping the sweep; the \(manifest.points!.count - 1) finished points are kept")
                    break
                }
                if failed == i + 1 && failed >= 3 {
                    try? manifest.write(to: "\(directory)/manifest.json")
                    throw SweepError.loadFailed("the first \(failed) points all failed; stopping (last error: \(error))")
                }
                if case SweepError.processDied = error, backend?.isRunning == false {
                    try? manifest.write(to: "\(directory)/manifest.json")
                    throw SweepError.processDied("backend", status: backend!.process.terminationStatus, stderrTail: backend!.stderrTail())
                }
            }
            try manifest.write(to: "\(directory)/manifest.json")
        }
        manifest.finishedAt = Self.timestamp()
        manifest.complete = !interrupted.isSet && manifest.points!.count == points.count
        try manifest.write(to: "\(directory)/manifest.json")
        if interrupted.isSet { Log.warning("interrupted: kept \(manifest.points!.count) finished points in \(directory)") }

        var headlines: [String] = []
        var reportPath: String? = nil
        if manifest.points!.contains(where: { $0.status == .ok }) {
            do {
                let set = try ResultSet.load(directory)
                let report = try ReportWriter.write(set, to: directory, options: ReportOptions(baseline: manifest.baseline))
                headlines = report.headlines
                reportPath = "\(directory)/report.html"
            } catch {
                Log.error("report: \(error)")
            }
        }
        return Outcome(directory: directory, complete: manifest.complete ?? false, failedPoints: failed, headlines: headlines, reportPath: reportPath)
    }

    /// One point: start the system, load it, scrape it, stop it.
    private func runPoint(_ point: SweepPoint, axes: [String: AxisValue], upstreamPort: Int, logs: String,
                          environment: RunEnvironment, index: Int) throws -> PointResult {
        let e = experiment
        let tag = "p\(index + 1)-" + point.variant.name.replacingOccurrences(of: "/", with: "_")
        let system = try startSystem(point.variant, upstreamPort: upstreamPort, logs: logs, tag: tag)
        defer { system.process.stop() }
        let before = system.admin?.scrape()
        let json = "\(logs)/\(tag)-load.json"
        var loadArgs = [options.ballast, "load", "-qps", "0", "-c", "\(point.connections)",
                        "-t", GoDuration.format(nanos: e.durationNanos), "-json", json,
                        "-labels", "\(e.name) \(point.variant.name) c\(point.connections) r\(point.repetition)"]
        if e.warmupNanos > 0 { loadArgs += ["-warmup", GoDuration.format(nanos: e.warmupNanos)] }
        loadArgs += e.loadArgs + ["http://127.0.0.1:\(system.port)\(e.loadPath)"]
        let load = try ChildProcess(name: "\(tag)-load", arguments: loadArgs, cpus: e.placement["load"], logDirectory: logs)
        // `active` is sampled while the load runs (half way through the measured time, after any
        // -ramp within the warm-up), before it disconnects.
        let sampleAt = Date().addingTimeInterval(Double(e.warmupNanos) / 1e9 + Double(e.durationNanos) / 1e9 * 0.5)
        var during: [WorkerFigures]? = nil
        var cpuWindow = CPUWindowSampler(systemPID: system.process.pid, loadStderrPath: load.stderrPath)
        while load.isRunning {
            if interrupted.isSet { load.stop(); throw SweepError.interrupted }
            cpuWindow.poll(startMarker: LoadRunner.windowStartMarker, endMarker: LoadRunner.windowEndMarker)
            if during == nil && Date() >= sampleAt { during = system.admin?.scrape() }
            if !system.process.isRunning {
                load.stop()
                throw SweepError.processDied(system.process.name, status: system.process.process.terminationStatus, stderrTail: system.process.stderrTail())
            }
            usleep(cpuWindow.waiting ? 5_000 : 20_000)
        }
        cpuWindow.poll(startMarker: LoadRunner.windowStartMarker, endMarker: LoadRunner.windowEndMarker)
        cpuWindow.finish()
        load.stop()
        guard load.process.terminationStatus == 0, let data = FileManager.default.contents(atPath: json) else {
            throw SweepError.loadFailed("ballast load exited with \(load.process.terminationStatus): \(load.stderrTail())")
        }
        let after = system.admin?.scrape()
        var workers: [WorkerFigures]? = nil
        if let before, let after, before.count == after.count {
            workers = zip(before, after).map { b, a in
                let active = during?.first { $0.worker == a.worker }?.active ?? a.active
                func delta(_ f: KeyPath<WorkerFigures, Int?>) -> Int? { a[keyPath: f].map { $0 - (b[keyPath: f] ?? 0) } }
                return WorkerFigures(worker: a.worker, accepted: a.accepted - b.accepted, active: active, requests: a.requests - b.requests,
                                     busyFraction: a.busyFraction,
                                     movesOut: delta(\.movesOut), movesIn: delta(\.movesIn), moveRefusals: delta(\.moveRefusals))
            }
        }
        var result = try PointResult.make(fortioJSON: data, source: json, variant: point.variant.name, axes: axes, workers: workers, environment: environment)
        result.cpu = PointCPU(requests: result.durationHistogram.count, systemSeconds: cpuWindow.systemSeconds,
                              loadSeconds: PointCPU.loadSeconds(from: result.ballast))
        return result
    }

    /// Where a system's per-worker figures come from.
    enum AdminKind {
        /// `ballast server` / `ballast proxy`: `/workers` (JSON).
        case ballast(Int)
        /// Envoy: `/stats` (per-worker listener counters).
        case envoy(Int)

        func scrape() -> [WorkerFigures]? {
            switch self {
            case .ballast(let port): SweepRunner.scrapeWorkers(port: port)
            case .envoy(let port): EnvoySystem.scrapeWorkers(adminPort: port)
            }
        }
    }

    /// Instructions per request under callgrind (nil, with a warning once, where it cannot be counted).
    private func countInstructions(_ point: SweepPoint, requests: Int, logs: String, index: Int) throws -> Double? {
        let system = experiment.system(for: point.variant)
        let args = system.args + point.variant.args
        if let why = InstructionCounter.unsupportedReason(kind: system.kind, args: args) {
            if warnedInstructions.insert(point.variant.name).inserted { Log.warning("\(point.variant.name): \(why)") }
            return nil
        }
        let tag = "p\(index + 1)-" + point.variant.name.replacingOccurrences(of: "/", with: "_")
        return try InstructionCounter.prepare(ballast: options.ballast, logs: logs)
            .instructionsPerRequest(serverArgs: args, connections: point.connections, path: experiment.loadPath, requests: requests, tag: tag)
    }

    private var warnedInstructions: Set<String> = []

    struct RunningSystem {
        let process: ChildProcess
        let port: Int
        let admin: AdminKind?
    }

    private func startSystem(_ variant: Experiment.Variant, upstreamPort: Int, logs: String, tag: String) throws -> RunningSystem {
        let e = experiment
        let system = e.system(for: variant)
        switch system.kind {
        case .server:
            let args = [options.ballast, "server", "--port", "0", "--address", "127.0.0.1", "--admin-port", "0"] + system.args + variant.args
            let p = try ChildProcess(name: tag, arguments: args, cpus: e.placement["system"], logDirectory: logs)
            do {
                let line = try p.waitForLine(containing: "listening on")
                guard let port = Self.port(after: "listening on ", in: line), let admin = Self.port(after: "admin ", in: line) else {
                    throw SweepError.notReady(tag, stderrTail: p.stderrTail())
                }
                return RunningSystem(process: p, port: port, admin: .ballast(admin))
            } catch {
                p.stop()
                throw error
            }
        case .proxy, .envoy, .command:
            guard let listen = AdminClient.freePort(), let admin = AdminClient.freePort() else { throw SweepError.busyPort(0) }
            let launch = SystemLaunch(system: system, variant: variant)
            let configPath = try launch.renderConfig(ports: .init(listen: listen, admin: admin, upstream: upstreamPort), directory: logs, tag: tag)
            let args = launch.commandLine(ballast: options.ballast, envoy: envoy, config: configPath, validate: false)
            let p = try ChildProcess(name: tag, arguments: args, cpus: e.placement["system"], logDirectory: logs)
            // Ready when the listener answers the load's path.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if !p.isRunning {
                    p.stop()
                    throw SweepError.rejected(tag, status: p.process.terminationStatus, stderrTail: p.stderrTail(lines: 12))
                }
                // Envoy: its admin says LIVE (every worker initialised) before the listener is probed.
                if system.kind == .envoy && AdminClient.get(port: admin, path: "/ready")?.status != 200 {
                    usleep(50_000)
                    continue
                }
                if let r = AdminClient.get(port: listen, path: e.loadPath), r.status > 0 {
                    let admin: AdminKind? = switch system.kind {
                    case .proxy: .ballast(admin)
                    case .envoy: .envoy(admin)
                    default: nil
                    }
                    // ballast proxy: its admin may come up just after the listener.
                    if case .ballast(let port) = admin, AdminClient.get(port: port, path: "/workers")?.status != 200 {
                        usleep(50_000)
                        continue
                    }
                    return RunningSystem(process: p, port: listen, admin: admin)
                }
                usleep(50_000)
            }
            p.stop()
            throw SweepError.notReady(tag, stderrTail: p.stderrTail())
        }
    }

    static func scrapeWorkers(port: Int) -> [WorkerFigures]? {
        guard let r = AdminClient.get(port: port, path: "/workers"), r.status == 200 else { return nil }
        return try? JSONDecoder().decode([WorkerFigures].self, from: Data(r.body.utf8))
    }

    /// The port of the `HOST:PORT` that follows `marker` in a "listening on" line.
    static func port(after marker: String, in line: String) -> Int? {
        guard let start = line.range(of: marker) else { return nil }
        let address = line[start.upperBound...].prefix { $0 != " " && $0 != "," && $0 != ")" }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...])
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }

    /// SIGINT/SIGTERM: stop the children at once and let the loop wind down.
    private func installInterruptHandler() -> DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        let flag = interrupted
        source.setEventHandler {
            flag.set()
            ChildRegistry.shared.killAll()
        }
        source.resume()
        let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        term.setEventHandler {
            flag.set()
            ChildRegistry.shared.killAll()
        }
        term.resume()
        termSource = term
        return source
    }

    private var termSource: DispatchSourceSignal?
}

final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
