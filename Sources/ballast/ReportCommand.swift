import ArgumentParser

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Charts and tables from a results directory (not yet implemented).")

    func run() throws {
        throw ValidationError("'ballast report' is not implemented yet")
    }
}
