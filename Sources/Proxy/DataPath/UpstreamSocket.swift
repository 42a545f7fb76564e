import EventLoop
import Glibc

/// What every new upstream socket of a cluster gets before it connects, whoever opens it (a
/// request's pool, tcp_proxy, a health check), as Envoy applies a cluster's connection options
/// to all of them: `upstream_connection_options.tcp_keepalive` and
/// `upstream_bind_config.source_address`.
extension ClusterPlan {
    /// Linux's IP_BIND_ADDRESS_NO_PORT (not exported by Glibc's module): a bind to port 0 leaves
    /// the port to connect(), which may then share it across destinations instead of taking an
    /// ephemeral port for good at bind time.
    static let bindAddressNoPort: Int32 = 24

    /// Applies the options; false when the source address cannot be bound (the connect fails).
    func prepareUpstreamSocket(_ fd: Int32) -> Bool {
        if let tcpKeepalive { tcpKeepalive.apply(to: fd) }
        guard let source = sourceAddress else { return true }
        if source.port == 0 {
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_IP), Self.bindAddressNoPort, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        return source.withSockAddr { bind(fd, $0, $1) } == 0
    }
}

extension ProxyWorker {
    /// A new non-blocking upstream socket for `cluster` (TCP_NODELAY and the cluster's options),
    /// or nil: the socket could not be made or its source address bound, the connection slot
    /// taken for it is given back and the failure counted as a connect failure.
    func openUpstreamSocket(_ cluster: ClusterPlan, to address: SocketAddress) -> Int32? {
        if let fd = try? Sockets.makeStream(family: address.family) {
            Sockets.setNoDelay(fd)
            if cluster.prepareUpstreamSocket(fd) { return fd }
            Glibc.close(fd)
        }
        ClusterResources.give(cluster.resources.connections)
        inc(stats.upstreamCxConnectFail)
        if let cs = clusterStats(cluster.index) { inc(cs.upstreamCxConnectFail) }
        return nil
    }
}
