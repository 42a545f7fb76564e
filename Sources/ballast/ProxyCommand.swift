import ArgumentParser

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proxy", abstract: "The Envoy-like HTTP/1.1 proxy (not yet implemented).")

    func run() throws {
        throw ValidationError("'ballast proxy' is not implemented yet")
    }
}
