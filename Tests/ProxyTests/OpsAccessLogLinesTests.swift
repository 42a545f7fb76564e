import EventLoop
import Foundation
import Glibc
@testable import Proxy
import XCTest

/// The access log writes exactly one line per request, with exactly the expected bytes, on both
/// backends (Envoy's default text format, and json_format with omitted empty values and a
/// nested object); and `%START_TIME%` renders exactly.
final class OpsAccessLogLinesTests: XCTestCase {
    static let requests = 120

    func testOneExactLinePerRequest() throws {
        try forEachDataPathBackend { io in try checkLines(io: io) }
    }

    private func checkLines(io: IOBackendKind, file: StaticString = #filePath, line: UInt = #line) throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let textLog = opsTempPath("lines-\(io).log")
        let jsonLog = opsTempPath("lines-\(io).json")
        let loggers = opsFileLogger(textLog) + "\n" + opsFileLogger(jsonLog, logFormat: """
                            omit_empty_values: true
                            json_format:
                              code: "%RESPONSE_CODE%"
                              missing: "%REQ(X-NOT-SENT)%"
                              request: { path: "%REQ(:PATH)%", agent: "%REQ(USER-AGENT):6%" }
                              text: "%PROTOCOL% %REQ(X-NOT-SENT)% \\"%BYTES_SENT%\\""
            """)
        let ops = try startOps(opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port]),
                                       accessLog: loggers), io: io, concurrency: 2)
        defer {
            ops.stop()
            unlink(textLog)
            unlink(jsonLog)
        }
        let port = ops.proxy.port(of: "http")!
        let before = Date()
        let connections = try (0..<4).map { _ in try TestConnection(port: port) }
        for i in 0..<Self.requests {
            let r = connections[i % connections.count].get("/n/\(i)?size=\(i % 7)", host: "known",
                                                            extra: "User-Agent: agent-\(i)\r\nX-Request-Id: rid-\(i)\r\n")
            XCTAssertEqual(r?.status, 200, "request \(i)", file: file, line: line)
        }
        let text = waitForLines(textLog, count: Self.requests)
        let json = waitForLines(jsonLog, count: Self.requests)
        usleep(100_000)  // no late extra lines
        XCTAssertEqual(waitForLines(textLog, count: 0).count, Self.requests, "\(io): one text line per request", file: file, line: line)
        XCTAssertEqual(waitForLines(jsonLog, count: 0).count, Self.requests, "\(io): one json line per request", file: file, line: line)

        // Lines of one connection come in request order; across workers the order may mix.
        var seen = Set<Int>()
        let stamp = #"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "#
        for l in text {
            guard let i = Self.index(in: l), !seen.contains(i) else {
                XCTFail("\(io): unexpected or repeated line: \(l)", file: file, line: line)
                continue
            }
            seen.insert(i)
            let size = i % 7
            let pattern = stamp + NSRegularExpression.escapedPattern(for: "\"GET /n/\(i)?size=\(size) HTTP/1.1\" 200 - 0 \(size) ")
                + #"\d+ \d+ "# + NSRegularExpression.escapedPattern(for: "\"-\" \"agent-\(i)\" \"rid-\(i)\" \"known\" \"127.0.0.1:\(upstream.port)\"") + "$"
            let regex = try NSRegularExpression(pattern: pattern)
            guard let m = regex.firstMatch(in: l, range: NSRange(l.startIndex..., in: l)) else {
                XCTFail("\(io): line \(i) is not as expected: \(l)", file: file, line: line)
                continue
            }
            let time = String(l[Range(m.range(at: 1), in: l)!])
            let parser = ISO8601DateFormatter()
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let when = parser.date(from: time)
            XCTAssertNotNil(when, time, file: file, line: line)
            if let when {
                XCTAssertTrue(when >= before.addingTimeInterval(-1) && when <= Date().addingTimeInterval(1),
                              "\(io): START_TIME \(time) is the request's time", file: file, line: line)
            }
        }
        XCTAssertEqual(seen, Set(0..<Self.requests), "\(io): every request has its line", file: file, line: line)

        let expectedJSON = Set((0..<Self.requests).map { i in
            #"{"code":200,"request":{"path":"/n/\#(i)?size=\#(i % 7)","agent":"agent-"},"text":"HTTP/1.1 - \"\#(i % 7)\""}"#
        })
        XCTAssertEqual(Set(json), expectedJSON, "\(io): json lines", file: file, line: line)
        XCTAssertEqual(ops.stats().value("access_log.dropped"), 0, file: file, line: line)
    }

    private static func index(in line: String) -> Int? {
        guard let r = line.range(of: "\"GET /n/") else { return nil }
        return Int(line[r.upperBound...].prefix { $0.isNumber })
    }

    func testStartTimeFormats() {
        let t: Int64 = 1_625_619_248_074_512_345  // 2021-07-07T00:54:08.074512345Z
        XCTAssertEqual(AccessLogFormatter.startTime(t, format: nil), "2021-07-07T00:54:08.074Z")
        XCTAssertEqual(AccessLogFormatter.startTime(t, format: "%Y/%m/%d %H:%M:%S.%3f|%6f|%9f|%f|%s"),
                       "2021/07/07 00:54:08.074|074512|074512345|074512345|1625619248")
        XCTAssertEqual(AccessLogFormatter.startTime(1_625_619_248_000_000_007, format: "%s.%9f"), "1625619248.000000007")
    }

    func testAddressesAndJSONEscapesRenderLikeTheStringForms() {
        let v4 = SocketAddress(host: "10.1.2.3", port: 8080)!
        let v6 = SocketAddress(host: "::1", port: 443)!
        for a in [v4, v6] {
            var storage = a.storage
            let out = AccessLogBytes()
            withUnsafeBytes(of: &storage) { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw.prefix(Int(a.length)))
                AccessLogFormatter.appendAddress(bytes, withPort: true, into: out)
                out.append(0x20)
                AccessLogFormatter.appendAddress(bytes, withPort: false, into: out)
            }
            XCTAssertEqual(out.string(from: 0), "\(a.description) \(a.host)")
        }
        let tricky = "a\"b\\c\nd\te\u{1}f é"
        let out = AccessLogBytes()
        var copy = tricky
        copy.withUTF8 { AccessLogFormatter.appendJSONString(UnsafeRawBufferPointer($0), into: out) }
        XCTAssertEqual(out.string(from: 0), JSONText.string(tricky))
        out.count = 0
        for v in [0, 7, 10, 99, 100, 123_456_789, -42] { out.appendDecimal(v); out.append(0x20) }
        out.appendPadded(74, width: 3)
        XCTAssertEqual(out.string(from: 0), "0 7 10 99 100 123456789 -42 074")
    }
}
