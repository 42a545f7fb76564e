import EventLoop
import Glibc
import Synchronization

/// Messages a balanced worker must understand: an acceptor's hand-off of a connection.
public protocol AdoptingMessage: Sendable {
    static func adopt(fd: Int32) -> Self
    /// A connection another worker moved here (live rebalancing): adopted like a new one, but
    /// counted as a move in, not as an accept.
    static func adoptMoved(fd: Int32) -> Self
}

extension AdoptingMessage {
    public static func adoptMoved(fd: Int32) -> Self { adopt(fd: fd) }
}

/// Moves a connection's fd from one worker to another worker's mailbox (live rebalancing).
public struct PeerHandOff: Sendable {
    let post: @Sendable (_ fd: Int32, _ worker: Int) -> Void
    /// The receiving worker adopts the fd on its next loop turn (`AdoptingMessage.adoptMoved`).
    public func move(fd: Int32, to worker: Int) { post(fd, worker) }
}

/// A handler that runs one worker of a `WorkerGroup` and can take handed-off connections (as
/// `.message` completions with MSG_RING, or as its `adopt` message).
public protocol BalancedWorker: LoopHandler where Message: AdoptingMessage {}

/// Settings of a group of balanced workers behind one listening address.
public struct WorkerGroupOptions: Sendable {
    public var address: SocketAddress
    public var workers: Int
    public var balance: BalanceSpec
    public var cpus: [Int]
    public var backend: BackendOptions
    /// Thread names are `<name>-<i>` and `<name>-acceptor`.
    public var name: String

    public init(address: SocketAddress, workers: Int, balance: BalanceSpec, cpus: [Int] = [],
                backend: BackendOptions = BackendOptions(), name: String = "worker") {
        self.address = address
        self.workers = workers
        self.balance = balance
        self.cpus = cpus
        self.backend = backend
        self.name = name
    }
}

/// What a worker needs from the group when it is created on its own thread.
public struct WorkerSeat: Sendable {
    public let index: Int
    /// The worker's listening socket (reuseport: its own; shared: the one shared by all), or -1
    /// when an acceptor hands connections over. Armed by the group; owned by the group.
    public let listener: Int32
    /// The group's load figures: a worker counts the connections it accepts itself
    /// (`connectionOpened`) and every close; an acceptor counts its hand-offs when it makes them.
    public let loads: WorkerLoads
    /// Hands a connection to another worker of the group (live rebalancing).
    public let peers: PeerHandOff?

    public init(index: Int, listener: Int32, loads: WorkerLoads, peers: PeerHandOff? = nil) {
        self.index = index
        self.listener = listener
        self.loads = loads
        self.peers = peers
    }

    /// The token the group armed the listener with.
    public static var listenerToken: UInt64 { UInt64.max >> 4 }
}

/// N workers, each on its own thread and loop, fed by an accept strategy: per-worker SO_REUSEPORT
/// sockets, one shared socket, or an acceptor thread that hands connections over (mailbox or
/// IORING_OP_MSG_RING). The socket plumbing of `Decisions`; used by `ballast server` and the proxy.
public final class WorkerGroup<Message: AdoptingMessage>: Sendable {
    public let port: Int
    public let backend: IOBackendKind
    public let loads: WorkerLoads
    public let loopStats: [LoopStats]
    public let mailboxes: [Mailbox<Message>]
    private let acceptorMailbox: Mailbox<AcceptorMessage>?
    private let threads: [LoopThread.Handle]
    private let listeners: [Int32]

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Hands a connection over through the worker's mailbox, or with `msg-ring` as a completion
    /// posted straight into the worker's ring.
    struct Handoff: HandoffSink {
        let mailboxes: [Mailbox<Message>]
        let ringAddresses: [Int32]
        func handOff<A: IOBackend>(fd: Int32, to worker: Int, via backend: A) {
            if !ringAddresses.isEmpty && backend.postMessage(to: ringAddresses[worker], value: fd) { return }
            mailboxes[worker].post(Message.adopt(fd: fd))
        }
    }

    /// Binds, starts the workers (each created by `makeWorker` on its own thread) and returns once
    /// every loop serves; on failure everything started is stopped and the error names the cause.
    public static func start<B: IOBackend, W: BalancedWorker>(
        _ options: WorkerGroupOptions, backend _: B.Type,
        makeWorker: @escaping @Sendable (WorkerSeat, EventLoop<B, Message>) -> W
    ) throws(StartError) -> WorkerGroup where W.Backend == B, W.Message == Message {
        var address = options.address
        let workers = max(1, options.workers)
        let spec = options.balance
        var listeners: [Int32] = []
        if address.port != 0 && !Sockets.isFree(address) {
            throw StartError(description: "cannot listen on \(address): the port is already in use (with SO_REUSEPORT this process would silently share another listener's connections)")
        }
        do {
            let count = spec.strategy == .reuseport ? workers : 1
            for i in 0..<count {
                let fd = try Sockets.listen(on: address, reusePort: spec.strategy == .reuseport)
                listeners.append(fd)
                if i == 0 && address.port == 0 {
                    // Port 0: the first socket picks a port; the others join it.
                    address = try Sockets.localAddress(fd)
                }
            }
        } catch {
            for fd in listeners { close(fd) }
            throw StartError(description: "cannot listen on \(address): \(error)")
        }
        var mailboxes: [Mailbox<Message>] = []
        var acceptorMailbox: Mailbox<AcceptorMessage>? = nil
        do {
            for _ in 0..<workers { mailboxes.append(try Mailbox<Message>()) }
            if spec.strategy.usesAcceptor { acceptorMailbox = try Mailbox<AcceptorMessage>() }
        } catch {
            for fd in listeners { close(fd) }
            throw StartError(description: "cannot create a mailbox: \(error)")
        }
        var backendOptions = options.backend
        if let batch = spec.acceptBatch {
            backendOptions.maxAcceptsPerTurn = batch
        } else if spec.strategy == .shared {
            backendOptions.maxAcceptsPerTurn = Int.max  // accept until EAGAIN, as Envoy before 1.20
        }
        backendOptions.exclusiveAccept = spec.exclusive
        // io_uring: a poll then accept4 until EAGAIN (non-exclusive, as epoll) for `shared`, and
        // wherever accept-batch is set (a multishot accept has no batches); `shared:multishot`
        // keeps one multishot accept per worker.
        backendOptions.acceptByPolling = (spec.strategy == .shared && !spec.multishot) || spec.acceptBatch != nil
        if spec.multishot && B.kind != .ioUring {
            for fd in listeners { close(fd) }
            throw StartError(description: "--balance \(spec): 'multishot' is an io_uring accept; with \(B.kind.rawValue) use shared or shared:exclusive")
        }
        if spec.exclusive && B.kind != .epoll {
            Log.warning("--balance \(spec): 'exclusive' is an epoll flag; with \(B.kind.rawValue) every worker is woken for each connection, as with shared")
        }
        let workerOptions = backendOptions
        let loopStats = (0..<workers).map { _ in LoopStats() }
        let loads = WorkerLoads(workers: workers)
        let loopCount = workers + (acceptorMailbox == nil ? 0 : 1)
        // Per loop: 0 starting, 1 serving, -1 failed (with a message); workers' ring fds.
        let startup = Mutex<(states: [Int], errors: [String], rings: [Int32])>(
            (Array(repeating: 0, count: loopCount), [], Array(repeating: -1, count: workers)))
        var threads: [LoopThread.Handle] = []
        let peerMailboxes = mailboxes
        let peers = PeerHandOff { fd, worker in peerMailboxes[worker].post(Message.adoptMoved(fd: fd)) }
        for i in 0..<workers {
            let listener: Int32 = switch spec.strategy {
            case .reuseport: listeners[i]
            case .shared: listeners[0]
            default: -1
            }
            let mailbox = mailboxes[i]
            let loopStat = loopStats[i]
            threads.append(LoopThread.start(name: "\(options.name)-\(i)", cpu: CPUList.cpu(forWorker: i, in: options.cpus)) {
                let loop: EventLoop<B, Message>
                do {
                    loop = try EventLoop<B, Message>(index: i, options: workerOptions, mailbox: mailbox, stats: loopStat)
                } catch {
                    startup.withLock { $0.states[i] = -1; $0.errors.append("worker \(i): \(B.kind.rawValue) backend failed: \(error)") }
                    return
                }
                let worker = makeWorker(WorkerSeat(index: i, listener: listener, loads: loads, peers: peers), loop)
                if listener >= 0 { loop.backend.armAccept(listener: listener, token: WorkerSeat.listenerToken) }
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
            // The acceptor takes the next CPU of the list after the workers (round robin).
            threads.append(LoopThread.start(name: "\(options.name)-acceptor", cpu: CPUList.cpu(forWorker: workers, in: options.cpus)) {
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
                                                           workerLoops: loopStats, sink: sink,
                                                           seed: UInt64(bitPattern: monotonicNanos()) ^ UInt64(getpid()))
                acceptor.start(loop: loop)
                startup.withLock { $0.states[index] = 1 }
                loop.run(acceptor)
            })
        }
        let group = WorkerGroup(port: address.port, backend: B.kind, loads: loads, loopStats: loopStats, mailboxes: mailboxes,
                                acceptorMailbox: acceptorMailbox, threads: threads, listeners: listeners)
        while true {
            let (states, errors) = startup.withLock { ($0.states, $0.errors) }
            if states.contains(0) {
                usleep(1000)
                continue
            }
            if !errors.isEmpty {
                group.stop()
                throw StartError(description: errors.joined(separator: "; "))
            }
            return group
        }
    }

    private init(port: Int, backend: IOBackendKind, loads: WorkerLoads, loopStats: [LoopStats], mailboxes: [Mailbox<Message>],
                 acceptorMailbox: Mailbox<AcceptorMessage>?, threads: [LoopThread.Handle], listeners: [Int32]) {
        self.port = port
        self.backend = backend
        self.loads = loads
        self.loopStats = loopStats
        self.mailboxes = mailboxes
        self.acceptorMailbox = acceptorMailbox
        self.threads = threads
        self.listeners = listeners
    }

    /// Stops the acceptor and every worker (each closes its connections), waits for them, and
    /// closes the listening sockets.
    public func stop() {
        acceptorMailbox?.requestStop()
        for m in mailboxes { m.requestStop() }
        for t in threads { t.join() }
        for fd in listeners { close(fd) }
    }

    /// Stops accepting for good (a removed listener's drain): every listening socket is shut now,
    /// so new connections are refused; pending accepts fail, and a loop that finds its socket
    /// no longer listening does not retry. The sockets close in `stop`.
    public func shutdownListeners() {
        for fd in listeners { Glibc.shutdown(fd, Int32(SHUT_RD)) }
    }

    /// Keeps new connections away from `worker` (acceptor strategies; reuseport and shared
    /// cannot steer the kernel).
    public func markDraining(_ worker: Int) {
        acceptorMailbox?.post(.markDraining(worker: worker))
    }
}
