import Balancers
import XCTest

/// `Decisions.rebalanceTarget` and the `rebalance=N` option of `--balance`.
final class RebalanceDecisionTests: XCTestCase {
    func testMovesOnlyWhenAboveTheMeanByMoreThanTheMargin() {
        // total 12, mean 6, margin 1: 8 > 7 moves, 7 does not.
        XCTAssertEqual(Decisions.rebalanceTarget([8, 4], from: 0, margin: 1, tieStart: 0), 1)
        XCTAssertNil(Decisions.rebalanceTarget([7, 5], from: 0, margin: 1, tieStart: 0))
        XCTAssertNil(Decisions.rebalanceTarget([4, 8], from: 0, margin: 1, tieStart: 0), "below the mean: never")
        // Margin 0 still refuses a move that only swaps who is ahead (5,4 -> 4,5).
        XCTAssertNil(Decisions.rebalanceTarget([5, 4], from: 0, margin: 0, tieStart: 0))
        XCTAssertEqual(Decisions.rebalanceTarget([6, 4], from: 0, margin: 0, tieStart: 0), 1)
        XCTAssertNil(Decisions.rebalanceTarget([9], from: 0, margin: 0, tieStart: 0), "one worker: nowhere to go")
    }

    func testPicksTheLeastLoadedRotatingTiesAndSkipsDrainingWorkers() {
        XCTAssertEqual(Decisions.rebalanceTarget([10, 3, 1, 2], from: 0, margin: 1, tieStart: 0), 2)
        XCTAssertEqual(Decisions.rebalanceTarget([10, 1, 1, 1], from: 0, margin: 1, tieStart: 2), 2)
        XCTAssertEqual(Decisions.rebalanceTarget([10, 1, 1, 1], from: 0, margin: 1, tieStart: 0), 1)
        var draining = DrainMask()
        draining.insert(2)
        XCTAssertEqual(Decisions.rebalanceTarget([10, 3, 1, 2], from: 0, margin: 1, tieStart: 0, draining: draining), 3)
    }

    /// Applying the decision repeatedly from the most loaded worker ends with every worker at most
    /// `margin` above the mean (rounded down), the total unchanged.
    func testRepeatedMovesConvergeToWithinTheMargin() {
        for margin in 0...3 {
            var loads = [40, 3, 0, 9, 1, 7, 0, 20]
            let total = loads.reduce(0, +)
            var moves = 0
            var tie = 0
            while let from = loads.indices.max(by: { loads[$0] < loads[$1] }),
                  let to = Decisions.rebalanceTarget(loads, from: from, margin: margin, tieStart: tie) {
                loads[from] -= 1
                loads[to] += 1
                tie = (to + 1) % loads.count
                moves += 1
                XCTAssertLessThan(moves, 1000)
            }
            XCTAssertEqual(loads.reduce(0, +), total)
            XCTAssertLessThanOrEqual(loads.max()! * loads.count, total + margin * loads.count + loads.count - 1, "margin \(margin): \(loads)")
            XCTAssertGreaterThan(moves, 0)
        }
    }

    func testParsesTheOption() throws {
        XCTAssertEqual(try BalanceSpec.parse("reuseport:rebalance=1").rebalanceMargin, 1)
        XCTAssertEqual(try BalanceSpec.parse("least-loaded:rebalance=0").rebalanceMargin, 0)
        XCTAssertNil(try BalanceSpec.parse("least-loaded").rebalanceMargin)
        let spec = try BalanceSpec.parse("reuseport:requests,rebalance=2")
        XCTAssertEqual(spec.metric, .requests)
        XCTAssertEqual(spec.description, "reuseport:requests,rebalance=2")
        XCTAssertEqual(try BalanceSpec.parse(spec.description), spec)
        XCTAssertEqual(try BalanceSpec.parse("least-loaded:busy,rebalance=50000").description, "least-loaded:busy,rebalance=50000")
        XCTAssertEqual(try BalanceSpec.parse("shared:rebalance=3").description, "shared:rebalance=3")
    }

    func testRefusesBadMarginsAndMetricsWithoutRebalance() {
        for bad in ["reuseport:rebalance", "reuseport:rebalance=-1", "reuseport:rebalance=x", "reuseport:requests",
                    "reuseport:busy,rebalance=1", "shared:busy,rebalance=1"] {
            XCTAssertThrowsError(try BalanceSpec.parse(bad), bad)
        }
        XCTAssertThrowsError(try BalanceSpec.parse("reuseport:busy,rebalance=1")) { error in
            XCTAssertTrue("\(error)".contains("acceptor"), "\(error)")
        }
        XCTAssertThrowsError(try BalanceSpec.parse("reuseport:rebalance=-1")) { error in
            XCTAssertTrue("\(error)".contains("rebalance=N"), "\(error)")
        }
    }
}
