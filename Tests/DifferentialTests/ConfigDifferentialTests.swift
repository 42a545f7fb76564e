import Foundation
import XCTest

/// Each ConfigCase through `envoy --mode validate` and `ballast proxy --mode validate`.
final class ConfigDifferentialTests: XCTestCase {
    func testValidateAgreesWithEnvoy() throws {
        let envoy = try ensureEnvoyBinary()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-config-diff-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var report: [String] = []
        var seen: Set<String> = []
        for c in configCases {
            var yaml = configCaseBase
            for (old, new) in c.edits {
                guard let r = yaml.range(of: old) else { XCTFail("\(c.name): '\(old)' is not in the base"); continue }
                yaml.replaceSubrange(r, with: new)
            }
            let path = directory.appendingPathComponent("\(c.name).yaml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let e = try runToCompletion(envoy, ["--mode", "validate", "-c", path, "-l", "critical", "--disable-hot-restart"])
            let b = try runToCompletion(differentialBallastBinary(), ["proxy", "--mode", "validate", "-c", path])
            XCTAssertTrue(b.status == 0 || b.status == 1, "\(c.name): validate exits 0 or 1, got \(b.status)")
            let envoyOK = e.status == 0
            let ballastOK = b.status == 0
            if let expected = c.refusalPath {
                XCTAssertFalse(ballastOK, "\(c.name): ballast should refuse")
                XCTAssertTrue(b.stderr.contains(expected + ":"), "\(c.name): the error names \(expected):\n\(b.stderr)")
            }
            guard envoyOK != ballastOK else { continue }
            let key = "config/\(c.name)"
            seen.insert(key)
            if IntentionalDifferences.reason(for: key) == nil {
                report.append("\(key): envoy \(envoyOK ? "accepts" : "rejects"), ballast \(ballastOK ? "accepts" : "rejects"); not an intentional difference\n  envoy: \(e.stderr.suffix(400))\n  ballast: \(b.stderr)")
            }
        }
        for entry in intentionalDifferences where entry.key.hasPrefix("config/") && !seen.contains(entry.key) {
            report.append("\(entry.key): listed in IntentionalDifferences.swift but Envoy and Ballast now agree; remove the entry")
        }
        if !report.isEmpty { XCTFail(report.joined(separator: "\n")) }
    }
}
