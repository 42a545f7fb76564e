@testable import Proxy
import XCTest

/// The mirror's head from the main one (ShadowHead): Envoy's `-shadow` host suffix before a port
/// (not inside an IPv6 literal), x-envoy-internal set once, 192.0.2.2 added to x-forwarded-for.
final class ShadowHeadTests: XCTestCase {
    private func shadow(_ main: String, suffix: Bool = true) -> String? {
        let bytes = Array(main.utf8)
        let capacity = bytes.count + ShadowHead.extra
        let base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        defer { base.deallocate() }
        var w = ByteWriter(base, capacity: capacity)
        let ok = bytes.withUnsafeBytes { ShadowHead.write($0, hostSuffix: suffix, into: &w) }
        return ok ? String(decoding: UnsafeRawBufferPointer(start: base, count: w.count), as: UTF8.self) : nil
    }

    func testHostSuffixes() {
        XCTAssertEqual(shadow("GET / HTTP/1.1\r\nhost: a.test\r\n\r\n"),
                       "GET / HTTP/1.1\r\nhost: a.test-shadow\r\nx-envoy-internal: true\r\nx-forwarded-for: 192.0.2.2\r\n\r\n")
        XCTAssertEqual(shadow("GET / HTTP/1.1\r\nhost: a.test:8080\r\n\r\n")?.contains("host: a.test-shadow:8080\r\n"), true)
        XCTAssertEqual(shadow("GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n")?.contains("host: [::1]-shadow:80\r\n"), true)
        XCTAssertEqual(shadow("GET / HTTP/1.1\r\nhost: [::1]\r\n\r\n")?.contains("host: [::1]-shadow\r\n"), true)
        XCTAssertEqual(shadow("GET / HTTP/1.1\r\nhost: a.test:8080\r\n\r\n", suffix: false)?.contains("host: a.test:8080\r\n"), true)
    }

    func testForwardedForAndInternal() {
        XCTAssertEqual(shadow("POST /p HTTP/1.1\r\nhost: h\r\nx-forwarded-for: 10.0.0.1\r\nx-envoy-internal: true\r\ncontent-length: 3\r\n\r\n"),
                       "POST /p HTTP/1.1\r\nhost: h-shadow\r\nx-forwarded-for: 10.0.0.1,192.0.2.2\r\ncontent-length: 3\r\nx-envoy-internal: true\r\n\r\n")
    }

    func testNotAHead() {
        XCTAssertNil(shadow("GET / HTTP/1.1\r\nhost: h\r\n"))
        XCTAssertNil(shadow("GET / HTTP/1.1\r\nno colon\r\n\r\n"))
    }
}
