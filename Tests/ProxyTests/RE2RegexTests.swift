@testable import Proxy
import XCTest

/// The RE2 shim: Envoy's semantics (safe_regex matches whole values; /stats?filter= anywhere),
/// RE2's own messages, and the program size Envoy limits.
final class RE2RegexTests: XCTestCase {
    private func full(_ re: RE2Regex, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { re.fullMatch($0) }
    }

    func testFullAndPartialMatch() throws {
        let re = try RE2Regex("/re/[0-9]+")
        XCTAssertTrue(full(re, "/re/42"))
        XCTAssertFalse(full(re, "/re/42x"))
        XCTAssertFalse(full(re, "x/re/42"))
        XCTAssertTrue(re.partialMatch("x/re/42x"))
        XCTAssertFalse(re.partialMatch("/re/x"))
        XCTAssertTrue(full(try RE2Regex(""), ""))
        // RE2 syntax: named groups as (?P<name>...).
        XCTAssertTrue(full(try RE2Regex("(?P<v>v[0-9]+)"), "v12"))
    }

    func testCompileErrorsAndProgramSize() {
        XCTAssertThrowsError(try RE2Regex("^/a(")) { error in
            XCTAssertEqual((error as? RE2Regex.CompileError)?.description, "missing ): ^/a(")
        }
        // Lookahead is not RE2 (Envoy refuses it too).
        XCTAssertThrowsError(try RE2Regex("a(?=b)"))
        XCTAssertEqual(try RE2Regex("/(a|b|c|d|e|f|g|h|i|j)+[0-9]{5,20}x{3,30}").programSize, 101)
    }

    func testConfigRefusesWithThePath() {
        let route = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0]"
        let errors = loadErrors(edited([("prefix: \"/\"", "safe_regex: { regex: \"^/a(\" }")]))
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors.first?.hasPrefix("\(route).match.safe_regex.regex: invalid regex '^/a(': missing ): ^/a(") ?? false, "\(errors)")
        XCTAssertNotNil(load(edited([("prefix: \"/\"", "safe_regex: { regex: \"/[a-z]+\" }")])))
    }
}
