import Glibc
import Balancers
import EventLoop
@testable import Proxy
import TestSupport
import XCTest

/// The listener filters' parsers (ClientHello, request line) and the filter-chain choice, on
/// bytes and facts built here (the differential suite checks the same against Envoy 1.40).
final class FilterChainSelectorTests: XCTestCase {
    private func hello(sni: String?, alpn: [String] = [], recordSize: Int = 16384) -> [UInt8] {
        ClientHello.bytes(sni: sni, alpn: alpn, recordSize: recordSize)
    }

    /// The outcome for `bytes`, with the SNI and ALPN read back as strings.
    private func inspect(_ bytes: [UInt8]) -> String {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: ClientHelloInspector.maxClientHello, alignment: 16)
        defer { scratch.deallocate() }
        return bytes.withUnsafeBytes { b in
            switch ClientHelloInspector.inspect(b, scratch: scratch) {
            case .needMore: return "more"
            case .notTLS: return "plain"
            case .tooLarge: return "too large"
            case .clientHello(let f):
                let base = f.inScratch ? UnsafeRawBufferPointer(scratch) : b
                let sni = f.serverName.map { String(decoding: base[$0], as: UTF8.self) } ?? "-"
                let alpn = (0..<f.protocols.count).map { String(decoding: base[f.protocols[$0]], as: UTF8.self) }
                return "tls \(sni) [\(alpn.joined(separator: ","))]"
            }
        }
    }

    func testClientHelloGivesItsServerNameAndProtocols() {
        XCTAssertEqual(inspect(hello(sni: "a.example.com", alpn: ["h2", "http/1.1"])), "tls a.example.com [h2,http/1.1]")
        XCTAssertEqual(inspect(hello(sni: nil)), "tls - []")
        XCTAssertEqual(inspect(hello(sni: "x.org", recordSize: 20)), "tls x.org []")
    }

    func testEveryPrefixOfAClientHelloAsksForMore() {
        for bytes in [hello(sni: "a.example.com", alpn: ["h2"]), hello(sni: "b.example.com", recordSize: 30)] {
            for n in 1..<bytes.count { XCTAssertEqual(inspect(Array(bytes[..<n])), "more", "prefix of \(n) of \(bytes.count)") }
        }
    }

    func testPlainBytesAndBrokenHellosAreNotTLS() {
        XCTAssertEqual(inspect(Array("GET / HTTP/1.1\r\n".utf8)), "plain")
        XCTAssertEqual(inspect([0x16, 2]), "plain")  // not TLS 1.x
        XCTAssertEqual(inspect([0x16, 3, 1, 0, 4, 2, 0, 0, 0]), "plain")  // a handshake, not a ClientHello
        var broken = hello(sni: "a.example.com")
        let name = broken.firstRange(of: Array("a.example.com".utf8))!
        broken[name.lowerBound - 2] = 0xFF  // the name's length runs past its extension
        XCTAssertEqual(inspect(broken), "plain")
    }

    /// Mutated and truncated hellos (a fixed seed, 3,000 of them): every one gets an outcome, and
    /// any name or protocol found lies inside the bytes.
    func testMutatedHellosNeverReadOutsideTheirBytes() {
        var rng = SplitMix64(seed: 42)
        let base = hello(sni: "mutate.example.com", alpn: ["h2", "http/1.1"], recordSize: 60)
        var outcomes: Set<String> = []
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<(1 + Int(rng.next() % 4)) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            bytes = Array(bytes[..<(Int(rng.next() % UInt64(bytes.count)) + 1)])
            outcomes.insert(String(inspect(bytes).prefix(4)))
        }
        XCTAssertTrue(outcomes.isSubset(of: ["more", "plai", "too ", "tls "]), "\(outcomes)")
        XCTAssertTrue(outcomes.contains("more") && outcomes.contains("plai"), "\(outcomes)")
    }

    func testAClientHelloAboveTheBoundIsTooLarge() {
        XCTAssertEqual(inspect([0x16, 3, 1, 0x40, 0, 1, 0x01, 0x00, 0x00]), "too large")
    }

    func testRequestLines() {
        func http(_ text: String) -> HTTPInspector.Outcome { Array(text.utf8).withUnsafeBytes { HTTPInspector.inspect($0) } }
        XCTAssertEqual(http("GET / HTTP/1.1\r\n"), .http11)
        XCTAssertEqual(http("POST /x HTTP/1.0\r\n"), .http10)
        XCTAssertEqual(http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), .http2)
        XCTAssertEqual(http("PRI * HTTP/2"), .needMore)
        XCTAssertEqual(http("GET / HTTP/1.1"), .needMore)
        XCTAssertEqual(http("GET /very/long"), .needMore)
        XCTAssertEqual(http("hello there\r\n"), .notHTTP)
        XCTAssertEqual(http("GET / HTTP/2.0\r\n"), .notHTTP)
        XCTAssertEqual(http("GET  / HTTP/1.1\r\n"), .notHTTP)
    }

    // MARK: - the choice

    private func select(_ matches: [FilterChainMatchConfig?], defaultChain: Int? = nil, sni: String? = nil, tls: Bool = false,
                        alpn: [String] = [], local: String = "127.0.0.1", localPort: UInt16 = 80, peer: String = "127.0.0.1",
                        peerPort: UInt16 = 5000) -> Int? {
        let selector = FilterChainSelector(chains: matches, defaultChain: defaultChain)
        var bytes: [UInt8] = []
        var facts = ConnectionFacts()
        facts.tls = tls
        if let sni {
            facts.serverName = bytes.count..<(bytes.count + sni.utf8.count)
            bytes += Array(sni.utf8)
        }
        for p in alpn {
            facts.alpn.append(bytes.count..<(bytes.count + p.utf8.count))
            bytes += Array(p.utf8)
        }
        facts.local = CompactAddress(SocketAddress(host: local, port: Int(localPort))!)
        facts.peer = CompactAddress(SocketAddress(host: peer, port: Int(peerPort))!)
        return bytes.withUnsafeBytes { selector.select(facts, $0) }
    }

    private func cidr(_ text: String, _ length: Int) -> CIDRRange {
        var a = in_addr()
        inet_pton(AF_INET, text, &a)
        return CIDRRange(family: AF_INET, high: 0, low: UInt64(UInt32(bigEndian: a.s_addr)) & CIDRRange.mask4(length), prefixLength: length)
    }

    func testServerNamesExactThenLongestWildcardThenNone() {
        let chains: [FilterChainMatchConfig?] = [
            FilterChainMatchConfig(serverNames: ["*.example.com"]),
            FilterChainMatchConfig(serverNames: ["*.b.example.com"]),
            FilterChainMatchConfig(serverNames: ["a.b.example.com"]),
            nil,
        ]
        XCTAssertEqual(select(chains, sni: "a.b.example.com"), 2)
        XCTAssertEqual(select(chains, sni: "A.B.Example.com"), 2)
        XCTAssertEqual(select(chains, sni: "c.b.example.com"), 1)
        XCTAssertEqual(select(chains, sni: "c.example.com"), 0)
        XCTAssertEqual(select(chains, sni: "example.com"), 3)
        XCTAssertEqual(select(chains), 3)
    }

    func testAnExactPortNeverFallsBackToAnyPort() {
        let chains: [FilterChainMatchConfig?] = [FilterChainMatchConfig(destinationPort: 80, transportProtocol: "tls"), nil]
        XCTAssertEqual(select(chains, tls: true), 0)
        XCTAssertNil(select(chains, tls: false))
        XCTAssertEqual(select(chains, tls: false, localPort: 81), 1)
        XCTAssertEqual(select(chains, defaultChain: 2, tls: false), 2)
    }

    func testProtocolsInTheClientsOrder() {
        let chains: [FilterChainMatchConfig?] = [FilterChainMatchConfig(applicationProtocols: ["http/1.1"]),
                                                 FilterChainMatchConfig(applicationProtocols: ["h2"])]
        XCTAssertEqual(select(chains, alpn: ["h2", "http/1.1"]), 1)
        XCTAssertEqual(select(chains, alpn: ["http/1.1", "h2"]), 0)
        XCTAssertNil(select(chains, alpn: ["spdy/3"]))
    }

    func testAddressesSourceTypeAndPorts() {
        let byPrefix: [FilterChainMatchConfig?] = [FilterChainMatchConfig(prefixRanges: [cidr("127.0.0.0", 8)]),
                                                   FilterChainMatchConfig(prefixRanges: [cidr("127.0.0.0", 24)])]
        XCTAssertEqual(select(byPrefix, local: "127.0.0.9"), 1)
        XCTAssertEqual(select(byPrefix, local: "127.0.1.9"), 0)
        let bySource: [FilterChainMatchConfig?] = [FilterChainMatchConfig(sourceType: .external),
                                                   FilterChainMatchConfig(sourceType: .sameIPOrLoopback)]
        XCTAssertEqual(select(bySource, peer: "127.0.0.1"), 1)
        XCTAssertEqual(select(bySource, local: "10.0.0.1", peer: "10.0.0.1"), 1)
        XCTAssertEqual(select(bySource, local: "10.0.0.1", peer: "10.0.0.2"), 0)
        let byPort: [FilterChainMatchConfig?] = [FilterChainMatchConfig(sourcePorts: [5000]), nil]
        XCTAssertEqual(select(byPort, peerPort: 5000), 0)
        XCTAssertEqual(select(byPort, peerPort: 5001), 1)
        let byPeer: [FilterChainMatchConfig?] = [FilterChainMatchConfig(directSourcePrefixRanges: [cidr("10.0.0.0", 8)]), nil]
        XCTAssertEqual(select(byPeer, peer: "10.1.2.3"), 0)
        XCTAssertEqual(select(byPeer, peer: "192.168.0.1"), 1)
    }
}
