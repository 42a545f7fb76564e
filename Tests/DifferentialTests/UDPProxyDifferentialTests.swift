import Foundation
import Glibc
import XCTest

/// udp_proxy against real Envoy 1.40 (the udp example's shape: a UDP listener whose matcher routes
/// every datagram to one cluster): two clients, three datagrams each, answered by an echo upstream
/// through the listener's own address; after the 1 s idle timeout both sessions end. The answers
/// and Envoy's udp.* / cluster counters must be the same.
final class UDPProxyDifferentialTests: XCTestCase {
    func testDatagramsAndCountersAgreeWithEnvoy() throws {
        let echo = try UDPEcho()
        defer { echo.stop() }
        let seen = try observeEnvoyAndBallast("udp", config: { _, admin, _ in
            // The listener port is chosen here (the pair helper's port is a TCP one).
            udpPort = (try? freePort()) ?? 0
            return """
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            static_resources:
              listeners:
              - name: udp
                address: { socket_address: { protocol: UDP, address: 127.0.0.1, port_value: \(udpPort) } }
                listener_filters: [ { name: envoy.filters.udp_listener.udp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig, stat_prefix: service, idle_timeout: 1s, matcher: { on_no_match: { action: { name: route, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: service_udp } } } } } } ]
              clusters:
              - \(staticCluster("service_udp", ports: [echo.port]).dropFirst(2))
            """
        }, observe: { proxy, _ in
            var out: [String] = []
            for client in 0..<2 {
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                defer { close(fd) }
                var tv = timeval(tv_sec: 3, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                for i in 0..<3 {
                    let text = "client\(client)-\(i)"
                    var to = sockaddr_in()
                    to.sin_family = sa_family_t(AF_INET)
                    to.sin_addr.s_addr = inet_addr("127.0.0.1")
                    to.sin_port = UInt16(udpPort).bigEndian
                    _ = withUnsafePointer(to: &to) { p in
                        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                            text.withCString { sendto(fd, $0, strlen($0), 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                        }
                    }
                    var buffer = [UInt8](repeating: 0, count: 256)
                    var from = sockaddr_in()
                    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                    let n = withUnsafeMutablePointer(to: &from) { p in
                        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
                    }
                    let fromPort = Int(UInt16(bigEndian: from.sin_port))
                    out.append(n > 0 ? "\(String(decoding: buffer[0..<n], as: UTF8.self)) from \(fromPort == udpPort ? "the listener" : "port \(fromPort)")" : "no answer")
                }
            }
            // Sessions end after the idle timeout (1 s).
            var stats: [String] = []
            let deadline = Date().addingTimeInterval(10)
            repeat {
                usleep(100_000)
                let text = (try? proxy.adminGet("/stats").text) ?? ""
                stats = text.split(separator: "\n").map(String.init).filter {
                    ($0.hasPrefix("udp.service.") || $0.hasPrefix("cluster.service_udp.udp.sess_") || $0.hasPrefix("cluster.service_udp.upstream_cx_rx_bytes_total")
                        || $0.hasPrefix("cluster.service_udp.upstream_cx_tx_bytes_total")) && !$0.contains("session_filter") && !$0.contains("tunnel")
                        && !$0.contains("datagrams_dropped")
                }.sorted()
            } while !stats.contains("udp.service.idle_timeout: 2") && Date() < deadline
            return out + stats
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "udp_proxy differs from Envoy 1.40")
        XCTAssertEqual(Array(seen.ballast.prefix(6)), (0..<2).flatMap { c in (0..<3).map { "echo:client\(c)-\($0) from the listener" } })
        XCTAssertTrue(seen.ballast.contains("udp.service.downstream_sess_total: 2"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("udp.service.idle_timeout: 2"), "\(seen.ballast)")
    }
}

/// The listener port of the proxy being observed (set when its bootstrap is rendered).
nonisolated(unsafe) private var udpPort = 0

/// A UDP echo server on 127.0.0.1 (a thread of its own): answers `echo:` + the datagram.
final class UDPEcho: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                var from = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &from) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
                }
                if n < 0 { return }
                let reply = Array("echo:".utf8) + buffer[0..<n]
                _ = withUnsafePointer(to: &from) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in reply.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) } }
                }
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
