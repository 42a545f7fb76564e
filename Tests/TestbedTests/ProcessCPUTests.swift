import Foundation
import Glibc
@testable import Testbed
import XCTest

final class ProcessCPUTests: XCTestCase {
    func testStatParsingCountsFieldsAfterTheLastParenthesis() {
        let line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 9 3 20 0 4 0 100 0 0"
        XCTAssertEqual(ProcessTreeCPU.parseStat(line), .init(parent: 17, ticks: 325, reapedTicks: 12))
        XCTAssertNil(ProcessTreeCPU.parseStat("4242 (short) S 1 2"))
    }

    func testDescendantsFollowParentChainsOnly() {
        // 10 -> 11 -> 13, 10 -> 12; 20 is elsewhere; 30 <-> 31 is a cycle that must not hang.
        let parents: [pid_t: pid_t] = [10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 30: 31, 31: 30]
        XCTAssertEqual(ProcessTreeCPU.descendants(of: 10, parents: parents), [10, 11, 12, 13])
        XCTAssertEqual(ProcessTreeCPU.descendants(of: 13, parents: parents), [13])
        XCTAssertEqual(ProcessTreeCPU.descendants(of: 30, parents: parents), [30, 31])
    }

    /// A shell whose child burns CPU: the child's time counts for the shell's tree, while it runs.
    func testTreeIncludesALiveChildsCPU() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30' & wait"]
        var child: pid_t = 0
        try p.run()
        defer { if child != 0 { kill(child, SIGKILL) }; p.terminate(); p.waitUntilExit() }
        let root = p.processIdentifier
        // Wait until the child has used at least 0.2 s of CPU (bounded: 20 s).
        var tree: Int64 = 0
        for _ in 0..<400 {
            let table = ProcessTreeCPU.processTable()
            child = ProcessTreeCPU.descendants(of: root, parents: table.mapValues(\.parent)).first { $0 != root } ?? 0
            tree = ProcessTreeCPU.nanos(root: root) ?? 0
            if child != 0, (ProcessTreeCPU.clockNanos(child) ?? 0) > 200_000_000 { break }
            usleep(50_000)
        }
        XCTAssertNotEqual(child, 0)
        let own = ProcessTreeCPU.clockNanos(root) ?? 0
        XCTAssertLessThan(own, 100_000_000, "the parent shell only waits")
        XCTAssertGreaterThan(tree, 150_000_000, "the child's CPU time is in the tree's")
        if let childNow = ProcessTreeCPU.clockNanos(child) { XCTAssertGreaterThanOrEqual(ProcessTreeCPU.nanos(root: root) ?? 0, childNow) }
    }

    func testGoneProcessHasNoTree() {
        XCTAssertNil(ProcessTreeCPU.nanos(root: 0x3FFF_FFF0))
    }
}
