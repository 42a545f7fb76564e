import EventLoop
import XCTest

final class TimerHeapTests: XCTestCase {
    func testPopsInDeadlineOrderAndOnlyWhenDue() {
        var heap = TimerHeap(capacity: 4)
        var rng = SystemRandomNumberGenerator()
        var deadlines: [Int64] = []
        for i in 0..<1000 {
            let d = Int64.random(in: 0..<10_000, using: &rng)
            deadlines.append(d)
            heap.schedule(at: d, id: UInt64(i))
        }
        XCTAssertEqual(heap.count, 1000)
        XCTAssertNil(heap.popExpired(now: -1))
        var popped: [Int64] = []
        while let id = heap.popExpired(now: 10_000) { popped.append(deadlines[Int(id)]) }
        XCTAssertEqual(popped, deadlines.sorted())
        XCTAssertEqual(heap.count, 0)
        XCTAssertNil(heap.nextDeadline)
    }

    func testNextDeadlineIsTheMinimum() {
        var heap = TimerHeap()
        heap.schedule(at: 50, id: 1)
        heap.schedule(at: 20, id: 2)
        heap.schedule(at: 70, id: 3)
        XCTAssertEqual(heap.nextDeadline, 20)
        XCTAssertEqual(heap.popExpired(now: 49), 2)
        XCTAssertNil(heap.popExpired(now: 49))
        XCTAssertEqual(heap.nextDeadline, 50)
    }
}

final class CPUListTests: XCTestCase {
    func testParsesListsAndRanges() throws {
        XCTAssertEqual(try CPUList.parse("0"), [0])
        XCTAssertEqual(try CPUList.parse("0,1"), [0, 1])
        XCTAssertEqual(try CPUList.parse("0-1"), [0, 1])
        XCTAssertEqual(CPUList.cpu(forWorker: 5, in: [0, 1]), 1)
        XCTAssertNil(CPUList.cpu(forWorker: 5, in: []))
    }

    func testRejectsBadListsWithAMessage() {
        for bad in ["", "a", "1-0", "0,,1", "-1", "4096"] {
            XCTAssertThrowsError(try CPUList.parse(bad), bad) { error in
                XCTAssertFalse("\(error)".isEmpty)
            }
        }
    }
}
