import ArgumentParser
import EventLoop
import Glibc

@main
struct Ballast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballast",
        abstract: "Connection-balancing testbed: an Envoy-like proxy, a fortio-like load generator and its reports.",
        version: BallastVersion.string,
        subcommands: [ServerCommand.self, ProxyCommand.self, LoadCommand.self, SweepCommand.self, SimulateCommand.self, ReportCommand.self, CompareCommand.self, GateCommand.self, SidecarInitCommand.self]
    )

    /// Usage errors exit with 2 (as the project's docs promise), other failures with 1.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                let message = fullMessage(for: error)
                Log.line(message)
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

enum BallastVersion {
    static let string = "0.1.0"
}
