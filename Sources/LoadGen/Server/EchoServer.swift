import AdminHTTP
import Balancers
import EventLoop
import Glibc
import Synchronization

/// `ballast server` settings.
public struct EchoServerOptions: Sendable {
    public var address = "0.0.0.0"
    public var port = 8080
    public var workers = 1
    public var io: IOBackendKind = .auto
    public var cpus: [Int] = []
    public var limits = EchoLimits()
    public var backend = BackendOptions()
    public var balance = BalanceSpec(strategy: .reuseport)
    public var workerCost: WorkerCost?
    /// Serve `/workers`, `/stats` and `/ready` on this port (loopback) when set.
    public var adminPort: Int?

    public init() {}
}

/// A running `ballast server`: N workers, each with its own loop, fed by the chosen accept
/// strategy (per-worker SO_REUSEPORT sockets, one shared socket, or an acceptor thread).
public final class EchoServer: Sendable {
    public let port: Int
    public let backend: IOBackendKind
    public let options: EchoServerOptions
    public let workerStats: [EchoWorkerStats]
    public let loopStats: [LoopStats]
    public let loads: WorkerLoads
    public let adminPort: Int?
    private let mailboxes: [Mailbox<EchoMessage>]
    private let acceptorMailbox: Mailbox<AcceptorMessage>?
    private let threads: [LoopThread.Handle]
    private let listeners: [Int32]
    private let admin: AdminServer?

    public enum StartError: Error, CustomStringConvertible {
        case badAddress(String)
        case backend(String)
        case listen(String)
        case worker(String)

        public var description: String {
            switch self {
            case let .badAddress(a): "bad listen address '\(a)': expected a numeric IPv4 or IPv6 address"
            case let .backend(text), let .listen(text), let .worker(text): text
            }
        }
    }

    /// Binds, starts the workers and returns once every loop is serving (or throws, with
    /// everything started so far stopped again).
    public static func start(_ options: EchoServerOptions) throws(StartError) -> EchoServer {
        let choice: BackendSelection.Choice
        do { choice = try BackendSelection.resolve(options.io) } catch { throw .backend(error.description) }
        if let note = choice.note { Log.info(note) }
        switch choice.kind {
        case .ioUring: return try start(options, IoUringBackend.self)
        default: return try start(options, EpollBackend.self)
        }
    }

    /// Hands a connection over through the worker's mailbox (a locked queue and an eventfd
    /// wake-up), or, with `msg-ring` on io_uring, as a completion posted straight into the worker's
    /// ring (IORING_OP_MSG_RING).
    struct Handoff: HandoffSink {
        let mailboxes: [Mailbox<EchoMessage>]
        /// Workers' ring fds when hand-offs go through MSG_RING; empty otherwise.
        let ringAddresses: [Int32]
        func handOff<A: IOBackend>(fd: Int32, to worker: Int, via backend: A) {
            if !ringAddresses.isEmpty && backend.postMessage(to: ringAddresses[worker], value: fd) { return }
            mailboxes[worker].post(.adopt(fd: fd))
        }
    }

    private static func start<B: IOBackend>(_ options: EchoServerOptions, _: B.Type) throws(StartError) -> EchoServer {
        guard var address = SocketAddress(host: options.address, port: options.port) else { throw .badAddress(options.address) }
        let workers = max(1, options.workers)
        let spec = options.balance
        // Listening sockets: one per worker (reuseport), or one in all (shared, acceptor).
        var listeners: [Int32] = []
        do {
            let count = spec.strategy == .reuseport ? workers : 1
            for i in 0..<count {
                let fd = try Sockets.listen(on: address, reusePort: spec.strategy == .reuseport)
                listeners.append(fd)
                if i == 0 && options.port == 0 {
                    // Port 0: the first socket picks a port; the others join it.
                    address = SocketAddress(host: options.address, port: try Sockets.localAddress(fd).port)!
                }
            }
        } catch {
            for fd in listeners { close(fd) }
            throw .listen("cannot listen on \(address): \(error)")
        }
        var mailboxes: [Mailbox<EchoMessage>] = []
        var acceptorMailbox: Mailbox<AcceptorMessage>? = nil
        do {
            for _ in 0..<workers { mailboxes.append(try Mailbox<EchoMessage>()) }
            if spec.strategy.usesAcceptor { acceptorMailbox = try Mailbox<AcceptorMessage>() }
        } catch {
            for fd in listeners { close(fd) }
            throw .worker("cannot create a mailbox: \(error)")
        }
        var backendOptions = options.backend
        if let batch = spec.acceptBatch {
            backendOptions.maxAcceptsPerTurn = batch
        } else if spec.strategy == .shared {
            backendOptions.maxAcceptsPerTurn = Int.max  // accept until EAGAIN, as Envoy before 1.20
        }
        backendOptions.exclusiveAccept = spec.exclusive
        let workerOptions = backendOptions
        let workerStats = (0..<workers).map { _ in EchoWorkerStats() }
        let loopStats = (0..<workers).map { _ in LoopStats() }
        let loads = WorkerLoads(workers: workers)
        let loopCount = workers + (acceptorMailbox == nil ? 0 : 1)
        // 0 starting, 1 serving, -1 failed (with a message).
        let startup = Mutex<(states: [Int], errors: [String], rings: [Int32])>(
            (Array(repeating: 0, count: loopCount), [], Array(repeating: -1, count: workers)))
        var threads: [LoopThread.Handle] = []
        for i in 0..<workers {
            let listener: Int32 = switch spec.strategy {
            case .reuseport: listeners[i]
            case .shared: listeners[0]
            default: -1
            }
            let mailbox = mailboxes[i]
            let stats = workerStats[i]
            let loopStat = loopStats[i]
            let limits = options.limits
            let cost = options.workerCost
            threads.append(LoopThread.start(name: "server-\(i)", cpu: CPUList.cpu(forWorker: i, in: options.cpus)) {
                let loop: EventLoop<B, EchoMessage>
                do {
                    loop = try EventLoop<B, EchoMessage>(index: i, options: workerOptions, mailbox: mailbox, stats: loopStat)
                } catch {
                    startup.withLock { $0.states[i] = -1; $0.errors.append("worker \(i): \(B.kind.rawValue) backend failed: \(error)") }
                    return
                }
                let worker = EchoWorker<B>(index: i, listener: listener, limits: limits, stats: stats, loads: loads,
                                           cost: cost, seed: 0x5EED_0000 + UInt64(i))
                if listener >= 0 { loop.backend.armAccept(listener: listener, token: EchoWorker<B>.listenerToken) }
                let ring = loop.backend.messageAddress
                startup.withLock { $0.states[i] = 1; $0.rings[i] = ring }
                loop.run(worker)
            })
        }
        if let acceptorMailbox {
            let listener = listeners[0]
            let useRing = spec.messageRing
            let allMailboxes = mailboxes
            var acceptorSetup = backendOptions
            acceptorSetup.exclusiveAccept = false
            let acceptorOptions = acceptorSetup
            let index = workers
            // The acceptor shares the CPU list round robin after the workers.
            threads.append(LoopThread.start(name: "acceptor", cpu: CPUList.cpu(forWorker: workers, in: options.cpus)) {
                let loop: EventLoop<B, AcceptorMessage>
                do {
                    loop = try EventLoop<B, AcceptorMessage>(index: index, options: acceptorOptions, mailbox: acceptorMailbox)
                } catch {
                    startup.withLock { $0.states[index] = -1; $0.errors.append("acceptor: \(B.kind.rawValue) backend failed: \(error)") }
                    return
                }
                // MSG_RING needs every worker's ring: wait until the workers are up (or failed).
                var rings: [Int32] = []
                if useRing {
                    while true {
                        let (states, found) = startup.withLock { (Array($0.states[0..<workers]), $0.rings) }
                        if states.contains(-1) {
                            startup.withLock { $0.states[index] = -1; $0.errors.append("acceptor: not started (a worker failed)") }
                            return
                        }
                        if !states.contains(0) { rings = found; break }
                        usleep(1000)
                    }
                    if rings.contains(-1) {
                        Log.warning("--balance \(spec): the \(B.kind.rawValue) backend cannot post into other loops; handing off through mailboxes")
                        rings = []
                    }
                }
                let sink = Handoff(mailboxes: allMailboxes, ringAddresses: rings)
                let acceptor = AcceptorHandler<B, Handoff>(listener: listener, spec: spec, loads: loads,
                                                               workerLoops: loopStats, sink: sink, seed: 0xACCE_0000)
                acceptor.start(loop: loop)
                startup.withLock { $0.states[index] = 1 }
                loop.run(acceptor)
            })
        }
        func stopAll() {
            for m in mailboxes { m.requestStop() }
            acceptorMailbox?.requestStop()
            for t in threads { t.join() }
            for fd in listeners { close(fd) }
        }
        while true {
            let (states, errors) = startup.withLock { ($0.states, $0.errors) }

            if states.contains(0) {
                usleep(1000)
                continue
            }
            if !errors.isEmpty {
                stopAll()
                throw .worker(errors.joined(separator: "; "))
            }
            break
        }
        var admin: AdminServer? = nil
        if let adminPort = options.adminPort {
            let view = AdminView(address: "\(options.address)_\(address.port)", workerStats: workerStats, loopStats: loopStats,
                                 loads: loads, strategy: spec.description, backend: B.kind.rawValue, cost: options.workerCost)
            do {
                admin = try AdminServer(host: "127.0.0.1", port: adminPort) { view.respond(to: $0) }
            } catch {
                stopAll()
                throw .listen("cannot serve admin on 127.0.0.1:\(adminPort): \(error)")
            }
        }
        return EchoServer(port: address.port, backend: B.kind, options: options, workerStats: workerStats, loopStats: loopStats,
                          loads: loads, admin: admin, mailboxes: mailboxes, acceptorMailbox: acceptorMailbox,
                          threads: threads, listeners: listeners)
    }

    private init(port: Int, backend: IOBackendKind, options: EchoServerOptions, workerStats: [EchoWorkerStats],
                 loopStats: [LoopStats], loads: WorkerLoads, admin: AdminServer?, mailboxes: [Mailbox<EchoMessage>],
                 acceptorMailbox: Mailbox<AcceptorMessage>?, threads: [LoopThread.Handle], listeners: [Int32]) {
        self.port = port
        self.backend = backend
        self.options = options
        self.workerStats = workerStats
        self.loopStats = loopStats
        self.loads = loads
        self.admin = admin
        self.adminPort = admin?.port
        self.mailboxes = mailboxes
        self.acceptorMailbox = acceptorMailbox
        self.threads = threads
        self.listeners = listeners
    }

    /// Stops every worker (open connections are closed) and waits for them.
    public func stop() {
        admin?.stop()
        for m in mailboxes { m.requestStop() }
        acceptorMailbox?.requestStop()
        for t in threads { t.join() }
        for fd in listeners { close(fd) }
    }
}
