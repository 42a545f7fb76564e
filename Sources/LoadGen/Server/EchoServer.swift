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

    public init() {}
}

/// A running `ballast server`: N workers, each with its own loop and its own SO_REUSEPORT
/// listening socket (the kernel's hash spreads connections; other strategies come with Balancers).
public final class EchoServer: Sendable {
    public let port: Int
    public let backend: IOBackendKind
    public let workerStats: [EchoWorkerStats]
    public let loopStats: [LoopStats]
    private let mailboxes: [Mailbox<EchoMessage>]
    private let threads: [LoopThread.Handle]

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

    /// Binds, starts the workers and returns once every worker is serving (or throws, with
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

    private static func start<B: IOBackend>(_ options: EchoServerOptions, _: B.Type) throws(StartError) -> EchoServer {
        guard var address = SocketAddress(host: options.address, port: options.port) else { throw .badAddress(options.address) }
        let workers = max(1, options.workers)
        var listeners: [Int32] = []
        do {
            for i in 0..<workers {
                let fd = try Sockets.listen(on: address, reusePort: true)
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
        let port = address.port
        var mailboxes: [Mailbox<EchoMessage>] = []
        do {
            for _ in 0..<workers { mailboxes.append(try Mailbox<EchoMessage>()) }
        } catch {
            for fd in listeners { close(fd) }
            throw .worker("cannot create a worker mailbox: \(error)")
        }
        let workerStats = (0..<workers).map { _ in EchoWorkerStats() }
        let loopStats = (0..<workers).map { _ in LoopStats() }
        // 0 starting, 1 serving, -1 failed (with a message).
        let startup = Mutex<(states: [Int], errors: [String])>((Array(repeating: 0, count: workers), []))
        var threads: [LoopThread.Handle] = []
        for i in 0..<workers {
            let listener = listeners[i]
            let mailbox = mailboxes[i]
            let stats = workerStats[i]
            let loopStat = loopStats[i]
            let limits = options.limits
            let backendOptions = options.backend
            threads.append(LoopThread.start(name: "server-\(i)", cpu: CPUList.cpu(forWorker: i, in: options.cpus)) {
                let loop: EventLoop<B, EchoMessage>
                do {
                    loop = try EventLoop<B, EchoMessage>(index: i, options: backendOptions, mailbox: mailbox, stats: loopStat)
                } catch {
                    close(listener)
                    startup.withLock { $0.states[i] = -1; $0.errors.append("worker \(i): \(B.kind.rawValue) backend failed: \(error)") }
                    return
                }
                let worker = EchoWorker<B>(listener: listener, limits: limits, stats: stats, seed: 0x5EED_0000 + UInt64(i))
                loop.backend.armAccept(listener: listener, token: EchoWorker<B>.listenerToken)
                startup.withLock { $0.states[i] = 1 }
                loop.run(worker)
            })
        }
        while true {
            let (states, errors) = startup.withLock { ($0.states, $0.errors) }
            if states.contains(0) {
                usleep(1000)
                continue
            }
            if !errors.isEmpty {
                for m in mailboxes { m.requestStop() }
                for t in threads { t.join() }
                throw .worker(errors.joined(separator: "; "))
            }
            break
        }
        return EchoServer(port: port, backend: B.kind, workerStats: workerStats, loopStats: loopStats, mailboxes: mailboxes, threads: threads)
    }

    private init(port: Int, backend: IOBackendKind, workerStats: [EchoWorkerStats], loopStats: [LoopStats],
                 mailboxes: [Mailbox<EchoMessage>], threads: [LoopThread.Handle]) {
        self.port = port
        self.backend = backend
        self.workerStats = workerStats
        self.loopStats = loopStats
        self.mailboxes = mailboxes
        self.threads = threads
    }

    /// Stops every worker (open connections are closed) and waits for them.
    public func stop() {
        for m in mailboxes { m.requestStop() }
        for t in threads { t.join() }
    }
}
