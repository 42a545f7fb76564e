/// `envoy.filters.network.tcp_proxy` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`).
public struct TCPProxyConfig: Sendable, Hashable {
    /// `stat_prefix` (required): `tcp.<stat_prefix>.*` stats.
    public let statPrefix: String
    /// `cluster` (required): the upstream cluster.
    public let cluster: String
    /// `idle_timeout` (Envoy default 1 h; `nil` when 0s: never).
    public let idleTimeoutNanos: Int64?
    /// `max_connect_attempts` (Envoy default 1).
    public let maxConnectAttempts: Int
    /// `access_log[]`: one line per connection.
    public let accessLog: [AccessLogConfig]
}
