import Foundation
@testable import Testbed
import XCTest

final class InstructionCounterTests: XCTestCase {
    func testTotalsLineOfACallgrindFile() {
        let text = "version: 1\ncmd: ballast server\nevents: Ir\nsummary: 174399453\nfn=main\n0 12\ntotals: 174399453\n"
        XCTAssertEqual(InstructionCounter.parseTotals(text), 174_399_453)
        XCTAssertEqual(InstructionCounter.parseTotals("summary: 42\n"), 42)
        XCTAssertNil(InstructionCounter.parseTotals("events: Ir\n"))
    }

    func testOnlyEpollServersCanBeCounted() {
        XCTAssertNil(InstructionCounter.unsupportedReason(kind: .server, args: ["--workers", "2"]))
        XCTAssertNil(InstructionCounter.unsupportedReason(kind: .server, args: ["--io", "epoll"]))
        XCTAssertTrue(InstructionCounter.unsupportedReason(kind: .server, args: ["--io", "io_uring"])!.contains("epoll only"))
        XCTAssertNotNil(InstructionCounter.unsupportedReason(kind: .proxy, args: []))
    }

    func testExperimentReferenceAndInstructions() throws {
        let e = try Experiment.parse(yaml: """
        name: t
        reference: b
        instructions: 500
        system: {kind: server}
        variants: [{name: a, args: []}, {name: b, args: []}]
        """)
        XCTAssertEqual(e.reference, "b")
        XCTAssertEqual(e.instructionRequests, 500)
        XCTAssertThrowsError(try Experiment.parse(yaml: "name: t\nreference: c\nsystem: {kind: server}\nvariants: [{name: a, args: []}]")) {
            XCTAssertTrue("\($0)".hasPrefix("reference: no variant is named 'c'"), "\($0)")
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "name: t\ninstructions: 5\nsystem: {kind: server}")) {
            XCTAssertTrue("\($0)".hasPrefix("instructions: must be in 100..."), "\($0)")
        }
    }
}
