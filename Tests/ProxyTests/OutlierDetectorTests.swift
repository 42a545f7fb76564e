@testable import Proxy
import XCTest

/// The outlier detector's timeline on a clock of its own (the differential suite compares the
/// detections with Envoy 1.40; these cover what needs time: unejection after base_ejection_time x
/// the backoff, its cap, the backoff's decay, and the interval's success-rate pass).
final class OutlierDetectorTests: XCTestCase {
    static let second: Int64 = 1_000_000_000

    func config(_ edit: (inout OutlierDetectionConfig) -> Void = { _ in }) -> OutlierDetectionConfig {
        var c = OutlierDetectionConfig()
        c.consecutive5xx = 2
        c.intervalNanos = Self.second
        c.baseEjectionNanos = 10 * Self.second
        c.maxEjectionNanos = 25 * Self.second
        c.maxEjectionPercent = 50
        edit(&c)
        return c
    }

    func failTwice(_ d: OutlierDetector, _ health: ClusterHealth, host: Int = 0, at t: Int64) {
        for _ in 0..<2 { d.putResponse(host, code: 503, health, now: t * Self.second, random: 0) }
    }

    func ejected(_ health: ClusterHealth, _ host: Int = 0) -> Bool { health.flags(host).contains(.failedOutlierCheck) }

    func testEjectionTimeGrowsWithEachEjectionUpToTheCap() {
        let health = ClusterHealth(hostCount: 2, activeChecks: false, outlier: config())
        let d = health.outlier!
        XCTAssertEqual(health.healthyHosts.load(ordering: .relaxed), 2)
        failTwice(d, health, at: 0)
        XCTAssertTrue(ejected(health))
        XCTAssertFalse(health.isHealthy(0))
        XCTAssertEqual(health.healthyHosts.load(ordering: .relaxed), 1)
        XCTAssertEqual(d.ejectionsActive.load(ordering: .relaxed), 1)
        // First ejection: 1 x base (10 s).
        d.onInterval(health, now: 9 * Self.second, random: { 0 })
        XCTAssertTrue(ejected(health))
        d.onInterval(health, now: 10 * Self.second, random: { 0 })
        XCTAssertFalse(ejected(health))
        XCTAssertEqual(health.healthyHosts.load(ordering: .relaxed), 2)
        XCTAssertEqual(d.ejectionsActive.load(ordering: .relaxed), 0)
        // Second, right away: 2 x base.
        failTwice(d, health, at: 10)
        d.onInterval(health, now: 29 * Self.second, random: { 0 })
        XCTAssertTrue(ejected(health))
        d.onInterval(health, now: 30 * Self.second, random: { 0 })
        XCTAssertFalse(ejected(health))
        // Third: 3 x base is above max_ejection_time (25 s): the cap.
        failTwice(d, health, at: 30)
        d.onInterval(health, now: 54 * Self.second, random: { 0 })
        XCTAssertTrue(ejected(health))
        d.onInterval(health, now: 55 * Self.second, random: { 0 })
        XCTAssertFalse(ejected(health))
        XCTAssertEqual(d.enforcedCount(.consecutive5xx), 3)
        XCTAssertEqual(d.ejectionsEnforcedTotal.load(ordering: .relaxed), 3)
        // Each interval back in decays the backoff by one: after three, the next ejection lasts
        // 1 x base again.
        for t in 56...58 { d.onInterval(health, now: Int64(t) * Self.second, random: { 0 }) }
        failTwice(d, health, at: 60)
        d.onInterval(health, now: 69 * Self.second, random: { 0 })
        XCTAssertTrue(ejected(health))
        d.onInterval(health, now: 70 * Self.second, random: { 0 })
        XCTAssertFalse(ejected(health))
    }

    func testMaxEjectionPercentOverflowsAndASuccessResetsTheCount() {
        let health = ClusterHealth(hostCount: 2, activeChecks: false, outlier: config())
        let d = health.outlier!
        d.putResponse(1, code: 503, health, now: 0, random: 0)
        d.putResponse(1, code: 200, health, now: 0, random: 0)
        d.putResponse(1, code: 503, health, now: 0, random: 0)
        XCTAssertFalse(ejected(health, 1), "a 200 in between resets the consecutive count")
        failTwice(d, health, host: 0, at: 0)
        failTwice(d, health, host: 1, at: 0)
        XCTAssertTrue(ejected(health, 0))
        XCTAssertFalse(ejected(health, 1), "50% of 2 hosts: the second ejection overflows")
        XCTAssertEqual(d.ejectionsOverflow.load(ordering: .relaxed), 1)
        XCTAssertEqual(d.detectedCount(.consecutive5xx), 2)
    }

    func testSuccessRateEjectsTheHostBelowMeanMinusStdevFactor() {
        // Envoy's example: rates {50, 100, 100, 100, 100}: mean 90, stdev 20, threshold 90 - 1.9 x 20 = 52.
        let health = ClusterHealth(hostCount: 5, activeChecks: false, outlier: config { $0.consecutive5xx = 1000 })
        let d = health.outlier!
        for h in 0..<5 {
            for i in 0..<100 { d.putResponse(h, code: h == 0 && i % 2 == 0 ? 500 : 200, health, now: 0, random: 0) }
        }
        d.onInterval(health, now: Self.second, random: { 0 })
        XCTAssertTrue(ejected(health, 0))
        XCTAssertEqual((1..<5).filter { ejected(health, $0) }, [])
        XCTAssertEqual(d.detectedCount(.successRate), 1)
        XCTAssertEqual(d.enforcedCount(.successRate), 1)
        XCTAssertEqual(d.clusterRates.average, 90)
        XCTAssertEqual(d.clusterRates.threshold, 52, accuracy: 1e-9)
        XCTAssertEqual(d.hosts[1].rates.external, 100)
        // The next interval had no traffic: no rates, nothing computed.
        d.onInterval(health, now: 2 * Self.second, random: { 0 })
        XCTAssertEqual(d.clusterRates.average, -1)
    }

    func testFailurePercentageIsDetectedAndEnforcedOnlyWhenEnforcing() {
        let health = ClusterHealth(hostCount: 5, activeChecks: false, outlier: config {
            $0.consecutive5xx = 1000
            $0.enforcingSuccessRate = 0
            $0.maxEjectionPercent = 100
        })
        let d = health.outlier!
        for h in 0..<5 {
            for i in 0..<50 { d.putResponse(h, code: h == 3 && i < 45 ? 503 : 200, health, now: 0, random: 0) }
        }
        d.onInterval(health, now: Self.second, random: { 0 })
        XCTAssertEqual(d.detectedCount(.failurePercentage), 1)
        XCTAssertEqual(d.enforcedCount(.failurePercentage), 0, "enforcing_failure_percentage defaults to 0")
        XCTAssertFalse(ejected(health, 3))
    }

    func testAPassedHealthCheckDoesNotClearTheCheckersFlagsButTheOutlierBitIsKept() {
        let health = ClusterHealth(hostCount: 2, activeChecks: true, outlier: config())
        health.set(0, [])
        health.set(1, [])
        XCTAssertEqual(health.healthyHosts.load(ordering: .relaxed), 2)
        failTwice(health.outlier!, health, at: 0)
        health.set(0, [])  // the checker's next result keeps the detector's bit
        XCTAssertTrue(ejected(health))
        XCTAssertEqual(health.healthyHosts.load(ordering: .relaxed), 1)
        XCTAssertEqual(health.activeHealthyHosts.load(ordering: .relaxed), 2)
        XCTAssertEqual(health.flags(0).envoyText, "/failed_outlier_check")
        health.set(0, [.failedActiveHC])
        XCTAssertEqual(health.flags(0).envoyText, "/failed_active_hc/failed_outlier_check")
    }
}
