import CBallast
import Glibc

/// A failed system call: which call, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let call: StaticString
    public let errno: Int32

    public init(_ call: StaticString, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public static func == (a: SystemError, b: SystemError) -> Bool {
        a.errno == b.errno && a.call.description == b.call.description
    }

    public var description: String {
        "\(call) failed: \(Log.describe(errno: errno)) (errno \(errno))"
    }
}

/// The one funnel for blocking-style system calls that report failure with -1 and errno:
/// retries on EINTR, returns the result, or throws a typed error naming the call.
/// "Would block" is not an error for the callers that use `nonBlocking` instead.
@inlinable
public func syscall(_ name: StaticString, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemError(name, errno: e)
    }
}

/// Like `syscall` for calls whose result is an `Int` (read, write).
@inlinable
public func syscallSize(_ name: StaticString, _ body: () -> Int) throws(SystemError) -> Int {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemError(name, errno: e)
    }
}

/// Result convention shared by both backends: `>= 0` is the value, `< 0` is `-errno`.
/// Retries on EINTR.
@inlinable
public func nonBlocking(_ body: () -> Int) -> Int {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let e = Glibc.errno
        if e == EINTR { continue }
        return -Int(e)
    }
}
