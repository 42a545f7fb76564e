import EventLoop
import Foundation
import Glibc
@testable import Proxy
import XCTest

/// Each proxy instance draws its own random sequence: the x-request-id generated for the first
/// request of two proxies with the same config (one worker each) differs. With a constant seed
/// per worker index, as before, both generated the same id.
final class DataPathSeedTests: XCTestCase {
    final class IDLog: @unchecked Sendable {
        private let lock = NSLock()
        private var ids: [String] = []
        func append(_ s: String) { lock.lock(); ids.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return ids }
    }

    func testGeneratedRequestIDsDifferBetweenInstances() throws {
        let log = IDLog()
        let upstream = try RawUpstream { fd in
            while true {
                let head = RawUpstream.readHead(fd)
                if head.isEmpty { return }
                for line in head.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("x-request-id:") {
                    log.append(line.dropFirst("x-request-id:".count).trimmingCharacters(in: .whitespaces))
                }
                RawUpstream.write(fd, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            }
        }
        defer { upstream.stop() }
        let yaml = dataPathYAML(virtualHosts: dataPathCatchAll("raw"), clusters: dataPathCluster("raw", ports: [upstream.port]))
        for _ in 0..<2 {
            let proxy = try startDataPathProxy(yaml, io: .epoll, concurrency: 1)
            let c = try TestConnection(port: proxy.port(of: "http")!)
            XCTAssertEqual(c.get("/")?.status, 200)
            proxy.stop()
        }
        let ids = log.all
        XCTAssertEqual(ids.count, 2, "\(ids)")
        XCTAssertEqual(Set(ids).count, 2, "each instance generates its own ids: \(ids)")
    }
}
