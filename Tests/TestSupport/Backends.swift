import EventLoop
import Foundation
import XCTest

/// The I/O backends a test runs on, and what happens when the kernel refuses io_uring.
///
/// An unavailable io_uring is a visible skip (`XCTSkip` with the kernel's reason), never a printed
/// line: a run that did not test io_uring says so in its skip count. Where CI=true (CI sets it, and
/// CI's kernels have io_uring) it is a failure instead, so CI cannot go green with io_uring untested.
public enum TestBackends {
    /// nil when io_uring is usable, else the kernel's reason.
    public static var ioUringUnavailableReason: String? { IoUringProbe.reason }

    /// True under CI (CI=true): an unavailable io_uring fails the test there.
    public static var ioUringRequired: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Returns when io_uring can be tested; otherwise throws a skip with the kernel's reason, or
    /// (under CI=true) an error that fails the test.
    public static func requireIoUring(file: StaticString = #filePath, line: UInt = #line) throws {
        guard let reason = ioUringUnavailableReason else { return }
        if ioUringRequired {
            // Thrown, a non-skip error fails the test.
            throw TestSetupError("io_uring is required under CI=true but unavailable: \(reason)")
        }
        throw XCTSkip("io_uring half not run: \(reason)", file: file, line: line)
    }

    /// Runs `body` for epoll, then for io_uring. The io_uring half is a visible skip (or, under
    /// CI=true, a failure) when the kernel refuses io_uring; failures of the epoll half still count.
    public static func each(file: StaticString = #filePath, line: UInt = #line, _ body: (IOBackendKind) throws -> Void) throws {
        try body(.epoll)
        try requireIoUring(file: file, line: line)
        try body(.ioUring)
    }
}

/// A test's set-up failed (a process that did not start, a port that was not printed): thrown, it
/// fails the test (it is not an `XCTSkip`).
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
