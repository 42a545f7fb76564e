import Foundation
import Glibc

/// Waits for conditions instead of sleeping for a guessed time: polls `condition` every
/// `interval` until it holds or a generous `timeout` passes. The timeout only bounds a hang; a
/// test asserts the condition afterwards, so a slow machine makes it slower, never red.
public enum Wait {
    /// The default bound: long enough for a loaded 2-core machine.
    public static let defaultTimeout: TimeInterval = 30

    /// True as soon as `condition` holds; false when `timeout` passed first.
    @discardableResult
    public static func until(timeout: TimeInterval = defaultTimeout, interval: useconds_t = 5_000,
                             _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return true }
            if Date() >= deadline { return false }
            usleep(interval)
        }
    }

    /// The first non-nil value of `produce`, or nil when `timeout` passed first.
    public static func value<T>(timeout: TimeInterval = defaultTimeout, interval: useconds_t = 5_000,
                                _ produce: () throws -> T?) rethrows -> T? {
        var result: T? = nil
        try until(timeout: timeout, interval: interval) {
            result = try produce()
            return result != nil
        }
        return result
    }
}
