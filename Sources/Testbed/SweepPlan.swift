/// The points of a sweep and the order they run in.
public struct SweepPoint: Sendable, Equatable {
    public var variant: Experiment.Variant
    public var connections: Int
    public var repetition: Int
}

public enum SweepPlan {
    /// Every (variant, connections, repetition). `interleaved`: repetition by repetition, connection
    /// count by connection count, the variants in a rotating order, so drift over time hits every
    /// variant alike. `random`: a seeded shuffle of all points.
    public static func points(_ e: Experiment) -> [SweepPoint] {
        var out: [SweepPoint] = []
        var round = 0
        for repetition in 1...e.repetitions {
            for connections in e.connections {
                let n = e.variants.count
                for k in 0..<n {
                    out.append(SweepPoint(variant: e.variants[(k + round) % n], connections: connections, repetition: repetition))
                }
                round += 1
            }
        }
        if e.order == .random {
            var state = e.seed &+ 0x9E37_79B9_7F4A_7C15
            func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
            for i in stride(from: out.count - 1, to: 0, by: -1) {
                out.swapAt(i, Int(next() % UInt64(i + 1)))
            }
        }
        return out
    }

    /// `--quick`: one repetition, short points, at most three connection counts.
    public static func quick(_ e: Experiment) -> Experiment {
        var q = e
        q.repetitions = 1
        q.durationNanos = min(e.durationNanos, 1_000_000_000)
        q.warmupNanos = min(e.warmupNanos, 200_000_000)
        if e.connections.count > 3 {
            q.connections = [e.connections.first!, e.connections[e.connections.count / 2], e.connections.last!]
        }
        return q
    }
}
