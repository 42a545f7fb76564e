import ArgumentParser
import EventLoop
import Report

struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "CI regression gate: fails only on a regression that is statistically significant and larger than the threshold.",
        discussion: """
        Compares the candidate with the baseline point by point (B/A, 95% bootstrap CI over repetitions) and judges \
        each series' geometric mean over its connection counts (--per-point: every point too). Exit 0 pass, \
        1 a significant regression larger than --max-regression (or unreadable results, or nothing to compare), \
        2 usage. Prints the Markdown table.

        Ratios measured within one run travel better than absolute figures across runs: two runs on a shared \
        2-core VM can differ by more than any regression worth catching. --normalize-by VARIANT divides every \
        figure by that variant's at the same connections and repetition of the same run (e.g. direct, or the \
        previous strategy), so the gate compares side-by-side ratios; --baseline-variant/--candidate-variant \
        compare two variants of one run.

        Decision rule: a judged row fails when (1) the candidate is worse than the baseline by more than \
        --max-regression and (2) the 95% bootstrap CI of B/A excludes 1. Judged rows are each series' geometric \
        mean over its connection counts. By default (--normalize-by auto) figures are first divided by the \
        experiment's `reference` variant of the same run, repetition and connection count when the candidate's \
        manifest names one (a peer the change does not touch); --normalize-by none compares absolute figures.
        """
    )

    @Option(help: "Baseline results: a results directory, its manifest.json, a point file, or results/<experiment>/ (newest run).")
    var baseline: String

    @Option(help: "Candidate results directory.")
    var candidate: String

    @Option(name: .customLong("max-regression"), help: "Largest tolerated regression, e.g. 5% or 0.05.")
    var maxRegression = "5%"

    @Option(name: .customLong("metric"), help: "Metrics to judge: qps, avg, p50, p75, p90, p99, p99.9, cpu-per-request, load-cpu-per-request, instructions-per-request (comma-separated).")
    var metrics = "qps,p90"

    @Flag(name: .customLong("per-point"), help: "Also fail on a single connection count, not only on a series' geometric mean.")
    var perPoint = false

    @Option(name: .customLong("normalize-by"), help: "Divide each figure by this variant's in the same run first: a variant, auto (the experiment's reference, if any) or none.")
    var normalizeBy = "auto"

    @Option(name: .customLong("baseline-variant"), help: "Only this variant of the baseline.")
    var baselineVariant: String?

    @Option(name: .customLong("candidate-variant"), help: "Only this variant of the candidate.")
    var candidateVariant: String?

    @Option(help: "Seed of the bootstrap.")
    var seed: UInt64 = Bootstrap.defaultSeed

    func validate() throws {
        do { _ = try Metric.parseList(metrics) } catch { throw ValidationError("--metric: \(error)") }
        guard Gate.parseThreshold(maxRegression) != nil else {
            throw ValidationError("--max-regression: expected a percentage such as 5% or a fraction such as 0.05, got '\(maxRegression)'")
        }
        if (baselineVariant == nil) != (candidateVariant == nil) {
            throw ValidationError("--baseline-variant and --candidate-variant go together")
        }
    }

    func run() throws {
        let base = try loadResults(baseline), cand = try loadResults(candidate)
        var options = ComparisonOptions()
        options.metrics = try Metric.parseList(metrics)
        let normalizeBy: String? = switch self.normalizeBy {
        case "none": nil
        case "auto": baselineVariant == nil ? cand.manifest?.reference : nil
        default: self.normalizeBy
        }
        if let normalizeBy, self.normalizeBy == "auto" { Log.info("gate: normalising by the experiment's reference variant '\(normalizeBy)' (--normalize-by none to compare absolute figures)") }
        options.normalizeBy = normalizeBy
        options.baselineVariant = baselineVariant
        options.candidateVariant = candidateVariant
        options.seed = seed
        try checkVariants(base, [baselineVariant, normalizeBy], "the baseline")
        try checkVariants(cand, [candidateVariant, normalizeBy], "the candidate")
        var gateOptions = GateOptions()
        gateOptions.maxRegression = Gate.parseThreshold(maxRegression)!
        gateOptions.perPoint = perPoint
        let result = Gate.evaluate(Compare.run(baseline: base, candidate: cand, options: options), options: gateOptions)
        print(result.markdown(), terminator: "")
        if result.judged.isEmpty {
            Log.error("no point of \(candidate) matches one of \(baseline); nothing was judged")
            throw ExitCode(1)
        }
        if result.judgeable == 0 {
            Log.warning("no judged row has 2+ repetitions on both sides, so none has a confidence interval; the gate cannot fail on these results")
        }
        if !result.passed {
            Log.error("gate failed: \(result.failures.count) significant regression\(result.failures.count == 1 ? "" : "s") larger than \(maxRegression)")
            throw ExitCode(1)
        }
    }
}
