import ArgumentParser
import Balancers
import EventLoop
import Glibc
import LoadGen

extension IOBackendKind: ExpressibleByArgument {}

struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "The test backend: an HTTP/1.1 echo server compatible with fortio's (any path; size=, status=, delay=, close=, header= query parameters)."
    )

    @Option(help: "TCP port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Address to listen on.")
    var address = "0.0.0.0"

    @Option(help: "Worker threads, each with its own event loop.")
    var workers = 1

    @Option(help: "I/O backend: epoll, io_uring or auto (io_uring when the kernel allows it, else epoll).")
    var io: IOBackendKind = .auto

    @Option(help: "CPUs to pin workers to, e.g. 0,1 or 0-3 (worker i gets the i-th, round robin).")
    var cpus: String?

    @Option(help: ArgumentHelp("Accept strategy: NAME[:OPTIONS]. Names: \(AcceptStrategy.names). Options: a load metric for least-loaded/p2c (\(LoadMetric.names)), exclusive (shared, epoll), multishot (shared, io_uring: one exclusive multishot accept per worker), accept-batch=N, msg-ring.", valueName: "strategy"))
    var balance = "reuseport"

    @Option(name: .customLong("worker-cost"), help: ArgumentHelp("Emulated cost per request: spin:200us, block:200us, spin-exp:200us, block-exp:200us (exp:200us = block-exp).", valueName: "mode:duration"))
    var workerCost: String?

    @Option(name: .customLong("admin-port"), help: "Serve /workers, /stats, /ready and /server_info on 127.0.0.1:PORT (0 picks a free one).")
    var adminPort: Int?

    @Option(name: .customLong("max-echo-delay"), help: "Longest delay= honoured (fortio's -max-echo-delay), e.g. 1.5s.")
    var maxEchoDelay = "1.5s"

    @Option(name: .customLong("max-payload-bytes"), help: "Largest size= honoured.")
    var maxPayloadBytes = 256 * 1024

    @Flag(help: ArgumentHelp("Check the flags and exit 0 without serving (ballast sweep's pre-flight check).", visibility: .hidden))
    var check = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
        guard (1...1024).contains(workers) else { throw ValidationError("--workers must be 1...1024, got \(workers)") }
        guard maxPayloadBytes >= 0 && maxPayloadBytes <= 64 << 20 else { throw ValidationError("--max-payload-bytes must be 0...67108864") }
        guard GoDuration.parseNanos(maxEchoDelay) != nil else {
            throw ValidationError("--max-echo-delay: bad duration '\(maxEchoDelay)' (expected e.g. 1.5s, 250ms)")
        }
        if let cpus {
            do { _ = try CPUList.parse(cpus) } catch { throw ValidationError("--cpus: \(error)") }
        }
        do { _ = try BalanceSpec.parse(balance) } catch { throw ValidationError("--balance: \(error)") }
        if let workerCost {
            do { _ = try WorkerCost.parse(workerCost, parseDuration: GoDuration.parseNanos) } catch { throw ValidationError("--worker-cost: \(error)") }
        }
        if let adminPort, !(0...65535).contains(adminPort) { throw ValidationError("--admin-port must be 0...65535") }
    }

    func run() throws {
        if check { return }
        var options = EchoServerOptions()
        options.port = port
        options.address = address
        options.workers = workers
        options.io = io
        options.cpus = try cpus.map { try CPUList.parse($0) } ?? []
        options.balance = try BalanceSpec.parse(balance)
        options.workerCost = try workerCost.map { try WorkerCost.parse($0, parseDuration: GoDuration.parseNanos) }
        options.adminPort = adminPort
        options.limits = EchoLimits(maxDelayNanos: GoDuration.parseNanos(maxEchoDelay)!, maxBodyBytes: maxPayloadBytes)
        let (limit, note) = FileLimit.raise(to: 1 << 17)
        if let note { Log.warning(note) }
        Signals.blockTermination()
        let server: EchoServer
        do {
            server = try EchoServer.start(options)
        } catch {
            Log.error("\(error)")
            throw ExitCode(1)
        }
        let admin = server.adminPort.map { ", admin 127.0.0.1:\($0)" } ?? ""
        let cost = options.workerCost.map { ", worker cost \($0)" } ?? ""
        Log.out("ballast server listening on \(address):\(server.port) (workers \(workers), io \(server.backend.rawValue), balance \(options.balance)\(cost)\(admin), open-file limit \(limit))")
        let signal = Signals.waitForTermination()
        server.stop()
        let requests = server.workerStats.map { $0.requests.load(ordering: .relaxed) }
        let accepted = server.workerStats.map { $0.accepted.load(ordering: .relaxed) }
        Log.info("server stopped by signal \(signal): requests per worker \(requests), connections per worker \(accepted)")
    }
}
