/// Who gets each new connection. The same strings appear in flags, YAML, JSON and file names.
public enum AcceptStrategy: String, Sendable, CaseIterable, Codable {
    /// One SO_REUSEPORT listening socket per worker; the kernel's 4-tuple hash picks.
    case reuseport
    /// One listening socket in every worker's loop; whoever wakes first accepts.
    case shared
    /// One acceptor hands connections to the workers in turn.
    case dispatch
    /// One acceptor hands each connection to the least-loaded worker.
    case leastLoaded = "least-loaded"
    /// Two random workers; the less loaded gets the connection.
    case p2c

    /// True when one acceptor thread decides (dispatch, least-loaded, p2c).
    public var usesAcceptor: Bool {
        switch self {
        case .dispatch, .leastLoaded, .p2c: true
        case .reuseport, .shared: false
        }
    }

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// What "load" means for least-loaded and p2c.
public enum LoadMetric: String, Sendable, CaseIterable, Codable {
    /// Open connections (Envoy's exact_balance).
    case connections
    /// Requests received and not yet answered.
    case requests
    /// Busy fraction of the worker's loop, smoothed (EWMA), in parts per million.
    case busy

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A full balancing choice: strategy, metric and options, parsed from `--balance`.
///
/// Text form: `NAME[:OPTION[,OPTION]]`, for example `least-loaded`, `least-loaded:requests`,
/// `p2c:busy`, `shared:exclusive`, `shared:accept-batch=1`, `reuseport:rebalance=1`,
/// `least-loaded:busy,rebalance=50000`.
public struct BalanceSpec: Sendable, Equatable, CustomStringConvertible, Codable {
    public var strategy: AcceptStrategy
    public var metric: LoadMetric
    /// shared: register the listener with EPOLLEXCLUSIVE (epoll only).
    public var exclusive: Bool
    /// Accepts per readiness event before the loop serves other work; nil = until EAGAIN
    /// (the accept-in-a-loop behaviour of Envoy before 1.20, issue #16213).
    public var acceptBatch: Int?
    /// io_uring acceptor: hand connections over with IORING_OP_MSG_RING instead of the mailbox.
    public var messageRing: Bool
    /// shared on io_uring: every worker keeps a multishot accept on the one socket (exclusive in
    /// effect: the first ring to arm takes every connection). Without it, `shared` on io_uring
    /// polls the socket and accepts until EAGAIN in every worker, as on epoll.
    public var multishot = false
    /// Live rebalancing (`ballast server`, epoll): at a request boundary a worker whose load (in
    /// `metric`) is above the mean by more than this margin hands an idle keep-alive connection
    /// to the least-loaded worker (`Decisions.rebalanceTarget`). nil: off.
    public var rebalanceMargin: Int? = nil

    public init(strategy: AcceptStrategy, metric: LoadMetric = .connections, exclusive: Bool = false,
                acceptBatch: Int? = nil, messageRing: Bool = false) {
        self.strategy = strategy
        self.metric = metric
        self.exclusive = exclusive
        self.acceptBatch = acceptBatch
        self.messageRing = messageRing
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func parse(_ text: String) throws(ParseError) -> BalanceSpec {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let strategy = AcceptStrategy(rawValue: String(parts[0])) else {
            throw ParseError(description: "unknown balance strategy '\(parts[0])'; valid: \(AcceptStrategy.names)")
        }
        var spec = BalanceSpec(strategy: strategy)
        guard parts.count == 2 else { return spec }
        var explicitMetric: LoadMetric? = nil
        for option in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
            let kv = option.split(separator: "=", maxSplits: 1)
            let key = kv.first.map(String.init) ?? ""
            if let metric = LoadMetric(rawValue: key), kv.count == 1 {
                spec.metric = metric
                explicitMetric = metric
            } else if key == "exclusive" && kv.count == 1 {
                guard strategy == .shared else { throw ParseError(description: "'exclusive' applies to the shared strategy only") }
                spec.exclusive = true
            } else if key == "multishot" && kv.count == 1 {
                guard strategy == .shared else { throw ParseError(description: "'multishot' applies to the shared strategy only") }
                spec.multishot = true
            } else if key == "msg-ring" && kv.count == 1 {
                guard strategy.usesAcceptor else { throw ParseError(description: "'msg-ring' applies to dispatch, least-loaded and p2c only") }
                spec.messageRing = true
            } else if key == "accept-batch", kv.count == 2, let n = Int(kv[1]), n >= 1 {
                spec.acceptBatch = n
            } else if key == "rebalance" {
                guard kv.count == 2, let n = Int(kv[1]), n >= 0 else {
                    throw ParseError(description: "'rebalance' takes a margin: rebalance=N with N >= 0, in the load metric's unit (connections by default)")
                }
                spec.rebalanceMargin = n
            } else {
                let valid = strategy == .leastLoaded || strategy == .p2c
                    ? "a metric (\(LoadMetric.names)), accept-batch=N, msg-ring or rebalance=N"
                    : strategy == .shared ? "exclusive, multishot, accept-batch=N or rebalance=N" : strategy == .dispatch ? "accept-batch=N, msg-ring or rebalance=N" : "accept-batch=N or rebalance=N"
                throw ParseError(description: "unknown option '\(option)' for \(strategy.rawValue); valid: \(valid)")
            }
        }
        if let metric = explicitMetric, strategy != .leastLoaded && strategy != .p2c {
            // Elsewhere a metric only says what rebalancing compares.
            guard spec.rebalanceMargin != nil else {
                throw ParseError(description: "a load metric applies to least-loaded and p2c (or to rebalance=N), not \(strategy.rawValue)")
            }
            if metric == .busy && !strategy.usesAcceptor {
                throw ParseError(description: "'busy' is measured by the acceptor thread, which \(strategy.rawValue) has not; rebalance \(strategy.rawValue) by connections or requests")
            }
        }
        if spec.multishot && spec.acceptBatch != nil {
            throw ParseError(description: "'multishot' and 'accept-batch' exclude each other: a multishot accept takes connections one completion at a time, without batches")
        }
        if spec.multishot && spec.exclusive {
            throw ParseError(description: "'multishot' (io_uring) and 'exclusive' (epoll) exclude each other")
        }
        return spec
    }

    public var description: String {
        var options: [String] = []
        if strategy == .leastLoaded || strategy == .p2c || (rebalanceMargin != nil && metric != .connections) { options.append(metric.rawValue) }
        if exclusive { options.append("exclusive") }
        if multishot { options.append("multishot") }
        if let acceptBatch { options.append("accept-batch=\(acceptBatch)") }
        if messageRing { options.append("msg-ring") }
        if let rebalanceMargin { options.append("rebalance=\(rebalanceMargin)") }
        return options.isEmpty ? strategy.rawValue : "\(strategy.rawValue):\(options.joined(separator: ","))"
    }
}
