import ArgumentParser
import Balancers
import EventLoop
import Proxy

/// `ballast proxy`: Envoy's command line where Envoy has one, plus Ballast's flags.
/// Exit codes: validate 0 (OK) / 1 (bad config); serve 2 on a bad config (nothing starts).
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "The Envoy-like HTTP/1.1 proxy, configured by an Envoy v3 bootstrap (YAML).",
        discussion: """
        --mode validate loads and checks the configuration, prints OK (and any deprecation warnings) \
        and exits 0, or prints each error with its YAML path and exits 1. Nothing starts.
        """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case serve, validate
    }

    @Option(name: [.short, .customLong("config-path")], help: "Bootstrap configuration file (Envoy v3 YAML).")
    var configPath: String?

    @Option(name: .customLong("config-yaml"), help: "Bootstrap configuration as a YAML string; merged over --config-path when both are given.")
    var configYAML: String?

    @Option(help: "Worker threads.")
    var concurrency = 2

    @Option(help: "serve or validate.")
    var mode: Mode = .serve

    @Option(name: [.short, .customLong("log-level")], help: "trace, debug, info, warning (warn), error, critical or off.")
    var logLevel = "info"

    @Option(help: "I/O backend: epoll, io_uring or auto (io_uring when the kernel allows it, else epoll).")
    var io: IOBackendKind = .auto

    @Option(help: "Accept strategy for every listener, overriding the config: NAME[:OPTIONS], e.g. least-loaded:requests, p2c:busy, shared:exclusive.")
    var balance: String?

    @Option(help: "CPUs to pin workers to, e.g. 0,1 or 0-3 (worker i gets the i-th, round robin).")
    var cpus: String?

    @Option(name: .customLong("drain-time-s"), help: "Seconds a drain waits for connections to finish (Envoy's default 600).")
    var drainTimeSeconds = 600

    func validate() throws {
        guard configPath != nil || configYAML != nil else {
            throw ValidationError("give a configuration: -c/--config-path FILE or --config-yaml STRING")
        }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1...1024, got \(concurrency)") }
        guard ProxyLogLevel(parsing: logLevel) != nil else {
            throw ValidationError("--log-level: unknown level '\(logLevel)' (expected trace, debug, info, warning, error, critical or off)")
        }
        guard (0...86_400).contains(drainTimeSeconds) else { throw ValidationError("--drain-time-s must be 0...86400, got \(drainTimeSeconds)") }
        if let balance {
            let spec: BalanceSpec
            do { spec = try BalanceSpec.parse(balance) } catch { throw ValidationError("--balance: \(error)") }
            if spec.rebalanceMargin != nil {
                throw ValidationError("--balance \(balance): rebalance=N is built for ballast server only, not for the proxy")
            }
        }
        if let cpus {
            do { _ = try CPUList.parse(cpus) } catch { throw ValidationError("--cpus: \(error)") }
        }
    }

    func run() throws {
        let source = configPath ?? "--config-yaml"
        let loaded: LoadedBootstrap
        do {
            // Validate mode refuses a bad LDS / CDS file (Envoy's validate mode does not read them).
            loaded = try BootstrapLoader.loadAtStart(path: configPath, overlayYAML: configYAML,
                                                     toleratingListenerAndClusterFiles: mode != .validate)
        } catch {
            for warning in error.warnings { Log.warning(warning.located) }
            for item in error.errors { Log.error(item.located) }
            Log.line("ballast: configuration '\(source)' is invalid: \(error.errors.count) error\(error.errors.count == 1 ? "" : "s")")
            throw ExitCode(mode == .validate ? 1 : 2)
        }
        for warning in loaded.warnings { Log.warning(warning.located) }
        if mode == .validate {
            Log.out("OK")
            return
        }

        var options = ProxyOptions()
        options.concurrency = concurrency
        options.io = io
        options.balanceOverride = try balance.map { try BalanceSpec.parse($0) }
        options.cpus = try cpus.map { try CPUList.parse($0) } ?? []
        options.drainTimeNanos = Int64(drainTimeSeconds) * 1_000_000_000
        options.logLevel = ProxyLogLevel(parsing: logLevel) ?? .info
        options.configPath = configPath
        options.configYAML = configYAML
        do {
            try ProxyServer.run(loaded, options)
        } catch {
            Log.error("\(error)")
            throw ExitCode(1)
        }
    }
}
