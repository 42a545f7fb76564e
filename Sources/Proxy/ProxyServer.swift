/// The proxy's data path: listeners, workers, codec, router, pools. Built by the data-path work on
/// top of `Bootstrap`; until then `run` says so and nothing starts.
public enum ProxyServer {
    public struct NotImplemented: Error, CustomStringConvertible {
        public var description: String { "the proxy data path is not implemented yet (the configuration is valid; try --mode validate)" }
    }

    /// Starts the proxy with a loaded bootstrap and serves until told to stop.
    /// Main thread; returns when the proxy has shut down.
    public static func run(_ config: LoadedBootstrap, _ options: ProxyOptions) throws {
        _ = (config, options)
        throw NotImplemented()
    }
}
