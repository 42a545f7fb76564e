import EventLoop

/// Runs the proxy: the data path (`ProxyRuntime`) with the loaded bootstrap and the command line's
/// options, with its operations (`ProxyOps`: admin, access logs, reload, drain, watchdog). Main
/// thread; returns when the proxy has drained and shut down (SIGTERM/SIGINT or `/quitquitquit`).
public enum ProxyServer {
    public static func run(_ config: LoadedBootstrap, _ options: ProxyOptions) throws {
        let (limit, note) = FileLimit.raise(to: 1 << 17)
        if let note { Log.warning(note) }
        ProxyOps.blockSignals()
        let ops = try ProxyOps.start(config.bootstrap, options: options, runtime: ProxyRuntimeOptions(options),
                                      configText: config.configText)
        for l in ops.proxy.listeners {
            Log.out(l.listeningLine(workers: max(1, options.concurrency), io: ops.proxy.backend, note: "open-file limit \(limit)"))
        }
        for u in ops.proxy.udpProxies {
            Log.out("ballast proxy listening on \(u.plan.address.host):\(u.port) (listener \(u.plan.name), UDP, udp_proxy to cluster \(ops.proxy.plane.clusters[u.plan.cluster].name))")
        }
        if let port = ops.adminPort, let admin = config.bootstrap.admin {
            Log.out("ballast proxy admin on \(admin.address.address):\(port)")
        }
        _ = ops.run()
    }
}
