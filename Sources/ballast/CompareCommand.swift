import ArgumentParser

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compare", abstract: "A/B comparison of two result sets (not yet implemented).")

    func run() throws {
        throw ValidationError("'ballast compare' is not implemented yet")
    }
}
