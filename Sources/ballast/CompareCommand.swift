import ArgumentParser
import EventLoop
import Report

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "A/B comparison: per matched point, B/A of QPS and latency percentiles with a 95% bootstrap CI over repetitions.",
        discussion: """
        A and B are results directories (or manifest.json, a point file, or results/<experiment>/ for the newest run). \
        Points match by variant, the axes that vary within a variant, and connections. With --baseline-variant and \
        --candidate-variant, one variant of A is compared with one variant of B (A and B may be the same run: \
        variant vs variant, measured side by side). Prints a Markdown table; exit 0, 1 unreadable results, 2 usage.
        """
    )

    @Argument(help: "Baseline results (A).")
    var a: String

    @Argument(help: "Candidate results (B).")
    var b: String

    @Option(name: .customLong("metric"), help: "Metrics: qps, avg, p50, p75, p90, p99, p99.9, cpu-per-request, load-cpu-per-request, instructions-per-request (comma-separated).")
    var metrics = "qps,p50,p90,p99"

    @Option(name: .customLong("baseline-variant"), help: "Only this variant of A.")
    var baselineVariant: String?

    @Option(name: .customLong("candidate-variant"), help: "Only this variant of B.")
    var candidateVariant: String?

    @Option(name: .customLong("normalize-by"), help: "Divide each figure by this variant's in the same run (same connections and repetition) first.")
    var normalizeBy: String?

    @Option(help: "Seed of the bootstrap.")
    var seed: UInt64 = Bootstrap.defaultSeed

    func validate() throws {
        do { _ = try Metric.parseList(metrics) } catch { throw ValidationError("--metric: \(error)") }
        if (baselineVariant == nil) != (candidateVariant == nil) {
            throw ValidationError("--baseline-variant and --candidate-variant go together")
        }
    }

    func run() throws {
        let setA = try loadResults(a), setB = try loadResults(b)
        var options = ComparisonOptions()
        options.metrics = try Metric.parseList(metrics)
        options.baselineVariant = baselineVariant
        options.candidateVariant = candidateVariant
        options.normalizeBy = normalizeBy
        options.seed = seed
        try checkVariants(setA, [baselineVariant, normalizeBy], "A")
        try checkVariants(setB, [candidateVariant, normalizeBy], "B")
        let comparison = Compare.run(baseline: setA, candidate: setB, options: options)
        print(comparison.markdown(), terminator: "")
    }
}

/// A variant named on the command line must exist in the set (a typo is a usage error).
func checkVariants(_ set: ResultSet, _ names: [String?], _ side: String) throws {
    let present = Set(set.points.map(\.result.variant))
    for case let name? in names where !present.contains(name) {
        throw ValidationError("variant '\(name)' is not in \(side) (\(set.directory); variants: \(present.sorted().joined(separator: ", ")))")
    }
}
