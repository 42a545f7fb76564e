import Balancers
import XCTest
@testable import LoadGen

final class EchoQueryTests: XCTestCase {
    private var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    override func setUp() {
        super.setUp()
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
    }

    override func tearDown() {
        scratch.deallocate()
        super.tearDown()
    }

    // MARK: - Helpers

    private func run(
        _ query: String, rng: inout SplitMix64, limits: EchoLimits = EchoLimits(),
        scratch given: UnsafeMutableRawBufferPointer? = nil
    ) -> EchoQueryResult {
        var bytes = Array(query.utf8)
        return bytes.withUnsafeMutableBytes { raw in
            EchoQuery.plan(query: UnsafeRawBufferPointer(raw), limits: limits, rng: &rng, headerScratch: given ?? scratch)
        }
    }

    private func plan(
        _ query: String, seed: UInt64 = 42, limits: EchoLimits = EchoLimits(),
        file: StaticString = #filePath, line: UInt = #line
    ) -> EchoPlan? {
        var rng = SplitMix64(seed: seed)
        switch run(query, rng: &rng, limits: limits) {
        case .plan(let plan): return plan
        case .invalid(let reason):
            XCTFail("\(query): unexpected invalid(\(reason))", file: file, line: line)
            return nil
        }
    }

    private func reason(_ query: String, scratch given: UnsafeMutableRawBufferPointer? = nil) -> String? {
        var rng = SplitMix64(seed: 42)
        switch run(query, rng: &rng, scratch: given) {
        case .plan: return nil
        case .invalid(let reason): return "\(reason)"
        }
    }

    private func assertInvalid(
        _ query: String, _ expected: String, scratch given: UnsafeMutableRawBufferPointer? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(reason(query, scratch: given), expected, query, file: file, line: line)
    }

    private func headers(_ plan: EchoPlan) -> [String] {
        let view = UnsafeRawBufferPointer(scratch)
        return (0..<plan.extraHeaderCount).map { index in
            let name = String(decoding: plan.extraHeaderName(at: index, in: view), as: UTF8.self)
            let value = String(decoding: plan.extraHeaderValue(at: index, in: view), as: UTF8.self)
            return "\(name)=\(value)"
        }
    }

    private func wireBlock(_ plan: EchoPlan) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: scratch[0..<plan.extraHeaderBytes]), as: UTF8.self)
    }

    /// Runs `query` `count` times with one generator and tallies a property of each plan.
    private func tally<Key: Hashable>(
        _ query: String, seed: UInt64 = 7, count: Int = 10_000, _ key: (EchoPlan) -> Key
    ) -> [Key: Int] {
        var rng = SplitMix64(seed: seed)
        var counts: [Key: Int] = [:]
        for _ in 0..<count {
            guard case .plan(let plan) = run(query, rng: &rng) else {
                XCTFail("\(query) invalid")
                return [:]
            }
            counts[key(plan), default: 0] += 1
        }
        return counts
    }

    private func assertBand(_ value: Int, _ band: ClosedRange<Int>, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(band.contains(value), "\(what): \(value) not in \(band)", file: file, line: line)
    }

    // MARK: - Defaults and parameter names

    func testEmptyQueryGivesDefaults() {
        let result = plan("")
        XCTAssertEqual(result, EchoPlan())
        XCTAssertEqual(result?.status, 200)
        XCTAssertNil(result?.bodySize)
        XCTAssertEqual(result?.delayNanos, 0)
        XCTAssertEqual(result?.closeAfter, false)
        XCTAssertEqual(result?.extraHeaderCount, 0)
        XCTAssertEqual(result?.extraHeaderBytes, 0)
    }

    func testUnknownParametersAndEmptyPairsAreIgnored() {
        XCTAssertEqual(plan("foo=bar&&x&=y&&"), EchoPlan())
        // Unknown parameters are not parsed at all, even with bad escapes or bad-looking values.
        XCTAssertEqual(plan("foo=%zz&gzip=true&Size=5&STATUS=1&sizes=3&siz=2&%zz=1&size%00=7"), EchoPlan())
        XCTAssertEqual(plan("foo=%zz&size=12&bar=%")?.bodySize, 12)
    }

    func testEmptyValueMeansDefault() {
        XCTAssertEqual(plan("size=&status=&delay=&close=&header="), EchoPlan())
        XCTAssertEqual(plan("size&status&delay&close&header"), EchoPlan())
    }

    func testParameterNamesArePercentDecoded() {
        let result = plan("s%69ze=10&%73tatus=201&d%65lay=1ms&clos%65=true&h%65ader=A:b")
        XCTAssertEqual(result?.bodySize, 10)
        XCTAssertEqual(result?.status, 201)
        XCTAssertEqual(result?.delayNanos, 1_000_000)
        XCTAssertEqual(result?.closeAfter, true)
        XCTAssertEqual(result.map(headers), ["A=b"])
    }

    func testLastOccurrenceWins() {
        XCTAssertEqual(plan("size=1&size=2")?.bodySize, 2)
        XCTAssertNil(plan("size=5&size=")?.bodySize)
        XCTAssertEqual(plan("status=503&status=201")?.status, 201)
        // Earlier occurrences are overridden without being parsed.
        XCTAssertEqual(plan("status=abc&status=201")?.status, 201)
        XCTAssertEqual(plan("delay=%zz&delay=2ms")?.delayNanos, 2_000_000)
        XCTAssertEqual(plan("close=true&close=false")?.closeAfter, false)
        assertInvalid("status=201&status=abc", "bad status value")
    }

    // MARK: - size

    func testSizeSingle() {
        XCTAssertEqual(plan("size=0")?.bodySize, 0)
        XCTAssertEqual(plan("size=1024")?.bodySize, 1024)
        XCTAssertEqual(plan("size=007")?.bodySize, 7)
    }

    func testSizeIsCapped() {
        XCTAssertEqual(plan("size=262144")?.bodySize, 262_144)
        XCTAssertEqual(plan("size=262145")?.bodySize, 262_144)
        XCTAssertEqual(plan("size=99999999999999999999999999")?.bodySize, 262_144)
        XCTAssertEqual(plan("size=5000", limits: EchoLimits(maxBodyBytes: 4096))?.bodySize, 4096)
        XCTAssertEqual(plan("size=5000:100", limits: EchoLimits(maxBodyBytes: 4096))?.bodySize, 4096)
        XCTAssertEqual(plan("size=5000", limits: EchoLimits(maxBodyBytes: -1))?.bodySize, 0)
    }

    func testSizeInvalid() {
        assertInvalid("size=-1", "bad size value")
        assertInvalid("size=abc", "bad size value")
        assertInvalid("size=1k", "bad size value")
        assertInvalid("size=1.5", "bad size value")
        assertInvalid("size=+5", "bad size value")  // '+' is a space
        assertInvalid("size=5%20", "bad size value")
        assertInvalid("size=1024,512", "bad weighted list")
        assertInvalid("size=1024:10,512", "bad weighted list")
        assertInvalid("size=x:10", "bad size value")
        assertInvalid("size=1024:10,x:5", "bad size value")
    }

    func testSizeWeightedSingleEntry() {
        XCTAssertEqual(plan("size=1024:100")?.bodySize, 1024)
        XCTAssertNil(plan("size=1024:0")?.bodySize)
    }

    // MARK: - status

    func testStatusSingle() {
        XCTAssertEqual(plan("status=503")?.status, 503)
        XCTAssertEqual(plan("status=100")?.status, 100)
        XCTAssertEqual(plan("status=999")?.status, 999)
        XCTAssertEqual(plan("status=0404")?.status, 404)
    }

    func testStatusInvalid() {
        assertInvalid("status=99", "bad status value")
        assertInvalid("status=1000", "bad status value")
        assertInvalid("status=0", "bad status value")
        assertInvalid("status=99999999999999999999999", "bad status value")
        assertInvalid("status=abc", "bad status value")
        assertInvalid("status=-200", "bad status value")
        assertInvalid("status=503x", "bad status value")
        assertInvalid("status=600:10,42:5", "bad status value")
    }

    func testWeightedListSyntaxErrors() {
        assertInvalid("status=503:", "bad percentage")
        assertInvalid("status=:10", "bad status value")
        assertInvalid("status=503:abc", "bad percentage")
        assertInvalid("status=503:.", "bad percentage")
        assertInvalid("status=503:-1", "bad percentage")
        assertInvalid("status=503:101", "bad percentage")
        assertInvalid("status=503:100.000001", "bad percentage")
        assertInvalid("status=503,429", "bad weighted list")
        assertInvalid("status=503:10:5", "bad weighted list")
        assertInvalid("status=503:10,", "bad status value")
        assertInvalid("status=503:10,,429:5", "bad status value")
        assertInvalid("status=503:10;429:5", "bad weighted list")
        assertInvalid("status=503:10%25%25", "bad weighted list")
    }

    func testPercentagesSummingOver100AreInvalid() {
        assertInvalid("status=503:60,429:50", "percentages sum over 100")
        assertInvalid("status=503:100,429:0.000001", "percentages sum over 100")
        assertInvalid("status=503:50.000001,429:50", "percentages sum over 100")
        assertInvalid("delay=1ms:99,2ms:1,3ms:1", "percentages sum over 100")
        // Exactly 100 is fine, compared in fixed point: no float rounding.
        XCTAssertNotNil(plan("status=503:33.3,429:33.3,404:33.4"))
        XCTAssertNotNil(plan("status=503:50,429:50"))
        // Digits past the 6th decimal are dropped.
        XCTAssertNotNil(plan("status=503:50.0000009,429:50"))
    }

    func testPercentageForms() {
        XCTAssertEqual(plan("status=503:100%25")?.status, 503)  // a trailing '%' (fortio allows it)
        XCTAssertEqual(plan("status=503:100.")?.status, 503)
        XCTAssertEqual(plan("status=503:100.000")?.status, 503)
        XCTAssertEqual(plan("status=503:0100")?.status, 503)
        XCTAssertEqual(plan("status=503:.0")?.status, 200)
        XCTAssertEqual(plan("status=503:0,429:100")?.status, 429)
    }

    // MARK: - Weighted choices, exact given the seed

    func testWeightedStatusFiftyPercent() {
        let counts = tally("status=503:50") { $0.status }
        assertBand(counts[503, default: 0], 4_700...5_300, "503")
        XCTAssertEqual(counts[503, default: 0] + counts[200, default: 0], 10_000)
    }

    func testWeightedStatusZeroAndHundred() {
        XCTAssertEqual(tally("status=503:0") { $0.status }, [200: 10_000])
        XCTAssertEqual(tally("status=503:100") { $0.status }, [503: 10_000])
        XCTAssertEqual(tally("status=503:0,429:0") { $0.status }, [200: 10_000])
        XCTAssertEqual(tally("status=503:0,429:100") { $0.status }, [429: 10_000])
    }

    func testWeightedStatusTwoCodesAndDecimals() {
        let counts = tally("status=503:10,429:5") { $0.status }
        assertBand(counts[503, default: 0], 850...1_150, "503")
        assertBand(counts[429, default: 0], 400...600, "429")
        XCTAssertEqual(counts.values.reduce(0, +), 10_000)
        XCTAssertEqual(Set(counts.keys), [200, 503, 429])

        let rare = tally("status=503:0.5", count: 100_000) { $0.status }
        assertBand(rare[503, default: 0], 400...600, "503 at 0.5%")
    }

    func testWeightedSize() {
        let counts = tally("size=1024:10,512:5") { $0.bodySize ?? -1 }
        assertBand(counts[1024, default: 0], 850...1_150, "1024")
        assertBand(counts[512, default: 0], 400...600, "512")
        assertBand(counts[-1, default: 0], 8_250...8_750, "echo")
        XCTAssertEqual(counts[1024, default: 0] + counts[512, default: 0] + counts[-1, default: 0], 10_000)
        XCTAssertEqual(counts.count, 3)
    }

    func testWeightedDelay() {
        let counts = tally("delay=10ms:50,1s:1") { $0.delayNanos }
        assertBand(counts[10_000_000, default: 0], 4_700...5_300, "10ms")
        assertBand(counts[1_000_000_000, default: 0], 50...150, "1s")
        XCTAssertEqual(counts[10_000_000, default: 0] + counts[1_000_000_000, default: 0] + counts[0, default: 0], 10_000)
        // Weighted delays are capped too.
        XCTAssertEqual(tally("delay=5s:100", count: 100) { $0.delayNanos }, [1_500_000_000: 100])
    }

    /// The chosen entry is the first whose running sum exceeds the draw u (not "reaches").
    func testChoiceBoundaryIsExceedsTheDraw() {
        for seed: UInt64 in [1, 2, 3, 99, 12_345] {
            var probe = SplitMix64(seed: seed)
            let u = probe.next().multipliedFullWidth(by: 100_000_000).high  // millionths of a percent
            func percent(_ units: UInt64) -> String {
                let fraction = String(units % 1_000_000)
                return "\(units / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
            }
            XCTAssertEqual(plan("status=503:\(percent(u))", seed: seed)?.status, 200, "seed \(seed) u \(u)")
            XCTAssertEqual(plan("status=503:\(percent(u + 1))", seed: seed)?.status, 503, "seed \(seed) u \(u)")
            // Split across two entries: the second one wins exactly when the first alone does not.
            let half = u / 2
            XCTAssertEqual(plan("status=503:\(percent(half)),429:\(percent(u + 1 - half))", seed: seed)?.status, 429)
        }
    }

    func testOneDrawPerWeightedParameterOnly() {
        func draws(_ query: String) -> Int {
            var rng = SplitMix64(seed: 5)
            _ = run(query, rng: &rng)
            var reference = SplitMix64(seed: 5)
            for count in 0...10 {
                if reference.state == rng.state { return count }
                _ = reference.next()
            }
            return -1
        }
        XCTAssertEqual(draws(""), 0)
        XCTAssertEqual(draws("status=503&size=10&delay=1s&close=true&close=false"), 0)
        XCTAssertEqual(draws("close=false"), 0)
        XCTAssertEqual(draws("status=503:10,429:5,404:1"), 1)
        XCTAssertEqual(draws("status=503:10&status=404:10"), 1)  // only the last occurrence is evaluated
        XCTAssertEqual(draws("status=503:0&size=1:100&delay=1ms:5,2ms:5&close=50"), 4)
        XCTAssertEqual(draws("close=100"), 1)
        XCTAssertEqual(draws("close=0"), 1)
    }

    func testSameSeedSameChoices() {
        let query = "status=503:30,429:20&size=10:50&delay=1ms:50&close=50"
        var first = SplitMix64(seed: 77), second = SplitMix64(seed: 77)
        for _ in 0..<200 {
            guard case .plan(let a) = run(query, rng: &first), case .plan(let b) = run(query, rng: &second) else {
                return XCTFail("invalid")
            }
            XCTAssertEqual(a, b)
        }
    }

    // MARK: - delay

    func testDelayUnits() {
        let big = EchoLimits(maxDelayNanos: .max)
        XCTAssertEqual(plan("delay=100ns")?.delayNanos, 100)
        XCTAssertEqual(plan("delay=250us")?.delayNanos, 250_000)
        XCTAssertEqual(plan("delay=3%C2%B5s")?.delayNanos, 3_000)  // µ, micro sign
        XCTAssertEqual(plan("delay=4%CE%BCs")?.delayNanos, 4_000)  // μ, Greek mu
        XCTAssertEqual(plan("delay=10ms")?.delayNanos, 10_000_000)
        XCTAssertEqual(plan("delay=1s")?.delayNanos, 1_000_000_000)
        XCTAssertEqual(plan("delay=2m", limits: big)?.delayNanos, 120_000_000_000)
        XCTAssertEqual(plan("delay=1h", limits: big)?.delayNanos, 3_600_000_000_000)
        XCTAssertEqual(plan("delay=0")?.delayNanos, 0)
        XCTAssertEqual(plan("delay=0s")?.delayNanos, 0)
    }

    func testDelayDecimalsAndCompounds() {
        let big = EchoLimits(maxDelayNanos: .max)
        XCTAssertEqual(plan("delay=1.5s")?.delayNanos, 1_500_000_000)
        XCTAssertEqual(plan("delay=.5ms")?.delayNanos, 500_000)
        XCTAssertEqual(plan("delay=1.ms")?.delayNanos, 1_000_000)
        XCTAssertEqual(plan("delay=1.000000001s")?.delayNanos, 1_000_000_001)
        XCTAssertEqual(plan("delay=0.1ns")?.delayNanos, 0)
        XCTAssertEqual(plan("delay=1m30s", limits: big)?.delayNanos, 90_000_000_000)
        XCTAssertEqual(plan("delay=1h2m3s4ms5us6ns", limits: big)?.delayNanos, 3_723_004_005_006)
        XCTAssertEqual(plan("delay=1.5h", limits: big)?.delayNanos, 5_400_000_000_000)
        XCTAssertEqual(plan("delay=%2B1s")?.delayNanos, 1_000_000_000)  // an explicit '+' sign, as Go allows
        XCTAssertEqual(plan("delay=99999999999999999999999h", limits: big)?.delayNanos, .max)
    }

    func testDelayIsCapped() {
        XCTAssertEqual(plan("delay=1.5s")?.delayNanos, 1_500_000_000)
        XCTAssertEqual(plan("delay=2s")?.delayNanos, 1_500_000_000)
        XCTAssertEqual(plan("delay=99999999999999999999h")?.delayNanos, 1_500_000_000)
        XCTAssertEqual(plan("delay=20ms", limits: EchoLimits(maxDelayNanos: 5_000_000))?.delayNanos, 5_000_000)
        XCTAssertEqual(plan("delay=20ms", limits: EchoLimits(maxDelayNanos: 0))?.delayNanos, 0)
    }

    func testDelayInvalid() {
        assertInvalid("delay=10", "bad delay value")
        assertInvalid("delay=1.5", "bad delay value")
        assertInvalid("delay=ms", "bad delay value")
        assertInvalid("delay=.s", "bad delay value")
        assertInvalid("delay=-1s", "bad delay value")
        assertInvalid("delay=10x", "bad delay value")
        assertInvalid("delay=1ss", "bad delay value")
        assertInvalid("delay=10ms10", "bad delay value")
        assertInvalid("delay=1n", "bad delay value")
        assertInvalid("delay=1%C2s", "bad delay value")
        assertInvalid("delay=0s0", "bad delay value")
        assertInvalid("delay=1+s", "bad delay value")  // '+' is a space
        assertInvalid("delay=10ms:50,1x:1", "bad delay value")
    }

    // MARK: - close

    func testCloseForms() {
        XCTAssertEqual(plan("close=true")?.closeAfter, true)
        XCTAssertEqual(plan("close=false")?.closeAfter, false)
        XCTAssertEqual(plan("close=%74rue")?.closeAfter, true)
        XCTAssertEqual(tally("close=100") { $0.closeAfter }, [true: 10_000])
        XCTAssertEqual(tally("close=0") { $0.closeAfter }, [false: 10_000])
        let half = tally("close=50") { $0.closeAfter }
        assertBand(half[true, default: 0], 4_700...5_300, "close=50")
        // A number is a percentage: close=1 closes about 1 % of the time, not always.
        let one = tally("close=1") { $0.closeAfter }
        assertBand(one[true, default: 0], 50...150, "close=1")
        let decimal = tally("close=2.5%25") { $0.closeAfter }
        assertBand(decimal[true, default: 0], 180...320, "close=2.5%")
    }

    func testCloseInvalid() {
        assertInvalid("close=yes", "bad close value")
        assertInvalid("close=TRUE", "bad close value")
        assertInvalid("close=true:10", "bad close value")
        assertInvalid("close=101", "bad close value")
        assertInvalid("close=-5", "bad close value")
        assertInvalid("close=1,2", "bad close value")
        assertInvalid("close=%zz", "bad percent-encoding")
    }

    // MARK: - header

    func testHeaders() throws {
        let result = try XCTUnwrap(plan("header=X-One:1&size=3&header=X-Two:two%20words&header=X-Three:a:b"))
        XCTAssertEqual(result.extraHeaderCount, 3)
        XCTAssertEqual(headers(result), ["X-One=1", "X-Two=two words", "X-Three=a:b"])
        XCTAssertEqual(wireBlock(result), "X-One: 1\r\nX-Two: two words\r\nX-Three: a:b\r\n")
        XCTAssertEqual(result.extraHeaderBytes, wireBlock(result).utf8.count)
        XCTAssertEqual(result.extraHeader(at: 0), EchoHeaderRange(nameStart: 0, nameCount: 5, valueStart: 7, valueCount: 1))
        XCTAssertEqual(result.bodySize, 3)
    }

    func testHeaderDecodingPlusAndTrimming() throws {
        let result = try XCTUnwrap(plan("header=X-A:a+b&header=X-B:+spaced%09+&header=X-C:&header=X%2DD%3Avalue%26more&header=X-E:caf%C3%A9"))
        XCTAssertEqual(headers(result), ["X-A=a b", "X-B=spaced", "X-C=", "X-D=value&more", "X-E=café"])
        XCTAssertEqual(wireBlock(result), "X-A: a b\r\nX-B: spaced\r\nX-C: \r\nX-D: value&more\r\nX-E: café\r\n")
        XCTAssertEqual(plan("header=X:a%09b").map(headers), ["X=a\tb"])
        XCTAssertEqual(plan("header=X:a=b").map(headers), ["X=a=b"])  // only the first '=' ends the name
    }

    func testHeaderInvalid() {
        assertInvalid("header=NoColon", "bad header, expected Name:Value")
        assertInvalid("header=:value", "bad header name")
        assertInvalid("header=Bad+Name:v", "bad header name")
        assertInvalid("header=Bad@Name:v", "bad header name")
        assertInvalid("header=X%0D:v", "bad header name")
        assertInvalid("header=X:a%0Db", "bad header value")
        assertInvalid("header=X:a%0Ab", "bad header value")
        assertInvalid("header=X:a%00b", "bad header value")
        assertInvalid("header=X:a%7Fb", "bad header value")
        assertInvalid("header=X:a%01b", "bad header value")
        assertInvalid("header=X:a%zz", "bad percent-encoding")
        assertInvalid("header=X:a%2", "bad percent-encoding")
    }

    func testHeaderLimits() {
        let sixteen = (0..<16).map { "header=H\($0):v" }.joined(separator: "&")
        XCTAssertEqual(plan(sixteen)?.extraHeaderCount, 16)
        XCTAssertEqual(plan(sixteen + "&header=")?.extraHeaderCount, 16)  // an empty header= adds nothing
        assertInvalid(sixteen + "&header=H16:v", "too many headers")

        // "Ab: cd\r\n" is 8 bytes; each step of the scratch size fails at a different write.
        let query = "header=Ab:cd"
        for size in 0..<8 {
            let small = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
            defer { small.deallocate() }
            assertInvalid(query, "headers too long", scratch: small)
        }
        let exact = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { exact.deallocate() }
        XCTAssertNil(reason(query, scratch: exact))
        // Trailing spaces are trimmed before the CRLF is written, so they only need room while decoding.
        let padded = UnsafeMutableRawBufferPointer.allocate(byteCount: 10, alignment: 1)
        defer { padded.deallocate() }
        XCTAssertNil(reason("header=Ab:cd%20%20%20%20", scratch: padded))
        XCTAssertEqual(reason("header=Ab:cd%20%20%20%20%20", scratch: padded), "headers too long")
        // Queries without headers never touch the scratch, so an empty one is fine.
        XCTAssertNil(reason("status=503&size=3", scratch: UnsafeMutableRawBufferPointer(start: nil, count: 0)))
    }

    // MARK: - Percent-decoding

    func testValuesArePercentDecoded() {
        XCTAssertEqual(plan("delay=10%6Ds")?.delayNanos, 10_000_000)
        XCTAssertEqual(plan("status=%35%30%33")?.status, 503)
        XCTAssertEqual(plan("status=503%3A100")?.status, 503)  // an encoded ':' still separates
        XCTAssertEqual(plan("size=1%3A100%2C2%3A0")?.bodySize, 1)
        XCTAssertEqual(plan("close=%66alse")?.closeAfter, false)
        XCTAssertEqual(plan("size=1%30")?.bodySize, 10)
        // An encoded '&' or '=' is data, not structure.
        assertInvalid("status=503%26size=7", "bad status value")
        XCTAssertEqual(plan("size%3D7=1")?.bodySize, nil)
    }

    func testBadPercentEscapesAreInvalid() {
        assertInvalid("size=1%2", "bad percent-encoding")
        assertInvalid("size=%zz", "bad percent-encoding")
        assertInvalid("size=%", "bad percent-encoding")
        assertInvalid("status=%G0", "bad percent-encoding")
        assertInvalid("delay=10%6", "bad percent-encoding")
        assertInvalid("status=503:1%", "bad percent-encoding")
    }

    // MARK: - SplitMix64

    func testSplitMix64ReferenceSequence() {
        // Reference output of Vigna's splitmix64.c for the seed 1234567.
        var rng = SplitMix64(seed: 1_234_567)
        XCTAssertEqual(rng.next(), 6_457_827_717_110_365_317)
        XCTAssertEqual(rng.next(), 3_203_168_211_198_807_973)
        XCTAssertEqual(rng.next(), 9_817_491_932_198_370_423)
        XCTAssertEqual(rng.next(), 4_593_380_528_125_082_431)
        XCTAssertEqual(rng.next(), 16_408_922_859_458_223_821)
    }
}
