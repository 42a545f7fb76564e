/// xxHash64 (seed 0) of a byte string: Envoy's xDS `version` gauges hold this hash of the
/// subscription's `version_info`. Written from the published algorithm; admin thread only.
enum XXHash64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    static func hash(_ text: String, seed: UInt64 = 0) -> UInt64 { hash(Array(text.utf8), seed: seed) }

    static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 { rotl(acc &+ lane &* p2, 31) &* p1 }
        func lane64(_ i: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) } }
        func lane32(_ i: Int) -> UInt64 { (0..<4).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) } }

        var i = 0
        var acc: UInt64
        if bytes.count >= 32 {
            var v = [seed &+ p1 &+ p2, seed &+ p2, seed, seed &- p1]
            while i + 32 <= bytes.count {
                for k in 0..<4 { v[k] = round(v[k], lane64(i + 8 * k)) }
                i += 32
            }
            acc = rotl(v[0], 1) &+ rotl(v[1], 7) &+ rotl(v[2], 12) &+ rotl(v[3], 18)
            for k in 0..<4 { acc = (acc ^ round(0, v[k])) &* p1 &+ p4 }
        } else {
            acc = seed &+ p5
        }
        acc &+= UInt64(bytes.count)
        while i + 8 <= bytes.count {
            acc = rotl(acc ^ round(0, lane64(i)), 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= bytes.count {
            acc = rotl(acc ^ (lane32(i) &* p1), 23) &* p2 &+ p3
            i += 4
        }
        while i < bytes.count {
            acc = rotl(acc ^ (UInt64(bytes[i]) &* p5), 11) &* p1
            i += 1
        }
        acc ^= acc >> 33
        acc = acc &* p2
        acc ^= acc >> 29
        acc = acc &* p3
        acc ^= acc >> 32
        return acc
    }
}
