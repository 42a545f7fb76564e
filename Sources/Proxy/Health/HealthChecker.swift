import EventLoop
import Glibc
import Synchronization

/// Active health checks of every cluster with `health_checks`, on one thread of their own (off
/// the workers' loops): a `poll` loop over the sessions' sockets with the sessions' deadlines in
/// a `TimerHeap`. Results go to each cluster's `ClusterHealth`, which the workers read per pick.
///
/// A reload hands over the new snapshot (`update`); a cluster whose checks and hosts are
/// unchanged keeps its `ClusterHealth` (lent by `DataPlane.compile`) and its sessions.
public final class HealthChecker: Sendable {
    private let pending = Mutex<DataPlane?>(nil)
    private let stopped = Atomic<Bool>(false)
    /// Whether cluster `i` has had upstream traffic (Envoy then uses `interval`, else
    /// `no_traffic_interval`); set once the workers' statistics exist.
    private let traffic = Mutex<(@Sendable (Int) -> Bool)?>(nil)
    private let thread = Mutex<LoopThread.Handle?>(nil)

    /// Starts checking the clusters of `plane` that have health checks (nil when none has).
    public static func start(_ plane: DataPlane) -> HealthChecker? {
        guard plane.activeClusters.contains(where: { $0.healthCheck != nil }) else { return nil }
        let checker = HealthChecker()
        checker.pending.withLock { $0 = plane }
        let handle = LoopThread.start(name: "health-check", cpu: nil) { [checker] in checker.run() }
        checker.thread.withLock { $0 = handle }
        return checker
    }

    public func setTrafficProbe(_ probe: @escaping @Sendable (Int) -> Bool) { traffic.withLock { $0 = probe } }

    /// Checks the clusters of a reloaded snapshot from the next turn on.
    public func update(_ plane: DataPlane) { pending.withLock { $0 = plane } }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        thread.withLock { h in
            h?.join()
            h = nil
        }
    }

    /// Waits (bounded by the longest check timeout plus a margin) until every host of `plane`'s
    /// checked clusters had its first check, as Envoy's cluster warming waits for it.
    public static func waitForFirstChecks(_ plane: DataPlane) {
        let checked = plane.activeClusters.compactMap { c in c.healthCheck == nil ? nil : c.health.map { ($0, c.healthCheckTimeoutNanos) } }
        guard let longest = checked.map(\.1).max() else { return }
        let deadline = monotonicNanos() + longest + 500_000_000
        while monotonicNanos() < deadline {
            let done = checked.allSatisfy { h, _ in (0..<h.hostCount).allSatisfy { !h.flags($0).contains(.pendingActiveHC) } }
            if done { return }
            usleep(1000)
        }
    }

    // MARK: the checker thread

    private func run() {
        var sessions: [HealthCheckSession] = []
        var generation: UInt64 = 0
        var timers = TimerHeap(capacity: 64)
        var rng = SystemRandomNumberGenerator()
        var fds: [pollfd] = []
        var owners: [Int] = []
        while !stopped.load(ordering: .relaxed) {
            if let plane = pending.withLock({ p -> DataPlane? in defer { p = nil }; return p }) {
                sessions = Self.sessions(for: plane, keeping: &sessions)
                generation &+= 1
                let now = monotonicNanos()
                for i in sessions.indices {
                    if sessions[i].deadline == 0 { sessions[i].nextCheckAt = now }  // a new session checks at once
                    sessions[i].timer = DeadlineTimer()
                    sessions[i].timer.arm(sessions[i].deadline, id: generation << 32 | UInt64(i), in: &timers)
                }
            }
            // Sockets to wait on.
            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            for (i, s) in sessions.enumerated() where s.fd >= 0 {
                var events = Int16(POLLIN)
                if s.phase == .connecting || s.phase == .sending { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: s.fd, events: events, revents: 0))
                owners.append(i)
            }
            var wait = Int32(50)  // also how soon a stop or a reload is seen
            if let next = timers.nextDeadline {
                wait = Int32(max(0, min(Int64(wait), (next - monotonicNanos() + 999_999) / 1_000_000)))
            }
            let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), wait) }
            if n > 0 {
                for (k, p) in fds.enumerated() where p.revents != 0 {
                    let i = owners[k]
                    guard sessions[i].fd == p.fd else { continue }
                    let hangup = p.revents & Int16(POLLERR | POLLHUP) != 0
                    if let outcome = sessions[i].ready(readable: p.revents & Int16(POLLIN) != 0,
                                                       writable: p.revents & Int16(POLLOUT) != 0, hangup: hangup) {
                        complete(&sessions[i], outcome, &rng)
                        sessions[i].timer.arm(sessions[i].deadline, id: generation << 32 | UInt64(i), in: &timers)
                    }
                }
            }
            let now = monotonicNanos()
            while let id = timers.popExpired(now: now) {
                guard id >> 32 == generation & 0xFFFF_FFFF, Int(id & 0xFFFF_FFFF) < sessions.count else { continue }
                let i = Int(id & 0xFFFF_FFFF)
                sessions[i].timer.fired(now: now)
                if sessions[i].timeoutAt != 0 && sessions[i].timeoutAt <= now {
                    complete(&sessions[i], .timeout, &rng)
                } else if sessions[i].nextCheckAt != 0 && sessions[i].nextCheckAt <= now {
                    if let outcome = sessions[i].start(now: now) { complete(&sessions[i], outcome, &rng) }
                }
                sessions[i].timer.arm(sessions[i].deadline, id: generation << 32 | UInt64(i), in: &timers)
            }
        }
        for i in sessions.indices { sessions[i].closeConnection() }
    }

    /// Records an outcome and schedules the next check: `interval` after this one ended once the
    /// cluster has had traffic, else `no_traffic_interval`; plus up to `interval_jitter`.
    private func complete(_ s: inout HealthCheckSession, _ outcome: HealthCheckSession.Outcome, _ rng: inout SystemRandomNumberGenerator) {
        _ = s.finish(outcome)
        let probe = traffic.withLock { $0 }
        let busy = probe?(s.cluster) ?? false
        var wait = busy ? s.config.intervalNanos : s.config.noTrafficIntervalNanos
        let jitterMs = UInt64(s.config.intervalJitterNanos / 1_000_000)
        if jitterMs > 0 { wait += Int64(rng.next() % jitterMs) * 1_000_000 }
        s.nextCheckAt = monotonicNanos() + max(1_000_000, wait)
    }

    /// The sessions for `plane`: those of clusters whose `ClusterHealth` is the same object as
    /// before and whose upstream socket options (source address, keepalive) are unchanged are
    /// carried over (with their connections); the rest are new, and old ones not carried over
    /// close their connections.
    private static func sessions(for plane: DataPlane, keeping old: inout [HealthCheckSession]) -> [HealthCheckSession] {
        var out: [HealthCheckSession] = []
        var kept = Set<Int>()
        for c in plane.activeClusters {
            guard let health = c.health, let check = c.healthCheck else { continue }
            let carried = old.indices.filter {
                old[$0].health === health && old[$0].plan.sourceAddress?.description == c.sourceAddress?.description
                    && old[$0].plan.tcpKeepalive == c.tcpKeepalive
            }
            if !carried.isEmpty {
                for i in carried { out.append(old[i]); kept.insert(i) }
                continue
            }
            for (h, host) in c.hosts.enumerated() {
                let address = host.healthCheckPort.map { host.address.withPort($0) } ?? host.address
                out.append(HealthCheckSession(health: health, cluster: c, host: h, address: address, config: check))
            }
        }
        for i in old.indices where !kept.contains(i) { old[i].closeConnection() }
        return out
    }
}
