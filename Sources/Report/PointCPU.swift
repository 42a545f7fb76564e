/// CPU cost of one point (the point file's `cpu` object), over the measured window only
/// (the warm-up excluded):
/// ```json
/// "cpu": {"requests": 19234, "systemSeconds": 0.512, "loadSeconds": 0.301,
///         "systemMicrosPerRequest": 26.6, "loadMicrosPerRequest": 15.6,
///         "instructionsPerRequest": 41234}          // only with `instructions: N` (callgrind)
/// ```
/// `systemSeconds` is user + system time of the system under test's process tree (all threads,
/// live descendants, reaped children); `loadSeconds` the load generator's. Point files written
/// before this field existed load without it (the metrics are then absent, not zero).
public struct PointCPU: Codable, Sendable, Equatable {
    /// Requests completed in the measured window (the duration histogram's count).
    public var requests: Int
    public var systemSeconds: Double?
    public var loadSeconds: Double?
    public var systemMicrosPerRequest: Double?
    public var loadMicrosPerRequest: Double?
    /// User-space instructions per request of the system under test, counted by callgrind on
    /// epoll (experiments with `instructions: N`); steadier than the times.
    public var instructionsPerRequest: Double?

    public init(requests: Int, systemSeconds: Double?, loadSeconds: Double?) {
        self.requests = requests
        self.systemSeconds = systemSeconds
        self.loadSeconds = loadSeconds
        func perRequest(_ s: Double?) -> Double? {
            guard let s, s.isFinite, s >= 0, requests > 0 else { return nil }
            return s * 1e6 / Double(requests)
        }
        systemMicrosPerRequest = perRequest(systemSeconds)
        loadMicrosPerRequest = perRequest(loadSeconds)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requests = try c.decode(Int.self, forKey: .requests)
        systemSeconds = try c.decodeIfPresent(Double.self, forKey: .systemSeconds)
        loadSeconds = try c.decodeIfPresent(Double.self, forKey: .loadSeconds)
        systemMicrosPerRequest = try c.decodeIfPresent(Double.self, forKey: .systemMicrosPerRequest)
        loadMicrosPerRequest = try c.decodeIfPresent(Double.self, forKey: .loadMicrosPerRequest)
        instructionsPerRequest = try c.decodeIfPresent(Double.self, forKey: .instructionsPerRequest)
        guard requests >= 0 else { throw DecodingError.dataCorruptedError(forKey: .requests, in: c, debugDescription: "must be >= 0") }
        for (key, v) in [(CodingKeys.systemSeconds, systemSeconds), (.loadSeconds, loadSeconds),
                         (.systemMicrosPerRequest, systemMicrosPerRequest), (.loadMicrosPerRequest, loadMicrosPerRequest),
                         (.instructionsPerRequest, instructionsPerRequest)] {
            if let v, !(v.isFinite && v >= 0) {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be a finite number >= 0")
            }
        }
    }
}
