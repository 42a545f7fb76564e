/// The balancing decisions as pure functions of (loads, the connection's 4-tuple, a seeded random
/// source) -> worker index. The acceptor, the tests and a simulator all call these.
public enum Decisions {
    /// Round robin: the worker after `previous`, skipping draining ones. Returns nil when every
    /// worker drains.
    @inlinable
    public static func roundRobin(previous: Int, workers: Int, draining: DrainMask = DrainMask()) -> Int? {
        var candidate = previous
        for _ in 0..<workers {
            candidate = (candidate + 1) % workers
            if !draining.contains(candidate) { return candidate }
        }
        return nil
    }

    /// The worker with the least load; ties go to the first one at or after `tieStart` (so ties
    /// rotate when the caller advances `tieStart`). Draining workers are never picked.
    @inlinable
    public static func leastLoaded<Loads: LoadReading>(_ loads: Loads, tieStart: Int, draining: DrainMask = DrainMask()) -> Int? {
        let n = loads.count
        var best = -1
        var bestLoad = Int.max
        for step in 0..<n {
            let i = (tieStart + step) % n
            if draining.contains(i) { continue }
            let load = loads.load(i)
            if load < bestLoad {
                best = i
                bestLoad = load
            }
        }
        return best < 0 ? nil : best
    }

    /// Power of two choices: two distinct random workers, the less loaded wins (the first drawn on a
    /// tie). With one eligible worker, that one.
    @inlinable
    public static func powerOfTwo<Loads: LoadReading, R: RandomNumberGenerator>(_ loads: Loads, rng: inout R,
                                                                                   draining: DrainMask = DrainMask()) -> Int? {
        let n = loads.count
        let eligible = n - draining.count(below: n)
        if eligible <= 0 { return nil }
        if eligible == 1 { return (0..<n).first { !draining.contains($0) } }
        var a: Int
        repeat { a = Int(rng.next() % UInt64(n)) } while draining.contains(a)
        var b: Int
        repeat { b = Int(rng.next() % UInt64(n)) } while b == a || draining.contains(b)
        return loads.load(b) < loads.load(a) ? b : a
    }

    /// Live rebalancing, at a request boundary of worker `from`: when its load is above the mean
    /// by more than `margin`, the least-loaded worker (ties from `tieStart`, as `leastLoaded`),
    /// provided that moving one unit of load there leaves it below `from` (no ping-pong); else nil.
    /// The live server (`reuseport:rebalance=N` and friends) and the simulator both decide here.
    @inlinable
    public static func rebalanceTarget<Loads: LoadReading>(_ loads: Loads, from: Int, margin: Int, tieStart: Int,
                                                            draining: DrainMask = DrainMask()) -> Int? {
        let n = loads.count
        guard n > 1 else { return nil }
        var total = 0
        for i in 0..<n { total += loads.load(i) }
        let own = loads.load(from)
        // own > total / n + margin, in integers.
        guard own * n > total + margin * n else { return nil }
        guard let target = leastLoaded(loads, tieStart: tieStart, draining: draining), target != from,
              loads.load(target) + 1 < own else { return nil }
        return target
    }

    /// What SO_REUSEPORT does, for the simulator: a hash of the 4-tuple modulo the workers.
    /// (The kernel uses its own hash; the point is that it ignores load.)
    @inlinable
    public static func reusePortHash(_ tuple: FourTuple, workers: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in [UInt64(tuple.sourceAddress), UInt64(tuple.sourcePort), UInt64(tuple.destinationAddress), UInt64(tuple.destinationPort)] {
            h = (h ^ part) &* 0x0000_0100_0000_01B3
        }
        return Int(h % UInt64(workers))
    }
}

/// A connection's addresses, as far as a decision needs them (IPv4 as integers; IPv6 folded).
public struct FourTuple: Sendable, Hashable {
    public var sourceAddress: UInt32
    public var sourcePort: UInt16
    public var destinationAddress: UInt32
    public var destinationPort: UInt16

    public init(sourceAddress: UInt32, sourcePort: UInt16, destinationAddress: UInt32, destinationPort: UInt16) {
        self.sourceAddress = sourceAddress
        self.sourcePort = sourcePort
        self.destinationAddress = destinationAddress
        self.destinationPort = destinationPort
    }
}

/// Workers that must not get new connections (draining). Up to 64 workers.
public struct DrainMask: Sendable, Equatable {
    public var bits: UInt64
    @inlinable public init(bits: UInt64 = 0) { self.bits = bits }
    @inlinable public func contains(_ worker: Int) -> Bool { worker < 64 && bits & (1 << UInt64(worker)) != 0 }
    @inlinable public mutating func insert(_ worker: Int) { if worker < 64 { bits |= 1 << UInt64(worker) } }
    @inlinable public func count(below n: Int) -> Int {
        (n >= 64 ? bits : bits & ((1 << UInt64(n)) - 1)).nonzeroBitCount
    }
}

/// Read access to per-worker loads: the live atomics, or a plain array in tests and the simulator.
public protocol LoadReading {
    var count: Int { get }
    func load(_ worker: Int) -> Int
}

extension Array: LoadReading where Element == Int {
    @inlinable public func load(_ worker: Int) -> Int { self[worker] }
}
