import ArgumentParser
import EventLoop
import Foundation
import Glibc
import Proxy

/// `ballast sidecar-init`: what istio-init does for a pod, for one network namespace. Installs the
/// nat rules of `InterceptionRules` (outbound TCP to the proxy's outbound listener, inbound TCP to
/// its inbound listener, the proxy's own uid and loopback left alone) with one
/// `iptables-restore --noflush`, or removes them (`--remove`), or prints them (`--dry-run`).
struct SidecarInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sidecar-init",
        abstract: "Install (or --remove) the iptables REDIRECT rules of transparent interception in a network namespace, as istio-init does.",
        discussion: """
        Outbound TCP from the namespace is redirected to --outbound-port (15001), inbound TCP to --inbound-port \
        (15006), except connections of --proxy-uid (and --proxy-gid), loopback traffic between local processes, \
        and excluded ports. The proxy (ballast proxy with a use_original_dst listener and an ORIGINAL_DST \
        cluster) must run as that uid. Refuses the root network namespace unless --allow-root-namespace. \
        Needs root and iptables (the iptables package; --iptables names another binary, e.g. iptables-legacy). \
        Exit 0 done, 1 failure, 2 usage. See docs/sidecar.md.
        """
    )

    @Option(help: "Network namespace name (ip netns; /run/netns/NAME). Default: the current namespace.")
    var netns: String?

    @Option(name: .customLong("outbound-port"), help: "Port of the proxy's outbound listener.")
    var outboundPort = 15001

    @Option(name: .customLong("inbound-port"), help: "Port of the proxy's inbound listener.")
    var inboundPort = 15006

    @Option(name: .customLong("proxy-uid"), help: "The proxy's uid: its connections are not redirected.")
    var proxyUID = 1337

    @Option(name: .customLong("proxy-gid"), help: "The proxy's gid, also excluded (optional).")
    var proxyGID: Int?

    @Option(name: .customLong("inbound-ports"), help: "Inbound ports to redirect: * (all), a list such as 80,8080, or '' (none).")
    var inboundPorts = "*"

    @Option(name: .customLong("exclude-inbound-ports"), help: "Inbound ports never redirected, e.g. 22,15090.")
    var excludeInboundPorts = ""

    @Option(name: .customLong("outbound-ports"), help: "Outbound destination ports to redirect: * (all), a list, or '' (none).")
    var outboundPorts = "*"

    @Option(name: .customLong("exclude-outbound-ports"), help: "Outbound destination ports never redirected.")
    var excludeOutboundPorts = ""

    @Option(help: "The iptables binary (its -restore sibling is used too).")
    var iptables = "iptables"

    @Flag(help: "Remove the rules this command installs instead.")
    var remove = false

    @Flag(name: .customLong("dry-run"), help: "Print the rules (or the removal commands) and change nothing.")
    var dryRun = false

    @Flag(name: .customLong("allow-root-namespace"), help: "Allow changing the root network namespace's rules (the host's own traffic).")
    var allowRootNamespace = false

    func rules() throws -> InterceptionRules {
        var r = InterceptionRules()
        for (name, port) in [("--outbound-port", outboundPort), ("--inbound-port", inboundPort)] where !(1...65535).contains(port) {
            throw ValidationError("\(name): \(port) is not a port (1-65535)")
        }
        guard outboundPort != inboundPort else { throw ValidationError("--outbound-port and --inbound-port must differ") }
        guard proxyUID >= 0, (proxyGID ?? 0) >= 0 else { throw ValidationError("--proxy-uid/--proxy-gid must not be negative") }
        r.outboundPort = outboundPort
        r.inboundPort = inboundPort
        r.proxyUID = proxyUID
        r.proxyGID = proxyGID
        do {
            r.inboundPorts = try InterceptionRules.Ports.parse(inboundPorts)
            r.excludeInboundPorts = try InterceptionRules.Ports.parseList(excludeInboundPorts)
            r.outboundPorts = try InterceptionRules.Ports.parse(outboundPorts)
            r.excludeOutboundPorts = try InterceptionRules.Ports.parseList(excludeOutboundPorts)
        } catch {
            throw ValidationError("ports: \(error)")
        }
        if let netns, netns.isEmpty || netns.contains("/") || netns.hasPrefix(".") {
            throw ValidationError("--netns: '\(netns)' is not a namespace name (see ip netns list)")
        }
        return r
    }

    func validate() throws { _ = try rules() }

    func run() throws {
        let r = try rules()
        let target = netns.map { "network namespace '\($0)'" } ?? "the current network namespace"
        if dryRun {
            if remove {
                for c in InterceptionRules.removalCommands() { print(([iptables] + c).joined(separator: " ")) }
            } else {
                print("# iptables-restore --noflush input for \(target)")
                print(r.restoreScript(), terminator: "")
            }
            return
        }
        try refuseRootNamespace(target)
        let plain = try executable(iptables)
        let restore = try executable(iptables + "-restore")
        let ip = netns == nil ? nil : try executable("ip", package: "iproute2")
        func command(_ exe: String, _ args: [String]) -> [String] {
            guard let ip, let netns else { return [exe] + args }
            return [ip, "netns", "exec", netns, exe] + args
        }
        let installed = Self.run(command(plain, ["-w", "-t", "nat", "-S", "BALLAST_OUTPUT"])).status == 0
        if remove {
            guard installed else {
                print("ballast sidecar-init: no interception rules in \(target); nothing to remove")
                return
            }
            var failures: [String] = []
            for c in InterceptionRules.removalCommands() {
                let result = Self.run(command(plain, ["-w"] + c))
                // A jump that is not there (installed without inbound) is not a failure.
                if result.status != 0 && c[2] != "-D" { failures.append("\(c.joined(separator: " ")): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))") }
            }
            guard failures.isEmpty else { throw Failure("removing the rules in \(target) failed:\n" + failures.joined(separator: "\n")) }
            print("ballast sidecar-init: removed the interception rules from \(target)")
            return
        }
        guard !installed else {
            throw Failure("\(target) already has interception rules (chain BALLAST_OUTPUT); run with --remove first")
        }
        let result = Self.run(command(restore, ["-w", "--noflush"]), input: r.restoreScript())
        guard result.status == 0 else {
            throw Failure("\(iptables)-restore failed in \(target) (exit \(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        print("ballast sidecar-init: \(target): outbound TCP -> :\(r.outboundPort), inbound TCP -> :\(r.inboundPort), uid \(r.proxyUID)\(r.proxyGID.map { " and gid \($0)" } ?? "") excluded")
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// The root namespace is the one pid 1 runs in (compared by namespace file). When pid 1's is
    /// unreadable (a container without CAP_SYS_PTRACE), the kernel's initial namespace is known by
    /// its fixed inode number (PROC_NET_INIT_INO, 0xEFFFFFF9, on recent kernels); failing that,
    /// only a named namespace other than this process's own is taken as safe.
    func refuseRootNamespace(_ target: String) throws {
        let path = netns.map { "/run/netns/\($0)" } ?? "/proc/self/ns/net"
        var mine = stat()
        var root = stat()
        var own = stat()
        guard stat(path, &mine) == 0 else {
            throw Failure("\(target): cannot read \(path): \(Log.describe(errno: errno))\(netns != nil ? " (create it with: ip netns add \(netns!))" : "")")
        }
        let isRoot: Bool
        if stat("/proc/1/ns/net", &root) == 0 {
            isRoot = mine.st_ino == root.st_ino && mine.st_dev == root.st_dev
        } else if mine.st_ino == 0xEFFF_FFF9 {
            isRoot = true
        } else if stat("/proc/self/ns/net", &own) == 0, own.st_ino == mine.st_ino && own.st_dev == mine.st_dev {
            guard allowRootNamespace else {
                throw Failure("cannot tell whether \(target) is the root namespace (/proc/1/ns/net: \(Log.describe(errno: errno))); give --netns NAME, or --allow-root-namespace if you mean this one")
            }
            isRoot = false
        } else {
            isRoot = false
        }
        if isRoot && !allowRootNamespace {
            throw Failure("\(target) is the root network namespace: its rules would redirect this machine's own traffic; give --netns NAME, or --allow-root-namespace if you mean it")
        }
    }

    /// The absolute path of `name` (a path, or found on PATH plus the sbin directories), or a
    /// failure saying which package provides it.
    func executable(_ name: String, package: String = "iptables") throws -> String {
        if name.contains("/") {
            guard access(name, X_OK) == 0 else { throw Failure("\(name) is not an executable (install the \(package) package: apt-get install \(package))") }
            return name
        }
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        for d in dirs where access(d + "/" + name, X_OK) == 0 { return d + "/" + name }
        throw Failure("\(name) not found on PATH or in /usr/sbin, /sbin (install the \(package) package: apt-get install \(package))")
    }

    static func run(_ argv: [String], input: String? = nil) -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let out = Pipe()
        let err = Pipe()
        let inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        do { try p.run() } catch { return (127, "", "\(argv[0]): \(error)") }
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try? inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
