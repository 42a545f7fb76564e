/// xxHash64 of a byte string, written from the published algorithm. Envoy hashes with it where
/// Ballast must agree bit for bit: the xDS `version` gauges (the hash of `version_info`), and
/// RING_HASH (the ring's points and the request keys, so a key lands on the host it lands on in
/// Envoy). The pointer form allocates nothing (the data path hashes request keys with it).
enum XXHash64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    static func hash(_ text: String, seed: UInt64 = 0) -> UInt64 { hash(Array(text.utf8), seed: seed) }

    static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 { bytes.withUnsafeBytes { hash($0, seed: seed) } }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always)
    private static func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 { rotl(acc &+ lane &* p2, 31) &* p1 }

    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        @inline(__always) func lane64(_ i: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) }
        @inline(__always) func lane32(_ i: Int) -> UInt64 { UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))) }
        let count = bytes.count
        var i = 0
        var acc: UInt64
        if count >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while i + 32 <= count {
                v1 = round(v1, lane64(i))
                v2 = round(v2, lane64(i + 8))
                v3 = round(v3, lane64(i + 16))
                v4 = round(v4, lane64(i + 24))
                i += 32
            }
            acc = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            acc = (acc ^ round(0, v1)) &* p1 &+ p4
            acc = (acc ^ round(0, v2)) &* p1 &+ p4
            acc = (acc ^ round(0, v3)) &* p1 &+ p4
            acc = (acc ^ round(0, v4)) &* p1 &+ p4
        } else {
            acc = seed &+ p5
        }
        acc &+= UInt64(count)
        while i + 8 <= count {
            acc = rotl(acc ^ round(0, lane64(i)), 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= count {
            acc = rotl(acc ^ (lane32(i) &* p1), 23) &* p2 &+ p3
            i += 4
        }
        while i < count {
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
