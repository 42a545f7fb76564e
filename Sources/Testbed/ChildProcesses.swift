import EventLoop
import Foundation
import Glibc

/// A process the sweep started: its own process group, output captured to files, stopped with
/// SIGTERM then SIGKILL, and reported by name with the tail of its stderr when it dies.
final class ChildProcess: @unchecked Sendable {  // used from the sweep's thread only
    let name: String
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    /// Starts `arguments[0]` (a path or a name on PATH), pinned with taskset when `cpus` is set.
    init(name: String, arguments: [String], cpus: String?, logDirectory: String) throws {
        self.name = name
        let safe = name.replacingOccurrences(of: "/", with: "_")
        stdoutPath = "\(logDirectory)/\(safe).out"
        stderrPath = "\(logDirectory)/\(safe).err"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        var argv = arguments
        if let cpus { argv = ["taskset", "-c", cpus] + argv }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        ChildRegistry.shared.add(process.processIdentifier)
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Waits for a stdout line containing `marker`; returns it, or throws with the stderr tail.
    func waitForLine(containing marker: String, timeoutSeconds: Double = 20) throws -> String {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: stdoutPath, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) {
                return String(line)
            }
            if !process.isRunning { throw SweepError.processDied(name, status: process.terminationStatus, stderrTail: stderrTail()) }
            usleep(20_000)
        }
        throw SweepError.notReady(name, stderrTail: stderrTail())
    }

    func stderrTail(lines: Int = 8) -> String {
        let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// SIGTERM to the process, SIGKILL after `grace` seconds; waits for it.
    func stop(grace: Double = 5) {
        defer { ChildRegistry.shared.remove(pid) }
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Every child still running, so a Ctrl-C can stop them all.
final class ChildRegistry: @unchecked Sendable {
    static let shared = ChildRegistry()
    private let lock = NSLock()
    private var pids: Set<Int32> = []

    func add(_ pid: Int32) { lock.lock(); pids.insert(pid); lock.unlock() }
    func remove(_ pid: Int32) { lock.lock(); pids.remove(pid); lock.unlock() }

    /// SIGTERM then SIGKILL to every registered child.
    func killAll() {
        lock.lock()
        let all = pids
        lock.unlock()
        for pid in all { kill(pid, SIGTERM) }
        usleep(300_000)
        for pid in all { kill(pid, SIGKILL) }
    }
}

enum SweepError: Error, CustomStringConvertible {
    case processDied(String, status: Int32, stderrTail: String)
    case notReady(String, stderrTail: String)
    /// The system exited before it served: it refused its config or flags.
    case rejected(String, status: Int32, stderrTail: String)
    case missingBinary(String)
    case busyPort(Int)
    case loadFailed(String)
    case interrupted

    var description: String {
        switch self {
        case let .processDied(name, status, tail): "\(name) exited with status \(status); its stderr ends with:\n\(tail)"
        case let .rejected(name, status, tail): "\(name) exited with status \(status) before serving (did it reject its config?); its stderr ends with:\n\(tail)"
        case let .notReady(name, tail): "\(name) did not become ready within 20 s; its stderr ends with:\n\(tail)"
        case let .missingBinary(name): "the experiment needs '\(name)', which is not installed or not on PATH"
        case let .busyPort(port): "port \(port) is busy"
        case let .loadFailed(text): "the load failed: \(text)"
        case .interrupted: "interrupted"
        }
    }
}

/// Tiny blocking HTTP GET for admin endpoints on loopback (no Foundation networking needed).
enum AdminClient {
    static func get(port: Int, path: String) -> (status: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard SocketAddress(host: "127.0.0.1", port: port)!.withSockAddr({ connect(fd, $0, $1) }) == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let head = text[..<split.lowerBound].lowercased()
        let body = String(text[split.upperBound...])
        return (status, head.contains("transfer-encoding: chunked") ? dechunk(body) : body)
    }

    /// A chunked body's data (Envoy's admin answers chunked).
    static func dechunk(_ body: String) -> String {
        var bytes = Substring(body).utf8[...]
        var out: [UInt8] = []
        while let lineEnd = bytes.firstIndex(of: UInt8(ascii: "\n")) {
            let sizeText = String(decoding: bytes[..<lineEnd], as: UTF8.self)
                .split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            guard let size = Int(sizeText, radix: 16), size > 0 else { break }
            let start = bytes.index(after: lineEnd)
            guard bytes.distance(from: start, to: bytes.endIndex) >= size else { out.append(contentsOf: bytes[start...]); break }
            let end = bytes.index(start, offsetBy: size)
            out.append(contentsOf: bytes[start..<end])
            bytes = bytes[end...].drop { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A free loopback port (bound and released: another process may take it first, rarely).
    static func freePort() -> Int? {
        guard let fd = try? Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false) else { return nil }
        defer { close(fd) }
        return try? Sockets.localAddress(fd).port
    }
}
