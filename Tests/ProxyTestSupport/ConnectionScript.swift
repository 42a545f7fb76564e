// Compiled only where Proxy is testable (debug builds, and the fuzz build, which passes
// -enable-testing -DBALLAST_TESTABLE): `swift build -c release` builds an empty module.
#if BALLAST_TESTABLE
import EventLoop
import Glibc
@testable import Proxy

/// One client connection through a proxy worker on the scripted backend (`ScriptedProxy`), driven
/// by the input: arbitrary client bytes in arbitrary pieces, interleaved with peer events (client
/// FIN or reset, short writes, upstream connect failures and resets), the clock jumping ahead
/// (every timer due fires: connect, idle and route timeouts, lingering closes), reloads (the
/// same bootstrap published again as a new generation) and a scripted upstream that answers
/// every request it is sent. After every input: no trap, the client got nothing or a
/// well-formed HTTP/1.1 status line, and once the client and the idle upstreams are gone every
/// connection, stream, pool buffer and circuit-breaker unit is given back.
///
/// Used by the whole-connection fuzz target (Fuzz/Sources/FuzzProxyConnection) and by the
/// regression tests that replay its seeds and crashes (`ConnectionScriptTests`).
///
/// Input: byte 0 seeds the cuts (`connectionScriptCuts`), byte 1 % 32 is the script's length n, the next
/// n bytes are the script (one op before each piece, cycling), the rest is what the client sends.
let connectionScriptYAML = """
    static_resources:
      listeners:
      - name: http
        address:
          socket_address: { address: 127.0.0.1, port_value: 0 }
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: ingress_http
              route_config:
                name: local_route
                virtual_hosts:
                - name: all
                  domains: ["*"]
                  routes:
                  - match: { prefix: "/" }
                    route: { cluster: echo }
              http_filters:
              - name: envoy.filters.http.router
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
      clusters:
      - name: echo
        connect_timeout: 0.5s
        type: STATIC
        load_assignment:
          cluster_name: echo
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: { address: 127.0.0.1, port_value: 9 }
    """
// Compiled once: the YAML loader has its own target, and compiling per input would dominate.
let connectionScriptPlane = try! DataPlane.compile(BootstrapLoader.load(yaml: connectionScriptYAML).bootstrap)
/// What a reload publishes: the same bootstrap compiled again, lent the first plane's
/// circuit-breaker counters as a real reload is.
let connectionScriptReloadPlane = try! DataPlane.compile(BootstrapLoader.load(yaml: connectionScriptYAML).bootstrap,
                                                                             previous: connectionScriptPlane)

let connectionScriptResponses = [
    Array("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".utf8),
    Array("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".utf8),
    Array("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".utf8),
]

final class ConnectionScriptSession {
    let proxy: ScriptedProxy
    let client: Int32
    var clientOpen = true
    /// Connected upstream fds still open, and the bytes sent on each when it last answered.
    var upstreams: [Int32: Int] = [:]
    var closesSeen = 0
    var responseChoice = 0
    var generation: UInt32 = 0

    init() throws {
        proxy = try ScriptedProxy(plane: connectionScriptPlane)
        client = proxy.connectClient().fd
    }

    var backend: ScriptedBackend { proxy.backend }

    /// Applies the closes the worker made since the last call.
    func sync() {
        while closesSeen < backend.closed.count {
            let fd = backend.closed[closesSeen]
            closesSeen += 1
            if fd == client && clientOpen { clientOpen = false } else { upstreams[fd] = nil }
        }
    }

    func bytesSent(on fd: Int32) -> Int { backend.sends.reduce(0) { $0 + ($1.fd == fd ? $1.bytes.count : 0) } }

    /// Completes connects and sends and lets each upstream answer what it was sent, until nothing
    /// is left to do (bounded). `shortWrite` > 0 completes sends that many bytes at a time.
    func pump(shortWrite: Int = 0, failConnect: Bool = false) {
        for _ in 0..<256 {
            sync()
            if let c = backend.pendingConnects.first {
                let closesBefore = backend.closed.count
                proxy.completeOldestConnect(result: failConnect ? -ECONNREFUSED : 0)
                if !failConnect && !backend.closed[closesBefore...].contains(c.fd) { upstreams[c.fd] = 0 }
                sync()
                continue
            }
            if !backend.pendingSends.isEmpty {
                proxy.completeOldestSend(written: shortWrite > 0 ? shortWrite : nil)
                continue
            }
            // An upstream that was sent bytes since it last answered answers now.
            guard let fd = upstreams.keys.sorted().first(where: { bytesSent(on: $0) > upstreams[$0]! }) else { return }
            upstreams[fd] = bytesSent(on: fd)
            guard backend.receiveTokens[fd] != nil, !backend.paused.contains(fd) else { continue }
            proxy.receive(connectionScriptResponses[responseChoice % connectionScriptResponses.count], fd: fd)
            responseChoice += 1
        }
    }

    func deliver(_ bytes: ArraySlice<UInt8>) {
        guard clientOpen, !bytes.isEmpty else { return }
        if backend.paused.contains(client) { pump() }
        guard clientOpen, !backend.paused.contains(client) else { return }
        proxy.receive(Array(bytes), fd: client)
        sync()
    }

    func clientEnd(_ result: Int32) {
        guard clientOpen else { return }
        proxy.receiveEnd(result, fd: client)
        sync()
    }

    /// The clock jumps 2^`step` ms ahead (1 ms to ~24 days) and the due timers fire.
    func advance(_ step: UInt8) {
        proxy.advance(nanos: 1_000_000 << Int64(min(step, 31)))
        sync()
    }

    /// A reload: the two compiled planes take turns.
    func reload() {
        generation += 1
        proxy.publish(generation % 2 == 1 ? connectionScriptReloadPlane : connectionScriptPlane, generation: generation)
        sync()
    }

    func resetAnUpstream(_ pick: UInt8) {
        let open = upstreams.keys.sorted()
        guard !open.isEmpty else { return }
        let fd = open[Int(pick) % open.count]
        guard backend.receiveTokens[fd] != nil else { return }
        proxy.receiveEnd(pick & 1 == 0 ? -ECONNRESET : 0, fd: fd)
        sync()
    }
}

/// The status line check: nil, or what is wrong with the start of what the client received.
func statusLineProblem(_ out: [UInt8]) -> String? {
    guard !out.isEmpty else { return nil }
    let text = String(decoding: out.prefix(40), as: UTF8.self)
    guard out.count >= 13 else { return "short response \(text)" }
    guard Array(out[0..<9]) == Array("HTTP/1.1 ".utf8) else { return "response does not start with HTTP/1.1: \(text)" }
    guard out[9...11].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) && out[12] == 0x20 else { return "bad status code: \(text)" }
    return nil
}

/// Runs one input (layout above); nil when every invariant held, else the first violation.
func runConnectionScript(_ input: UnsafeRawBufferPointer) -> String? { runConnectionScriptDetailed(input).problem }

/// `runConnectionScript` with what the client received before it left.
func runConnectionScriptDetailed(_ input: UnsafeRawBufferPointer) -> (problem: String?, clientOutput: [UInt8]) {
    guard input.count >= 2 else { return (nil, []) }
    let n = min(Int(input[1] % 32), input.count - 2)
    let script = Array(input[2..<(2 + n)])
    let payload = Array(input[(2 + n)...])
    let cuts = connectionScriptCuts(seed: input[0], count: payload.count)

    let s = try! ConnectionScriptSession()
    var start = 0
    for (i, end) in cuts.enumerated() {
        let op = script.isEmpty ? 0 : script[i % script.count]
        let piece = payload[start..<end]
        start = end
        switch op & 7 {
        case 1: s.deliver(piece); s.reload()
        case 2: s.deliver(piece); s.advance(op >> 3)
        case 3: s.pump(); s.deliver(piece)
        case 4: s.deliver(piece); s.pump(shortWrite: Int(op >> 3) + 1)
        case 5: s.deliver(piece); s.pump(); s.clientEnd(0)
        case 6: s.deliver(piece); s.clientEnd(-ECONNRESET)
        case 7: s.deliver(piece); s.pump(failConnect: op & 8 != 0); s.resetAnUpstream(op >> 4)
        default: s.deliver(piece)
        }
        if !s.clientOpen { break }
    }
    s.pump()
    let output = s.backend.sends.filter({ $0.fd == s.client }).flatMap(\.bytes)
    if let p = statusLineProblem(output) { return (p, output) }
    // The client leaves: FIN, and if that does not close the connection once the exchange in
    // flight is done, a reset. Then every idle upstream closes.
    s.clientEnd(0)
    s.pump()
    s.clientEnd(-ECONNRESET)
    if s.clientOpen { return ("client connection still open after a reset", output) }
    s.pump()
    for fd in s.upstreams.keys.sorted() where s.upstreams[fd] != nil && s.backend.receiveTokens[fd] != nil {
        s.proxy.receiveEnd(0, fd: fd)
        s.sync()
    }
    let w = s.proxy.worker
    let r = s.proxy.resources
    let left = [
        ("downstreams live", w.downs.liveCount), ("streams live", w.streams.liveCount), ("upstreams live", w.ups.liveCount),
        ("pool bytes outstanding", w.pool.bytesOutstanding), ("requests held", r.requests.load(ordering: .relaxed)),
        ("pending requests held", r.pendingRequests.load(ordering: .relaxed)), ("connections held", r.connections.load(ordering: .relaxed)),
    ].filter { $0.1 != 0 }
    return (left.isEmpty ? nil : left.map { "\($0.0): \($0.1)" }.joined(separator: ", "), output)
}

/// Ascending cut positions in 1...count ending at count, from `seed`: the rule of the fuzz
/// package's `Segmentation` (mostly 1..8-byte pieces, sometimes the rest; seed 0 = one piece),
/// restated here because this target cannot depend on the fuzz package.
func connectionScriptCuts(seed: UInt8, count: Int) -> [Int] {
    var out: [Int] = []
    var state = UInt32(seed) &* 2654435761 | 1
    var at = 0
    while at < count {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        let step = seed == 0 ? count : (state % 16 == 0 ? count - at : Int(state % 8) + 1)
        at = min(count, at + step)
        out.append(at)
    }
    return out
}
#endif
