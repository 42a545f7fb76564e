// Every difference between Envoy 1.40 and Ballast that the differential suite tolerates, with the
// reason. Keys are `case/aspect` (aspects: status, headers, body, upstream, log, connection),
// `*/aspect` for every case, or `stats/<name>`. Anything not listed here fails the suite, and so
// does an entry that no longer shows.

enum Verdict: String {
    /// Ballast does better than Envoy here, on purpose.
    case better
    /// Ballast refuses the feature with a clear message.
    case refused
    /// Ballast behaves differently for a stated reason.
    case differs
    /// Found by the suite, not fixed yet (issue 11).
    case pending
}

struct IntentionalDifference {
    let key: String
    let verdict: Verdict
    let reason: String
}

let intentionalDifferences: [IntentionalDifference] = [
    IntentionalDifference(key: "config/local-ratelimit-descriptors", verdict: .refused, reason: "local_ratelimit descriptors (and rate_limits) are not implemented yet"),
    IntentionalDifference(key: "config/cors-star-methods", verdict: .refused, reason: "echoing the request's access-control-request-* for \"*\" is not implemented yet"),
    IntentionalDifference(key: "config/vhost-local-ratelimit", verdict: .refused, reason: "only CORS policies are looked up at the virtual-host level so far; local_ratelimit and fault take route-level configs"),
    IntentionalDifference(key: "config/fault-grpc-status", verdict: .refused, reason: "no gRPC: the fault filter aborts with HTTP statuses only"),
    IntentionalDifference(key: "config/fault-headers", verdict: .refused, reason: "the fault filter's header matching is not implemented yet"),
    IntentionalDifference(key: "config/fault-rate-limit", verdict: .refused, reason: "the fault filter's response rate limit is not implemented yet"),
    IntentionalDifference(key: "config/local-ratelimit-per-connection", verdict: .refused, reason: "only the bucket shared by all workers (Envoy's default) is implemented"),
    IntentionalDifference(key: "config/retry-omit-canary-hosts", verdict: .refused, reason: "only the previous_hosts retry host predicate is implemented (endpoint metadata, hence canaries, is refused)"),
    IntentionalDifference(key: "config/retry-priority", verdict: .refused, reason: "retry_priority (previous_priorities) is not implemented"),
    IntentionalDifference(key: "config/outlier-detection-monitors", verdict: .refused, reason: "outlier detection extensions (monitors) are not implemented"),
    IntentionalDifference(key: "config/common-lb-zone-aware", verdict: .refused, reason: "zone-aware routing (by the local zone) is not implemented; locality priorities and locality_weighted_lb_config are"),
    IntentionalDifference(key: "config/rds-grpc", verdict: .refused, reason: "xDS from a control plane (gRPC, REST, ADS) is not implemented; LDS, CDS, EDS and RDS from files are"),
    IntentionalDifference(key: "config/tls-inspector-ja3", verdict: .refused, reason: "JA3/JA4 fingerprints (for access logs and matching) are not computed"),
    IntentionalDifference(key: "config/upstream-bind-config-freebind", verdict: .refused, reason: "IP_FREEBIND on upstream sockets (binding an address the machine does not have yet) is not applied; source_address alone is"),
    IntentionalDifference(key: "config/upgrade-connect", verdict: .refused, reason: "CONNECT (tunnelling by method) is not implemented; upgrades by Upgrade header (WebSocket...) are"),
    IntentionalDifference(key: "config/upgrade-filters", verdict: .refused, reason: "an upgrade runs the connection manager's filter chain; separate upgrade filter chains are not implemented"),
    IntentionalDifference(key: "config/rbac-authenticated", verdict: .refused, reason: "no TLS peer identity yet: principals by certificate are not evaluated"),
    IntentionalDifference(key: "config/rbac-log-action", verdict: .refused, reason: "LOG only sets dynamic metadata, which Ballast does not have"),
    IntentionalDifference(key: "config/rbac-scheme-header", verdict: .refused, reason: "only the :authority, :path and :method pseudo-headers are answered by the HTTP/1 data path"),
    IntentionalDifference(key: "config/regex-rewrite-missing-group", verdict: .better, reason: "Envoy accepts a substitution naming a group its pattern lacks (RE2 then refuses the rewrite on every request); Ballast names the substitution at load"),
    IntentionalDifference(key: "config/codec-http2", verdict: .refused, reason: "HTTP/1.1 only; with codec_type AUTO an HTTP/2 preface gets GOAWAY HTTP_1_1_REQUIRED"),
    IntentionalDifference(key: "config/no-http-filters", verdict: .better, reason: "Envoy accepts an HCM without http_filters, then leaves every request unanswered until stream_idle_timeout (no router); Ballast refuses it"),
    IntentionalDifference(key: "config/ring-hash-priority", verdict: .refused, reason: "priorities and locality weights are applied with ROUND_ROBIN, LEAST_REQUEST and RANDOM, not RING_HASH"),
    IntentionalDifference(key: "config/use-original-dst-two-listeners", verdict: .refused, reason: "no hand-off of redirected connections to the listener bound to their original destination; use_original_dst is accepted with one listener"),
    IntentionalDifference(key: "config/header-unsupported-operator", verdict: .refused, reason: "header values support %DOWNSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT]%, %PROTOCOL%, %HOSTNAME%, %REQ(x)% so far"),
    IntentionalDifference(key: "config/most-specific-header-mutations-wins", verdict: .refused, reason: "only Envoy's default order (route, virtual host, route configuration; the last applied wins) is implemented"),
    IntentionalDifference(key: "rd-head/headers", verdict: .differs,
                          reason: "Envoy answers a HEAD request's redirect with transfer-encoding: chunked and no content-length (and no body); Ballast sends content-length: 0, as for GET"),
    IntentionalDifference(key: "hc-head/headers", verdict: .differs,
                          reason: "Envoy answers a HEAD health check with transfer-encoding: chunked and no content-length (and no body); Ballast sends content-length: 0, as for GET"),
    IntentionalDifference(key: "config/health-check-pass-through", verdict: .refused, reason: "the health_check filter's pass-through mode (forward and cache) is not implemented yet"),
    IntentionalDifference(key: "config/health-check-min-healthy", verdict: .refused, reason: "health_check cluster_min_healthy_percentages is not applied yet"),
    IntentionalDifference(key: "config/runtime-other-key", verdict: .refused, reason: "a layer's keys are refused unless ballast applies them (the two connection limits, the fault filters' keys, ext_authz's filter_enabled key); Envoy accepts any key"),
    IntentionalDifference(key: "config/redirect-regex-rewrite", verdict: .refused, reason: "a redirect's regex_rewrite is not implemented yet"),
    IntentionalDifference(key: "config/cache-key-creator-params", verdict: .refused, reason: "Envoy 1.40 accepts key_creator_params and ignores it (not implemented there); Ballast refuses it rather than ignore it"),
    IntentionalDifference(key: "config/cache-with-compressor", verdict: .refused, reason: "the cache stores bodies as the upstream sent them; a codec in the same chain (compressor, decompressor) is not combined with it yet"),
    IntentionalDifference(key: "cache/max-body-bytes", verdict: .differs, reason: "Envoy 1.40 ignores max_body_bytes (not implemented there) and stores any body; Ballast applies it: a longer body is not stored (CacheDifferentialTests)"),
    IntentionalDifference(key: "cache/entry-bound", verdict: .better, reason: "Envoy's simple cache grows without bound; Ballast's keeps at most 4096 entries and 64 MiB per worker, evicting the least recently used (CacheDifferentialTests, docs/cache.md)"),
    // /config_dump (ConfigDumpDifferentialTests): keys removed from both dumps before comparing.
    IntentionalDifference(key: "config_dump/last_updated", verdict: .differs,
                          reason: "a wall-clock time (when the resource was read), different in every run"),
    IntentionalDifference(key: "config_dump/node.user_agent_name", verdict: .differs,
                          reason: "each proxy fills the bootstrap's node with its own name: \"envoy\", \"ballast\""),
    IntentionalDifference(key: "config_dump/node.user_agent_build_version", verdict: .differs,
                          reason: "Envoy's version, build type and source revision, filled into the bootstrap's node"),
    IntentionalDifference(key: "config_dump/node.extensions", verdict: .differs,
                          reason: "the list of Envoy's compiled-in extensions (hundreds), filled into the bootstrap's node; Ballast's are the filters its config reader accepts"),
    IntentionalDifference(key: "config/duplicate-listener", verdict: .better, reason: "Envoy keeps one of two same-named listeners without a word; Ballast names the duplicate"),
]

enum IntentionalDifferences {
    static func matches(_ pattern: String, _ key: String) -> Bool {
        if pattern == key { return true }
        if pattern.hasPrefix("*/") { return key.hasSuffix("/" + pattern.dropFirst(2)) }
        return false
    }

    static func reason(for key: String) -> IntentionalDifference? {
        intentionalDifferences.first { matches($0.key, key) }
    }
}
