/// What a simulated point measured over its window (after the warm-up).
public struct SimulationResult: Sendable, Equatable {
    public let model: SimulationModel
    /// Every response's latency in seconds, ascending.
    public let sortedLatencies: [Double]
    public let connectionsPerWorker: [Int]
    public let requestsPerWorker: [Int]
    /// Fraction of the window each worker was serving or accepting.
    public let busyFraction: [Double]
    /// Connections moved between workers by live rebalancing during the window.
    public let moves: Int

    public var requests: Int { sortedLatencies.count }
    public var qps: Double { Double(requests) / model.duration }

    public var mean: Double {
        sortedLatencies.isEmpty ? 0 : sortedLatencies.reduce(0, +) / Double(sortedLatencies.count)
    }

    public var standardDeviation: Double {
        guard sortedLatencies.count > 1 else { return 0 }
        let m = mean
        let squares = sortedLatencies.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (squares / Double(sortedLatencies.count - 1)).squareRoot()
    }

    /// The latency below which `p` percent of responses fall (nearest rank, as HdrHistogram).
    public func percentile(_ p: Double) -> Double {
        guard !sortedLatencies.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(sortedLatencies.count)).rounded(.up))
        return sortedLatencies[min(max(rank, 1), sortedLatencies.count) - 1]
    }
}
