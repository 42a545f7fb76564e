@testable import Proxy
import XCTest

/// Pieces of the Envoy-fidelity behaviour that the differential suite cannot pin exactly
/// (dates, address lists); DifferentialTests compares the rest against real Envoy.
final class FidelityUnitTests: XCTestCase {
    func testDateFieldIsIMFFixdate() {
        var line = [UInt8](repeating: 0, count: HTTPDateField.lineLength)
        HTTPDateField.format(784_111_777, into: &line)
        XCTAssertEqual(String(decoding: line, as: UTF8.self), "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n")
        HTTPDateField.format(1_798_761_599, into: &line)
        XCTAssertEqual(String(decoding: line, as: UTF8.self), "date: Thu, 31 Dec 2026 23:59:59 GMT\r\n")
    }

    func testTrustedHopsCountFromTheRight() {
        let text = Array("10.0.0.1, 10.0.0.2,10.0.0.3".utf8)
        text.withUnsafeBytes { b in
            func at(_ n: Int) -> String? {
                ForwardedForPolicy.element(fromRight: n, of: b, 0..<b.count).map { String(decoding: b[$0], as: UTF8.self) }
            }
            XCTAssertEqual(at(1), "10.0.0.3")
            XCTAssertEqual(at(2), "10.0.0.2")
            XCTAssertEqual(at(3), "10.0.0.1")
            XCTAssertNil(at(4))
        }
    }
}
