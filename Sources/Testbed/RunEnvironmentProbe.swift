import Foundation
import Glibc
import Report

/// What a result must carry about the machine it was measured on.
enum RunEnvironmentProbe {
    static func capture(placement: [String: String], workerCost: String?, configHash: String?, version: String) -> RunEnvironment {
        var name = utsname()
        uname(&name)
        let kernel = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let host = withUnsafeBytes(of: &name.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
        var env = RunEnvironment()
        env.kernel = kernel
        env.cpuModel = model
        env.cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        env.pinning = placement.isEmpty ? ["all": "unpinned"] : placement
        env.gitCommit = gitCommit()
        env.ballastVersion = version
        env.configHash = configHash
        env.workerCost = workerCost
        env.hostname = host
        return env
    }

    /// The commit the running `ballast` binary was built from: the checkout that holds it
    /// (`<repo>/.build/<config>/ballast`), not the directory the sweep runs in. `-dirty` when its
    /// sources differ from that commit; `-stale` when the binary is older than the last commit
    /// that changed the sources.
    static func buildCommit(binary: String) -> String? {
        let dir = (binary as NSString).deletingLastPathComponent
        guard var commit = git(["-C", dir, "rev-parse", "--short", "HEAD"]), !commit.isEmpty else { return nil }
        if let changes = git(["-C", dir, "status", "--porcelain", "--untracked-files=no", "--", ":/Sources", ":/Package.swift"]), !changes.isEmpty {
            commit += "-dirty"
        }
        // Stale: the sources changed in a commit made after the binary was linked.
        if let time = git(["-C", dir, "log", "-1", "--format=%ct", "--", ":/Sources", ":/Package.swift"]).flatMap({ Double($0) }),
           let built = (try? FileManager.default.attributesOfItem(atPath: binary))?[.modificationDate] as? Date,
           built.timeIntervalSince1970 < time {
            commit += "-stale"
        }
        return commit
    }

    static func gitCommit() -> String? { git(["rev-parse", "--short", "HEAD"]) }

    private static func git(_ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// FNV-1a 64 of a text, as a short stable fingerprint of an experiment or config file.
    static func fingerprint(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return "fnv1a64:" + String(h, radix: 16)
    }
}
