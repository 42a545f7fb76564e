import EventLoop
import Glibc

/// A connection whose listener filters (tls_inspector, http_inspector) are reading its first
/// bytes. The bytes are received (not peeked), kept here until the inspectors decide, then handed
/// to the chosen chain ahead of anything received later.
struct Inspection {
    var fd: Int32 = -1
    /// Everything received so far, when one receive was not enough to decide.
    var held = ByteBuffer.empty
    var deadline: Int64 = 0
    var timer = DeadlineTimer()
}

/// What the listener's inspectors make of the bytes so far.
enum InspectionResult {
    case needMore
    /// Decided: the facts (ranges index the inspected bytes, or the worker's ClientHello scratch).
    case decided(ConnectionFacts, helloInScratch: Bool)
    /// A ClientHello above Envoy's bound: the connection is closed.
    case tooLarge
}

extension ProxyWorker {
    /// Bytes kept while inspecting, at most: a ClientHello at its bound split into small records.
    static var maxInspectedBytes: Int { 2 * ClientHelloInspector.maxClientHello }

    /// Starts the listener filters on an accepted connection (its slots taken).
    func inspect(_ fd: Int32, _ inspection: ListenerInspection, _ loop: Loop) {
        var i = Inspection()
        i.fd = fd
        if let timeout = inspection.timeoutNanos { i.deadline = loop.now + timeout }
        let token = inspections.insert(i)
        inc(stats.inspection.preCxActive)
        if let p = inspections.pointer(token) { p.pointee.timer.arm(p.pointee.deadline, id: token, in: &loop.timers) }
        loop.backend.armReceive(fd: fd, token: token)
    }

    func inspectionReceived(_ c: Completion, _ loop: Loop) {
        let token = c.token
        guard let p = inspections.pointer(token) else { return }
        guard c.result > 0 else {
            // The client left (or failed) before the inspectors could decide.
            if c.result < 0, listenerPlan.inspection?.inspectors.contains(.httpInspector) == true { inc(stats.inspection.readError) }
            closeInspection(token, loop)
            return
        }
        if p.pointee.held.count == 0 {
            // Usually the first receive decides: the lent bytes go to the chain without a copy.
            if finishInspection(token, c.bytes, loop) { return }
            guard let p = inspections.pointer(token) else { return }
            guard pool.append(c.bytes, to: &p.pointee.held) else { closeInspection(token, loop); return }
            return
        }
        guard pool.append(c.bytes, to: &p.pointee.held), p.pointee.held.count <= Self.maxInspectedBytes else {
            if listenerPlan.inspection?.inspectors.contains(.tlsInspector) == true { inc(stats.inspection.clientHelloTooLarge) }
            closeInspection(token, loop)
            return
        }
        _ = finishInspection(token, p.pointee.held.bytes, loop)
    }

    /// Runs the inspectors on `bytes` (all received so far); when they decide, chooses the chain
    /// and hands the connection over (or closes it). Returns false when they need more bytes.
    private func finishInspection(_ token: UInt64, _ bytes: UnsafeRawBufferPointer, _ loop: Loop) -> Bool {
        guard let inspection = listenerPlan.inspection else {
            // A reload removed the listener filters while this connection was in them.
            handOver(token, ConnectionFacts(), bytes, rangesIn: bytes, loop)
            return true
        }
        switch runInspectors(inspection, bytes) {
        case .needMore:
            return false
        case .tooLarge:
            inc(stats.inspection.clientHelloTooLarge)
            closeInspection(token, loop)
            return true
        case .decided(let facts, let inScratch):
            countInspection(inspection, facts)
            handOver(token, facts, bytes, rangesIn: inScratch ? UnsafeRawBufferPointer(helloScratch) : bytes, loop)
            return true
        }
    }

    /// The listener filters in order: tls_inspector decides on the ClientHello; http_inspector
    /// (skipped when TLS was found, as Envoy) on the request line.
    private func runInspectors(_ inspection: ListenerInspection, _ bytes: UnsafeRawBufferPointer) -> InspectionResult {
        var facts = ConnectionFacts()
        var inScratch = false
        for inspector in inspection.inspectors {
            switch inspector {
            case .tlsInspector:
                switch ClientHelloInspector.inspect(bytes, scratch: helloScratch) {
                case .needMore: return .needMore
                case .tooLarge: return .tooLarge
                case .notTLS: break
                case .clientHello(let hello):
                    facts.tls = true
                    facts.serverName = hello.serverName
                    facts.alpn = hello.protocols
                    inScratch = hello.inScratch
                }
            case .httpInspector:
                guard !facts.tls else { continue }
                let found = HTTPInspector.inspect(bytes)
                if found == .needMore { return .needMore }
                facts.http = found
            case .originalDst:
                continue
            }
        }
        return .decided(facts, helloInScratch: inScratch)
    }

    private func countInspection(_ inspection: ListenerInspection, _ f: ConnectionFacts) {
        let s = stats.inspection
        if inspection.inspectors.contains(.tlsInspector) {
            if f.tls {
                inc(s.tlsFound)
                if f.serverName != nil { inc(s.sniFound) } else { inc(s.sniNotFound) }
                if f.alpn.count > 0 { inc(s.alpnFound) } else { inc(s.alpnNotFound) }
            } else {
                inc(s.tlsNotFound)
            }
        }
        if inspection.inspectors.contains(.httpInspector) && !f.tls {
            switch f.http {
            case .http10: inc(s.http10Found)
            case .http11: inc(s.http11Found)
            case .http2: inc(s.http2Found)
            default: inc(s.httpNotFound)
            }
        }
    }

    /// The inspectors decided: the chain for the facts and the connection's addresses, then the
    /// connection leaves the inspection table for the chain, with the bytes read so far.
    private func handOver(_ token: UInt64, _ facts: ConnectionFacts, _ bytes: UnsafeRawBufferPointer,
                          rangesIn base: UnsafeRawBufferPointer, _ loop: Loop) {
        guard let p = inspections.pointer(token) else { return }
        let fd = p.pointee.fd
        var facts = facts
        var chain: Int? = 0
        if let selector = listenerPlan.selector {
            readAddresses(fd, selector, into: &facts)
            chain = selector.select(facts, base)
        }
        guard let chain else {
            inc(stats.inspection.noFilterChainMatch)
            closeInspection(token, loop)
            return
        }
        var held = p.pointee.held
        p.pointee.held = .empty
        inc(stats.inspection.preCxActive, by: -1)
        inspections.remove(token)
        if let range = facts.serverName, range.count > 0, capture?.serverName == true {
            // The log gets the name in lower case, as Envoy's inspector keeps it; the bytes
            // themselves go on unchanged.
            let name = UnsafeRawBufferPointer(rebasing: base[range])
            withUnsafeTemporaryAllocation(byteCount: name.count, alignment: 1) { lower in
                for i in 0..<name.count { lower[i] = name[i] >= 0x41 && name[i] <= 0x5A ? name[i] | 0x20 : name[i] }
                serve(fd, chain: chain, inspected: true, held: bytes, serverName: UnsafeRawBufferPointer(lower), loop)
            }
        } else {
            serve(fd, chain: chain, inspected: true, held: bytes, loop)
        }
        pool.release(&held)
    }

    func inspectionTimer(_ token: UInt64, _ loop: Loop) {
        guard let p = inspections.pointer(token) else { return }
        p.pointee.timer.fired(now: loop.now)
        guard p.pointee.deadline != 0, p.pointee.deadline <= loop.now else {
            p.pointee.timer.arm(p.pointee.deadline, id: token, in: &loop.timers)
            return
        }
        inc(stats.inspection.preCxTimeout)
        guard listenerPlan.inspection?.continueOnTimeout == true else {
            closeInspection(token, loop)
            return
        }
        // continue_on_listener_filters_timeout: the chain is chosen with nothing inspected.
        let bytes = p.pointee.held.bytes
        handOver(token, ConnectionFacts(), bytes, rangesIn: bytes, loop)
    }

    /// Closes a connection still in its listener filters.
    func closeInspection(_ token: UInt64, _ loop: Loop) {
        guard let p = inspections.pointer(token) else { return }
        loop.backend.close(fd: p.pointee.fd)
        pool.release(&p.pointee.held)
        inc(stats.inspection.preCxActive, by: -1)
        inspections.remove(token)
        loads.connectionClosed(index)
        releaseConnectionSlots()
    }

    /// The addresses the listener's matches read: the destination (the restored original one
    /// when original_dst restores it) and the peer.
    func readAddresses(_ fd: Int32, _ selector: FilterChainSelector, into facts: inout ConnectionFacts) {
        if selector.readsLocal {
            let restored = restoredDestination(fd)
            if restored.isSet {
                facts.local = restored
            } else if let a = try? Sockets.localAddress(fd) {
                facts.local = CompactAddress(a)
            }
        }
        if selector.readsPeer, let a = Sockets.peerAddress(fd) { facts.peer = CompactAddress(a) }
    }

    /// A connection no chain matches and the listener has no default chain: closed, as Envoy.
    func refuseUnmatched(_ fd: Int32) {
        inc(stats.inspection.noFilterChainMatch)
        loads.connectionClosed(index)
        releaseConnectionSlots()
        Glibc.close(fd)
    }
}
