import Balancers
import EventLoop

/// What the command line adds to the bootstrap (Envoy's flags and Ballast's).
public struct ProxyOptions: Sendable {
    /// `--concurrency` (default 2, as the Istio sidecar): worker threads.
    public var concurrency: Int = 2
    /// `--io`: the I/O backend every worker uses.
    public var io: IOBackendKind = .auto
    /// `--balance NAME[:OPTIONS]`: overrides every listener's accept strategy when set.
    public var balanceOverride: BalanceSpec?
    /// `--cpus`: CPUs to pin workers to (worker i gets the i-th, round robin); empty: no pinning.
    public var cpus: [Int] = []
    /// `--drain-time-s` (Envoy default 600 s): how long a drain waits for connections to finish.
    public var drainTimeNanos: Int64 = 600_000_000_000
    /// `-l/--log-level`.
    public var logLevel: ProxyLogLevel = .info
    /// Where the bootstrap came from (`-c` path, or nil for `--config-yaml` only): reload re-reads it.
    public var configPath: String?
    /// `--config-yaml`, merged over the file on every (re)load.
    public var configYAML: String?

    public init() {}
}

/// Envoy's log levels (`-l`); `warn` is accepted as `warning`.
public enum ProxyLogLevel: String, Sendable, CaseIterable, Comparable {
    case trace, debug, info, warning, error, critical, off

    public init?(parsing text: String) {
        if text == "warn" { self = .warning; return }
        self.init(rawValue: text)
    }

    private var rank: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (a: ProxyLogLevel, b: ProxyLogLevel) -> Bool { a.rank < b.rank }
}
