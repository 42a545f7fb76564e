import Foundation
import Glibc

/// Tries every variant's command line and config before the first point (and for
/// `ballast sweep --validate`): `ballast server --check`, `ballast proxy --mode validate`,
/// `envoy --mode validate`, `nginx -t`, `haproxy -c`. A typo in a variant fails in seconds, not
/// after minutes of other points.
public enum ExperimentValidation {
    public struct Failure: Error, CustomStringConvertible {
        /// "variant 'NAME'" or "load.args".
        let subject: String
        let command: [String]
        let output: String
        public var description: String {
            "\(subject) does not validate: `\(command.joined(separator: " "))` failed:\n\(output)"
        }
    }

    /// Several variants that do not validate, reported together.
    public struct Failures: Error, CustomStringConvertible {
        let all: [Failure]
        public var description: String { all.map(\.description).joined(separator: "\n") }
    }

    /// One line per variant checked; throws every failure together.
    static func check(_ e: Experiment, ballast: String, envoy: String?, directory: String) throws -> [String] {
        var lines: [String] = []
        var failures: [Failure] = []
        // Ports that nothing binds: validation modes only parse.
        let ports = SystemLaunch.Ports(listen: 65_001, admin: 65_002, upstream: 65_003)
        for (i, variant) in e.variants.enumerated() {
            let launch = SystemLaunch(system: e.system(for: variant), variant: variant)
            let tag = "validate-\(i + 1)-\(variant.name)"
            let config = try launch.renderConfig(ports: ports, directory: directory, tag: tag)
            let command = launch.commandLine(ballast: ballast, envoy: envoy, config: config, validate: true)
            guard !command.isEmpty else {
                lines.append("\(variant.name): no validation mode known for \(launch.system.command.first ?? "?"); not checked")
                continue
            }
            let p = try ChildProcess(name: tag, arguments: command, cpus: nil, logDirectory: directory)
            let deadline = Date().addingTimeInterval(60)
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning {
                p.stop()
                failures.append(Failure(subject: "variant '\(variant.name)'", command: command, output: "no answer within 60 s"))
                continue
            }
            p.stop()
            guard p.process.terminationStatus == 0 else {
                let out = (try? String(contentsOfFile: p.stdoutPath, encoding: .utf8)) ?? ""
                let tail = (out.split(separator: "\n").suffix(6) + p.stderrTail(lines: 12).split(separator: "\n")).joined(separator: "\n")
                failures.append(Failure(subject: "variant '\(variant.name)'", command: command, output: tail))
                continue
            }
            lines.append("\(variant.name): ok")
        }
        // The load's extra flags (e.g. -ramp), as every point passes them.
        let load = [ballast, "load", "-qps", "0", "-c", "1", "-t", "1s"] + e.loadArgs + ["-check", "http://127.0.0.1:1\(e.loadPath)"]
        let p = try ChildProcess(name: "validate-load", arguments: load, cpus: nil, logDirectory: directory)
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        p.stop()
        if p.process.terminationStatus != 0 {
            failures.append(Failure(subject: "load.args", command: load, output: p.stderrTail(lines: 6)))
        } else {
            lines.append("load flags: ok")
        }
        if failures.count == 1 { throw failures[0] }
        if !failures.isEmpty { throw Failures(all: failures) }
        return lines
    }
}

/// Bad input found before anything ran (`ballast sweep` exits 2 on these).
public protocol SweepInputError: Error, CustomStringConvertible {}
extension ExperimentValidation.Failure: SweepInputError {}
extension ExperimentValidation.Failures: SweepInputError {}
extension EnvoySystem.Missing: SweepInputError {}
