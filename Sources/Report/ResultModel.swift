/// The result files of a sweep, as Swift types the sweep runner writes and the report reads.
///
/// A results directory is `results/<experiment>/<UTC timestamp>/` and holds:
///
/// ## `manifest.json`
/// ```json
/// {
///   "format": "ballast-results/1",
///   "experiment": "quick",                        // required
///   "description": "shared vs reuseport vs least-loaded",
///   "startedAt": "2025-01-31T12:00:00Z", "finishedAt": "2025-01-31T12:02:07Z",
///   "complete": true,                             // false when stopped early (Ctrl-C, a dead process)
///   "command": "ballast sweep Experiments/quick.yaml",
///   "experimentFile": "Experiments/quick.yaml", "experimentHash": "sha256:…",
///   "baseline": "shared",                         // default baseline variant of reports
///   "reference": "direct",                        // optional: `ballast gate` divides by this variant
///   "variants": ["shared", "reuseport", "least-loaded"],
///   "axes": {"connections": [2, 4, 8], "repetition": [1, 2], "io": ["epoll", "io_uring"]},
///   "order": "interleaved", "seed": 42,
///   "environment": { …as in a point file… },
///   "points": [ {"file": "shared-c2-r1.json", "variant": "shared",
///                "axes": {"connections": 2, "repetition": 1}, "status": "ok"},
///               {"file": "…", "status": "failed", "error": "proxy exited (signal 11)"} ]
/// }
/// ```
/// When `points` is present it is the list of point files (status `failed` entries are skipped);
/// otherwise every `*.json` in the directory except `manifest.json` is a point file.
///
/// ## One point file per (variant, axes, repetition)
/// fortio's JSON result (`fortio load -json`), so fortio's own tools read it, extended with four
/// top-level keys. Keys this model does not know are kept and written back unchanged.
/// ```json
/// {
///   "RunType": "HTTP", "Labels": "quick shared c2 r1", "StartTime": "2025-01-31T12:00:01Z",
///   "RequestedQPS": "max", "RequestedDuration": "5s",
///   "ActualQPS": 12345.6,                           // required
///   "ActualDuration": 5000123456,                   // nanoseconds
///   "NumThreads": 2, "Version": "ballast 0.1.0",
///   "DurationHistogram": {                          // required; seconds
///     "Count": 61728, "Min": 0.00008, "Max": 0.012, "Sum": 9.9, "Avg": 0.00016, "StdDev": 0.00004,
///     "Data": [{"Start": 0.00008, "End": 0.0001, "Percent": 12.5, "Count": 7716}],
///     "Percentiles": [{"Percentile": 50, "Value": 0.00015}, {"Percentile": 90, "Value": 0.0002}]
///   },
///   "Exactly": 0, "Jitter": false, "Uniform": false,
///   "RetCodes": {"200": 61728}, "Sizes": {…histogram…}, "HeaderSizes": {…histogram…},
///   "URL": "http://127.0.0.1:8080/", "SocketCount": 2, "AbortOn": 0,
///   "Ballast": { …load generator extras, kept as they are… },
///
///   "variant": "shared",                            // required: the series name
///   "axes": {"strategy": "shared", "io": "epoll", "connections": 2, "repetition": 1},
///                                                   // connections (else NumThreads) is required;
///                                                   // repetition defaults to file order
///   "workers": [                                    // per worker of the system under test, counted
///     {"worker": 0, "accepted": 1, "active": 1, "requests": 30864},   // during this point only
///     {"worker": 1, "accepted": 1, "active": 1, "requests": 30864}
///   ],
///   "cpu": {"requests": 61728, "systemSeconds": 1.61, "loadSeconds": 0.93,    // measured window only
///           "systemMicrosPerRequest": 26.1, "loadMicrosPerRequest": 15.1},     // (see PointCPU)
///   "environment": {
///     "kernel": "6.8.0-51-generic", "cpuModel": "AMD EPYC 7B13", "cores": 2,
///     "pinning": {"server": "0", "proxy": "1", "load": "0-1"},
///     "gitCommit": "ccfd848", "ballastVersion": "0.1.0", "configHash": "sha256:…",
///     "workerCost": "block:200us", "hostname": "ci-1"
///   }
/// }
/// ```
/// `workers[].accepted` and `requests` are the counters' increase over the point (the runner scrapes
/// `/workers` before and after); `active` is sampled at the end of the load, before it disconnects.
import Foundation

// MARK: - Generic JSON

/// Any JSON value; keeps parts of a file this model does not interpret.
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d):
            if d.rounded() == d && abs(d) < 9.0e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// The value of one matrix axis: `"epoll"`, `64`, `0.5` or `true`.
public enum AxisValue: Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        throw DecodingError.typeMismatch(AxisValue.self, .init(codingPath: c.codingPath,
            debugDescription: "expected a string, number or boolean"))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        }
    }

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.rounded() == v ? String(Int(v)) : String(v)
        case .string(let v): return v
        case .bool(let v): return String(v)
        }
    }

    /// The value as a whole number, if it is one (`64`, `64.0`, `"64"`).
    public var intValue: Int? {
        switch self {
        case .int(let v): return v
        case .double(let v): return v.rounded() == v && abs(v) < 1e15 ? Int(v) : nil
        case .string(let v): return Int(v)
        case .bool: return nil
        }
    }

    /// Numbers order numerically, then strings; so `2 < 16` and `"epoll" < "io_uring"`.
    public static func < (a: AxisValue, b: AxisValue) -> Bool {
        switch (a.numeric, b.numeric) {
        case let (x?, y?): return x < y
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return a.description < b.description
        }
    }

    private var numeric: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
}

// MARK: - fortio's result

/// fortio's histogram (`DurationHistogram`, `Sizes`, `HeaderSizes`); durations in seconds.
public struct FortioHistogram: Codable, Sendable, Equatable {
    public struct Bucket: Codable, Sendable, Equatable {
        public var start: Double
        public var end: Double
        public var percent: Double
        public var count: Int
        enum CodingKeys: String, CodingKey { case start = "Start", end = "End", percent = "Percent", count = "Count" }
        public init(start: Double, end: Double, percent: Double, count: Int) {
            self.start = start; self.end = end; self.percent = percent; self.count = count
        }
    }

    public struct Percentile: Codable, Sendable, Equatable {
        /// 0...100, e.g. 99.9.
        public var percentile: Double
        public var value: Double
        enum CodingKeys: String, CodingKey { case percentile = "Percentile", value = "Value" }
        public init(percentile: Double, value: Double) { self.percentile = percentile; self.value = value }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            percentile = try c.decode(Double.self, forKey: .percentile)
            value = try c.decode(Double.self, forKey: .value)
            guard percentile.isFinite, (0...100).contains(percentile) else {
                throw DecodingError.dataCorruptedError(forKey: .percentile, in: c, debugDescription: "must be 0...100, got \(percentile)")
            }
            guard value.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "must be a finite number")
            }
        }
    }

    public var count: Int
    public var min: Double
    public var max: Double
    public var sum: Double
    public var avg: Double
    public var stdDev: Double
    public var data: [Bucket]
    public var percentiles: [Percentile]

    enum CodingKeys: String, CodingKey {
        case count = "Count", min = "Min", max = "Max", sum = "Sum", avg = "Avg", stdDev = "StdDev"
        case data = "Data", percentiles = "Percentiles"
    }

    public init(count: Int, min: Double, max: Double, sum: Double, avg: Double, stdDev: Double,
                data: [Bucket] = [], percentiles: [Percentile] = []) {
        self.count = count; self.min = min; self.max = max; self.sum = sum; self.avg = avg
        self.stdDev = stdDev; self.data = data; self.percentiles = percentiles
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decode(Int.self, forKey: .count)
        guard count >= 0 else { throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: "must be >= 0") }
        min = try c.decodeIfPresent(Double.self, forKey: .min) ?? 0
        max = try c.decodeIfPresent(Double.self, forKey: .max) ?? 0
        sum = try c.decodeIfPresent(Double.self, forKey: .sum) ?? 0
        avg = try c.decode(Double.self, forKey: .avg)
        guard avg.isFinite, avg >= 0 else { throw DecodingError.dataCorruptedError(forKey: .avg, in: c, debugDescription: "must be a finite number >= 0") }
        stdDev = try c.decodeIfPresent(Double.self, forKey: .stdDev) ?? 0
        data = try c.decodeIfPresent([Bucket].self, forKey: .data) ?? []
        percentiles = try c.decodeIfPresent([Percentile].self, forKey: .percentiles) ?? []
    }

    /// The value fortio reported for percentile `p` (e.g. 90 or 99.9), if it did.
    public func value(atPercentile p: Double) -> Double? {
        percentiles.first { abs($0.percentile - p) < 1e-9 }?.value
    }
}

// MARK: - Ballast extensions

/// Figures of one worker of the system under test during one point (from `/workers`).
public struct WorkerFigures: Codable, Sendable, Equatable {
    public var worker: Int
    /// Connections accepted during the point.
    public var accepted: Int
    /// Connections open when the load ended.
    public var active: Int
    /// Requests served during the point.
    public var requests: Int
    /// Fraction of the point the worker's loop was busy (0...1), if measured.
    public var busyFraction: Double?
    /// Live rebalancing (`ballast server --balance ...:rebalance=N`): connections this worker
    /// handed to another during the point, took from another, and moves it declined (nil when
    /// the system does not rebalance or does not report moves).
    public var movesOut: Int?
    public var movesIn: Int?
    public var moveRefusals: Int?

    /// The point file's keys; the moves as `/workers` names them.
    enum CodingKeys: String, CodingKey {
        case worker, accepted, active, requests, busyFraction
        case movesOut = "moves_out", movesIn = "moves_in", moveRefusals = "move_refusals"
    }

    public init(worker: Int, accepted: Int, active: Int, requests: Int, busyFraction: Double? = nil,
                movesOut: Int? = nil, movesIn: Int? = nil, moveRefusals: Int? = nil) {
        self.worker = worker; self.accepted = accepted; self.active = active; self.requests = requests
        self.busyFraction = busyFraction
        self.movesOut = movesOut; self.movesIn = movesIn; self.moveRefusals = moveRefusals
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        worker = try c.decode(Int.self, forKey: .worker)
        accepted = try c.decode(Int.self, forKey: .accepted)
        active = try c.decode(Int.self, forKey: .active)
        requests = try c.decode(Int.self, forKey: .requests)
        busyFraction = try c.decodeIfPresent(Double.self, forKey: .busyFraction)
        movesOut = try c.decodeIfPresent(Int.self, forKey: .movesOut)
        movesIn = try c.decodeIfPresent(Int.self, forKey: .movesIn)
        moveRefusals = try c.decodeIfPresent(Int.self, forKey: .moveRefusals)
        for (key, v) in [(CodingKeys.worker, worker), (.accepted, accepted), (.active, active), (.requests, requests),
                         (.movesOut, movesOut ?? 0), (.movesIn, movesIn ?? 0), (.moveRefusals, moveRefusals ?? 0)] where v < 0 {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be >= 0, got \(v)")
        }
    }
}

/// Where and how a result was measured. Absolute figures mean nothing without it.
public struct RunEnvironment: Codable, Sendable, Equatable {
    public var kernel: String?
    public var cpuModel: String?
    public var cores: Int?
    /// Process name -> CPU list, e.g. `{"proxy": "1", "load": "0"}`.
    public var pinning: [String: String]?
    public var gitCommit: String?
    public var ballastVersion: String?
    public var configHash: String?
    /// Worker-cost emulation: `none`, `spin:50us` (busy CPU) or `block:200us` (blocking wait).
    public var workerCost: String?
    public var hostname: String?
    public var notes: String?

    public init(kernel: String? = nil, cpuModel: String? = nil, cores: Int? = nil, pinning: [String: String]? = nil,
                gitCommit: String? = nil, ballastVersion: String? = nil, configHash: String? = nil,
                workerCost: String? = nil, hostname: String? = nil, notes: String? = nil) {
        self.kernel = kernel; self.cpuModel = cpuModel; self.cores = cores; self.pinning = pinning
        self.gitCommit = gitCommit; self.ballastVersion = ballastVersion; self.configHash = configHash
        self.workerCost = workerCost; self.hostname = hostname; self.notes = notes
    }

    /// (label, value) pairs of the fields that are set, for tables.
    public var rows: [(String, String)] {
        var out: [(String, String)] = []
        func add(_ label: String, _ value: String?) { if let value, !value.isEmpty { out.append((label, value)) } }
        add("kernel", kernel)
        add("CPU", cpuModel)
        add("cores", cores.map(String.init))
        add("pinning", pinning.map { $0.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") })
        add("worker cost", workerCost)
        add("git commit", gitCommit)
        add("ballast", ballastVersion)
        add("config hash", configHash)
        add("host", hostname)
        add("notes", notes)
        return out
    }
}

/// One point file: fortio's result plus `variant`, `axes`, `workers` and `environment`.
public struct PointResult: Codable, Sendable, Equatable {
    // fortio's fields
    public var runType: String?
    public var labels: String?
    public var startTime: String?
    /// fortio writes a string: `"max"` for `-qps 0`, else the number.
    public var requestedQPS: String?
    public var requestedDuration: String?
    public var actualQPS: Double
    /// Nanoseconds.
    public var actualDuration: Int64?
    public var numThreads: Int?
    public var version: String?
    public var durationHistogram: FortioHistogram
    public var exactly: Int64?
    public var jitter: Bool?
    public var uniform: Bool?
    /// HTTP status (as a string, `-1` for socket errors) -> count.
    public var retCodes: [String: Int]?
    public var sizes: FortioHistogram?
    public var headerSizes: FortioHistogram?
    public var url: String?
    public var socketCount: Int?
    public var abortOn: Int?
    /// The load generator's extras, kept as they are.
    public var ballast: JSONValue?

    // Ballast's fields
    public var variant: String
    public var axes: [String: AxisValue]
    public var workers: [WorkerFigures]?
    public var environment: RunEnvironment?
    /// CPU per request over the measured window; absent in files written before it existed.
    public var cpu: PointCPU?

    /// Keys of the file this model does not know, written back unchanged.
    public var otherFields: [String: JSONValue]

    public init(variant: String, axes: [String: AxisValue], actualQPS: Double, durationHistogram: FortioHistogram,
                workers: [WorkerFigures]? = nil, environment: RunEnvironment? = nil) {
        self.variant = variant; self.axes = axes; self.actualQPS = actualQPS
        self.durationHistogram = durationHistogram; self.workers = workers; self.environment = environment
        self.otherFields = [:]
    }

    /// Wraps a fortio-compatible JSON result (as `ballast load -json` or fortio write it) into a
    /// point: the sweep runner's way in. Throws `ResultFileError` naming `source` and the field.
    public static func make(fortioJSON: Data, source: String, variant: String, axes: [String: AxisValue],
                            workers: [WorkerFigures]?, environment: RunEnvironment?) throws -> PointResult {
        guard case .object(var object) = try ResultFileError.decoding(JSONValue.self, from: fortioJSON, file: source) else {
            throw ResultFileError(file: source, field: nil, message: "expected a JSON object")
        }
        object["variant"] = .string(variant)
        let encoder = JSONEncoder()
        object["axes"] = try JSONDecoder().decode(JSONValue.self, from: encoder.encode(axes))
        if let workers { object["workers"] = try JSONDecoder().decode(JSONValue.self, from: encoder.encode(workers)) }
        if let environment { object["environment"] = try JSONDecoder().decode(JSONValue.self, from: encoder.encode(environment)) }
        let data = try encoder.encode(JSONValue.object(object))
        return try ResultFileError.decoding(PointResult.self, from: data, file: source)
    }

    static let knownKeys: Set<String> = [
        "RunType", "Labels", "StartTime", "RequestedQPS", "RequestedDuration", "ActualQPS", "ActualDuration",
        "NumThreads", "Version", "DurationHistogram", "Exactly", "Jitter", "Uniform", "RetCodes", "Sizes",
        "HeaderSizes", "URL", "SocketCount", "AbortOn", "Ballast", "variant", "axes", "workers", "environment", "cpu",
    ]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        func key(_ s: String) -> AnyKey { AnyKey(s) }
        runType = try c.decodeIfPresent(String.self, forKey: key("RunType"))
        labels = try c.decodeIfPresent(String.self, forKey: key("Labels"))
        startTime = try c.decodeIfPresent(String.self, forKey: key("StartTime"))
        if let s = try? c.decodeIfPresent(String.self, forKey: key("RequestedQPS")) {
            requestedQPS = s
        } else {
            requestedQPS = try c.decodeIfPresent(Double.self, forKey: key("RequestedQPS")).map { $0 == 0 ? "max" : String($0) }
        }
        requestedDuration = try c.decodeIfPresent(String.self, forKey: key("RequestedDuration"))
        actualQPS = try c.decode(Double.self, forKey: key("ActualQPS"))
        guard actualQPS.isFinite, actualQPS >= 0 else {
            throw DecodingError.dataCorruptedError(forKey: key("ActualQPS"), in: c, debugDescription: "must be a finite number >= 0, got \(actualQPS)")
        }
        actualDuration = try c.decodeIfPresent(Int64.self, forKey: key("ActualDuration"))
        numThreads = try c.decodeIfPresent(Int.self, forKey: key("NumThreads"))
        version = try c.decodeIfPresent(String.self, forKey: key("Version"))
        durationHistogram = try c.decode(FortioHistogram.self, forKey: key("DurationHistogram"))
        exactly = try c.decodeIfPresent(Int64.self, forKey: key("Exactly"))
        jitter = try c.decodeIfPresent(Bool.self, forKey: key("Jitter"))
        uniform = try c.decodeIfPresent(Bool.self, forKey: key("Uniform"))
        retCodes = try c.decodeIfPresent([String: Int].self, forKey: key("RetCodes"))
        sizes = try c.decodeIfPresent(FortioHistogram.self, forKey: key("Sizes"))
        headerSizes = try c.decodeIfPresent(FortioHistogram.self, forKey: key("HeaderSizes"))
        url = try c.decodeIfPresent(String.self, forKey: key("URL"))
        socketCount = try c.decodeIfPresent(Int.self, forKey: key("SocketCount"))
        abortOn = try c.decodeIfPresent(Int.self, forKey: key("AbortOn"))
        ballast = try c.decodeIfPresent(JSONValue.self, forKey: key("Ballast"))

        variant = try c.decode(String.self, forKey: key("variant"))
        guard !variant.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: key("variant"), in: c, debugDescription: "must not be empty")
        }
        axes = try c.decodeIfPresent([String: AxisValue].self, forKey: key("axes")) ?? [:]
        workers = try c.decodeIfPresent([WorkerFigures].self, forKey: key("workers"))
        environment = try c.decodeIfPresent(RunEnvironment.self, forKey: key("environment"))
        cpu = try c.decodeIfPresent(PointCPU.self, forKey: key("cpu"))

        var other: [String: JSONValue] = [:]
        for k in c.allKeys where !Self.knownKeys.contains(k.stringValue) {
            other[k.stringValue] = try c.decode(JSONValue.self, forKey: k)
        }
        otherFields = other
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        func key(_ s: String) -> AnyKey { AnyKey(s) }
        for (k, v) in otherFields where !Self.knownKeys.contains(k) { try c.encode(v, forKey: key(k)) }
        try c.encodeIfPresent(runType, forKey: key("RunType"))
        try c.encodeIfPresent(labels, forKey: key("Labels"))
        try c.encodeIfPresent(startTime, forKey: key("StartTime"))
        try c.encodeIfPresent(requestedQPS, forKey: key("RequestedQPS"))
        try c.encodeIfPresent(requestedDuration, forKey: key("RequestedDuration"))
        try c.encode(actualQPS, forKey: key("ActualQPS"))
        try c.encodeIfPresent(actualDuration, forKey: key("ActualDuration"))
        try c.encodeIfPresent(numThreads, forKey: key("NumThreads"))
        try c.encodeIfPresent(version, forKey: key("Version"))
        try c.encode(durationHistogram, forKey: key("DurationHistogram"))
        try c.encodeIfPresent(exactly, forKey: key("Exactly"))
        try c.encodeIfPresent(jitter, forKey: key("Jitter"))
        try c.encodeIfPresent(uniform, forKey: key("Uniform"))
        try c.encodeIfPresent(retCodes, forKey: key("RetCodes"))
        try c.encodeIfPresent(sizes, forKey: key("Sizes"))
        try c.encodeIfPresent(headerSizes, forKey: key("HeaderSizes"))
        try c.encodeIfPresent(url, forKey: key("URL"))
        try c.encodeIfPresent(socketCount, forKey: key("SocketCount"))
        try c.encodeIfPresent(abortOn, forKey: key("AbortOn"))
        try c.encodeIfPresent(ballast, forKey: key("Ballast"))
        try c.encode(variant, forKey: key("variant"))
        try c.encode(axes, forKey: key("axes"))
        try c.encodeIfPresent(workers, forKey: key("workers"))
        try c.encodeIfPresent(environment, forKey: key("environment"))
        try c.encodeIfPresent(cpu, forKey: key("cpu"))
    }

    /// Requests that did not get a 2xx status (fortio's `-1` socket errors included).
    public var errorCount: Int {
        (retCodes ?? [:]).reduce(0) { sum, entry in
            let ok = Int(entry.key).map { (200..<300).contains($0) } ?? false
            return ok ? sum : sum + entry.value
        }
    }
}

// MARK: - Manifest

public struct ManifestPoint: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case ok, failed }
    /// File name relative to the results directory.
    public var file: String
    public var variant: String?
    public var axes: [String: AxisValue]?
    public var status: Status?
    public var error: String?

    public init(file: String, variant: String? = nil, axes: [String: AxisValue]? = nil, status: Status? = .ok, error: String? = nil) {
        self.file = file; self.variant = variant; self.axes = axes; self.status = status; self.error = error
    }
}

/// `manifest.json` of a results directory.
public struct Manifest: Codable, Sendable, Equatable {
    public static let currentFormat = "ballast-results/1"

    public var format: String?
    public var experiment: String
    public var description: String?
    public var startedAt: String?
    public var finishedAt: String?
    public var complete: Bool?
    public var command: String?
    public var experimentFile: String?
    public var experimentHash: String?
    public var baseline: String?
    /// The variant `ballast gate` normalises by by default (the experiment's `reference`).
    public var reference: String?
    public var variants: [String]?
    public var axes: [String: [AxisValue]]?
    public var order: String?
    public var seed: UInt64?
    public var environment: RunEnvironment?
    public var points: [ManifestPoint]?
    /// Duration and repetitions actually run, and the experiment file's.
    public var runSettings: RunSettings?
    /// The experiment's `tables:` (variant pairs the report compares).
    public var tables: [ComparisonTableSpec]?

    public init(experiment: String, format: String? = Manifest.currentFormat) {
        self.experiment = experiment
        self.format = format
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decodeIfPresent(String.self, forKey: .format)
        if let format, !format.hasPrefix("ballast-results/") {
            throw DecodingError.dataCorruptedError(forKey: .format, in: c, debugDescription: "expected \"\(Manifest.currentFormat)\", got \"\(format)\"")
        }
        experiment = try c.decode(String.self, forKey: .experiment)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        startedAt = try c.decodeIfPresent(String.self, forKey: .startedAt)
        finishedAt = try c.decodeIfPresent(String.self, forKey: .finishedAt)
        complete = try c.decodeIfPresent(Bool.self, forKey: .complete)
        command = try c.decodeIfPresent(String.self, forKey: .command)
        experimentFile = try c.decodeIfPresent(String.self, forKey: .experimentFile)
        experimentHash = try c.decodeIfPresent(String.self, forKey: .experimentHash)
        baseline = try c.decodeIfPresent(String.self, forKey: .baseline)
        reference = try c.decodeIfPresent(String.self, forKey: .reference)
        variants = try c.decodeIfPresent([String].self, forKey: .variants)
        axes = try c.decodeIfPresent([String: [AxisValue]].self, forKey: .axes)
        order = try c.decodeIfPresent(String.self, forKey: .order)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        environment = try c.decodeIfPresent(RunEnvironment.self, forKey: .environment)
        points = try c.decodeIfPresent([ManifestPoint].self, forKey: .points)
        runSettings = try c.decodeIfPresent(RunSettings.self, forKey: .runSettings)
        tables = try c.decodeIfPresent([ComparisonTableSpec].self, forKey: .tables)
    }
}

/// A coding key for any string (fortio's capitalised keys, unknown keys).
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

// MARK: - Writing (for the sweep runner)

extension PointResult {
    /// The file's bytes: pretty-printed, keys sorted, so runs diff well.
    public func jsonData() throws -> Data { try ResultFiles.encoder.encode(self) }

    /// Writes the point atomically (a crash never leaves half a file).
    public func write(to path: String) throws {
        try jsonData().write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

extension Manifest {
    public func jsonData() throws -> Data { try ResultFiles.encoder.encode(self) }

    /// Rewrite it after every point, so an interrupted sweep still has a manifest of what it finished.
    public func write(to path: String) throws {
        try jsonData().write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

public enum ResultFiles {
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// `least-loaded-io_uring-c64-r2.json`: the variant, the other axes' values in key order,
    /// connections and repetition; characters outside [A-Za-z0-9._-] become `-`.
    public static func pointFileName(variant: String, axes: [String: AxisValue]) -> String {
        var parts = [variant]
        for (k, v) in axes.sorted(by: { $0.key < $1.key }) where k != "connections" && k != "repetition" {
            if v.description != variant { parts.append(v.description) }
        }
        if let c = axes["connections"] { parts.append("c\(c)") }
        if let r = axes["repetition"] { parts.append("r\(r)") }
        let name = parts.joined(separator: "-").map { ch -> Character in
            ch.isASCII && (ch.isLetter || ch.isNumber || ch == "." || ch == "_" || ch == "-") ? ch : "-"
        }
        return String(name) + ".json"
    }

    /// `results/<experiment>/<UTC timestamp>` with a timestamp like `20250131T120000Z`.
    public static func runDirectory(root: String = "results", experiment: String, date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return ((root as NSString).appendingPathComponent(experiment) as NSString).appendingPathComponent(f.string(from: date))
    }
}
