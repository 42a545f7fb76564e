import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// The operations signals sent for real to a `ballast proxy` process: SIGHUP reloads the config
/// file, SIGUSR1 reopens the access logs. Each outcome is observed (a route's answer, a log line,
/// a file's lines), never assumed after a sleep.
final class OpsSignalTests: XCTestCase {
    /// A `ballast proxy -c FILE` child with its listener and admin ports.
    final class ProxyChild {
        let child: ChildProcess
        let port: Int
        let adminPort: Int

        init(configPath: String) throws {
            child = try ChildProcess(["proxy", "-c", configPath, "--concurrency", "2", "--io", "epoll"])
            let line = try child.requireLine(containing: "listening on", what: "ballast proxy")
            let admin = try child.requireLine(containing: "admin on", what: "ballast proxy (admin)")
            guard let port = line.components(separatedBy: "127.0.0.1:").dropFirst().first.flatMap({ Int($0.prefix { $0.isNumber }) }),
                  let adminPort = admin.components(separatedBy: ":").last.flatMap({ Int($0.prefix { $0.isNumber }) }) else {
                throw TestSetupError("no ports in the proxy's lines: \(line) / \(admin)")
            }
            self.port = port
            self.adminPort = adminPort
        }
    }

    func testSIGHUPReloadsTheConfigFileAndKeepsTheOldOneWhenInvalid() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let path = opsTempPath("sighup.yaml")
        defer { unlink(path) }
        try OpsLifecycleTests.reloadYAML(version: 0, echoPort: upstream.port).write(toFile: path, atomically: true, encoding: .utf8)
        let proxy = try ProxyChild(configPath: path)
        defer { proxy.child.stop() }
        XCTAssertEqual(try TestConnection(port: proxy.port).get("/version")?.text, "v0")

        try OpsLifecycleTests.reloadYAML(version: 1, echoPort: upstream.port).write(toFile: path, atomically: true, encoding: .utf8)
        proxy.child.signal(SIGHUP)
        XCTAssertNotNil(proxy.child.waitForLine(containing: "configuration generation 1 published", stderr: true), "SIGHUP did not reload")
        XCTAssertEqual(try TestConnection(port: proxy.port).get("/version")?.text, "v1", "new connections use the reloaded routes")

        try "static_resources: { listeners: [ { nme: x } ] }".write(toFile: path, atomically: true, encoding: .utf8)
        proxy.child.signal(SIGHUP)
        let rejected = proxy.child.waitForLine(containing: "reload rejected", stderr: true)
        XCTAssertTrue(rejected?.contains("nme") ?? false, rejected ?? "no rejection logged")
        XCTAssertEqual(try TestConnection(port: proxy.port).get("/version")?.text, "v1", "the running config stays")
    }

    /// Rotation as logrotate does it: rename the file, send SIGUSR1. Requests keep coming; once a
    /// line lands in the new file, every request is in exactly one of the two files.
    func testSIGUSR1ReopensTheAccessLogAfterRotation() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let log = opsTempPath("sigusr1.log")
        let path = opsTempPath("sigusr1.yaml")
        defer {
            unlink(path)
            unlink(log)
            unlink(log + ".1")
        }
        try opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port]),
                    accessLog: opsFileLogger(log)).write(toFile: path, atomically: true, encoding: .utf8)
        let proxy = try ProxyChild(configPath: path)
        defer { proxy.child.stop() }
        let c = try TestConnection(port: proxy.port)
        XCTAssertEqual(c.get("/before")?.status, 200)
        XCTAssertEqual(waitForLines(log, count: 1).count, 1)
        XCTAssertEqual(rename(log, log + ".1"), 0)
        proxy.child.signal(SIGUSR1)
        var sent = 1
        let reopened = Wait.until {
            if c.get("/after")?.status == 200 { sent += 1 }
            return ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("/after")
        }
        XCTAssertTrue(reopened, "no line reached the reopened file after SIGUSR1")
        let total = Wait.value {
            let old = waitForLines(log + ".1", count: 0).count, new = waitForLines(log, count: 0).count
            return old + new == sent ? old + new : nil
        }
        XCTAssertEqual(total, sent, "every request is logged exactly once across the rotation")
    }
}
