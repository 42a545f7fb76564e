import Foundation
import Glibc
@testable import Proxy
import XCTest

/// The in-place field editor behind `request/response_headers_to_add/remove` (what the
/// differential suite cannot pin: the peer's port, and the edge cases of one level's overwrites).
final class HeaderMutationTests: XCTestCase {
    private func option(_ name: String, _ parts: [HeaderValuePart], _ action: HeaderValueOptionConfig.AppendAction = .appendIfExistsOrAdd,
                        keepEmpty: Bool = false) -> HeaderValueOptionConfig {
        HeaderValueOptionConfig(name: name, value: parts, action: action, keepEmptyValue: keepEmpty)
    }

    /// Runs `levels` (most specific first) over `fields` and returns the edited field lines.
    private func edit(_ fields: String, _ levels: [HeaderMutationsConfig], peer: PeerAddress = PeerAddress()) -> String {
        let plan = HeaderMutationPlan(levels, request: true)
        let head = Array(fields.utf8)
        let capacity = head.count + plan.reserve(head.count)
        let base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        defer { base.deallocate() }
        head.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: head.count) }
        var e = HeadFieldEditor(base: base, capacity: capacity, fieldsStart: 0, count: head.count)
        e.apply(plan, HeaderValueContext(peer: peer, http10: false))
        XCTAssertFalse(e.overflowed)
        return String(decoding: UnsafeRawBufferPointer(start: base, count: e.count), as: UTF8.self)
    }

    func testRemoteAddressWithPortAndWithout() {
        var peer = PeerAddress()
        peer.family = AF_INET
        peer.low = 0x7F00_0001
        peer.port = 4242
        var level = HeaderMutationsConfig()
        level.requestToAdd = [option("x-a", [.downstreamRemoteAddress]), option("x-b", [.literal("ip="), .downstreamRemoteAddressWithoutPort])]
        XCTAssertEqual(edit("x-c: 1\r\n", [level], peer: peer), "x-c: 1\r\nx-a: 127.0.0.1:4242\r\nx-b: ip=127.0.0.1\r\n")
    }

    func testOverwritesOfOneNameInOneLevelLastWinsAppendsStay() {
        var level = HeaderMutationsConfig()
        level.requestToAdd = [option("x-a", [.literal("o1")], .overwriteIfExistsOrAdd), option("x-a", [.literal("ap")]),
                              option("x-a", [.literal("o2")], .overwriteIfExists)]
        XCTAssertEqual(edit("X-A: old\r\nx-b: 1\r\nx-a: old2\r\n", [level]), "x-b: 1\r\nx-a: ap\r\nx-a: o2\r\n")
    }

    func testLaterLevelSeesEarlierLevelAndRemovesFirst() {
        var route = HeaderMutationsConfig()
        route.requestToAdd = [option("x-a", [.literal("route")])]
        var vhost = HeaderMutationsConfig()
        vhost.requestToRemove = ["x-a"]
        vhost.requestToAdd = [option("x-a", [.literal("vhost")], .addIfAbsent), option("x-copy", [.request("x-b")]),
                              option("x-empty", [.request("x-missing")]), option("x-kept", [], keepEmpty: true)]
        XCTAssertEqual(edit("x-a: client\r\nx-b: bee\r\n", [route, vhost]), "x-b: bee\r\nx-a: vhost\r\nx-copy: bee\r\nx-kept: \r\n")
    }
}
