import EventLoop
import Glibc
import Synchronization

/// Re-resolves the endpoint names of STRICT_DNS and LOGICAL_DNS clusters every
/// `dns_refresh_rate` (Envoy's default 5 s), on a thread of its own (never a worker's). When a
/// cluster's address set changed, the running configuration is compiled again and published as a
/// reload publishes it: workers keep the pools of addresses that stay and retire the others. A
/// failed or empty resolution keeps the hosts (as Envoy keeps them).
final class DNSRefresher: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let thread = Mutex<LoopThread.Handle?>(nil)
    /// Resolutions run, and those that changed a cluster's hosts.
    let resolutions = Atomic<Int>(0)
    let changes = Atomic<Int>(0)

    /// Starts refreshing when the configuration has a DNS cluster.
    static func start(_ ops: ProxyOps) -> DNSRefresher? {
        let bootstrap = ops.state.withLock { $0.bootstrap }
        guard bootstrap.clusters.contains(where: { $0.discoveryType.usesDNS }) else { return nil }
        let refresher = DNSRefresher()
        let handle = LoopThread.start(name: "dns-refresh", cpu: nil) { [weak ops, refresher] in
            refresher.run { ops }
        }
        refresher.thread.withLock { $0 = handle }
        return refresher
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        thread.withLock { h in
            h?.join()
            h = nil
        }
    }

    private func run(_ ops: () -> ProxyOps?) {
        var due: [String: Int64] = [:]
        while !stopped.load(ordering: .relaxed) {
            usleep(20_000)
            guard let ops = ops() else { return }
            let (bootstrap, plane) = ops.state.withLock { ($0.bootstrap, $0.plane) }
            let now = monotonicNanos()
            var changed: [String] = []
            for c in bootstrap.clusters where c.discoveryType.usesDNS {
                let next = due[c.name] ?? now + c.dnsRefreshRateNanos  // resolved at start: the first refresh is one period later
                due[c.name] = next
                guard now >= next else { continue }
                due[c.name] = now + c.dnsRefreshRateNanos
                resolutions.wrappingAdd(1, ordering: .relaxed)
                let hosts = DataPlane.hosts(of: c, warn: false)
                guard let current = plane.activeClusters.first(where: { $0.name == c.name }) else { continue }
                // Envoy's update_* counters of the resolution.
                let r = current.resources
                r.updateAttempt.wrappingAdd(1, ordering: .relaxed)
                guard !hosts.isEmpty else {
                    r.updateFailure.wrappingAdd(1, ordering: .relaxed)
                    continue
                }
                r.updateSuccess.wrappingAdd(1, ordering: .relaxed)
                if Set(hosts.map(\.name)) != Set(current.hosts.map(\.name)) {
                    changed.append(c.name)
                } else {
                    r.updateNoRebuild.wrappingAdd(1, ordering: .relaxed)
                }
            }
            if !changed.isEmpty {
                changes.wrappingAdd(1, ordering: .relaxed)
                ops.refreshDNS(changed: changed)
            }
        }
    }
}
