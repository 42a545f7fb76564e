import EventLoop
import Glibc
import HTTP1

/// One host's active health check (Envoy's ActiveHealthCheckSession), run by the checker thread
/// only. A check: connect (or reuse the kept connection), send the request, read the response
/// whole, compare its status; the session then waits `interval` (from the check's end, as Envoy)
/// before the next one. Health transitions follow Envoy 1.40's rules (see docs/health-checks.md).
struct HealthCheckSession {
    enum Phase { case idle, connecting, sending, receiving }

    enum Outcome {
        case success
        /// A response with an unexpected status: the host fails at once (no threshold).
        case activeFailure
        /// Connect refused, reset, closed early, malformed: counts towards unhealthy_threshold.
        case networkFailure
        /// The check's timeout passed: a network failure that also sets `/active_hc_timeout`.
        case timeout
    }

    let health: ClusterHealth
    let cluster: Int
    /// The cluster's plan at start: its upstream socket options (source address, keepalive).
    let plan: ClusterPlan
    let host: Int
    let address: SocketAddress
    let config: HealthCheckConfig
    /// The HTTP request bytes (empty for a TCP check).
    let request: [UInt8]

    var phase = Phase.idle
    var fd: Int32 = -1
    var sent = 0
    var input: [UInt8] = []
    var numHealthy = 0
    var numUnhealthy = 0
    var firstCheck = true
    /// The next check starts here (0 while one runs).
    var nextCheckAt: Int64 = 0
    /// The running check fails here (0 while idle).
    var timeoutAt: Int64 = 0
    var timer = DeadlineTimer()

    init(health: ClusterHealth, cluster plan: ClusterPlan, host: Int, address: SocketAddress, config: HealthCheckConfig) {
        let clusterName = plan.name
        self.health = health
        self.cluster = plan.index
        self.plan = plan
        self.host = host
        self.address = address
        self.config = config
        if case .http(let path, let hostField, _) = config.kind {
            // Envoy's HTTP/1 health-check request: lower-case names, Host is the configured
            // `host` or the cluster's name, user-agent Envoy/HC, no body.
            request = Array("GET \(path) HTTP/1.1\r\nhost: \(hostField ?? clusterName)\r\nuser-agent: Envoy/HC\r\n\r\n".utf8)
        } else {
            request = []
        }
    }

    var deadline: Int64 { DeadlineTimer.earliest(nextCheckAt, timeoutAt) }

    // MARK: the check's steps

    /// Starts a check at `now` (the interval passed): on the kept connection, or a new one.
    mutating func start(now: Int64) -> Outcome? {
        nextCheckAt = 0
        timeoutAt = now + config.timeoutNanos
        health.attempt.wrappingAdd(1, ordering: .relaxed)
        input.removeAll(keepingCapacity: true)
        sent = 0
        if fd >= 0 {
            phase = .sending
            return send()
        }
        let socketFD: Int32
        do { socketFD = try Sockets.makeStream(family: address.family) } catch { return .networkFailure }
        fd = socketFD
        Sockets.setNoDelay(fd)
        guard plan.prepareUpstreamSocket(fd) else { return .networkFailure }
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc == 0 { return connected() }
        guard errno == EINPROGRESS else { return .networkFailure }
        phase = .connecting
        return nil
    }

    /// The socket became writable (connect done) or readable; returns the check's outcome once known.
    mutating func ready(readable: Bool, writable: Bool, hangup: Bool) -> Outcome? {
        switch phase {
        case .idle:
            // The kept connection closed or sent something between checks: drop it.
            if readable || hangup { closeConnection() }
            return nil
        case .connecting:
            guard writable || hangup else { return nil }
            guard Sockets.pendingError(fd) == 0 else { return .networkFailure }
            return connected()
        case .sending:
            return writable ? send() : (hangup ? .networkFailure : nil)
        case .receiving:
            return readable || hangup ? receive() : nil
        }
    }

    private mutating func connected() -> Outcome? {
        // A TCP check without payloads passes once connected (Envoy's connect-only check).
        guard !request.isEmpty else { return .success }
        phase = .sending
        return send()
    }

    private mutating func send() -> Outcome? {
        while sent < request.count {
            let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
            return .networkFailure
        }
        phase = .receiving
        return nil
    }

    private mutating func receive() -> Outcome? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                input.append(contentsOf: chunk[0..<n])
                if input.count > 1 << 20 { return .networkFailure }  // a health answer this large is not one
                if let outcome = evaluate(closed: false) { return outcome }
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
            return evaluate(closed: true) ?? .networkFailure
        }
    }

    /// The outcome once the response is whole (nil: more bytes needed).
    private mutating func evaluate(closed: Bool) -> Outcome? {
        var parser = ResponseHeadParser(maxHeaderBytes: 65536, maxHeaders: 100)
        let parsed = input.withUnsafeBytes { parser.parse($0) }
        switch parsed {
        case .complete: break
        case .incomplete: return closed ? .networkFailure : nil
        default: return .networkFailure
        }
        let head = parser.headLength
        var keep = parser.keepAlive
        switch parser.bodyFraming {
        case .none:
            break
        case .contentLength(let n):
            if input.count - head < n { return closed ? .networkFailure : nil }
            if input.count - head > n { keep = false }
        case .chunked:
            var decoder = ChunkedDecoder()
            let skim = input.withUnsafeBytes { decoder.skim(UnsafeRawBufferPointer(rebasing: $0[head...])) }
            if skim.failure != nil { return .networkFailure }
            if !skim.done { return closed ? .networkFailure : nil }
        case .untilClose:
            if !closed { return nil }
            keep = false
        }
        if closed { keep = false }
        if !keep { closeConnection() }
        phase = .idle
        guard case .http(_, _, let expected) = config.kind else { return .success }
        let status = parser.statusCode
        return expected.contains { $0.contains(status) } ? .success : .activeFailure
    }

    mutating func closeConnection() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        phase = .idle
    }

    // MARK: Envoy's health transitions

    /// Applies a check's outcome to the host (Envoy's handleSuccess / handleFailure) and returns
    /// whether the host now counts as healthy (for the next interval).
    mutating func finish(_ outcome: Outcome) -> Bool {
        timeoutAt = 0
        var flags = health.flags(host)
        switch outcome {
        case .success:
            phase = .idle
            if config.kind == .tcp { closeConnection() }
            numUnhealthy = 0
            if flags.contains(.failedActiveHC) {
                // The first result of a host moves it to healthy at once (Envoy: faster start).
                numHealthy += 1
                if firstCheck || numHealthy >= config.healthyThreshold {
                    flags.remove([.failedActiveHC, .activeHCTimeout])
                }
            }
            health.success.wrappingAdd(1, ordering: .relaxed)
        case .activeFailure, .networkFailure, .timeout:
            if outcome != .activeFailure { closeConnection() }
            numHealthy = 0
            if !flags.contains(.failedActiveHC) {
                // A bad status fails the host at once; network failures count to the threshold.
                numUnhealthy += 1
                if outcome == .activeFailure || numUnhealthy >= config.unhealthyThreshold {
                    flags.insert(.failedActiveHC)
                }
            }
            if outcome == .timeout && flags.contains(.failedActiveHC) { flags.insert(.activeHCTimeout) } else { flags.remove(.activeHCTimeout) }
            health.failure.wrappingAdd(1, ordering: .relaxed)
            if outcome != .activeFailure { health.networkFailure.wrappingAdd(1, ordering: .relaxed) }
        }
        flags.remove(.pendingActiveHC)
        firstCheck = false
        health.set(host, flags)
        // Envoy's successful_active_health_check_uneject_host (default true): a passed check of
        // a host that is healthy for the checker ends its outlier ejection.
        if outcome == .success, !flags.contains(.failedActiveHC), let outlier = health.outlier,
           outlier.config.successfulActiveHealthCheckUnejectHost, health.flags(host).contains(.failedOutlierCheck) {
            outlier.uneject(host, health, now: monotonicNanos())
        }
        return !flags.contains(.failedActiveHC)
    }
}

extension SocketAddress {
    /// The same address with another port (a host's `health_check_config.port_value`).
    func withPort(_ port: Int) -> SocketAddress {
        var copy = self
        withUnsafeMutableBytes(of: &copy.storage) { raw in
            if family == AF_INET {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = in_port_t(UInt16(port).bigEndian)
            } else {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
            }
        }
        return copy
    }
}
