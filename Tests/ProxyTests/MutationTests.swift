@testable import Proxy
import XCTest

/// Hostile input: 800 mutated configs (fixed seed) load or fail with errors, never crash,
/// and every error names a path or a location.
final class MutationTests: XCTestCase {
    struct LCG {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    func testMutatedConfigsNeverCrash() {
        var rng = LCG(state: 42)
        let seeds = [baseConfig, ModelTests.yaml]
        let junk = ["", "~", "-1", "{}", "[]", "x", "0s", "\"", ":", "- a", "{ a: [", "65536", "true", "*", "@type"]
        var loaded = 0
        var failed = 0
        for i in 0..<800 {
            var lines = seeds[i % seeds.count].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for _ in 0..<(1 + rng.next(3)) {
                let at = rng.next(lines.count)
                switch rng.next(4) {
                case 0: lines.remove(at: at)
                case 1: lines.insert(lines[rng.next(lines.count)], at: at)
                case 2:
                    if let colon = lines[at].lastIndex(of: ":") {
                        lines[at] = String(lines[at][...colon]) + " " + junk[rng.next(junk.count)]
                    }
                default:
                    var chars = Array(lines[at])
                    if !chars.isEmpty { chars[rng.next(chars.count)] = Array("az_ .{}[]:-0\"")[rng.next(13)] }
                    lines[at] = String(chars)
                }
                if lines.isEmpty { lines = [""] }
            }
            do {
                _ = try BootstrapLoader.load(yaml: lines.joined(separator: "\n"))
                loaded += 1
            } catch {
                failed += 1
                XCTAssertFalse(error.errors.isEmpty)
                for e in error.errors where e.path.isRoot {
                    XCTAssertTrue(e.location != nil || e.message.contains("empty") || e.message.contains("expected a mapping"), e.description)
                }
            }
        }
        XCTAssertGreaterThan(failed, 300)
        XCTAssertGreaterThan(loaded, 10)
    }
}
