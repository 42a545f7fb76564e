import CTestSupport
import Foundation
import Glibc
import XCTest

/// The repository root (three levels above this file).
public let repositoryRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}()

/// Path of the `ballast` binary the tests run: BALLAST_BIN, else the one built beside the test
/// bundle (whatever the scratch path: .build, .build-asan, ...), else `.build/debug`.
public func ballastBinary() -> String {
    if let path = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return path }
    let sibling = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ballast").path
    if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
    for config in ["debug", "release"] {
        let candidate = repositoryRoot.appendingPathComponent(".build/\(config)/ballast").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return repositoryRoot.appendingPathComponent(".build/debug/ballast").path
}

/// Throws a skip when the tests run under `make test-sanitize` (it sets ASAN_OPTIONS or
/// TSAN_OPTIONS): valgrind cannot run a sanitizer-instrumented ballast.
public func skipCallgrindUnderSanitizers() throws {
    let environment = ProcessInfo.processInfo.environment
    if environment["ASAN_OPTIONS"] != nil || environment["TSAN_OPTIONS"] != nil {
        throw XCTSkip("valgrind cannot run the sanitizer-instrumented ballast (ASAN_OPTIONS / TSAN_OPTIONS set)")
    }
}

/// A child process of the test (by default `ballast ARGS`), stopped (SIGTERM, then SIGKILL) when
/// the test drops it. Every wait is bounded.
public final class ChildProcess {
    public let process = Process()
    public let stdout = Pipe()
    public let stderr = Pipe()
    private var stopped = false

    public init(_ arguments: [String], environment: [String: String] = [:], executable: String = ballastBinary()) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    /// Reads stdout (or stderr) until a line containing `marker` appears (nil when the process
    /// exits or `timeout` passes). Lines before it are consumed.
    public func waitForLine(containing marker: String, timeout: TimeInterval = 30, stderr fromStderr: Bool = false) -> String? {
        let fd = (fromStderr ? stderr : stdout).fileHandleForReading.fileDescriptor
        var text = ""
        let deadline = Date().addingTimeInterval(timeout)
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

    /// Like `waitForLine`, but a process that does not print the line is a set-up failure
    /// (thrown, so the test fails), with the tail of its stderr.
    public func requireLine(containing marker: String, what: String) throws -> String {
        if let line = waitForLine(containing: marker) { return line }
        let (status, err) = waitForExit(timeout: 5)
        throw TestSetupError("\(what) did not start (no '\(marker)' line; exit \(status)): \(err.suffix(2000))")
    }

    /// How the process ended, once `waitForExit` returned: its exit status, or the signal that
    /// killed it.
    public private(set) var exitStatus: Int32? = nil
    public private(set) var exitSignal: Int32? = nil

    /// Waits for exit (killed after `timeout`) and returns status (exit status, or the signal
    /// number when a signal ended it) and stderr text.
    public func waitForExit(timeout: TimeInterval = 30) -> (status: Int32, stderr: String) {
        let deadline = Date().addingTimeInterval(timeout)
        var zombieSince: Date? = nil
        while process.isRunning && Date() < deadline {
            // Foundation can miss a child's exit (seen under AddressSanitizer with a child that
            // aborts): a child that stays a zombie for 5 s is reaped here instead.
            if ProcessTable.isZombie(pid) {
                if let since = zombieSince, Date().timeIntervalSince(since) > 5 { return reapMissedExit() }
                if zombieSince == nil { zombieSince = Date() }
            }
            usleep(10_000)
        }
        if process.isRunning {
            kill(pid, SIGKILL)
            if ProcessTable.isZombie(pid) || Wait.until(timeout: 5, { ProcessTable.isZombie(pid) || !process.isRunning }) && process.isRunning {
                return reapMissedExit()
            }
            process.waitUntilExit()
        }
        stopped = true
        if process.terminationReason == .uncaughtSignal { exitSignal = process.terminationStatus } else { exitStatus = process.terminationStatus }
        let err = readStderrToEnd()
        return (process.terminationStatus, err)
    }

    private func reapMissedExit() -> (status: Int32, stderr: String) {
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        stopped = true
        let signal = status & 0x7f
        if signal != 0 { exitSignal = signal } else { exitStatus = (status >> 8) & 0xff }
        let err = readStderrToEnd()
        return (exitSignal ?? exitStatus ?? -1, err)
    }

    /// The rest of stderr, up to its end or for at most `timeout` (a grandchild that inherited
    /// the pipe must not hang the test).
    private func readStderrToEnd(timeout: TimeInterval = 10) -> String {
        let fd = stderr.fileHandleForReading.fileDescriptor
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    public func stop() {
        guard !stopped, process.isRunning else { return }
        stopped = true
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Resident memory of the child in KiB (VmRSS). Throws when /proc cannot tell: a memory check
    /// must fail, not pass, when it cannot measure.
    public func residentKiB() throws -> Int { try ProcessTable.residentKiB(of: pid) }

    deinit { stop() }
}

/// What /proc says about processes.
public enum ProcessTable {
    public static func residentKiB(of pid: Int32) throws -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else {
            throw TestSetupError("cannot read VmRSS of process \(pid) from /proc/\(pid)/status")
        }
        return kib
    }

    /// True when `pid` has exited and waits to be reaped.
    public static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    /// The pids of every live (not zombie) process whose parent is `pid`.
    public static func children(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid && fields[0] != "Z"
        }
    }

    /// Makes this process the reaper of its orphaned descendants while `body` runs: a grandchild
    /// whose parent exits is re-parented here (not to init), so `children(of: getpid())` after a
    /// child exited finds what it left behind. Orphans adopted meanwhile are reaped afterwards.
    public static func asSubreaper<T>(_ body: () throws -> T) rethrows -> T {
        _ = cts_set_child_subreaper(1)
        defer {
            _ = cts_set_child_subreaper(0)
            reapAdoptedZombies()
        }
        return try body()
    }

    /// Reaps the zombie children of this process that nobody waits for (orphans adopted as
    /// subreaper that exited).
    public static func reapAdoptedZombies() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return }
        let me = getpid()
        for pid in entries.compactMap({ Int32($0) }) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2 && Int32(fields[1]) == me && fields[0] == "Z" {
                var status: Int32 = 0
                waitpid(pid, &status, WNOHANG)
            }
        }
    }

    /// Kills and reaps `pids` (orphans a test adopted as subreaper).
    public static func killAndReap(_ pids: [Int32]) {
        for pid in pids {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}
