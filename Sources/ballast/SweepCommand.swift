import ArgumentParser
import EventLoop
import Foundation
import LoadGen
import Testbed

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run an experiment (Experiments/*.yaml): every variant x connection count x repetition, then write the report.",
        discussion: "Results go to <out>/<experiment>/<UTC timestamp>/: one JSON per point, manifest.json, report.html, summary.md, points.csv and charts/. Ctrl-C stops every process the sweep started and keeps the finished points."
    )

    @Argument(help: "Experiment file (YAML).")
    var file: String

    @Option(help: "Parent folder of the results.")
    var out = "results"

    @Flag(help: "One repetition, at most 1 s per point and three connection counts: a smoke run.")
    var quick = false

    @Option(help: "Override the experiment's load duration per point (e.g. 10s).")
    var duration: String?

    @Option(help: "Override the experiment's repetitions.")
    var repetitions: Int?

    @Flag(name: .customLong("validate"), help: "Only check every variant's command line and config (ballast proxy/envoy --mode validate, nginx -t, haproxy -c, ballast server flags), then exit: 0 valid, 2 not. The sweep runs the same check before its first point.")
    var validateOnly = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("experiment file \(file) does not exist") }
        if let duration, GoDuration.parseNanos(duration) == nil { throw ValidationError("--duration: bad duration '\(duration)'") }
        if let repetitions, !(1...100).contains(repetitions) { throw ValidationError("--repetitions must be 1...100") }
    }

    func run() throws {
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var options = SweepRunner.Options(experimentFile: file, ballast: binary, version: BallastVersion.string,
                                          command: (["ballast"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
        options.outRoot = out
        options.quick = quick
        options.durationNanos = duration.flatMap(GoDuration.parseNanos)
        options.repetitions = repetitions
        options.validateOnly = validateOnly
        let outcome: SweepRunner.Outcome
        do {
            outcome = try SweepRunner(options: options).run()
        } catch let error as Experiment.SchemaError {
            Log.error("\(file): \(error)")
            throw ExitCode(2)
        } catch let error as SweepInputError {
            // A variant that does not validate, or a missing Envoy: nothing ran.
            Log.error("\(file): \(error)")
            throw ExitCode(2)
        } catch {
            Log.error("\(error)")
            throw ExitCode(1)
        }
        if validateOnly {
            for line in outcome.headlines { Log.out("  \(line)") }
            Log.out("\(file): every variant validates")
            return
        }
        Log.out("results: \(outcome.directory)")
        if let report = outcome.reportPath { Log.out("report: \(report)") }
        for line in outcome.headlines { Log.out("  \(line)") }
        if !outcome.complete || outcome.failedPoints > 0 {
            Log.error("the sweep is incomplete (\(outcome.failedPoints) failed points); finished points were kept")
            throw ExitCode(1)
        }
    }
}
