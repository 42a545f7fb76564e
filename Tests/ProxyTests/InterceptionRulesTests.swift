@testable import Proxy
import XCTest

/// The iptables rules `ballast sidecar-init` installs (issue 14), as data: the istio-init layout,
/// the proxy's uid and gid excluded, port includes and excludes, and the removal commands.
final class InterceptionRulesTests: XCTestCase {
    func testDefaultRulesRedirectBothDirectionsAndSpareTheProxyAndLoopback() {
        let lines = InterceptionRules().restoreScript().split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, [
            "*nat",
            ":BALLAST_INBOUND - [0:0]", ":BALLAST_IN_REDIRECT - [0:0]", ":BALLAST_OUTPUT - [0:0]", ":BALLAST_REDIRECT - [0:0]",
            "-A BALLAST_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "-A BALLAST_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
            "-A PREROUTING -p tcp -j BALLAST_INBOUND",
            "-A BALLAST_INBOUND -p tcp -j BALLAST_IN_REDIRECT",
            "-A OUTPUT -p tcp -j BALLAST_OUTPUT",
            "-A BALLAST_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
            "-A BALLAST_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j BALLAST_IN_REDIRECT",
            "-A BALLAST_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
            "-A BALLAST_OUTPUT -m owner --uid-owner 1337 -j RETURN",
            "-A BALLAST_OUTPUT -d 127.0.0.1/32 -j RETURN",
            "-A BALLAST_OUTPUT -j BALLAST_REDIRECT",
            "COMMIT",
        ])
    }

    func testPortsAndOwners() throws {
        var r = InterceptionRules()
        r.outboundPort = 16001
        r.inboundPort = 16006
        r.proxyUID = 999
        r.proxyGID = 998
        r.inboundPorts = try .parse("8080, 9090")
        r.excludeInboundPorts = try InterceptionRules.Ports.parseList("22")
        r.outboundPorts = try .parse("*")
        r.excludeOutboundPorts = try InterceptionRules.Ports.parseList("5432,5432")
        let script = r.restoreScript()
        for expected in ["-A BALLAST_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006",
                         "-A BALLAST_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
                         "-A BALLAST_INBOUND -p tcp -m tcp --dport 22 -j RETURN",
                         "-A BALLAST_INBOUND -p tcp -m tcp --dport 8080 -j BALLAST_IN_REDIRECT",
                         "-A BALLAST_INBOUND -p tcp -m tcp --dport 9090 -j BALLAST_IN_REDIRECT",
                         "-A BALLAST_OUTPUT -m owner --uid-owner 999 -j RETURN",
                         "-A BALLAST_OUTPUT -m owner --gid-owner 998 -j RETURN",
                         "-A BALLAST_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN",
                         "-A BALLAST_OUTPUT -j BALLAST_REDIRECT"] {
            XCTAssertTrue(script.contains(expected + "\n"), expected)
        }
        XCTAssertEqual(script.components(separatedBy: "--dport 5432").count, 2, "a repeated port appears once")
        XCTAssertFalse(script.contains("-A BALLAST_INBOUND -p tcp -j BALLAST_IN_REDIRECT"), "only the listed inbound ports")

        r.inboundPorts = try .parse("")
        r.outboundPorts = try .parse("80")
        let narrow = r.restoreScript()
        XCTAssertFalse(narrow.contains("PREROUTING"), "no inbound ports: no inbound jump")
        XCTAssertTrue(narrow.contains("-A BALLAST_OUTPUT -p tcp -m tcp --dport 80 -j BALLAST_REDIRECT\n"))
        XCTAssertFalse(narrow.contains("-A BALLAST_OUTPUT -j BALLAST_REDIRECT"))
    }

    func testBadPortsAreRefusedByName() {
        for bad in ["0", "65536", "http", "80,,81", "-1"] {
            XCTAssertThrowsError(try InterceptionRules.Ports.parse(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("is not a port (1-65535)"), "\(error)")
            }
        }
    }

    func testRemovalUndoesEverything() {
        let commands = InterceptionRules.removalCommands().map { $0.joined(separator: " ") }
        XCTAssertEqual(commands, [
            "-t nat -D PREROUTING -p tcp -j BALLAST_INBOUND", "-t nat -D OUTPUT -p tcp -j BALLAST_OUTPUT",
            "-t nat -F BALLAST_INBOUND", "-t nat -F BALLAST_IN_REDIRECT", "-t nat -F BALLAST_OUTPUT", "-t nat -F BALLAST_REDIRECT",
            "-t nat -X BALLAST_INBOUND", "-t nat -X BALLAST_IN_REDIRECT", "-t nat -X BALLAST_OUTPUT", "-t nat -X BALLAST_REDIRECT",
        ])
    }
}
