import Balancers
import Simulator
import XCTest

final class SimulationTests: XCTestCase {
    func model(workers: Int = 4, connections: Int, placement: Placement, loop: LoadLoop = .closed,
               cost: CostDistribution = .fixed(200e-6), roundTrip: Double = 50e-6, duration: Double = 2, seed: UInt64 = 7) -> SimulationModel {
        SimulationModel(workers: workers, connections: connections, placement: placement, loop: loop, cost: cost,
                        roundTrip: roundTrip, duration: duration, warmup: 0.2, seed: seed)
    }

    func testSameSeedSameOutputAndAnotherSeedAnotherPlacement() throws {
        let m = model(connections: 64, placement: .strategy(.reuseport), cost: .exponential(mean: 200e-6))
        let a = try Simulation(m).run()
        let b = try Simulation(m).run()
        XCTAssertEqual(a, b)
        var other = m
        other.seed = 8
        let c = try Simulation(other).run()
        XCTAssertNotEqual(a.sortedLatencies, c.sortedLatencies)
    }

    /// One connection per worker, fixed costs: nothing queues, each cycle is round trip + cost.
    func testUnqueuedClosedLoopRunsAtOneOverRoundTripPlusCost() throws {
        let r = try Simulation(model(connections: 4, placement: .measured([1, 1, 1, 1]))).run()
        let expected = 2.0 * 4 / 250e-6                         // 32,000 responses in 2 s
        XCTAssertLessThanOrEqual(abs(Double(r.requests) - expected), 4)
        XCTAssertEqual(r.percentile(50), 250e-6, accuracy: 1e-9)
        XCTAssertEqual(r.percentile(99.9), 250e-6, accuracy: 1e-9)
    }

    /// Three connections per worker and a round trip shorter than a request: every worker is always
    /// busy, so QPS = workers / cost and every response waited for the two requests ahead of it.
    func testSaturatedWorkersServeOneRequestPerCost() throws {
        let r = try Simulation(model(connections: 12, placement: .measured([3, 3, 3, 3]))).run()
        XCTAssertLessThanOrEqual(abs(Double(r.requests) - 2.0 * 4 / 200e-6), 8)
        XCTAssertEqual(r.percentile(50), 600e-6, accuracy: 1e-9)
        XCTAssertEqual(r.busyFraction.min() ?? 0, 1, accuracy: 1e-3)
    }

    /// A crowded worker caps the closed loop: [4,0,0,0] serves one worker's capacity.
    func testCrowdedPlacementServesOneWorkersCapacity() throws {
        let r = try Simulation(model(connections: 4, placement: .measured([4, 0, 0, 0]))).run()
        XCTAssertLessThanOrEqual(abs(Double(r.requests) - 2.0 / 200e-6), 2)
        XCTAssertEqual(r.requestsPerWorker[1] + r.requestsPerWorker[2] + r.requestsPerWorker[3], 0)
    }

    func testStrategiesPlaceConnectionsAsTheAcceptorDoes() throws {
        let least = try Simulation(model(connections: 10, placement: .strategy(.leastLoaded))).run()
        XCTAssertEqual(least.connectionsPerWorker, [3, 3, 2, 2])
        let dispatch = try Simulation(model(connections: 10, placement: .strategy(.dispatch))).run()
        XCTAssertEqual(dispatch.connectionsPerWorker, [3, 3, 2, 2])
        // Connects back to back: the first woken worker accepts until the queue is empty (#16213).
        let shared = try Simulation(model(connections: 16, placement: .strategy(.shared))).run()
        XCTAssertEqual(shared.connectionsPerWorker.sorted(), [0, 0, 0, 16])
        // Connects spread over a second: idle workers take turns.
        var ramped = model(connections: 16, placement: .strategy(.shared))
        ramped.arrival = .ramp(1)
        XCTAssertGreaterThan(try Simulation(ramped).run().connectionsPerWorker.filter { $0 > 0 }.count, 1)
        let hashed = try Simulation(model(connections: 1000, placement: .strategy(.reuseport))).run()
        XCTAssertEqual(hashed.connectionsPerWorker.reduce(0, +), 1000)
        XCTAssertTrue(hashed.connectionsPerWorker.allSatisfy { $0 > 0 })
        let p2c = try Simulation(model(connections: 1000, placement: .strategy(.p2c))).run()
        XCTAssertEqual(p2c.connectionsPerWorker.reduce(0, +), 1000)
        XCTAssertLessThanOrEqual((p2c.connectionsPerWorker.max() ?? 0) - (p2c.connectionsPerWorker.min() ?? 0), 10)
    }

    /// Many connections on one worker at 50% utilisation with exponential costs is an M/M/1 queue:
    /// mean response = cost / (1 - rho).
    func testOpenLoopOneWorkerMatchesMM1() throws {
        var m = model(workers: 1, connections: 2000, placement: .strategy(.dispatch), loop: .open(500),
                      cost: .exponential(mean: 1e-3), roundTrip: 0, duration: 200)
        m.warmup = 5
        let r = try Simulation(m).run()
        XCTAssertEqual(r.qps, 500, accuracy: 15)
        XCTAssertEqual(r.mean / QueueingBounds.mm1MeanResponse(utilisation: 0.5, cost: 1e-3), 1, accuracy: 0.08)
        XCTAssertEqual(r.percentile(90) / QueueingBounds.mm1ResponseQuantile(0.9, utilisation: 0.5, cost: 1e-3), 1, accuracy: 0.08)
    }

    func testBadModelsAreRefusedWithTheField() {
        XCTAssertThrowsError(try Simulation(model(connections: 4, placement: .measured([1, 1, 1])))) {
            XCTAssertTrue("\($0)".contains("measured placement has 3 workers"), "\($0)")
        }
        XCTAssertThrowsError(try Simulation(model(connections: 4, placement: .measured([1, 1, 1, 2])))) {
            XCTAssertTrue("\($0)".contains("does not add up to 4"), "\($0)")
        }
        XCTAssertThrowsError(try Simulation(model(connections: 4, placement: .strategy(.p2c), cost: .fixed(0))))
        XCTAssertThrowsError(try Simulation(model(workers: 0, connections: 4, placement: .strategy(.p2c))))
    }
}

final class QueueingBoundsTests: XCTestCase {
    func testErlangCOfOneServerIsTheUtilisation() {
        XCTAssertEqual(QueueingBounds.erlangC(servers: 1, utilisation: 0.7), 0.7, accuracy: 1e-12)
        // c = 2, rho = 0.5 (a = 1): C = (1/2 / 0.5) / (1 + 1 + 1) = 1/3.
        XCTAssertEqual(QueueingBounds.erlangC(servers: 2, utilisation: 0.5), 1.0 / 3, accuracy: 1e-12)
    }

    func testMMcWithOneServerIsMM1AndMoreServersWaitLess() {
        let mm1 = QueueingBounds.mm1ResponseQuantile(0.9, utilisation: 0.7, cost: 1e-3)
        XCTAssertEqual(QueueingBounds.mmcResponseQuantile(0.9, servers: 1, utilisation: 0.7, cost: 1e-3), mm1, accuracy: 1e-9)
        XCTAssertEqual(QueueingBounds.mmcMeanResponse(servers: 1, utilisation: 0.7, cost: 1e-3),
                       QueueingBounds.mm1MeanResponse(utilisation: 0.7, cost: 1e-3), accuracy: 1e-12)
        let mm16 = QueueingBounds.mmcResponseQuantile(0.9, servers: 16, utilisation: 0.7, cost: 1e-3)
        XCTAssertLessThan(mm16, mm1)
        XCTAssertGreaterThan(mm16, -log(0.1) * 1e-3 * 0.99)      // never below the service time's own quantile
    }
}

final class RebalanceSimulationTests: XCTestCase {
    func model(rebalance: Rebalance?) -> SimulationModel {
        var m = SimulationModel(workers: 16, connections: 256, placement: .strategy(.reuseport), arrival: .ramp(0.2),
                                loop: .open(0.9 * 16 / 300e-6), cost: .exponential(mean: 300e-6), roundTrip: 40e-6,
                                duration: 1.5, warmup: 0.3, seed: 3)
        m.rebalance = rebalance
        return m
    }

    /// Moves only re-home connections: every connection is still on exactly one worker, every
    /// request is answered once (the open loop's rate is kept), and the crowded workers' queues drain.
    func testRebalancingKeepsEveryConnectionAndRelievesCrowdedWorkers() throws {
        let off = try Simulation(model(rebalance: nil)).run()
        let on = try Simulation(model(rebalance: Rebalance(margin: 2))).run()
        XCTAssertEqual(off.moves, 0)
        XCTAssertGreaterThan(on.moves, 0)
        XCTAssertEqual(on.connectionsPerWorker.reduce(0, +), 256)
        XCTAssertEqual(on.qps, 0.9 * 16 / 300e-6, accuracy: 0.9 * 16 / 300e-6 * 0.05)
        XCTAssertLessThan(on.percentile(90), off.percentile(90))
        XCTAssertEqual(try Simulation(model(rebalance: Rebalance(margin: 2))).run(), on)
    }

    /// A closed loop never leaves a connection idle at the worker for long, but between a response
    /// and the next request the worker holds nothing of it: those connections may move.
    func testClosedLoopConnectionsMoveBetweenRequests() throws {
        var m = SimulationModel(workers: 4, connections: 16, placement: .measured([16, 0, 0, 0]), cost: .fixed(200e-6),
                                roundTrip: 50e-6, duration: 1, warmup: 0.2, seed: 1)
        m.rebalance = Rebalance(margin: 1)
        let r = try Simulation(m).run()
        XCTAssertLessThan(r.connectionsPerWorker.max() ?? 16, 16)     // moved off the crowded worker
        XCTAssertEqual(r.connectionsPerWorker.reduce(0, +), 16)
        XCTAssertGreaterThan(r.qps, 1.5 / 200e-6)          // more than one worker's capacity
    }
}
