import EventLoop
import Glibc
import Synchronization

/// Envoy's watchdog, on the main thread: every tick it wakes each worker loop (a mailbox wake-up
/// makes an idle loop turn) and checks that the loop's turn counter moved since it last did. A
/// worker stuck past `miss_timeout` counts a miss, past `megamiss_timeout` a mega miss (each once
/// per stall, logged with the worker index); past `kill_timeout` the process aborts.
public final class Watchdog: Sendable {
    let proxy: RunningProxy
    let config: WatchdogConfig
    private struct Tracker {
        var turns = -1
        var progressNanos: Int64 = 0
        var missed = false
        var megaMissed = false
    }
    private let trackers: Mutex<[[Tracker]]>
    private let missCount = Atomic<Int>(0)
    private let megaMissCount = Atomic<Int>(0)

    init(proxy: RunningProxy, worker config: WatchdogConfig) {
        self.proxy = proxy
        self.config = config
        trackers = Mutex([])
    }

    public var misses: Int { missCount.load(ordering: .relaxed) }
    public var megaMisses: Int { megaMissCount.load(ordering: .relaxed) }

    /// Main thread, every ~20 ms.
    public func tick(now: Int64 = monotonicNanos()) {
        var events: [(String, ProxyLogLevel)] = []
        var kill: String? = nil
        // Per listener slot (listeners added by an update get theirs; stopped ones are skipped).
        let table = proxy.slotTable
        trackers.withLock { all in
            while all.count < table.count { all.append(Array(repeating: Tracker(), count: table[all.count].run.group.loopStats.count)) }
            for li in all.indices {
                if case .stopped = table[li].phase { continue }
                let loops = table[li].run.group.loopStats
                let name = table[li].run.bound.name
                for w in all[li].indices where w < loops.count {
                    let turns = loops[w].turns.load(ordering: .relaxed)
                    if turns != all[li][w].turns {
                        all[li][w] = Tracker(turns: turns, progressNanos: now)
                    } else {
                        let stuck = now - all[li][w].progressNanos
                        if stuck >= config.missTimeoutNanos && !all[li][w].missed {
                            all[li][w].missed = true
                            missCount.add(1, ordering: .relaxed)
                            events.append(("worker \(w) (listener \(name)) has not turned for \(stuck / 1_000_000) ms: watchdog miss", .warning))
                        }
                        if stuck >= config.megamissTimeoutNanos && !all[li][w].megaMissed {
                            all[li][w].megaMissed = true
                            megaMissCount.add(1, ordering: .relaxed)
                            events.append(("worker \(w) (listener \(name)) has not turned for \(stuck / 1_000_000) ms: watchdog mega miss", .error))
                        }
                        if let k = config.killTimeoutNanos, k > 0, stuck >= k {
                            kill = "worker \(w) (listener \(name)) stuck for \(stuck / 1_000_000) ms (kill_timeout): aborting"
                        }
                    }
                    table[li].run.group.mailboxes[w].wake()
                }
            }
        }
        for (message, level) in events { OpsLog.log(level, "watchdog", message) }
        if let kill {
            OpsLog.log(.critical, "watchdog", kill)
            abort()
        }
    }
}
