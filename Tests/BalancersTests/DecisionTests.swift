import Balancers
import XCTest

final class DecisionTests: XCTestCase {
    /// Opens alone keep max-min <= 1. With closes mixed in (a close can widen the spread; no
    /// balancer moves open connections), every pick goes to a least-loaded worker, so a pick never
    /// widens the spread beyond max(spread, 1), and opens alone bring it back to <= 1.
    func testLeastLoadedKeepsTheSpreadWithinOne() {
        var rng = SplitMix64(seed: 42)
        for workers in [2, 3, 4, 8, 16] {
            var loads = Array(repeating: 0, count: workers)
            var open: [Int] = []  // the worker of each open connection
            var tie = 0
            func pick() {
                let before = loads.max()! - loads.min()!
                let w = Decisions.leastLoaded(loads, tieStart: tie)!
                XCTAssertEqual(loads[w], loads.min()!)
                tie = (tie + 1) % workers
                loads[w] += 1
                open.append(w)
                XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, max(before, 1))
            }
            for _ in 0..<200 {
                pick()
                XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, 1, "opens only, \(workers) workers")
            }
            for _ in 0..<5000 {
                if rng.next() % 3 == 0 && !open.isEmpty {
                    loads[open.remove(at: Int(rng.next() % UInt64(open.count)))] -= 1
                } else {
                    pick()
                }
            }
            // Opens alone restore the bound within (spread x workers) picks.
            for _ in 0..<(loads.max()! - loads.min()!) * workers { pick() }
            XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, 1, "\(workers) workers after recovery")
        }
    }

    func testLeastLoadedPicksAMinimumAndRotatesTies() {
        XCTAssertEqual(Decisions.leastLoaded([3, 1, 2, 1], tieStart: 0), 1)
        XCTAssertEqual(Decisions.leastLoaded([3, 1, 2, 1], tieStart: 2), 3)
        var loads = [0, 0, 0, 0]
        var picks: [Int] = []
        for tie in 0..<8 {
            let w = Decisions.leastLoaded(loads, tieStart: tie % 4)!
            loads[w] += 1
            picks.append(w)
        }
        XCTAssertEqual(picks, [0, 1, 2, 3, 0, 1, 2, 3])
    }

    func testLeastLoadedFromEmptyGivesExactlyEqualCounts() {
        var loads = [0, 0, 0, 0]
        for i in 0..<16 { loads[Decisions.leastLoaded(loads, tieStart: i % 4)!] += 1 }
        XCTAssertEqual(loads, [4, 4, 4, 4])
    }

    func testDispatchIsExactRoundRobin() {
        var previous = -1
        var picks: [Int] = []
        for _ in 0..<10 {
            previous = Decisions.roundRobin(previous: previous, workers: 3)!
            picks.append(previous)
        }
        XCTAssertEqual(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    }

    func testPowerOfTwoNeverPicksTheMoreLoadedOfItsTwo() {
        // Record the two draws by replaying the same generator.
        for seed in 0..<500 {
            let loads = (0..<6).map { ($0 * 7 + seed) % 5 }
            var rng = SplitMix64(seed: UInt64(seed))
            var replay = rng
            let pick = Decisions.powerOfTwo(loads, rng: &rng)!
            let a = Int(replay.next() % 6)
            var b = Int(replay.next() % 6)
            while b == a { b = Int(replay.next() % 6) }
            XCTAssertTrue(pick == a || pick == b)
            XCTAssertEqual(loads[pick], min(loads[a], loads[b]), "seed \(seed)")
        }
    }

    func testDrainingWorkersAreNeverPicked() {
        var draining = DrainMask()
        draining.insert(1)
        draining.insert(2)
        var rng = SplitMix64(seed: 7)
        for i in 0..<200 {
            let loads = [5, 0, 0, 9]
            XCTAssertFalse([1, 2].contains(Decisions.leastLoaded(loads, tieStart: i % 4, draining: draining)!))
            XCTAssertFalse([1, 2].contains(Decisions.powerOfTwo(loads, rng: &rng, draining: draining)!))
            XCTAssertFalse([1, 2].contains(Decisions.roundRobin(previous: i % 4, workers: 4, draining: draining)!))
        }
        var all = DrainMask()
        for w in 0..<4 { all.insert(w) }
        XCTAssertNil(Decisions.leastLoaded([0, 0, 0, 0], tieStart: 0, draining: all))
        XCTAssertNil(Decisions.roundRobin(previous: 0, workers: 4, draining: all))
        XCTAssertNil(Decisions.powerOfTwo([0, 0, 0, 0], rng: &rng, draining: all))
    }

    func testReusePortHashIgnoresLoadAndIsStable() {
        let t = FourTuple(sourceAddress: 0x7F00_0001, sourcePort: 40000, destinationAddress: 0x7F00_0001, destinationPort: 8080)
        XCTAssertEqual(Decisions.reusePortHash(t, workers: 4), Decisions.reusePortHash(t, workers: 4))
        var counts = [0, 0, 0, 0]
        for port in 40000..<44000 {
            counts[Decisions.reusePortHash(FourTuple(sourceAddress: 0x7F00_0001, sourcePort: UInt16(port), destinationAddress: 0x7F00_0001, destinationPort: 8080), workers: 4)] += 1
        }
        XCTAssertEqual(counts.reduce(0, +), 4000)
        XCTAssertTrue(counts.allSatisfy { $0 > 800 }, "\(counts)")
    }
}

final class BalanceSpecTests: XCTestCase {
    func testParsesNamesAndOptions() throws {
        XCTAssertEqual(try BalanceSpec.parse("reuseport"), BalanceSpec(strategy: .reuseport))
        XCTAssertEqual(try BalanceSpec.parse("least-loaded"), BalanceSpec(strategy: .leastLoaded, metric: .connections))
        XCTAssertEqual(try BalanceSpec.parse("least-loaded:requests").metric, .requests)
        XCTAssertEqual(try BalanceSpec.parse("p2c:busy").metric, .busy)
        XCTAssertTrue(try BalanceSpec.parse("shared:exclusive").exclusive)
        XCTAssertEqual(try BalanceSpec.parse("shared:accept-batch=1").acceptBatch, 1)
        XCTAssertEqual(try BalanceSpec.parse("dispatch:msg-ring").messageRing, true)
        XCTAssertEqual(try BalanceSpec.parse("least-loaded:busy").description, "least-loaded:busy")
    }

    func testUnknownNamesListTheValidOnes() {
        XCTAssertThrowsError(try BalanceSpec.parse("random")) { error in
            XCTAssertEqual("\(error)", "unknown balance strategy 'random'; valid: reuseport, shared, dispatch, least-loaded, p2c")
        }
        XCTAssertThrowsError(try BalanceSpec.parse("least-loaded:cpu")) { error in
            XCTAssertTrue("\(error)".contains("connections, requests, busy"), "\(error)")
        }
        XCTAssertThrowsError(try BalanceSpec.parse("reuseport:exclusive"))
        XCTAssertThrowsError(try BalanceSpec.parse("dispatch:connections"))
        XCTAssertThrowsError(try BalanceSpec.parse("shared:accept-batch=0"))
    }
}

final class WorkerCostTests: XCTestCase {
    func testParsesModes() throws {
        let parse = { (s: String) in try WorkerCost.parse(s) { $0 == "200us" ? 200_000 : ($0 == "1ms" ? 1_000_000 : nil) } }
        XCTAssertEqual(try parse("spin:200us"), WorkerCost(mode: .spin, meanNanos: 200_000))
        XCTAssertEqual(try parse("block:1ms"), WorkerCost(mode: .block, meanNanos: 1_000_000))
        XCTAssertEqual(try parse("exp:200us"), WorkerCost(mode: .block, meanNanos: 200_000, exponential: true))
        XCTAssertEqual(try parse("spin-exp:200us").description, "spin-exp:200us")
        XCTAssertThrowsError(try parse("sleep:200us"))
        XCTAssertThrowsError(try parse("block"))
        XCTAssertThrowsError(try parse("block:fast"))
    }

    func testExponentialDrawsHaveTheRequestedMean() {
        let cost = WorkerCost(mode: .block, meanNanos: 200_000, exponential: true)
        var rng = SplitMix64(seed: 1)
        let n = 100_000
        var total: Int64 = 0
        for _ in 0..<n { total += cost.draw(using: &rng) }
        let mean = Double(total) / Double(n)
        XCTAssertEqual(mean, 200_000, accuracy: 4_000)  // deterministic for this seed
        XCTAssertEqual(WorkerCost(mode: .spin, meanNanos: 5).draw(using: &rng), 5)
    }
}
