// The differential cases: raw HTTP/1.1 bytes sent to both proxies on the same listener. Each case
// is a row of the README table "Envoy feature -> Ballast" (DifferentialTableTests renders it).

struct DifferentialCase {
    /// Short id, also the `X-Case` field so access-log lines can be told apart.
    let name: String
    /// The README table's feature text.
    let feature: String
    let listener: String
    let request: String
    var isHEAD = false

    init(_ name: String, _ feature: String, listener: String = "plain", isHEAD: Bool = false, _ request: String) {
        self.name = name
        self.feature = feature
        self.listener = listener
        self.isHEAD = isHEAD
        self.request = request
    }
}

/// `GET target HTTP/1.1` with Host example.com, the case id, then `extra` field lines.
private func get(_ name: String, _ target: String, _ extra: String = "", version: String = "HTTP/1.1", host: String = "example.com") -> String {
    "GET \(target) \(version)\r\nHost: \(host)\r\nX-Case: \(name)\r\n\(extra)\r\n"
}

/// `POST target` with a Content-Length body.
private func post(_ name: String, _ target: String, _ body: String) -> String {
    "POST \(target) HTTP/1.1\r\nHost: example.com\r\nX-Case: \(name)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

let differentialCases: [DifferentialCase] = differentialRequestCases + differentialRetryCases

/// retry_policy extras (issue 15): backoff, retriable status codes, per-try timeouts, and the counters.
let differentialRetryCases: [DifferentialCase] = [
    DifferentialCase("rt-connect-failure", "Retries on connect failure with Envoy's backoff: URX,UF and the 'retried' body", listener: "retry",
                     get("rt-connect-failure", "/rt/cf")),
    DifferentialCase("rt-backoff", "retry_back_off base_interval/max_interval", listener: "retry", get("rt-backoff", "/rt/backoff")),
    DifferentialCase("rt-status-codes", "retry_on retriable-status-codes: each attempt's 503 retried, the last one forwarded", listener: "retry",
                     get("rt-status-codes", "/rt/status", "X-Reply-Status: 503\r\n")),
    DifferentialCase("rt-status-not-listed", "retriable-status-codes: a status not listed is forwarded at once", listener: "retry",
                     get("rt-status-not-listed", "/rt/status", "X-Reply-Status: 500\r\n")),
    DifferentialCase("rt-status-ok", "retriable-status-codes: a 200 is not retried", listener: "retry", get("rt-status-ok", "/rt/status")),
    DifferentialCase("rt-gateway-error", "retry_on gateway-error: a 503 retried", listener: "retry",
                     get("rt-gateway-error", "/rt/gw", "X-Reply-Status: 503\r\n")),
    DifferentialCase("rt-per-try-timeout", "per_try_timeout: each attempt timed out, then 504 UT upstream_per_try_timeout", listener: "retry",
                     get("rt-per-try-timeout", "/rt/pertry", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("rt-per-try-not-retried", "per_try_timeout with retry_on connect-failure: retried too (as Envoy 1.40), then 504 URX,UT", listener: "retry",
                     get("rt-per-try-not-retried", "/rt/pertryonly", "X-Reply-Delay: 1\r\n")),
]

let differentialRequestCases: [DifferentialCase] = [
    DifferentialCase("route-prefix", "Route by prefix to a cluster", get("route-prefix", "/up/a?x=1")),
    DifferentialCase("direct-response", "direct_response with an inline body", get("direct-response", "/direct")),
    DifferentialCase("no-route", "No matching route: 404 NR", get("no-route", "/nowhere")),
    DifferentialCase("unknown-host", "No matching virtual host: 404 NR", get("unknown-host", "/up", host: "other.test")),
    DifferentialCase("host-port", "Host with a port matches only a domain written with that port: example.com:80 gets 404 NR",
                     get("host-port", "/up", host: "example.com:80")),
    DifferentialCase("dead-upstream", "Upstream connect failure: 503 UF", get("dead-upstream", "/dead")),
    DifferentialCase("head", "HEAD request", isHEAD: true, "HEAD /up HTTP/1.1\r\nHost: example.com\r\nX-Case: head\r\n\r\n"),
    DifferentialCase("post-body", "POST with a Content-Length body",
                     "POST /up/post HTTP/1.1\r\nHost: example.com\r\nX-Case: post-body\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"),
    DifferentialCase("post-no-body", "A bodiless POST goes upstream with content-length: 0 (Envoy's codec)",
                     "POST /up/post HTTP/1.1\r\nHost: example.com\r\nX-Case: post-no-body\r\n\r\n"),
    DifferentialCase("delete-no-body", "A bodiless DELETE goes upstream without framing",
                     "DELETE /up HTTP/1.1\r\nHost: example.com\r\nX-Case: delete-no-body\r\n\r\n"),
    DifferentialCase("header-case", "Header-name case as sent upstream",
                     get("header-case", "/up", "X-Mixed-Case: Value\r\nUser-Agent: diff/1\r\nACCEPT: */*\r\n")),
    DifferentialCase("hop-by-hop", "Hop-by-hop fields (Connection-nominated, Keep-Alive, Proxy-Connection) removed",
                     get("hop-by-hop", "/up", "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n")),
    DifferentialCase("te-trailers", "TE: trailers", get("te-trailers", "/up", "TE: trailers\r\n")),
    DifferentialCase("request-id-kept", "Client x-request-id kept and logged", get("request-id-kept", "/up", "X-Request-Id: client-id-1\r\n")),
    DifferentialCase("request-id-generated", "x-request-id generated and logged", get("request-id-generated", "/up")),
    DifferentialCase("expected-timeout", "x-envoy-expected-rq-timeout-ms from the route timeout", get("expected-timeout", "/up/t")),
    DifferentialCase("no-timeout", "Route timeout 0s: no expected-timeout field", get("no-timeout", "/notimeout")),
    DifferentialCase("xff-untouched", "x-forwarded-for kept as sent without use_remote_address",
                     get("xff-untouched", "/up", "X-Forwarded-For: 10.0.0.1\r\n")),
    DifferentialCase("xff-absent", "No x-forwarded-for added without use_remote_address", get("xff-absent", "/up")),
    DifferentialCase("xff-appended", "use_remote_address: peer appended to x-forwarded-for", listener: "remote",
                     get("xff-appended", "/up", "X-Forwarded-For: 10.0.0.1\r\n")),
    DifferentialCase("xff-added", "use_remote_address: x-forwarded-for added", listener: "remote", get("xff-added", "/up")),
    DifferentialCase("http10", "HTTP/1.0 request without accept_http_10: 426", get("http10", "/up", version: "HTTP/1.0")),
    DifferentialCase("http10-accepted", "accept_http_10: HTTP/1.0 request proxied", listener: "http10",
                     get("http10-accepted", "/up", version: "HTTP/1.0")),
    DifferentialCase("http10-keep-alive", "accept_http_10: HTTP/1.0 keep-alive", listener: "http10",
                     get("http10-keep-alive", "/up", "Connection: keep-alive\r\n", version: "HTTP/1.0")),
    DifferentialCase("http10-never-chunked", "accept_http_10: a chunked upstream body is never chunked to an HTTP/1.0 client",
                     listener: "http10", get("http10-never-chunked", "/up", "X-Reply-Chunked: 1\r\n", version: "HTTP/1.0")),
    DifferentialCase("xff-trusted-hops", "xff_num_trusted_hops: 1: trusted client address from x-forwarded-for", listener: "hops",
                     get("xff-trusted-hops", "/up", "X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n")),
    DifferentialCase("xff-skip-append", "skip_xff_append: x-forwarded-for kept as sent", listener: "skipxff",
                     get("xff-skip-append", "/up", "X-Forwarded-For: 10.0.0.1\r\n")),
    DifferentialCase("server-name", "server_name with APPEND_IF_ABSENT", listener: "named", get("server-name", "/up")),
    DifferentialCase("upstream-reset", "Upstream closes before a response: 503 UC", get("upstream-reset", "/up", "X-Reply-Close: 1\r\n")),
    DifferentialCase("upstream-malformed", "Malformed upstream response: 502 UPE", get("upstream-malformed", "/up", "X-Reply-Garbage: 1\r\n")),
    DifferentialCase("upstream-204-length", "Upstream 204 with a Content-Length: 502 (protocol error)", get("upstream-204-length", "/up", "X-Reply-204: length\r\n")),
    DifferentialCase("upstream-204-chunked", "Upstream 204 with Transfer-Encoding: 502 (protocol error)", get("upstream-204-chunked", "/up", "X-Reply-204: chunked\r\n")),
    DifferentialCase("upstream-204-zero", "Upstream 204 with Content-Length: 0: relayed without it", get("upstream-204-zero", "/up", "X-Reply-204: zero\r\n")),
    DifferentialCase("response-timeout", "Route timeout expires: 504 UT", get("response-timeout", "/slow", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("absolute-form", "Absolute-form target routes by path", get("absolute-form", "http://example.com/up/abs")),
    DifferentialCase("connection-close", "Connection: close from the client", get("connection-close", "/up", "Connection: close\r\n")),
    DifferentialCase("upstream-chunked", "Chunked upstream response relayed", get("upstream-chunked", "/up", "X-Reply-Chunked: 1\r\n")),
    DifferentialCase("idle-partial-head", "stream_idle_timeout, request head incomplete: 408 SI, close", listener: "idle",
                     "GET /up HTTP/1.1\r\nHost: example.com\r\nX-Case: idle-partial-head\r\n"),
    DifferentialCase("idle-partial-body", "stream_idle_timeout, request body incomplete: 408 SI, close", listener: "idle",
                     "POST /up HTTP/1.1\r\nHost: example.com\r\nX-Case: idle-partial-body\r\nContent-Length: 10\r\n\r\nhello"),
    DifferentialCase("idle-slow-upstream", "stream_idle_timeout, no response yet: 504 SI", listener: "idle",
                     get("idle-slow-upstream", "/up", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("idle-stalled-body", "stream_idle_timeout, response body stalls: reset, SI", listener: "idle",
                     get("idle-stalled-body", "/up", "X-Reply-Stall: 1\r\n")),
    DifferentialCase("idle-route-disabled", "Route idle_timeout 0s disables stream_idle_timeout", listener: "idle",
                     get("idle-route-disabled", "/ridle0", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("route-idle-timeout", "Route idle_timeout replaces the default stream idle timeout: 504 SI",
                     get("route-idle-timeout", "/ridle", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("rq-timeout-partial-head", "request_timeout, request head incomplete: 408, close", listener: "rqtimeout",
                     "GET /up HTTP/1.1\r\nHost: example.com\r\nX-Case: rq-timeout-partial-head\r\n"),
    DifferentialCase("rq-timeout-partial-body", "request_timeout, request body incomplete: 408, close", listener: "rqtimeout",
                     "POST /up HTTP/1.1\r\nHost: example.com\r\nX-Case: rq-timeout-partial-body\r\nContent-Length: 10\r\n\r\nhello"),
    DifferentialCase("rq-timeout-read-whole", "request_timeout ends once the request is read (slow upstream: 200)", listener: "rqtimeout",
                     get("rq-timeout-read-whole", "/up", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("hdr-timeout-partial-head", "request_headers_timeout, request head incomplete: 408, close, downstream_rq_header_timeout",
                     listener: "hdrtimeout", "GET /up HTTP/1.1\r\nHost: example.com\r\nX-Case: hdr-timeout-partial-head\r\n"),
    DifferentialCase("hdr-timeout-partial-body", "request_headers_timeout ends with the head (request body incomplete: no 408)",
                     listener: "hdrtimeout", "POST /direct HTTP/1.1\r\nHost: example.com\r\nX-Case: hdr-timeout-partial-body\r\nContent-Length: 10\r\n\r\nhello"),
    DifferentialCase("hdr-timeout-slow-upstream", "request_headers_timeout ends with the head (slow upstream: 200)", listener: "hdrtimeout",
                     get("hdr-timeout-slow-upstream", "/up", "X-Reply-Delay: 1\r\n")),
    DifferentialCase("regex-route", "Route match safe_regex (RE2, whole path without the query)", get("regex-route", "/re/42?x=1")),
    DifferentialCase("regex-route-partial", "safe_regex matches the whole path only: 404 NR", get("regex-route-partial", "/re/42x")),
    DifferentialCase("regex-header", "Header matcher safe_regex_match", get("regex-header", "/hre", "X-Version: v12\r\n")),
    DifferentialCase("regex-header-partial", "safe_regex_match matches the whole value only: 404 NR",
                     get("regex-header-partial", "/hre", "X-Version: v12b\r\n")),
    DifferentialCase("bad-garbage", "Malformed request line: 400", "GARBAGE\r\n\r\n"),
    DifferentialCase("bad-cl-te", "Content-Length with Transfer-Encoding: 400",
                     "POST /up HTTP/1.1\r\nHost: example.com\r\nX-Case: bad-cl-te\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    DifferentialCase("bad-header", "Field line without a colon: 400", get("bad-header", "/up", "NoColonHere\r\n")),
    DifferentialCase("bad-version", "Unknown HTTP/1.x version: 426", get("bad-version", "/up", version: "HTTP/1.7")),
    DifferentialCase("bad-version-2", "HTTP/2.0 on an HTTP/1 request line", get("bad-version-2", "/up", version: "HTTP/2.0")),
    // local_ratelimit: a bucket of 2 that does not refill during the run (each case's probe goes
    // to /direct, whose route has a large bucket of its own through typed_per_filter_config).
    DifferentialCase("rl-ok-1", "local_ratelimit: a token taken from the shared bucket", listener: "ratelimit", get("rl-ok-1", "/up")),
    DifferentialCase("rl-ok-2", "local_ratelimit: the bucket's last token", listener: "ratelimit", get("rl-ok-2", "/up")),
    DifferentialCase("rl-limited", "local_ratelimit: empty bucket: 429 local_rate_limited with response_headers_to_add (and no x-envoy-ratelimited, as Envoy 1.40)",
                     listener: "ratelimit", get("rl-limited", "/up")),
    DifferentialCase("rl-limited-head", "local_ratelimit: empty bucket, HEAD request", listener: "ratelimit", isHEAD: true,
                     "HEAD /up HTTP/1.1\r\nHost: example.com\r\nX-Case: rl-limited-head\r\n\r\n"),
    DifferentialCase("rl-route-shadow-1", "local_ratelimit: typed_per_filter_config replaces the filter's config on a route",
                     listener: "ratelimit", get("rl-route-shadow-1", "/shadow")),
    DifferentialCase("rl-route-shadow-2", "local_ratelimit: filter_enforced 0%: limited but not enforced (counted, forwarded)",
                     listener: "ratelimit", get("rl-route-shadow-2", "/shadow")),
    DifferentialCase("rl-disabled", "local_ratelimit without filter_enabled: does nothing (Envoy's 0% default)",
                     listener: "rloff", get("rl-disabled", "/up")),
    // fault: header-controlled delay and abort at 100% on the filter, fixed ones per route.
    DifferentialCase("fault-none", "fault: no fault headers, no fault", listener: "fault", get("fault-none", "/up")),
    DifferentialCase("fault-header-abort", "fault: header_abort (x-envoy-fault-abort-request): local reply, flag FI",
                     listener: "fault", get("fault-header-abort", "/up", "X-Envoy-Fault-Abort-Request: 418\r\n")),
    DifferentialCase("fault-header-abort-0", "fault: x-envoy-fault-abort-request-percentage 0: no abort",
                     listener: "fault", get("fault-header-abort-0", "/up", "X-Envoy-Fault-Abort-Request: 500\r\nX-Envoy-Fault-Abort-Request-Percentage: 0\r\n")),
    DifferentialCase("fault-header-abort-bad", "fault: an abort header that is not a status: no abort",
                     listener: "fault", get("fault-header-abort-bad", "/up", "X-Envoy-Fault-Abort-Request: abc\r\n")),
    DifferentialCase("fault-header-delay", "fault: header_delay (x-envoy-fault-delay-request ms) on the worker's timer, flag DI",
                     listener: "fault", get("fault-header-delay", "/up", "X-Envoy-Fault-Delay-Request: 100\r\n")),
    DifferentialCase("fault-delay-then-abort", "fault: a delay followed by an abort (DI,FI)",
                     listener: "fault", get("fault-delay-then-abort", "/up", "X-Envoy-Fault-Delay-Request: 50\r\nX-Envoy-Fault-Abort-Request: 503\r\n")),
    DifferentialCase("fault-route-abort", "fault: typed_per_filter_config abort http_status 503", listener: "fault", get("fault-route-abort", "/faultabort")),
    DifferentialCase("fault-route-delay", "fault: typed_per_filter_config fixed_delay, request body held then forwarded", listener: "fault",
                     "POST /faultdelay HTTP/1.1\r\nHost: example.com\r\nX-Case: fault-route-delay\r\nContent-Length: 5\r\n\r\nhello"),
    // cors: a virtual-host CorsPolicy, and a route that overrides its origins (other fields merged).
    DifferentialCase("cors-simple", "cors: allowed origin: access-control-allow-origin, credentials, expose-headers on the upstream response",
                     listener: "cors", get("cors-simple", "/up", "Origin: https://a.example\r\n")),
    DifferentialCase("cors-upstream-fields", "cors: the upstream's own access-control-* fields replaced", listener: "cors",
                     get("cors-upstream-fields", "/up", "Origin: https://a.example\r\nX-Reply-Cors: 1\r\n")),
    DifferentialCase("cors-bad-origin", "cors: origin not allowed: response untouched", listener: "cors",
                     get("cors-bad-origin", "/up", "Origin: https://evil.example\r\n")),
    DifferentialCase("cors-no-origin", "cors: no origin header", listener: "cors", get("cors-no-origin", "/up")),
    DifferentialCase("cors-preflight", "cors: preflight answered 200 with methods, headers, max-age", listener: "cors",
                     "OPTIONS /up HTTP/1.1\r\nHost: example.com\r\nX-Case: cors-preflight\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n"),
    DifferentialCase("cors-preflight-forwarded", "cors: preflight from a refused origin forwarded (forward_not_matching_preflights default)", listener: "cors",
                     "OPTIONS /up HTTP/1.1\r\nHost: example.com\r\nX-Case: cors-preflight-forwarded\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n"),
    DifferentialCase("cors-direct", "cors: a direct_response decorated too", listener: "cors", get("cors-direct", "/direct", "Origin: https://a.example\r\n")),
    DifferentialCase("cors-route", "cors: route policy's origins (ignore_case suffix) over the virtual host's", listener: "cors",
                     get("cors-route", "/corsroute/x", "Origin: https://X.Other.Test\r\n")),
    DifferentialCase("cors-regex-origin", "cors: safe_regex origin (RE2, whole origin)", listener: "cors",
                     get("cors-regex-origin", "/corsregex", "Origin: https://abc.regex.test\r\n")),
    DifferentialCase("cors-regex-origin-partial", "cors: safe_regex origin matches the whole origin only", listener: "cors",
                     get("cors-regex-origin-partial", "/corsregex", "Origin: https://abc.regex.test.evil\r\n")),
    DifferentialCase("cors-regex-star", "cors: a safe_regex matching \"*\" allows every origin", listener: "cors",
                     get("cors-regex-star", "/corsstar", "Origin: https://anything.test\r\n")),
    DifferentialCase("cors-route-preflight-refused", "cors: forward_not_matching_preflights false: refused origin's preflight answered 200", listener: "cors",
                     "OPTIONS /corsroute HTTP/1.1\r\nHost: example.com\r\nX-Case: cors-route-preflight-refused\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n\r\n"),
    // Header mutations at route, virtual-host and route-configuration level (route first, then
    // virtual host, then route configuration; append_action, keep_empty_value, %...% values).
    DifferentialCase("headers-mutated", "request/response_headers_to_add/remove at route, virtual host and route config: order, append_action, keep_empty_value, %REQ%, %PROTOCOL%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                     listener: "headers", get("headers-mutated", "/hdr", "X-Client: c1\r\nX-Remove-Me: 1\r\nX-Drop-Me: 1\r\nX-Level: client\r\nX-Only-If-There: client\r\nX-Legacy: client\r\n")),
    DifferentialCase("headers-absent", "headers_to_add: ADD_IF_ABSENT adds, OVERWRITE_IF_EXISTS skips, %REQ% of a missing field adds nothing",
                     listener: "headers", get("headers-absent", "/hdr")),
    DifferentialCase("headers-direct", "response_headers_to_add on a direct_response (content-type overwritten)", listener: "headers",
                     get("headers-direct", "/hdrdirect")),
    DifferentialCase("headers-upstream-failure", "response_headers_to_add on the router's 503 UF", listener: "headers",
                     get("headers-upstream-failure", "/hdrdead")),
    // Redirects: answered as a direct response with `location` and an empty body.
    DifferentialCase("rd-https", "redirect https_redirect: 301, location keeps host, path and query; response_headers_to_add", listener: "headers",
                     get("rd-https", "/rd/https/a?x=1")),
    DifferentialCase("rd-head", "redirect answering a HEAD request", listener: "headers", isHEAD: true,
                     "HEAD /rd/https HTTP/1.1\r\nHost: example.com\r\nX-Case: rd-head\r\n\r\n"),
    DifferentialCase("rd-host-port", "redirect host_redirect and port_redirect, response_code FOUND", listener: "headers",
                     get("rd-host-port", "/rd/host?q=1")),
    DifferentialCase("rd-path", "redirect path_redirect keeps the request's query, TEMPORARY_REDIRECT", listener: "headers",
                     get("rd-path", "/rd/path/x?q=1")),
    DifferentialCase("rd-path-query", "redirect path_redirect with its own query (strip_query does not drop it)", listener: "headers",
                     get("rd-path-query", "/rd/pathq?q=1")),
    DifferentialCase("rd-prefix", "redirect prefix_rewrite with strip_query, PERMANENT_REDIRECT", listener: "headers",
                     get("rd-prefix", "/rd/prefix/rest/of?q=1")),
    DifferentialCase("rd-scheme", "redirect scheme_redirect (kept as written) and host_redirect, SEE_OTHER", listener: "headers",
                     get("rd-scheme", "/rd/scheme")),
    DifferentialCase("headers-other-route", "virtual-host and route-config response headers on a route without its own", listener: "headers",
                     get("headers-other-route", "/up")),
    // health_check (pass_through_mode false, `:path` exact /healthz): answered by the proxy.
    DifferentialCase("hc-ok", "health_check: a matching request answered 200 health_check_ok, x-envoy-upstream-healthchecked-cluster",
                     listener: "healthcheck", get("hc-ok", "/healthz")),
    DifferentialCase("hc-query", "health_check: :path matches with the query, so /healthz?x=1 is forwarded",
                     listener: "healthcheck", get("hc-query", "/healthz?x=1")),
    DifferentialCase("hc-other", "health_check: other requests forwarded", listener: "healthcheck", get("hc-other", "/up")),
    // buffer (max_request_bytes 10; /nobuf disables it per route, /bigbuf raises it to 100).
    DifferentialCase("buf-small", "buffer: a body within max_request_bytes forwarded whole", listener: "buffer",
                     post("buf-small", "/up/b", "hello")),
    DifferentialCase("buf-large", "buffer: a Content-Length body above max_request_bytes: 413 Payload Too Large, close", listener: "buffer",
                     post("buf-large", "/up/b", "0123456789abcdefghij")),
    DifferentialCase("buf-chunked-large", "buffer: a chunked body above max_request_bytes: 413", listener: "buffer",
                     "POST /up/b HTTP/1.1\r\nHost: example.com\r\nX-Case: buf-chunked-large\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"),
    DifferentialCase("buf-chunked-small", "buffer: a small chunked body forwarded", listener: "buffer",
                     "POST /up/b HTTP/1.1\r\nHost: example.com\r\nX-Case: buf-chunked-small\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    DifferentialCase("buf-route-disabled", "buffer: BufferPerRoute disabled: a large body streamed", listener: "buffer",
                     post("buf-route-disabled", "/nobuf", "0123456789abcdefghij")),
    DifferentialCase("buf-route-limit", "buffer: BufferPerRoute max_request_bytes 100", listener: "buffer",
                     post("buf-route-limit", "/bigbuf", "0123456789abcdefghij")),
    DifferentialCase("buf-get", "buffer: a request without a body", listener: "buffer", get("buf-get", "/up")),
    DifferentialCase("hc-post", "health_check: a POST with a body answered once the body is read, the connection kept", listener: "healthcheck",
                     "POST /healthz HTTP/1.1\r\nHost: example.com\r\nX-Case: hc-post\r\nContent-Length: 5\r\n\r\nhello"),
    DifferentialCase("hc-post-chunked", "health_check: a chunked body read and dropped", listener: "healthcheck",
                     "POST /healthz HTTP/1.1\r\nHost: example.com\r\nX-Case: hc-post-chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    DifferentialCase("hc-head", "health_check: HEAD request", listener: "healthcheck", isHEAD: true,
                     "HEAD /healthz HTTP/1.1\r\nHost: example.com\r\nX-Case: hc-head\r\n\r\n"),
    // Upgrades (upgrade_configs): refused ones, and one the upstream declines; the tunnels
    // themselves are `tunnelScenarios` below.
    DifferentialCase("upgrade-refused", "Upgrade without upgrade_configs: 403 upgrade_failed, close",
                     get("upgrade-refused", "/up", "Connection: Upgrade\r\nUpgrade: websocket\r\n")),
    DifferentialCase("upgrade-route-disabled", "upgrade_configs: a route's enabled: false overrides the manager's: 403", listener: "upgrade",
                     get("upgrade-route-disabled", "/ws-off", "Connection: Upgrade\r\nUpgrade: websocket\r\n")),
    DifferentialCase("upgrade-other-type", "upgrade_configs: an Upgrade value not listed (or a list of them): 403", listener: "upgrade",
                     get("upgrade-other-type", "/up", "Connection: Upgrade\r\nUpgrade: websocket, other\r\n")),
    DifferentialCase("upgrade-declined", "Upgrade allowed, the upstream answers 200: relayed, no service-time field, close", listener: "upgrade",
                     get("upgrade-declined", "/up", "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n")),
    DifferentialCase("upgrade-route-type", "upgrade_configs on a route enables a type of its own", listener: "upgrade",
                     get("upgrade-route-type", "/custom", "Connection: Upgrade\r\nUpgrade: custom-proto\r\n")),
    DifferentialCase("upgrade-without-connection", "Upgrade field without Connection: upgrade: a plain request, the field dropped", listener: "upgrade",
                     get("upgrade-without-connection", "/up", "Upgrade: websocket\r\n")),
] + csrfCases + rbacCases + rewriteCases + virtualHostCases

/// Virtual-host choice on the `vhosts` listener: domains example.com, port.test:8080,
/// *.wild.test, pre.* and *; the port is part of the Host value that is matched.
let virtualHostCases: [DifferentialCase] = [
    ("vh-exact", "example.com", "Virtual host by exact domain"),
    ("vh-exact-case", "EXAMPLE.com", "Virtual host: Host compared case-insensitively"),
    ("vh-exact-port", "example.com:80", "Virtual host: a Host with a port skips the domain without it, \"*\" takes it"),
    ("vh-domain-port", "port.test:8080", "Virtual host: a domain with a port matches that Host and port"),
    ("vh-domain-other-port", "port.test:9090", "Virtual host: a domain with a port, another port: \"*\""),
    ("vh-domain-no-port", "port.test", "Virtual host: a domain with a port, a Host without one: \"*\""),
    ("vh-suffix", "a.wild.test", "Virtual host by *.suffix"),
    ("vh-suffix-port", "a.wild.test:80", "Virtual host: *.suffix does not match a Host with a port"),
    ("vh-prefix-port", "pre.x:80", "Virtual host: prefix.* matches a Host with a port"),
    ("vh-ipv6-port", "[::1]:80", "Virtual host: an IPv6 literal with a port: \"*\""),
].map { name, host, feature in DifferentialCase(name, feature, listener: "vhosts", get(name, "/up", host: host)) } + [
    DifferentialCase("require-tls-all", "require_tls ALL: a plain request gets 301 to its https:// URL (query kept)", listener: "vhosts",
                     get("require-tls-all", "/a/b?q=1", host: "tls-all.test")),
    DifferentialCase("require-tls-port", "require_tls: the Host's port stays in the location, :80 included", listener: "vhosts",
                     get("require-tls-port", "/p", host: "tls-all.test:80")),
    DifferentialCase("require-tls-external", "require_tls EXTERNAL_ONLY: every request is external (x-envoy-internal ignored)", listener: "vhosts",
                     get("require-tls-external", "/e", "x-envoy-internal: true\r\n", host: "tls-external_only.test")),
    DifferentialCase("require-tls-post", "require_tls: a POST with a body gets the 301 and connection: close", listener: "vhosts",
                     "POST /form HTTP/1.1\r\nHost: tls-all.test\r\nX-Case: require-tls-post\r\nContent-Length: 5\r\n\r\nhello"),

    DifferentialCase("strip-any-port", "strip_any_host_port: the port leaves the Host before routing and upstream", listener: "stripany",
                     get("strip-any-port", "/up", host: "example.com:8080")),
    DifferentialCase("strip-any-absolute", "strip_any_host_port on an absolute-form target's authority", listener: "stripany",
                     get("strip-any-absolute", "http://example.com:9999/up/abs", host: "other.test:1")),
    DifferentialCase("strip-any-not-numeric", "strip_any_host_port: a port that is not a number stays: 404 NR", listener: "stripany",
                     get("strip-any-not-numeric", "/up", host: "example.com:http")),
    DifferentialCase("strip-matching-port", "strip_matching_host_port: the listener's own port removed", listener: "stripmatching",
                     get("strip-matching-port", "/up", host: "example.com:{port}")),
    DifferentialCase("strip-matching-other-port", "strip_matching_host_port: another port stays: 404 NR", listener: "stripmatching",
                     get("strip-matching-other-port", "/up", host: "example.com:1")),
]

/// `method target` on the csrf listener with the case id and `extra` field lines, no body.
private func csrf(_ name: String, _ method: String, _ target: String, _ extra: String, host: String = "example.com") -> String {
    "\(method) \(target) HTTP/1.1\r\nHost: \(host)\r\nX-Case: \(name)\r\nContent-Length: 0\r\n\(extra)\r\n"
}

let csrfCases: [DifferentialCase] = [
    DifferentialCase("csrf-same-origin", "csrf: Origin's host equals Host: forwarded", listener: "csrf",
                     csrf("csrf-same-origin", "POST", "/up", "Origin: https://example.com\r\n")),
    DifferentialCase("csrf-other-origin", "csrf: a POST from another origin: 403 Invalid origin, csrf_origin_mismatch", listener: "csrf",
                     csrf("csrf-other-origin", "POST", "/up", "Origin: http://evil.test\r\n")),
    DifferentialCase("csrf-no-origin", "csrf: neither Origin nor Referer: 403, missing_source_origin", listener: "csrf",
                     csrf("csrf-no-origin", "DELETE", "/up", "")),
    DifferentialCase("csrf-null-origin", "csrf: Origin null is a missing source (no fallback to Referer)", listener: "csrf",
                     csrf("csrf-null-origin", "PUT", "/up", "Origin: null\r\nReferer: http://example.com/page\r\n")),
    DifferentialCase("csrf-origin-over-referer", "csrf: Origin wins over a matching Referer", listener: "csrf",
                     csrf("csrf-origin-over-referer", "PATCH", "/up", "Origin: http://evil.test\r\nReferer: http://example.com/\r\n")),
    DifferentialCase("csrf-safe-method", "csrf: GET and OPTIONS are not checked", listener: "csrf",
                     csrf("csrf-safe-method", "OPTIONS", "/up", "Origin: http://evil.test\r\n")),
    DifferentialCase("csrf-additional-origin", "csrf: additional_origins (suffix) accepted", listener: "csrf",
                     csrf("csrf-additional-origin", "POST", "/up", "Origin: https://a.friend.test\r\n")),
    DifferentialCase("csrf-port", "csrf: the port is part of the origin", listener: "csrf",
                     csrf("csrf-port", "POST", "/up", "Origin: http://example.com:8080\r\n")),
    DifferentialCase("csrf-shadow", "csrf: shadow_enabled on a route: counted, forwarded", listener: "csrf",
                     csrf("csrf-shadow", "POST", "/csrfshadow", "Origin: http://evil.test\r\n")),
    DifferentialCase("csrf-direct", "csrf: direct_response routes are checked too", listener: "csrf",
                     csrf("csrf-direct", "POST", "/direct", "Origin: http://evil.test\r\n")),
]

let rbacCases: [DifferentialCase] = [
    DifferentialCase("rbac-allow-header", "rbac ALLOW: a principal by header matches", listener: "authz", get("rbac-allow-header", "/up", "X-User: alice\r\n")),
    DifferentialCase("rbac-deny-none", "rbac ALLOW: nothing matches: 403 RBAC: access denied, rbac_access_denied_matched_policy[none]",
                     listener: "authz", get("rbac-deny-none", "/up", "X-User: bob\r\n")),
    DifferentialCase("rbac-and-rules", "rbac: and_rules of url_path and :method", listener: "authz", get("rbac-and-rules", "/up/public/a")),
    DifferentialCase("rbac-and-rules-post", "rbac: and_rules, the method does not match: 403", listener: "authz",
                     "POST /up/public/a HTTP/1.1\r\nHost: example.com\r\nX-Case: rbac-and-rules-post\r\nContent-Length: 0\r\n\r\n"),
    DifferentialCase("rbac-route-off", "rbac: RBACPerRoute without rbac turns the filter off on a route", listener: "authz", get("rbac-route-off", "/rbacopen")),
    DifferentialCase("rbac-deny-policy", "rbac DENY (RBACPerRoute): or_rules of url_path and :path, not_id: the policy named in the details",
                     listener: "authz", get("rbac-deny-policy", "/rbacdeny/admin")),
    DifferentialCase("rbac-deny-not-id", "rbac DENY: not_id excludes the principal", listener: "authz", get("rbac-deny-not-id", "/rbacdeny/admin", "X-User: root\r\n")),
    DifferentialCase("rbac-deny-path-header", "rbac: a :path header matcher sees the query", listener: "authz", get("rbac-deny-path-header", "/rbacdeny/secret?a=1")),
    DifferentialCase("rbac-remote-ip", "rbac: remote_ip from x-forwarded-for (use_remote_address false), and_ids", listener: "authz",
                     get("rbac-remote-ip", "/rbacdeny/x", "X-Forwarded-For: 10.1.2.3\r\nX-Ip-Test: 1\r\n")),
    DifferentialCase("rbac-remote-ip-other", "rbac: remote_ip outside the range", listener: "authz",
                     get("rbac-remote-ip-other", "/rbacdeny/x", "X-Forwarded-For: 10.1.2.3, 10.2.0.1\r\nX-Ip-Test: 1\r\n")),
]

let rewriteCases: [DifferentialCase] = [
    DifferentialCase("route-method-header", "Route header matcher on :method", listener: "rewrite",
                     "POST /m HTTP/1.1\r\nHost: example.com\r\nX-Case: route-method-header\r\nContent-Length: 0\r\n\r\n"),
    DifferentialCase("route-method-header-other", "Route header matcher on :method, another method: 404 NR", listener: "rewrite",
                     get("route-method-header-other", "/m")),
    DifferentialCase("rewrite-prefix", "prefix_rewrite: the query kept, x-envoy-original-path added", listener: "rewrite", get("rewrite-prefix", "/pre/a?q=1")),
    DifferentialCase("rewrite-exact", "prefix_rewrite on a path (exact) match", listener: "rewrite", get("rewrite-exact", "/exact")),
    DifferentialCase("rewrite-original-path", "a client's x-envoy-original-path replaced where it stands", listener: "rewrite",
                     get("rewrite-original-path", "/pre/b", "X-Envoy-Original-Path: /client\r\nX-After: 1\r\n")),
    DifferentialCase("rewrite-regex-groups", "regex_rewrite with group references; the query kept", listener: "rewrite",
                     get("rewrite-regex-groups", "/rx/one/two/three?z=9")),
    DifferentialCase("rewrite-regex-global", "regex_rewrite replaces every match", listener: "rewrite", get("rewrite-regex-global", "/g/foo/boo")),
    DifferentialCase("rewrite-regex-empty-matches", "regex_rewrite with a pattern matching empty strings (RE2 GlobalReplace)", listener: "rewrite",
                     get("rewrite-regex-empty-matches", "/e/ab")),
    DifferentialCase("rewrite-absolute-form", "regex_rewrite of an absolute-form target's path", listener: "rewrite",
                     get("rewrite-absolute-form", "http://example.com/rx/a/b")),
]

/// A WebSocket tunnel through the `upgrade` listener: the head (with a payload behind it) gets a
/// 101 from the upstream, which then echoes bytes upper-cased; either the client sends more and
/// closes, or the upstream closes after its first echo.
struct TunnelScenario {
    let name: String
    let feature: String
    let upstreamCloses: Bool

    var request: String {
        "GET /up/chat HTTP/1.1\r\nHost: example.com\r\nX-Case: \(name)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Reply-Upgrade: \(upstreamCloses ? "close" : "echo")\r\n\r\nhello"
    }
}

let tunnelScenarios: [TunnelScenario] = [
    TunnelScenario(name: "ws-client-closes", feature: "WebSocket (upgrade_configs): 101 relayed with its Upgrade fields, bytes both ways, the client closes: DC", upstreamCloses: false),
    TunnelScenario(name: "ws-upstream-closes", feature: "WebSocket: the upstream ends the tunnel: the client's connection closes, UC", upstreamCloses: true),
]

/// Stats compared after all cases (Envoy's names).
let differentialStats: [String] = [
    "http.plain.downstream_rq_total", "http.plain.downstream_rq_2xx", "http.plain.downstream_rq_4xx",
    "http.plain.downstream_rq_5xx", "http.plain.downstream_rq_completed", "http.plain.downstream_cx_total",
    "http.plain.no_route", "http.plain.rq_direct_response", "http.plain.downstream_rq_http1_total",
    "http.remote.downstream_rq_2xx",
    "cluster.up.upstream_rq_total", "cluster.up.upstream_rq_2xx", "cluster.up.upstream_rq_200",
    "cluster.up.upstream_rq_completed",
    "cluster.dead.upstream_cx_connect_fail", "cluster.dead.upstream_rq_total",
    "http.plain.downstream_cx_protocol_error", "http.plain.downstream_cx_http1_total", "http.plain.rq_total",
    "http.http10.downstream_rq_completed", "cluster.up.upstream_rq_504", "cluster.up.upstream_rq_5xx",
    "cluster.dead.upstream_rq_503", "cluster.dead.upstream_rq_completed",
    "http.idle.downstream_rq_idle_timeout", "http.idle.downstream_rq_timeout", "http.idle.downstream_rq_4xx",
    "http.idle.downstream_rq_5xx", "http.idle.downstream_rq_2xx", "http.idle.downstream_rq_completed",
    "http.idle.downstream_rq_rx_reset", "http.idle.downstream_rq_response_before_rq_complete",
    "http.plain.downstream_rq_idle_timeout", "http.rqtimeout.downstream_rq_timeout", "http.rqtimeout.downstream_rq_idle_timeout",
    "http.rqtimeout.downstream_rq_4xx", "http.rqtimeout.downstream_rq_rx_reset",
    "http.rqtimeout.downstream_rq_response_before_rq_complete", "cluster.up.upstream_rq_4xx",
    "http.hdrtimeout.downstream_rq_header_timeout", "http.hdrtimeout.downstream_rq_4xx", "http.hdrtimeout.downstream_rq_2xx",
    "http.hdrtimeout.downstream_rq_timeout", "http.hdrtimeout.downstream_rq_completed", "http.plain.downstream_rq_header_timeout",
] + ["rl", "rl_shadow", "rl_off", "rl_direct"].flatMap { prefix in
    ["enabled", "enforced", "ok", "rate_limited", "shadow_mode"].map { "\(prefix).http_local_rate_limit.\($0)" }
} + ["http.ratelimit.downstream_rq_4xx", "http.ratelimit.downstream_rq_2xx", "http.ratelimit.rq_total", "http.fault.rq_total"]
  + ["http.cors.cors.origin_valid", "http.cors.cors.origin_invalid", "http.cors.rq_total"]
  + ["downstream_cx_upgrades_total", "downstream_cx_upgrades_active", "downstream_rq_1xx", "downstream_rq_4xx", "downstream_rq_2xx"].map { "http.upgrade.\($0)" }
  + ["http.plain.downstream_cx_upgrades_total", "cluster.up.upstream_rq_101", "cluster.up.upstream_rq_1xx"]
  + ["missing_source_origin", "request_invalid", "request_valid"].map { "http.csrf.csrf.\($0)" }
  + ["rbac.allowed", "rbac.denied", "rbac.shadow_.shadow_allowed", "rbac.shadow_.shadow_denied"].map { "http.authz.\($0)" }
  + ["request_total", "ok", "failed", "cached_response", "failed_cluster_not_found"].map { "http.healthcheck.health_check.\($0)" }
  + ["http.healthcheck.rq_total", "http.healthcheck.downstream_rq_2xx"]
  + ["http.buffer.downstream_rq_too_large", "http.buffer.downstream_rq_4xx", "http.buffer.downstream_rq_2xx", "http.buffer.rq_total"]
  + ["aborts_injected", "delays_injected", "faults_overflow", "response_rl_injected", "active_faults"].map { "http.fault.fault.\($0)" }
  + ["up", "dead"].flatMap { c in
      ["upstream_rq_retry", "upstream_rq_retry_backoff_exponential", "upstream_rq_retry_limit_exceeded", "upstream_rq_retry_success",
       "upstream_rq_retry_overflow", "upstream_rq_per_try_timeout", "retry.upstream_rq_503", "retry.upstream_rq_5xx",
       "retry.upstream_rq_completed", "upstream_rq_503", "upstream_rq_500", "upstream_rq_418"].map { "cluster.\(c).\($0)" }
  } + ["http.retry.downstream_rq_5xx", "http.retry.downstream_rq_2xx"]

/// Prometheus families compared sample by sample (names, labels and values; the admin
/// listener's own `admin` prefix, which Ballast does not have, left out).
let differentialPrometheusFamilies: [String] = [
    "envoy_http_downstream_rq_xx", "envoy_http_downstream_rq_total", "envoy_http_downstream_rq_completed",
    "envoy_cluster_upstream_rq", "envoy_cluster_upstream_rq_xx", "envoy_cluster_upstream_rq_total",
    "envoy_cluster_upstream_rq_completed", "envoy_cluster_upstream_cx_connect_fail",
    "envoy_http_local_rate_limit_enabled", "envoy_http_local_rate_limit_enforced", "envoy_http_local_rate_limit_ok",
    "envoy_http_local_rate_limit_rate_limited", "envoy_http_fault_aborts_injected", "envoy_http_fault_delays_injected",
    "envoy_http_rbac_allowed", "envoy_http_rbac_denied", "envoy_http_rbac_shadow_allowed", "envoy_http_rbac_shadow_denied",
    "envoy_http_csrf_request_valid", "envoy_http_csrf_request_invalid", "envoy_http_csrf_missing_source_origin",
    "envoy_http_downstream_cx_upgrades_total", "envoy_http_downstream_rq_ws_on_non_ws_route",
]
