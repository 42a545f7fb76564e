// Compiled only where Proxy is testable (debug builds, and the fuzz build, which passes
// -enable-testing -DBALLAST_TESTABLE): `swift build -c release` builds an empty module.
#if BALLAST_TESTABLE
@testable import Balancers
@testable import EventLoop
import Glibc
@testable import Proxy

/// One proxy worker on a scripted loop (`ScriptedBackend`), compiled from a bootstrap: the caller
/// adopts client connections and delivers receives, send and connect completions by hand.
final class ScriptedProxy {
    typealias Worker = ProxyWorker<ScriptedBackend>
    let loop: EventLoop<ScriptedBackend, ProxyMessage>
    let worker: Worker
    let plane: DataPlane
    var backend: ScriptedBackend { loop.backend }
    private var peers: [Int32] = []

    convenience init(yaml: String) throws {
        try self.init(plane: DataPlane.compile(BootstrapLoader.load(yaml: yaml).bootstrap))
    }

    /// A fresh worker and loop on an already compiled plane (the fuzz target compiles it once).
    init(plane: DataPlane) throws {
        self.plane = plane
        loop = try EventLoop<ScriptedBackend, ProxyMessage>(index: 0, options: BackendOptions(), mailbox: Mailbox())
        let settings = ProxyWorkerSettings(plane: plane, listener: plane.listeners[0], debugResponseFlags: true, accessRings: nil)
        worker = Worker(seat: WorkerSeat(index: 0, listener: -1, loads: WorkerLoads(workers: 1)), settings: settings,
                        stats: DataPathStats(clusters: plane.clusters.count, tcpProxies: plane.listeners[0].tcpPlans.count))
    }

    deinit { for p in peers { Glibc.close(p) } }

    /// A new client connection (a real socket pair, so socket options work): its fd and token.
    func connectClient() -> (fd: Int32, token: UInt64) {
        var fds: [Int32] = [0, 0]
        socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
        peers.append(fds[1])
        worker.received(.adopt(fd: fds[0]), loop: loop)
        return (fds[0], backend.receiveTokens[fds[0]]!)
    }

    func receive(_ text: String, fd: Int32) { receive(Array(text.utf8), fd: fd) }

    func receive(_ bytes: [UInt8], fd: Int32) {
        bytes.withUnsafeBytes { b in
            worker.handle(Completion(kind: .receive, fd: fd, result: Int32(b.count), token: backend.receiveTokens[fd]!,
                                     buffer: b.baseAddress), loop: loop)
        }
    }

    /// The peer of `fd` closed (0) or reset (-errno).
    func receiveEnd(_ result: Int32, fd: Int32) {
        worker.handle(Completion(kind: .receive, fd: fd, result: result, token: backend.receiveTokens[fd]!), loop: loop)
    }

    /// The latest send on `fd` completed with `written` bytes (all of it by default).
    func complete(sendOn fd: Int32, written: Int? = nil) {
        let last = backend.sends.last { $0.fd == fd }!
        backend.pendingSends.removeAll { $0.fd == fd }
        worker.handle(Completion(kind: .send, fd: fd, result: Int32(written ?? last.bytes.count), token: token(of: fd)), loop: loop)
    }

    /// The oldest send still in flight completed with `written` bytes (all of it when nil); false when none is.
    @discardableResult
    func completeOldestSend(written: Int? = nil) -> Bool {
        guard !backend.pendingSends.isEmpty else { return false }
        let s = backend.pendingSends.removeFirst()
        let n = min(s.count, max(1, written ?? s.count))
        worker.handle(Completion(kind: .send, fd: s.fd, result: Int32(n), token: token(of: s.fd)), loop: loop)
        return true
    }

    /// The upstream connect started for the last stream succeeded: its fd.
    func connectUpstream() -> Int32 {
        let c = backend.connects.last!
        backend.pendingConnects.removeAll { $0.fd == c.fd }
        worker.handle(Completion(kind: .connect, fd: c.fd, result: 0, token: c.token), loop: loop)
        return c.fd
    }

    /// The oldest connect still in flight completed with `result` (0, or -errno); its fd, or nil when none is.
    @discardableResult
    func completeOldestConnect(result: Int32 = 0) -> Int32? {
        guard !backend.pendingConnects.isEmpty else { return nil }
        let c = backend.pendingConnects.removeFirst()
        worker.handle(Completion(kind: .connect, fd: c.fd, result: result, token: c.token), loop: loop)
        return c.fd
    }

    /// The loop's clock moves `nanos` ahead and every timer due by then fires, in deadline order.
    func advance(nanos: Int64) {
        loop.latestNow += nanos
        while let id = loop.timers.popExpired(now: loop.now) { worker.timerFired(id, loop: loop) }
    }

    /// A reload: `plane` is published to the worker as generation `generation`.
    func publish(_ plane: DataPlane, generation: UInt32) {
        worker.received(.publish(plane, generation: generation), loop: loop)
    }

    /// The token completions on `fd` carry: its receive token, else its connect token.
    func token(of fd: Int32) -> UInt64 {
        backend.receiveTokens[fd] ?? backend.connects.last { $0.fd == fd }!.token
    }

    var resources: ClusterResources { plane.clusters[0].resources }
}
#endif
