import Foundation

/// The iptables nat rules of transparent interception, laid out the way istio-init lays out
/// its own (chains renamed BALLAST_*): TCP leaving the namespace goes to the outbound listener
/// (15001), TCP arriving goes to the inbound listener (15006); the proxy's own connections
/// (matched by uid, and gid when given) and loopback traffic between local processes are left
/// alone. Pure data: `ballast sidecar-init` runs what this produces.
public struct InterceptionRules: Sendable, Equatable {
    /// Which destination ports a direction redirects.
    public enum Ports: Sendable, Equatable {
        case all
        case none
        case only([Int])

        /// `*` (all), empty (none) or a comma-separated list of ports 1-65535.
        public static func parse(_ text: String) throws(InterceptionError) -> Ports {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed == "*" { return .all }
            if trimmed.isEmpty { return .none }
            return .only(try parseList(trimmed))
        }

        /// A comma-separated list of ports 1-65535 (empty: none).
        public static func parseList(_ text: String) throws(InterceptionError) -> [Int] {
            var ports: [Int] = []
            if text.trimmingCharacters(in: .whitespaces).isEmpty { return ports }
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                let p = part.trimmingCharacters(in: .whitespaces)
                guard let n = Int(p), (1...65535).contains(n) else {
                    throw InterceptionError("'\(p)' is not a port (1-65535) in '\(text)'")
                }
                if !ports.contains(n) { ports.append(n) }
            }
            return ports
        }
    }

    public var outboundPort = 15001
    public var inboundPort = 15006
    /// The proxy's uid (Istio's 1337): its own connections are never redirected.
    public var proxyUID = 1337
    /// The proxy's gid, also excluded when set.
    public var proxyGID: Int? = nil
    public var inboundPorts = Ports.all
    public var excludeInboundPorts: [Int] = []
    public var outboundPorts = Ports.all
    public var excludeOutboundPorts: [Int] = []

    public init() {}

    public static let chains = ["BALLAST_INBOUND", "BALLAST_IN_REDIRECT", "BALLAST_OUTPUT", "BALLAST_REDIRECT"]
    /// The jumps from the built-in chains, as `iptables -t nat` arguments after `-A`/`-D`.
    public static let jumps = [["PREROUTING", "-p", "tcp", "-j", "BALLAST_INBOUND"], ["OUTPUT", "-p", "tcp", "-j", "BALLAST_OUTPUT"]]

    /// The rules as `iptables-restore --noflush` input (applied in one transaction).
    public func restoreScript() -> String {
        var lines = ["*nat"]
        for c in Self.chains { lines.append(":\(c) - [0:0]") }
        lines.append("-A BALLAST_IN_REDIRECT -p tcp -j REDIRECT --to-ports \(inboundPort)")
        lines.append("-A BALLAST_REDIRECT -p tcp -j REDIRECT --to-ports \(outboundPort)")
        // Inbound: every TCP connection arriving (PREROUTING), except the excluded ports.
        if inboundPorts != .none {
            lines.append("-A PREROUTING -p tcp -j BALLAST_INBOUND")
            for p in excludeInboundPorts { lines.append("-A BALLAST_INBOUND -p tcp -m tcp --dport \(p) -j RETURN") }
            switch inboundPorts {
            case .all: lines.append("-A BALLAST_INBOUND -p tcp -j BALLAST_IN_REDIRECT")
            case .only(let ports): for p in ports { lines.append("-A BALLAST_INBOUND -p tcp -m tcp --dport \(p) -j BALLAST_IN_REDIRECT") }
            case .none: break
            }
        }
        // Outbound: locally generated TCP (OUTPUT).
        lines.append("-A OUTPUT -p tcp -j BALLAST_OUTPUT")
        // Istio's inbound passthrough source: a proxy that binds 127.0.0.6 to reach the app over lo
        // (a cluster's upstream_bind_config) is not sent back inbound.
        lines.append("-A BALLAST_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
        var owners = ["--uid-owner \(proxyUID)"]
        if let proxyGID { owners.append("--gid-owner \(proxyGID)") }
        for owner in owners {
            // The proxy calling this namespace's own address over lo: the inbound side gets it.
            lines.append("-A BALLAST_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner \(owner) -j BALLAST_IN_REDIRECT")
            // Other processes talking over lo are left alone.
            lines.append("-A BALLAST_OUTPUT -o lo -m owner ! \(owner) -j RETURN")
            // The proxy's own upstream connections are never redirected (no loop).
            lines.append("-A BALLAST_OUTPUT -m owner \(owner) -j RETURN")
        }
        lines.append("-A BALLAST_OUTPUT -d 127.0.0.1/32 -j RETURN")
        for p in excludeOutboundPorts { lines.append("-A BALLAST_OUTPUT -p tcp -m tcp --dport \(p) -j RETURN") }
        switch outboundPorts {
        case .all: lines.append("-A BALLAST_OUTPUT -j BALLAST_REDIRECT")
        case .only(let ports): for p in ports { lines.append("-A BALLAST_OUTPUT -p tcp -m tcp --dport \(p) -j BALLAST_REDIRECT") }
        case .none: break
        }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// `iptables -t nat` argument lists that remove everything `restoreScript` installs: the
    /// jumps first, then the chains' rules, then the chains.
    public static func removalCommands() -> [[String]] {
        var commands: [[String]] = []
        for j in jumps { commands.append(["-t", "nat", "-D"] + j) }
        for c in chains { commands.append(["-t", "nat", "-F", c]) }
        for c in chains { commands.append(["-t", "nat", "-X", c]) }
        return commands
    }
}

public struct InterceptionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
