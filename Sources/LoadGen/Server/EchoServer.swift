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
/// strategy (a `WorkerGroup`).
public final class EchoServer: Sendable {
    public let port: Int
    public let backend: IOBackendKind
    public let options: EchoServerOptions
    public let workerStats: [EchoWorkerStats]
    public let adminPort: Int?
    private let group: WorkerGroup<EchoMessage>
    private let admin: AdminServer?

    public var loopStats: [LoopStats] { group.loopStats }
    public var loads: WorkerLoads { group.loads }

    public enum StartError: Error, CustomStringConvertible {
        case badAddress(String)
        case backend(String)
        case start(String)

        public var description: String {
            switch self {
            case let .badAddress(a): "bad listen address '\(a)': expected a numeric IPv4 or IPv6 address"
            case let .backend(text), let .start(text): text
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

    private static func start<B: IOBackend>(_ options: EchoServerOptions, _: B.Type) throws(StartError) -> EchoServer {
        guard let address = SocketAddress(host: options.address, port: options.port) else { throw .badAddress(options.address) }
        let workers = max(1, options.workers)
        let workerStats = (0..<workers).map { _ in EchoWorkerStats() }
        let limits = options.limits
        let cost = options.workerCost
        let balance = options.balance
        let groupOptions = WorkerGroupOptions(address: address, workers: workers, balance: options.balance,
                                              cpus: options.cpus, backend: options.backend, name: "server")
        let group: WorkerGroup<EchoMessage>
        do {
            group = try WorkerGroup<EchoMessage>.start(groupOptions, backend: B.self) { seat, _ in
                EchoWorker<B>(seat: seat, limits: limits, stats: workerStats[seat.index], cost: cost,
                              seed: 0x5EED_0000 + UInt64(seat.index), balance: balance)
            }
        } catch {
            throw .start(error.description)
        }
        var admin: AdminServer? = nil
        if let adminPort = options.adminPort {
            let view = AdminView(address: "\(options.address)_\(group.port)", workerStats: workerStats, loopStats: group.loopStats,
                                 loads: group.loads, strategy: options.balance.description, backend: B.kind.rawValue,
                                 cost: options.workerCost)
            do {
                admin = try AdminServer(host: "127.0.0.1", port: adminPort) { view.respond(to: $0) }
            } catch {
                group.stop()
                throw .start("cannot serve admin on 127.0.0.1:\(adminPort): \(error)")
            }
        }
        return EchoServer(port: group.port, backend: B.kind, options: options, workerStats: workerStats, group: group, admin: admin)
    }

    private init(port: Int, backend: IOBackendKind, options: EchoServerOptions, workerStats: [EchoWorkerStats],
                 group: WorkerGroup<EchoMessage>, admin: AdminServer?) {
        self.port = port
        self.backend = backend
        self.options = options
        self.workerStats = workerStats
        self.group = group
        self.admin = admin
        self.adminPort = admin?.port
    }

    /// Stops every worker (open connections are closed) and waits for them.
    public func stop() {
        admin?.stop()
        group.stop()
    }
}
