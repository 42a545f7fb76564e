import AdminHTTP
import Glibc
import Synchronization

/// Test-only hooks (docs/testing.md). The admin endpoints exist only when the process starts with
/// BALLAST_TEST_HOOKS=1 (without it they answer 404 like any unknown path):
///
/// - `POST /test/stall?worker=N`: worker N of the first listener blocks its loop thread (as a
///   worker stuck in a long computation would) until `POST /test/release`. The watchdog tests use
///   it to prove misses, mega misses and `kill_timeout` (tests in this process use
///   `ProxyOps.stallWorker` directly).
public enum TestHooks {
    public static let enabled: Bool = getenv("BALLAST_TEST_HOOKS").map { String(cString: $0) == "1" } ?? false

    /// Stalls started through the admin endpoint, released together.
    static let held = Mutex<[WorkerStall]>([])

    /// DNS names that resolve to fixed numeric addresses (tests of DNS refresh; empty otherwise).
    static let dnsOverrides = Mutex<[String: [String]]>([:])

    /// Makes `name` resolve to `addresses` (nil: the system resolver again).
    public static func overrideDNS(_ name: String, _ addresses: [String]?) {
        dnsOverrides.withLock { $0[name] = addresses }
    }

    static func dnsOverride(_ name: String) -> [String]? { dnsOverrides.withLock { $0[name] } }
}

/// A stall of one worker loop: the worker blocks in `hold()` (inside one loop turn, so its turn
/// counter stops) until `release()`.
public final class WorkerStall: Sendable {
    private let state = Atomic<Int>(0)  // 0 posted, 1 holding, 2 released

    public init() {}

    /// True once the worker is blocked in the stall.
    public var isHolding: Bool { state.load(ordering: .acquiring) == 1 }

    public func release() { state.store(2, ordering: .releasing) }

    /// On the worker thread: blocks until released (returns at once when released before).
    func hold() {
        guard state.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged else { return }
        while state.load(ordering: .acquiring) != 2 { usleep(1_000) }
    }
}

extension ProxyOps {
    /// Stalls worker `worker` of listener `listener` until the returned stall is released.
    public func stallWorker(listener: Int = 0, worker: Int) -> WorkerStall {
        let stall = WorkerStall()
        proxy.post(.testStall(stall), listener: listener, worker: worker)
        return stall
    }

    /// `/test/...` admin requests; nil when the hooks are off or the path is not a hook.
    func testHookResponse(to request: AdminServer.Request) -> AdminServer.Response? {
        guard TestHooks.enabled, request.path.hasPrefix("/test/") else { return nil }
        guard request.method == "POST" else { return AdminServer.Response(status: 405, body: "\(request.path) answers POST only\n") }
        switch request.path {
        case "/test/stall":
            let workers = proxy.loopStats(ofListener: 0).count
            let text = request.query.split(separator: "&").first { $0.hasPrefix("worker=") }?.dropFirst(7)
            guard let text, let w = Int(text), (0..<workers).contains(w) else {
                return AdminServer.Response(status: 400, body: "expected ?worker=N with N in 0..<\(workers)\n")
            }
            let stall = stallWorker(worker: w)
            TestHooks.held.withLock { $0.append(stall) }
            return AdminServer.Response(body: "stalling worker \(w)\n")
        case "/test/release":
            let stalls = TestHooks.held.withLock { held in
                defer { held.removeAll() }
                return held
            }
            for s in stalls { s.release() }
            return AdminServer.Response(body: "released \(stalls.count)\n")
        default:
            return AdminServer.Response(status: 404, body: "unknown test hook \(request.path)\n")
        }
    }
}
