import ArgumentParser

struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "fortio-compatible load generator (not yet implemented).")

    func run() throws {
        throw ValidationError("'ballast load' is not implemented yet")
    }
}
