import ArgumentParser
import EventLoop
import Foundation
import LoadGen
import Report
import Testbed

/// `ballast simulate`: an experiment through the discrete-event simulator, or a measured sweep
/// re-simulated point by point to show how far the model is from the machine.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate an experiment (workers, accept strategy, closed or open loop) and write point files in the sweep's schema.",
        discussion: """
        ballast simulate EXPERIMENT.yaml [--calibrate-from RESULTS_DIR] writes <out>/<experiment>-sim/<UTC timestamp>/ \
        (point files marked "simulated", manifest, report). Workers come from the system's --workers/--concurrency, \
        the strategy from --balance, the cost from --worker-cost unless --cost or --calibrate-from say otherwise. \
        ballast simulate --validate RESULTS_DIR re-simulates every measured point with the connections per worker it \
        measured and one cost and round trip for the whole sweep, and prints the errors (Markdown).
        """
    )

    @Argument(help: "Experiment file (YAML); with --validate, a measured results directory.")
    var input: String

    @Flag(help: "Validate the model against the measured sweep INPUT instead of simulating an experiment.")
    var validate = false

    @Option(help: "Parent folder of the results.")
    var out = "results"

    @Option(name: .customLong("calibrate-from"), help: "A measured results directory: per-request cost and round trip are taken from it.")
    var calibrateFrom: String?

    @Option(help: "Mean per-request cost (e.g. 253us); overrides the calibration and the nominal --worker-cost.")
    var cost: String?

    @Option(name: .customLong("round-trip"), help: "Round trip outside the worker (e.g. 40us); default: calibrated, else 50us.")
    var roundTrip: String?

    @Option(name: .customLong("cost-shape"), help: "fixed, exponential, empirical (from --calibrate-from) or nominal (the --worker-cost shape).")
    var costShape = "nominal"

    @Option(help: "Open loop at this utilisation of the workers (0 < u < 1.5) instead of the closed loop.")
    var utilisation: Double?

    @Option(help: "Open the connections over this long (e.g. 2s) instead of back to back.")
    var ramp: String?

    @Option(help: "Live rebalancing: a worker this many requests above the mean hands an idle connection to the least-loaded worker.")
    var rebalance: Int?

    @Option(help: "Simulated load time per point (e.g. 5s; default: the experiment's duration).")
    var duration: String?

    @Option(help: "Override the experiment's repetitions (independent seeds).")
    var repetitions: Int?

    @Option(help: "With --validate: also write the Markdown table to this file.")
    var markdown: String?

    func validateArguments() throws -> SimulationRunner.CostShape {
        guard let shape = SimulationRunner.CostShape(rawValue: costShape) else {
            throw ValidationError("--cost-shape: expected one of \(SimulationRunner.CostShape.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for (flag, value) in [("--cost", cost), ("--round-trip", roundTrip), ("--ramp", ramp), ("--duration", duration)] {
            if let value, GoDuration.parseNanos(value) == nil { throw ValidationError("\(flag): bad duration '\(value)' (e.g. 250us, 2s)") }
        }
        if let utilisation, !(utilisation > 0 && utilisation < 1.5) { throw ValidationError("--utilisation must be in (0, 1.5)") }
        if let rebalance, rebalance < 0 { throw ValidationError("--rebalance: the margin is a number of requests >= 0") }
        if let repetitions, !(1...100).contains(repetitions) { throw ValidationError("--repetitions must be 1...100") }
        guard FileManager.default.fileExists(atPath: input) else { throw ValidationError("\(input) does not exist") }
        return shape
    }

    func run() throws {
        let shape = try validateArguments()
        let seconds = { (text: String?) in text.flatMap(GoDuration.parseNanos).map { Double($0) / 1e9 } }
        if validate {
            let set = try loadResults(input)
            do {
                let v = try SimulationValidation.run(set, costShape: shape == .nominal ? .fixed : shape,
                                                     simulatedSeconds: seconds(duration) ?? 5)
                let text = v.markdown(title: set.manifest?.experiment ?? input)
                print(text)
                if let markdown { try text.write(toFile: markdown, atomically: true, encoding: .utf8) }
            } catch let error as SimulationCalibration.Failure {
                Log.error("\(input): \(error)")
                throw ExitCode(1)
            }
            return
        }
        var options = SimulationRunner.Options(experimentFile: input, version: BallastVersion.string,
                                               command: (["ballast"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
        options.outRoot = out
        options.calibrateFrom = calibrateFrom
        options.cost = seconds(cost)
        options.roundTrip = seconds(roundTrip)
        options.costShape = shape
        options.utilisation = utilisation
        options.rampSeconds = seconds(ramp)
        options.rebalanceMargin = rebalance
        options.durationSeconds = seconds(duration)
        options.repetitions = repetitions
        do {
            let outcome = try SimulationRunner(options: options).run()
            Log.out("results: \(outcome.directory)")
            for line in outcome.headlines { Log.out("  \(line)") }
        } catch let error as Experiment.SchemaError {
            Log.error("\(input): \(error)")
            throw ExitCode(2)
        } catch let error as SimulationRunner.Failure {
            Log.error("\(input): \(error)")
            throw ExitCode(2)
        } catch {
            Log.error("\(error)")
            throw ExitCode(1)
        }
    }
}
