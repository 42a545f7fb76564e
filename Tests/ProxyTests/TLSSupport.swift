import Foundation
import Glibc
import XCTest

// Support for the TLS tests (docs/tls.md): throwaway certificates made by scripts/tls-test-certs.sh
// with the `openssl` CLI, and `curl` / raw sockets as clients.

/// A temp directory with ca.pem, server.pem/.key (SAN 127.0.0.1, localhost), client.pem/.key and
/// other-ca.pem; removed by `remove()`.
final class TestCertificates {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "ballast-tls-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/tls-test-certs.sh").path
        let r = runTool("/bin/sh", [script, dir])
        guard r.status == 0, FileManager.default.fileExists(atPath: dir + "/server.pem") else {
            throw XCTSkip("openssl could not make test certificates: \(r.stderr)")
        }
    }

    func path(_ name: String) -> String { dir + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

/// Runs a tool (bounded: killed after `seconds`); (status, stdout, stderr).
@discardableResult
func runTool(_ executable: String, _ arguments: [String], stdin: Data? = nil, seconds: Double = 20) -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    // stdout to a file: a large output cannot fill a pipe and stall the tool.
    let outPath = NSTemporaryDirectory() + "ballast-tool-\(getpid())-\(UInt32.random(in: 0 ... .max))"
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    defer { unlink(outPath) }
    guard let out = FileHandle(forWritingAtPath: outPath) else { return (-1, "", "cannot create \(outPath)") }
    let err = Pipe()
    let input = Pipe()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    do { try process.run() } catch { return (-1, "", "\(error)") }
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try? input.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    try? out.close()
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stdoutData = FileManager.default.contents(atPath: outPath) ?? Data()
    return (process.terminationStatus, String(decoding: stdoutData, as: UTF8.self), stderr)
}

/// curl with the test CA (and `extra` flags); `-w` appends the status after the bodies.
func curlTLS(_ certs: TestCertificates, _ urls: [String], extra: [String] = []) -> (status: Int32, stdout: String, stderr: String) {
    runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", certs.path("ca.pem")] + extra + urls)
}

/// Connects to 127.0.0.1:port, sends `bytes`, optionally half-closes, and reads until the peer
/// closes (or 5 s pass). Returns what came back and whether the peer closed.
func rawExchange(port: Int, send bytes: [UInt8], halfClose: Bool) -> (received: [UInt8], closed: Bool) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return ([], false) }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { return ([], false) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    if halfClose { shutdown(fd, Int32(SHUT_WR)) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { received += buffer[0..<n]; continue }
        return (received, n == 0 || (n < 0 && errno == ECONNRESET))
    }
}

/// A TLS client kept open across steps: `openssl s_client` with pipes. `exchange` writes a request
/// and reads until `expect` appears (or `seconds` pass).
final class OpenSSLClient {
    let process = Process()
    let input = Pipe()
    let output = Pipe()

    init(port: Int, caFile: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["s_client", "-quiet", "-connect", "127.0.0.1:\(port)", "-CAfile", caFile, "-verify_return_error"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func exchange(_ request: String, expect: String, seconds: Int32 = 10) -> String {
        input.fileHandleForWriting.write(Data(request.utf8))
        var text = ""
        let fd = output.fileHandleForReading.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(Double(seconds))
        while !text.contains(expect) && Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) >= 0 else { break }
            guard p.revents != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return text
    }

    var isRunning: Bool { process.isRunning }

    func stop() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
