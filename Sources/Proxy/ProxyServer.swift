/// Runs the proxy: the data path (`ProxyRuntime`) with the loaded bootstrap and the command line's
/// options. Main thread; returns when the proxy has shut down (SIGINT/SIGTERM).
public enum ProxyServer {
    public static func run(_ config: LoadedBootstrap, _ options: ProxyOptions) throws {
        _ = try ProxyRuntime.run(config.bootstrap, options: ProxyRuntimeOptions(options))
    }
}
