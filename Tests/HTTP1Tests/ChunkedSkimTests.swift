import HTTP1
import XCTest

final class ChunkedSkimTests: XCTestCase {
    let body = Array("5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\nNEXT".utf8)

    func testWholeBodyReportsExtentPayloadAndEnd() {
        var decoder = ChunkedDecoder()
        let skim = body.withUnsafeBytes { decoder.skim($0) }
        XCTAssertEqual(skim, ChunkedDecoder.Skim(consumed: body.count - 4, payload: 11, done: true))
    }

    func testPiecesAddUpToTheSameResult() {
        for split in 1..<body.count {
            var decoder = ChunkedDecoder()
            let first = body.withUnsafeBytes { decoder.skim(UnsafeRawBufferPointer(rebasing: $0[0..<split])) }
            XCTAssertNil(first.failure)
            if first.done {
                XCTAssertEqual(first.consumed, body.count - 4, "split \(split)")
                continue
            }
            XCTAssertEqual(first.consumed, split, "split \(split): everything before the end is consumed")
            let second = body.withUnsafeBytes { decoder.skim(UnsafeRawBufferPointer(rebasing: $0[split...])) }
            XCTAssertEqual(first.consumed + second.consumed, body.count - 4, "split \(split)")
            XCTAssertEqual(first.payload + second.payload, 11, "split \(split)")
            XCTAssertTrue(second.done)
        }
    }

    func testMalformedBodyReportsTheError() {
        var decoder = ChunkedDecoder()
        let skim = Array("zz\r\n".utf8).withUnsafeBytes { decoder.skim($0) }
        XCTAssertEqual(skim.failure?.status, 400)
        XCTAssertFalse(skim.done)
    }
}
