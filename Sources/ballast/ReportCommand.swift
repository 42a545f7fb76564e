import ArgumentParser
import EventLoop
import Foundation
import Report

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Charts and tables from a results directory: report.html (self-contained), charts/*.svg, summary.md, points.csv.",
        discussion: """
        DIR is a results directory (results/<experiment>/<UTC timestamp>/), its manifest.json, or an experiment \
        directory (results/<experiment>/), whose newest run is taken. Exit status: 0 written, 1 unreadable results \
        or unwritable output, 2 usage.
        """
    )

    @Argument(help: "Results directory, its manifest.json, or results/<experiment>/ (newest run).")
    var directory: String

    @Option(help: "Variant the deltas are against (default: the manifest's baseline, else the first variant).")
    var baseline: String?

    @Option(help: "Where to write the report (default: the results directory).")
    var out: String?

    func run() throws {
        let set = try loadResults(directory)
        let outDirectory = out ?? set.directory
        let report: RenderedReport
        do {
            report = try ReportWriter.write(set, to: outDirectory, options: ReportOptions(baseline: baseline))
        } catch let error as ReportError {
            throw ValidationError(error.message)
        } catch {
            Log.error("cannot write the report to \(outDirectory): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        print((outDirectory as NSString).appendingPathComponent("report.html"))
        for line in report.headlines { print("- " + line.replacingOccurrences(of: "**", with: "")) }
    }
}

/// Loads a result set for a subcommand: warnings go to stderr; an unusable file is an error
/// naming it and exit status 1.
func loadResults(_ path: String) throws -> ResultSet {
    do {
        let set = try ResultSet.load(path)
        for w in set.warnings { Log.warning(w) }
        return set
    } catch let error as ResultFileError {
        Log.error("\(error)")
        throw ExitCode(1)
    }
}
