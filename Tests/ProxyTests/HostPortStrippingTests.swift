@testable import Proxy
import XCTest

/// strip_any_host_port / strip_matching_host_port: which Host values lose their port (Envoy's
/// rule: the text after the last colon, outside an IPv6 literal's brackets, must be a number).
final class HostPortStrippingTests: XCTestCase {
    private func strip(_ host: String, _ mode: HostPortStripping, localPort: UInt16 = 10000) -> String {
        let bytes = Array(("x" + host).utf8)  // the host not at offset 0
        return bytes.withUnsafeBytes { head in
            let r = mode.withoutPort(head, 1..<head.count, localPort: localPort)
            return String(decoding: head[r], as: UTF8.self)
        }
    }

    func testAnyPort() {
        XCTAssertEqual(strip("example.com:8080", .any), "example.com")
        XCTAssertEqual(strip("example.com", .any), "example.com")
        XCTAssertEqual(strip("example.com:", .any), "example.com:", "no digits: kept")
        XCTAssertEqual(strip("example.com:http", .any), "example.com:http")
        XCTAssertEqual(strip("example.com:99999999999", .any), "example.com:99999999999", "above 2^32: kept")
        XCTAssertEqual(strip("[::1]:80", .any), "[::1]")
        XCTAssertEqual(strip("[::1]", .any), "[::1]")
    }

    func testMatchingPort() {
        XCTAssertEqual(strip("example.com:10000", .matching), "example.com")
        XCTAssertEqual(strip("example.com:10001", .matching), "example.com:10001")
        XCTAssertEqual(strip("[::1]:10000", .matching), "[::1]")
    }
}
