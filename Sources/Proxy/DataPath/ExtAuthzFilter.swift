import Balancers
import EventLoop
import HTTP1
import Synchronization

/// `envoy.filters.http.ext_authz` on the data path (docs/ext-authz.md). decodeHeaders stops the
/// chain and asks the worker for a check (`StreamDecision.authorize`) unless the route turns the
/// filter off (ExtAuthzPerRoute `disabled`). The worker sends the check request over the
/// authorization cluster's host pools (a `Shadow` that keeps its answer) and, on the answer,
/// resumes the chain after this filter (200, or a failure under `failure_mode_allow`) or answers
/// the client (`ProxyWorker+ExtAuthz`).
enum ExtAuthzFilter {
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: ExtAuthzPlan, index: Int) -> FilterStatus {
        if let route = ctx.route, plan.disabledRoutes[route.index] { return .continue }
        if var enabled = plan.filterEnabled {
            // A runtime integer is a percentage (Envoy's featureEnabled: denominator 100, whatever the default's).
            if let v = plan.runtime.value(plan.filterEnabledSlot) { enabled = FractionalPercent(numerator: UInt64(v), denominator: 100) }
            var rng = SplitMix64(seed: ctx.random ^ 0x6578_745F_617A)
            if !enabled.enabled(rng.next()) {
                plan.stats.disabled.wrappingAdd(1, ordering: .relaxed)
                guard plan.denyAtDisable else { return .continue }
                ctx.decision = .localReply(LocalReply(status: plan.statusOnError, body: .text(""), flags: .unauthorizedExternalService,
                                                      details: .extAuthzError))
                return .stopIteration
            }
        }
        // Envoy charges the outcome to the route's cluster (weighted routes: none here).
        var cluster = -1
        if let route = ctx.route, case .forward(let f) = route.action, f.clusters.count == 1 { cluster = f.clusters[0].index }
        ctx.decision = .authorize(filter: index, routeCluster: cluster)
        return .stopIteration
    }
}

/// The filter compiled: its cluster, the check request's fixed parts, the header matchers, and
/// the HCM's `ext_authz.*` stats.
public final class ExtAuthzPlan: Sendable {
    let cluster: Int
    let timeoutNanos: Int64
    let pathPrefix: [UInt8]
    /// Request fields sent besides `authorization` (Envoy always sends method, path, host too).
    let allowedHeaders: CompiledStringMatchers
    /// `headers_to_add`, as field lines, and their names (they replace request fields of the same name).
    let headersToAddLines: [UInt8]
    let headersToAddNames: [[UInt8]]
    /// `x-envoy-expected-rq-timeout-ms: <timeout>\r\n`, as Envoy's async client sends it.
    let expectedTimeoutLine: [UInt8]
    let upstreamSet: CompiledStringMatchers
    let upstreamAppend: CompiledStringMatchers
    /// nil: every field of a denial goes to the client (Envoy 1.40's default, Host included).
    let client: CompiledStringMatchers?
    let failureModeAllow: Bool
    let failureModeAllowHeaderAdd: Bool
    let statusOnError: Int
    let filterEnabled: FractionalPercent?
    let runtime: RuntimeValues
    let filterEnabledSlot: Int
    let denyAtDisable: Bool
    /// Per route index: ExtAuthzPerRoute `disabled: true`.
    let disabledRoutes: [Bool]
    public let stats: ExtAuthzStats

    init(_ c: ExtAuthzConfig, cluster: Int, disabledRoutes: [Bool], stats: ExtAuthzStats, runtime: RuntimeValues) {
        self.cluster = cluster
        timeoutNanos = c.timeoutNanos
        pathPrefix = Array(c.pathPrefix.utf8)
        allowedHeaders = CompiledStringMatchers(c.allowedHeaders, filter: FilterNames.extAuthz)
        var lines: [UInt8] = []
        for h in c.headersToAdd { lines += Array("\(h.name): \(h.value)\r\n".utf8) }
        headersToAddLines = lines
        headersToAddNames = c.headersToAdd.map { Array($0.name.utf8) }
        expectedTimeoutLine = Array("x-envoy-expected-rq-timeout-ms: \(c.timeoutNanos / 1_000_000)\r\n".utf8)
        upstreamSet = CompiledStringMatchers(c.allowedUpstreamHeaders, filter: FilterNames.extAuthz)
        upstreamAppend = CompiledStringMatchers(c.allowedUpstreamHeadersToAppend, filter: FilterNames.extAuthz)
        client = c.allowedClientHeaders.isEmpty ? nil : CompiledStringMatchers(c.allowedClientHeaders, filter: FilterNames.extAuthz)
        failureModeAllow = c.failureModeAllow
        failureModeAllowHeaderAdd = c.failureModeAllowHeaderAdd
        statusOnError = c.statusOnError
        filterEnabled = c.filterEnabled
        self.runtime = runtime
        filterEnabledSlot = runtime.slot(c.filterEnabledKey)
        denyAtDisable = c.denyAtDisable
        self.disabledRoutes = disabledRoutes
        self.stats = stats
    }
}

/// `http.<stat_prefix>.ext_authz.*`, shared by the workers and the ext_authz filters of one HCM.
public final class ExtAuthzStats: Sendable {
    public let ok = Atomic<Int>(0)
    public let denied = Atomic<Int>(0)
    public let error = Atomic<Int>(0)
    public let failureModeAllowed = Atomic<Int>(0)
    public let disabled = Atomic<Int>(0)
    public init() {}
}

/// Header names the check protocol treats specially (lower case).
enum ExtAuthzNames {
    /// Framing and hop-by-hop fields: never copied between the request, the check and its answer
    /// (a copied content-length or transfer-encoding would break the message it lands in).
    static func isFraming(_ name: UnsafeRawBufferPointer) -> Bool {
        name.elementsEqual("content-length".utf8) || name.elementsEqual("transfer-encoding".utf8)
            || name.elementsEqual("connection".utf8) || name.elementsEqual("keep-alive".utf8)
            || name.elementsEqual("upgrade".utf8) || name.elementsEqual("te".utf8) || name.elementsEqual("proxy-connection".utf8)
    }

    /// Envoy's always-allowed fields of a denial when `allowed_client_headers` is set.
    static func isAlwaysToClient(_ name: UnsafeRawBufferPointer) -> Bool {
        name.elementsEqual("www-authenticate".utf8) || name.elementsEqual("location".utf8)
    }

    static let failureModeAllowedLine: StaticString = "x-envoy-auth-failure-mode-allowed: true\r\n"
}

/// Runs `body` with `name` lower-cased in scratch space on the stack (header names are short;
/// longer ones than 256 bytes are matched as they are).
@inline(__always)
func withLowercased<R>(_ name: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    guard name.count <= 256 else { return body(name) }
    return withUnsafeTemporaryAllocation(byteCount: max(1, name.count), alignment: 1) { scratch in
        for i in 0..<name.count { scratch[i] = ASCII.lowercased(name[i]) }
        return body(UnsafeRawBufferPointer(rebasing: scratch[0..<name.count]))
    }
}

/// The check request Envoy 1.40's HTTP authorization client sends for a request head: the
/// request's method, `path_prefix` + its path (with the query), its Host, `content-length: 0`,
/// `authorization` and the fields `allowed_headers` lets through (lower-cased, in request
/// order), `headers_to_add`, then what Envoy's async client adds (`x-envoy-internal: true`,
/// `x-envoy-expected-rq-timeout-ms`). Checked against Envoy by ExtAuthzDifferentialTests.
enum ExtAuthzCheckHead {
    static func bound(_ head: UnsafeRawBufferPointer, _ plan: ExtAuthzPlan) -> Int {
        head.count + plan.pathPrefix.count + plan.headersToAddLines.count + plan.expectedTimeoutLine.count + 128
    }

    static func write(_ head: UnsafeRawBufferPointer, _ p: UnsafeMutablePointer<RequestHeadParser>, target: RequestTarget,
                      host: Range<Int>?, _ plan: ExtAuthzPlan, into w: inout ByteWriter) {
        w.put(UnsafeRawBufferPointer(rebasing: head[p.pointee.methodRange]))
        w.put(byte: ASCII.space)
        w.put(plan.pathPrefix)
        if target.needsSlash || target.origin.isEmpty { w.put(byte: UInt8(ascii: "/")) }
        w.put(UnsafeRawBufferPointer(rebasing: head[target.origin]))
        w.put(" HTTP/1.1\r\n")
        if let host {
            w.put("host: ")
            w.put(UnsafeRawBufferPointer(rebasing: head[host]))
            w.crlf()
        }
        w.put("content-length: 0\r\n")
        for i in 0..<p.pointee.headerCount {
            let nameRange = p.pointee.headerNameRange(at: i)
            let name = UnsafeRawBufferPointer(rebasing: head[nameRange])
            let send = withLowercased(name) { lower -> Bool in
                if lower.elementsEqual("host".utf8) || ExtAuthzNames.isFraming(lower) || lower.elementsEqual("expect".utf8) { return false }
                for added in plan.headersToAddNames where lower.elementsEqual(added) { return false }
                return lower.elementsEqual("authorization".utf8) || plan.allowedHeaders.matchesAny(lower)
            }
            guard send else { continue }
            w.putLowercased(name)
            w.put(": ")
            w.put(UnsafeRawBufferPointer(rebasing: head[p.pointee.headerValueRange(at: i)]))
            w.crlf()
        }
        w.put(plan.headersToAddLines)
        w.put("x-envoy-internal: true\r\n")
        w.put(plan.expectedTimeoutLine)
        w.crlf()
    }
}
