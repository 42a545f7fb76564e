import XCTest
@testable import EventLoop
@testable import HTTP1
@testable import Proxy

/// An idle keep-alive connection costs its `Downstream` entry and nothing else in user space
/// (buffers go back to the pool), so the entry's size is the proxy's idle memory per connection.
/// These bounds fail when a field grows an entry past them: put a cold field out of line, or
/// raise the bound knowingly (and re-measure `scripts/idle_memory_ab.py`).
final class ConnectionEntrySizeTests: XCTestCase {
    func testIdleConnectionEntriesStaySmall() {
        XCTAssertEqual(MemoryLayout<ByteBuffer>.stride, 16)
        XCTAssertEqual(MemoryLayout<OutboundQueue>.stride, 40)
        XCTAssertEqual(MemoryLayout<RequestHeadProgress>.stride, 16)
        XCTAssertEqual(MemoryLayout<PeerAddress>.stride, 24)
        XCTAssertLessThanOrEqual(MemoryLayout<Downstream>.stride, 248)
        XCTAssertLessThanOrEqual(MemoryLayout<Upstream>.stride, 192)
    }
}
