import Foundation
import Glibc
import XCTest

/// Path of the `ballast` binary the tests run (BALLAST_BIN overrides; default: this package's
/// debug build, which `swift test` builds).
func ballastBinary() -> String {
    if let path = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return path }
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    for config in ["debug", "release"] {
        let candidate = url.appendingPathComponent(".build/\(config)/ballast").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return url.appendingPathComponent(".build/debug/ballast").path
}

/// A child process of the test, stopped (SIGTERM, then SIGKILL) when the test ends.
final class ChildProcess {
    let process = Process()
    let stdout = Pipe()
    let stderr = Pipe()
    private var stopped = false

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: ballastBinary())
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    /// Reads stdout until a line containing `marker` appears (or the process exits / 20 s pass).
    func waitForLine(containing marker: String) -> String? {
        let fd = stdout.fileHandleForReading.fileDescriptor
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        var byte: UInt8 = 0
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) <= 0 { if !process.isRunning { return nil }; continue }
            if read(fd, &byte, 1) != 1 { return nil }
            if byte == 10 {
                if text.contains(marker) { return text }
                text = ""
            } else {
                text.append(Character(UnicodeScalar(byte)))
            }
        }
        return nil
    }

    /// Waits for exit (up to 20 s) and returns status and stderr text.
    func waitForExit() -> (status: Int32, stderr: String) {
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        stopped = true
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, err)
    }

    func stop() {
        guard !stopped, process.isRunning else { return }
        stopped = true
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Resident memory of the child in KiB (VmRSS).
    var residentKiB: Int {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    deinit { stop() }
}

/// A `ballast server` started for one test.
final class ServerUnderTest {
    let child: ChildProcess
    let port: Int

    init(io: String, workers: Int = 1, extra: [String] = []) throws {
        child = try ChildProcess(["server", "--port", "0", "--address", "127.0.0.1", "--workers", "\(workers)", "--io", io] + extra)
        guard let line = child.waitForLine(containing: "listening on"),
              let portText = line.split(separator: ":").last?.split(separator: " ").first,
              let port = Int(portText) else {
            let (_, err) = child.waitForExit()
            throw XCTSkip("server did not start: \(err)")
        }
        self.port = port
    }

    func stop() { child.stop() }
}
