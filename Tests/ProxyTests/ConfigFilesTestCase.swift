import Foundation
import Glibc
import XCTest

/// A test case with a directory of its own for config files (made in setUp, removed in
/// tearDown), written in place or replaced by a rename: what `mv` does, the change Envoy's and
/// Ballast's file watchers react to.
class ConfigFilesTestCase: XCTestCase {
    /// Names the directory (with the pid and the test's name).
    class var directoryLabel: String { "config" }
    var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "ballast-\(Self.directoryLabel)-\(getpid())-\(name.filter(\.isLetter).suffix(40))"
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ file: String, _ text: String) { try? text.write(toFile: "\(dir)/\(file)", atomically: false, encoding: .utf8) }

    /// Writes next to `file`, then renames over it.
    func replace(_ file: String, _ text: String) {
        write(file + ".tmp", text)
        XCTAssertEqual(rename("\(dir)/\(file).tmp", "\(dir)/\(file)"), 0)
    }
}
