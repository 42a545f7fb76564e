/// fortio's histogram shape, so fortio's report UI draws our results like its own: a running
/// count/min/max/sum/sum-of-squares (exact), plus counts in fixed buckets `]prev, bound]` over
/// `value / divider` (fortio's `-r` resolution for durations; 100 bytes for sizes, 5 for header
/// sizes). Bucket 0 holds values <= 0 and the last one values above the last bound.
///
/// Recording is a binary search over 56 bounds with a one-entry cache (sizes rarely change),
/// no allocation. One thread records; merged at the end with `add`.
public struct BucketHistogram: Sendable {
    /// Bucket upper bounds in divider units: 1..11 by 1, then by 2, 5, 10, 20, 50, 100, then coarse.
    public static let bounds: [Double] = {
        var b: [Double] = Array(0...11).map(Double.init)
        b += stride(from: 12.0, through: 20, by: 2)
        b += stride(from: 25.0, through: 50, by: 5)
        b += stride(from: 60.0, through: 100, by: 10)
        b += stride(from: 120.0, through: 200, by: 20)
        b += stride(from: 250.0, through: 500, by: 50)
        b += stride(from: 600.0, through: 1000, by: 100)
        b += [2000, 3000, 4000, 5000, 7500, 10000, 20000, 30000, 40000, 50000, 75000, 100000]
        return b
    }()

    /// The same bounds at a fixed address, for the hot path (no array retain per lookup).
    nonisolated(unsafe) static let boundsPointer: UnsafeMutablePointer<Double> = {
        let p = UnsafeMutablePointer<Double>.allocate(capacity: bounds.count)
        p.initialize(from: bounds, count: bounds.count)
        return p
    }()
    static let boundCount = 56

    /// Recorded values are multiplied by `scale` first (1e-9 turns nanoseconds into seconds).
    public let scale: Double
    public let divider: Double
    public private(set) var count = 0
    public private(set) var min = 0.0
    public private(set) var max = 0.0
    public private(set) var sum = 0.0
    public private(set) var sumOfSquares = 0.0
    public private(set) var buckets: [Int]
    private var lastRaw = Int.min
    private var lastIndex = 0

    public init(scale: Double, divider: Double) {
        self.scale = scale
        self.divider = divider
        buckets = [Int](repeating: 0, count: Self.bounds.count + 1)
    }

    @inline(__always)
    public mutating func record(_ raw: Int) {
        let v = Double(raw) * scale
        if count == 0 {
            min = v
            max = v
        } else if v < min {
            min = v
        } else if v > max {
            max = v
        }
        count += 1
        sum += v
        sumOfSquares += v * v
        if raw != lastRaw {
            lastRaw = raw
            lastIndex = Self.index(v / divider)
        }
        buckets[lastIndex] &+= 1
    }

    /// The bucket for a value in divider units: the first bound >= it, or the overflow bucket.
    @inline(__always)
    static func index(_ scaled: Double) -> Int {
        let b = boundsPointer
        let n = boundCount
        if scaled <= b[0] { return 0 }
        if scaled > b[n - 1] { return n }
        var lo = 1, hi = n - 1
        while lo < hi {
            let mid = (lo + hi) >> 1
            if b[mid] >= scaled { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    public mutating func add(_ other: BucketHistogram) {
        guard other.count > 0 else { return }
        if count == 0 {
            min = other.min
            max = other.max
        } else {
            min = Swift.min(min, other.min)
            max = Swift.max(max, other.max)
        }
        count += other.count
        sum += other.sum
        sumOfSquares += other.sumOfSquares
        for i in 0..<buckets.count { buckets[i] += other.buckets[i] }
    }

    public var average: Double { count > 0 ? sum / Double(count) : 0 }

    /// Population standard deviation (fortio's formula).
    public var standardDeviation: Double {
        guard count > 0 else { return 0 }
        let n = Double(count)
        let variance = (sumOfSquares - sum * sum / n) / n
        return variance > 0 ? variance.squareRoot() : 0
    }

    /// fortio's exported buckets: each non-empty bucket with its interval, cumulative percent and
    /// count; the first starts at the minimum and the last ends at the maximum.
    public var exportedBuckets: [LoadBucket] {
        guard count > 0 else { return [] }
        var out: [LoadBucket] = []
        var previousBound = Self.bounds[0]
        var total = 0
        for i in 0..<buckets.count {
            let n = buckets[i]
            if n == 0 {
                if i < Self.bounds.count { previousBound = Self.bounds[i] }
                continue
            }
            total += n
            var start = out.isEmpty ? min : previousBound * divider
            var end: Double
            if i < Self.bounds.count {
                end = Self.bounds[i] * divider
                previousBound = Self.bounds[i]
            } else {
                start = previousBound * divider
                end = max
            }
            if out.isEmpty { start = min }
            out.append(LoadBucket(start: start, end: end, percent: 100 * Double(total) / Double(count), count: n))
        }
        out[out.count - 1].end = max
        return out
    }
}

/// One exported bucket (fortio's `Bucket`: `Start`, `End`, cumulative `Percent`, `Count`).
public struct LoadBucket: Sendable, Equatable {
    public var start: Double
    public var end: Double
    public var percent: Double
    public var count: Int
}
