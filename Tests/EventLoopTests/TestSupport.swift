import CBallast
import EventLoop
import Glibc
import TestSupport
import XCTest

/// Runs `body` once per backend: epoll, then io_uring. An io_uring the kernel refuses is a visible
/// skip with its reason (a failure under CI=true), never a silent omission.
func forEachBackend(file: StaticString = #filePath, line: UInt = #line, _ body: (any IOBackend.Type) throws -> Void) throws {
    try TestBackends.each(file: file, line: line) { kind in
        try body(kind == .epoll ? EpollBackend.self : IoUringBackend.self)
    }
}
