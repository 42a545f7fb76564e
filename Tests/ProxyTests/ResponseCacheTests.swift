import EventLoop
@testable import Proxy
import XCTest

/// The cache filter's per-worker store (bounds, LRU order, freshness) and its parsers.
final class ResponseCacheTests: XCTestCase {
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Stores `path` with `head` (field lines) and a body of `bodySize` bytes; returns its index.
    @discardableResult
    private func store(_ cache: ResponseCache, _ path: String, head: String = "cache-control: max-age=60\r\n", bodySize: Int = 10) -> Int32 {
        let host = bytes("h"), p = bytes(path)
        let hash = key(host, p)
        let i = host.withUnsafeBytes { h in p.withUnsafeBytes { cache.begin(hash: hash, host: h, path: $0)! } }
        bytes(head).withUnsafeBytes { XCTAssertTrue(cache.pool.append($0, to: &cache[i].buffer)) }
        cache[i].headLength = head.utf8.count
        cache[i].status = 200
        cache[i].responseTime = HTTPDateField.wallNanos()
        cache[i].readHead(varyDigest: nil)
        [UInt8](repeating: 0x61, count: bodySize).withUnsafeBytes { XCTAssertTrue(cache.append(i, $0, limit: Int.max)) }
        cache.commit(i)
        return i
    }

    private func key(_ host: [UInt8], _ path: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        host.withUnsafeBytes { ResponseCache.hash($0, 0..<$0.count, into: &h) }
        h = (h ^ 0) &* 0x100000001b3
        path.withUnsafeBytes { ResponseCache.hash($0, 0..<$0.count, into: &h) }
        return h
    }

    private func find(_ cache: ResponseCache, _ path: String) -> Int32? {
        let host = bytes("h"), p = bytes(path)
        return host.withUnsafeBytes { h in p.withUnsafeBytes { cache.find(hash: key(host, p), host: h, path: $0) } }
    }

    func testEntryBoundEvictsTheLeastRecentlyUsed() {
        let cache = ResponseCache(pool: BufferPool())
        store(cache, "/a")
        store(cache, "/b")
        XCTAssertNotNil(find(cache, "/a"))  // /a is now more recent than /b
        for k in 0..<(ResponseCache.entryLimit - 1) { store(cache, "/fill/\(k)") }
        XCTAssertEqual(cache.committedCount, ResponseCache.entryLimit)
        XCTAssertEqual(cache.evictions, 1)
        XCTAssertNil(find(cache, "/b"))
        XCTAssertNotNil(find(cache, "/a"))
        XCTAssertNotNil(find(cache, "/fill/0"))
    }

    func testByteBoundEvicts() {
        let cache = ResponseCache(pool: BufferPool())
        let body = 1 << 20  // each entry's buffer is 2 MiB (the pool's size class above key + head + body)
        for k in 0..<40 { store(cache, "/big/\(k)", bodySize: body) }
        XCTAssertLessThanOrEqual(cache.bytes, ResponseCache.byteLimit)
        XCTAssertEqual(cache.committedCount, ResponseCache.byteLimit / (2 << 20))
        XCTAssertNil(find(cache, "/big/0"))
        XCTAssertNotNil(find(cache, "/big/39"))
    }

    func testAReplacedKeyFreesTheOldEntry() {
        let cache = ResponseCache(pool: BufferPool())
        let first = store(cache, "/x")
        let generation = cache[first].generation
        let second = store(cache, "/x", bodySize: 3)
        XCTAssertEqual(cache.committedCount, 1)
        XCTAssertEqual(find(cache, "/x"), second)
        XCTAssertEqual(cache[second].body.count, 3)
        XCTAssertNotEqual(cache[first].generation, generation)  // a validation of the old slot sees it is gone
    }

    func testFreshnessAndAge() {
        let cache = ResponseCache(pool: BufferPool())
        let now = HTTPDateField.wallNanos()
        var line = [UInt8](repeating: 0, count: 37)
        HTTPDateField.format(Int(now / 1_000_000_000) - 30, into: &line)
        let date = String(decoding: line.dropLast(2), as: UTF8.self)  // "date: ..." without CRLF
        let i = store(cache, "/f", head: "cache-control: max-age=60, must-revalidate\r\n\(date)\r\nage: 10\r\n")
        let e = cache[i]
        XCTAssertEqual(e.lifetime, 60)
        XCTAssertTrue(e.noStale)
        let age = e.age(now: now)
        XCTAssertTrue((30...31).contains(age), "age \(age)")  // apparent age from date beats the stored age
        XCTAssertFalse(e.requiresValidation(RequestCacheControl(), age: age))
        var minFresh = RequestCacheControl()
        minFresh.minFresh = 40
        XCTAssertTrue(e.requiresValidation(minFresh, age: age))
        var maxStale = RequestCacheControl()
        maxStale.maxStale = Int64.max
        XCTAssertTrue(e.requiresValidation(maxStale, age: 100), "must-revalidate: never served stale")
    }

    func testAHugeStoredAgeIsBounded() {
        let cache = ResponseCache(pool: BufferPool())
        let i = store(cache, "/old", head: "cache-control: max-age=60\r\nage: 99999999999999999\r\n")
        XCTAssertEqual(cache[i].ageValue, Int64(Int32.max))
        XCTAssertTrue(cache[i].requiresValidation(RequestCacheControl(), age: cache[i].age(now: HTTPDateField.wallNanos())))
    }

    func testHTTPDates() {
        func parse(_ s: String) -> Int64? { bytes(s).withUnsafeBytes { HTTPDateField.parse($0, 0..<$0.count) } }
        XCTAssertEqual(parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777)
        XCTAssertEqual(parse("Thu, 01 Jan 1970 00:00:00 GMT"), 0)
        XCTAssertEqual(parse("Tue, 29 Feb 2028 12:00:00 GMT"), 1835438400)
        XCTAssertNil(parse("Sunday, 06-Nov-94 08:49:37 GMT"))
        XCTAssertNil(parse("Sun, 06 Nov 1994 08:49:37 UTC"))
        XCTAssertNil(parse(""))
    }

    func testRanges() {
        func range(_ s: String, _ length: Int = 16) -> CacheRange { bytes(s).withUnsafeBytes { CacheRange.of($0, 0..<$0.count, length: length) } }
        XCTAssertEqual(range("bytes=0-3"), .partial(0..<4))
        XCTAssertEqual(range("bytes=-3"), .partial(13..<16))
        XCTAssertEqual(range("bytes=5-"), .partial(5..<16))
        XCTAssertEqual(range("bytes=20-"), .unsatisfiable)
        XCTAssertEqual(range("bytes=-0"), .unsatisfiable)
        XCTAssertEqual(range("bytes=0-3", 0), .unsatisfiable)
        XCTAssertEqual(range("bytes=0-100"), .none)
        XCTAssertEqual(range("bytes=-16"), .none)
        XCTAssertEqual(range("bytes=1-2,4-5"), .none)
        XCTAssertEqual(range("bytes=3-1"), .none)
        XCTAssertEqual(range("bytes=-"), .none)
        XCTAssertEqual(range("Bytes=0-3"), .none)
        XCTAssertEqual(range("bytes= 0-3"), .none)
    }

    func testDirectives() {
        func response(_ s: String) -> ResponseCacheControl { bytes(s).withUnsafeBytes { ResponseCacheControl($0, 0..<$0.count) } }
        XCTAssertEqual(response("max-age=10, s-maxage=20").maxAge, 20)
        XCTAssertEqual(response("s-maxage=20, max-age=10").maxAge, 20)
        XCTAssertEqual(response("max-age=\"7\"").maxAge, 7)
        XCTAssertEqual(response("max-age=x").maxAge, 0)
        XCTAssertTrue(response("Private").noStore)
        XCTAssertTrue(response("no-cache=\"set-cookie\"").mustValidate)
        XCTAssertTrue(response("proxy-revalidate").noStale)
        var r = RequestCacheControl()
        bytes("max-stale, min-fresh=5").withUnsafeBytes { r.read($0, 0..<$0.count) }
        XCTAssertEqual(r.maxStale, Int64.max)
        XCTAssertEqual(r.minFresh, 5)
    }
}
