import EventLoop
import XCTest

final class SlabTests: XCTestCase {
    /// Addresses do not move when the slab grows by more chunks.
    func testAddressesAreStableAcrossGrowth() {
        var slab = Slab<Int>(kind: 3, empty: 0)
        let first = slab.insert(41)
        let p = slab.pointer(first)!
        var tokens: [UInt64] = []
        for i in 0..<(3 * Slab<Int>.chunkSize) { tokens.append(slab.insert(i)) }
        XCTAssertEqual(slab.pointer(first), p)
        XCTAssertEqual(p.pointee, 41)
        XCTAssertEqual(slab.liveCount, 3 * Slab<Int>.chunkSize + 1)
        for (i, t) in tokens.enumerated() { XCTAssertEqual(slab.pointer(t)?.pointee, i) }
    }

    /// A removed element's token is stale, also after its slot is reused; the generation keeps
    /// all 32 bits (a reuse 2^28 times later is still told apart).
    func testStaleTokensAndFullGeneration() {
        var slab = Slab<Int>(kind: 1, empty: 0)
        let a = slab.insert(1)
        slab.remove(a)
        XCTAssertNil(slab.pointer(a))
        let b = slab.insert(2)
        XCTAssertEqual(b & 0xFF_FFFF, a & 0xFF_FFFF, "the slot is reused")
        XCTAssertNil(slab.pointer(a))
        XCTAssertEqual(slab.pointer(b)?.pointee, 2)
        XCTAssertEqual((b >> 24) & 0xFFFF_FFFF, 3, "one bump on insert, one on remove, one on insert")
        // A token that differs only in generation bit 28 or above is not the same element.
        XCTAssertNil(slab.pointer(b ^ (1 << (24 + 28))))
        XCTAssertNil(slab.pointer(b ^ (1 << (24 + 31))))
    }

    /// Kind and tag: another slab's kind is refused; the owner's tag is ignored by lookups.
    func testKindAndTag() {
        var slab = Slab<Int>(kind: 2, empty: 0)
        let t = slab.insert(7)
        XCTAssertEqual(SlabToken.kind(t), 2)
        XCTAssertNil(slab.pointer(SlabToken.withKind(4, t)))
        let tagged = SlabToken.withTag(3, t)
        XCTAssertEqual(SlabToken.tag(tagged), 3)
        XCTAssertEqual(slab.pointer(tagged)?.pointee, 7)
        XCTAssertEqual(SlabToken.withTag(0, tagged), t)
        XCTAssertEqual(slab.liveTokens(), [t])
    }
}
