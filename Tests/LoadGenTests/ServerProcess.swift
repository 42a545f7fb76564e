import Foundation
import Glibc
import TestSupport
import XCTest

/// A `ballast server` started for one test. A server that does not start fails the test (it is
/// never a skip).
final class ServerUnderTest {
    let child: ChildProcess
    let port: Int

    init(io: String, workers: Int = 1, extra: [String] = []) throws {
        child = try ChildProcess(["server", "--port", "0", "--address", "127.0.0.1", "--workers", "\(workers)", "--io", io] + extra)
        let line = try child.requireLine(containing: "listening on", what: "ballast server")
        guard let portText = line.split(separator: ":").last?.split(separator: " ").first, let port = Int(portText) else {
            throw TestSetupError("no port in the server's line: \(line)")
        }
        self.port = port
    }

    func stop() { child.stop() }
}

/// The backends a LoadGen test runs on, by `--io` name: epoll, then io_uring (a visible skip
/// with the kernel's reason when it refuses io_uring, a failure under CI=true).
func onEachBackendName(file: StaticString = #filePath, line: UInt = #line, _ body: (String) throws -> Void) throws {
    try TestBackends.each(file: file, line: line) { try body($0.rawValue) }
}
