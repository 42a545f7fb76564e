import ArgumentParser

struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gate", abstract: "CI regression gate over result sets (not yet implemented).")

    func run() throws {
        throw ValidationError("'ballast gate' is not implemented yet")
    }
}
