import EventLoop
import Foundation
import Glibc
import LoadGen

/// Instructions per request of a `ballast server` variant, counted by callgrind: a steady
/// figure for the gate where timing noise is too large (valgrind serialises threads and counts
/// user-space instructions, not time, so other work on the machine does not move it; the loop's
/// batching of requests per wake-up does, by 0.5-3% between repetitions).
///
/// Two runs under `valgrind --tool=callgrind` (epoll: valgrind does not run io_uring), one
/// answering `requests` requests and one `2 × requests`, each started and stopped alike; the
/// difference of their totals divided by `requests` cancels start-up, connection set-up and
/// shutdown. Kernel time is not counted: it is a user-space figure.
struct InstructionCounter {
    /// The `ballast` binary valgrind runs: a copy without debug sections (valgrind 3.19 gives up
    /// on the Swift toolchain's debug information), made once per sweep in the logs directory.
    let ballast: String
    let logs: String

    static func prepare(ballast: String, logs: String) -> InstructionCounter {
        let copy = "\(logs)/ballast-for-callgrind"
        if !FileManager.default.fileExists(atPath: copy) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["objcopy", "--strip-debug", ballast, copy]
            p.standardError = FileHandle.nullDevice
            if (try? p.run()) != nil { p.waitUntilExit() }
            if p.terminationStatus != 0 { return InstructionCounter(ballast: ballast, logs: logs) }
        }
        return InstructionCounter(ballast: copy, logs: logs)
    }

    enum Failure: Error, CustomStringConvertible {
        case noTotals(String)
        case unsupported(String)
        var description: String {
            switch self {
            case .noTotals(let file): "callgrind wrote no totals to \(file)"
            case .unsupported(let why): why
            }
        }
    }

    /// Why a system cannot be counted (nil: it can).
    static func unsupportedReason(kind: Experiment.SystemKind, args: [String]) -> String? {
        guard kind == .server else { return "instructions per request are counted for `ballast server` systems only" }
        if let i = args.lastIndex(of: "--io"), i + 1 < args.count, args[i + 1] != "epoll" {
            return "instructions per request are counted on epoll only (valgrind does not run io_uring); this variant asks for --io \(args[i + 1])"
        }
        return nil
    }

    func instructionsPerRequest(serverArgs: [String], connections: Int, path: String, requests: Int, tag: String) throws -> Double {
        let once = try totalInstructions(serverArgs: serverArgs, connections: connections, path: path, requests: requests, tag: "\(tag)-cg1")
        let twice = try totalInstructions(serverArgs: serverArgs, connections: connections, path: path, requests: 2 * requests, tag: "\(tag)-cg2")
        return max(0, Double(twice - once) / Double(requests))
    }

    private func totalInstructions(serverArgs: [String], connections: Int, path: String, requests: Int, tag: String) throws -> Int64 {
        let out = "\(logs)/\(tag).callgrind"
        let args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=\(out)", ballast, "server", "--port", "0",
                    "--address", "127.0.0.1"] + serverArgs + ["--io", "epoll"]
        let server = try ChildProcess(name: tag, arguments: args, cpus: nil, logDirectory: logs)
        defer { server.stop(grace: 60) }
        let line = try server.waitForLine(containing: "listening on", timeoutSeconds: 120)
        guard let port = SweepRunner.port(after: "listening on ", in: line) else { throw SweepError.notReady(tag, stderrTail: server.stderrTail()) }
        let load = try ChildProcess(name: "\(tag)-load", arguments: [ballast, "load", "-qps", "0", "-c", "\(min(connections, requests))",
                                                                    "-n", "\(requests)", "http://127.0.0.1:\(port)\(path)"],
                                    cpus: nil, logDirectory: logs)
        load.process.waitUntilExit()
        load.stop()
        guard load.process.terminationStatus == 0 else { throw SweepError.loadFailed("callgrind load: \(load.stderrTail())") }
        server.stop(grace: 60)
        guard let text = try? String(contentsOfFile: out, encoding: .utf8),
              let total = Self.parseTotals(text) else { throw Failure.noTotals(out) }
        return total
    }

    /// The `totals:` (or `summary:`) line of a callgrind output file: instructions (Ir) executed.
    static func parseTotals(_ text: String) -> Int64? {
        for line in text.split(separator: "\n").reversed() where line.hasPrefix("totals:") || line.hasPrefix("summary:") {
            if let n = line.split(separator: " ").dropFirst().first.flatMap({ Int64($0) }) { return n }
        }
        return nil
    }
}
