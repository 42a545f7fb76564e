#if canImport(Glibc)
import Glibc
#endif
import EventLoop
import HTTP1

/// A route's header mutations for one direction, compiled to bytes: the levels in Envoy's
/// default order (route, then virtual host, then route configuration; a later level wins).
public struct HeaderMutationPlan: Sendable {
    struct Add: Sendable {
        enum Part: Sendable {
            case literal([UInt8])
            case remoteAddress, remoteAddressWithoutPort, `protocol`
            case request([UInt8])
        }
        let name: [UInt8]
        let parts: [Part]
        let action: HeaderValueOptionConfig.AppendAction
        let keepEmpty: Bool
    }

    struct Level: Sendable {
        let remove: [[UInt8]]
        let add: [Add]
    }

    let levels: [Level]
    /// Upper bound of the bytes the adds write, `%REQ(...)%` copies aside.
    let fixedBytes: Int
    /// How many `%REQ(...)%` copies the adds may make.
    let requestCopies: Int
    /// The request fields `%REQ(...)%` reads (distinct names): a response plan's are captured
    /// per stream from the request (`ProxyWorker.captureRequestValues`). Computed at compile time
    /// (kept out of the plan: a route is copied per request, and each stored array costs a retain).
    var requestNames: [[UInt8]] {
        var names: [[UInt8]] = []
        for level in levels {
            for add in level.add {
                for case .request(let n) in add.parts where !names.contains(n) { names.append(n) }
            }
        }
        return names
    }

    public var isEmpty: Bool { levels.isEmpty }

    static let maxAddsPerLevel = 64
    static let dateName: [UInt8] = Array("date".utf8)
    static let serverName: [UInt8] = Array("server".utf8)

    /// `levels`: most specific first. `request` picks the request or the response fields.
    init(_ configs: [HeaderMutationsConfig], request: Bool) {
        var levels: [Level] = []
        var fixed = 0
        var copies = 0
        for c in configs {
            let adds = (request ? c.requestToAdd : c.responseToAdd).map { o in
                Add(name: Array(o.name.utf8), parts: o.value.map { p -> Add.Part in
                        switch p {
                        case .literal(let s): .literal(Array(s.utf8))
                        case .downstreamRemoteAddress: .remoteAddress
                        case .downstreamRemoteAddressWithoutPort: .remoteAddressWithoutPort
                        case .protocol: .protocol
                        case .request(let n): .request(Array(n.utf8))
                        }
                    }, action: o.action, keepEmpty: o.keepEmptyValue)
            }
            let removes = (request ? c.requestToRemove : c.responseToRemove).map { Array($0.utf8) }
            guard !adds.isEmpty || !removes.isEmpty else { continue }
            for a in adds {
                fixed += a.name.count + 4
                for p in a.parts {
                    switch p {
                    case .literal(let b): fixed += b.count
                    case .remoteAddress, .remoteAddressWithoutPort: fixed += PeerAddress.maxTextBytes + 8
                    case .protocol: fixed += 8
                    case .request: copies += 1
                    }
                }
            }
            levels.append(Level(remove: removes, add: adds))
        }
        self.levels = levels
        fixedBytes = fixed
        requestCopies = copies
    }

    /// Extra bytes to reserve on top of a head of `headBytes`.
    func reserve(_ headBytes: Int) -> Int {
        levels.isEmpty ? 0 : fixedBytes + requestCopies * (headBytes + fixedBytes)
    }
}

/// What `%...%` operators read.
struct HeaderValueContext {
    let peer: PeerAddress
    let http10: Bool
    /// Response side: the request fields `%REQ(...)%` reads ("name: value" lines, lower-case
    /// names); nil on the request side, which reads the head being edited.
    var requestFields: UnsafeRawBufferPointer? = nil
}

/// Edits the field lines (`name: value\r\n`) written at `base[fieldsStart..<count]` in place:
/// removes lines, appends lines, all within the reserved capacity. Allocates nothing.
struct HeadFieldEditor {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    let fieldsStart: Int
    var count: Int
    var overflowed = false

    /// The index just past the line starting at `i` (after its CRLF).
    func lineEnd(_ i: Int) -> Int {
        var j = i
        while j + 1 < count {
            if base.load(fromByteOffset: j, as: UInt8.self) == ASCII.cr && base.load(fromByteOffset: j + 1, as: UInt8.self) == ASCII.lf { return j + 2 }
            j += 1
        }
        return count
    }

    /// True when the line at `i` is named `name` (lower-case), compared case-insensitively.
    func named(_ i: Int, _ name: [UInt8]) -> Bool {
        guard i + name.count < count, base.load(fromByteOffset: i + name.count, as: UInt8.self) == ASCII.colon else { return false }
        return name.withUnsafeBufferPointer { n in
            for k in 0..<n.count where ASCII.lowercased(base.load(fromByteOffset: i + k, as: UInt8.self)) != n[k] { return false }
            return true
        }
    }

    /// The value of the first line named `name` in `[fieldsStart, end)`.
    func value(_ name: [UInt8], before end: Int) -> Range<Int>? {
        var i = fieldsStart
        while i < end {
            let next = lineEnd(i)
            if named(i, name) {
                var v = i + name.count + 1
                while v < next - 2 && (base.load(fromByteOffset: v, as: UInt8.self) == ASCII.space || base.load(fromByteOffset: v, as: UInt8.self) == 0x09) { v += 1 }
                return v..<(next - 2)
            }
            i = next
        }
        return nil
    }

    /// The value of the first line named `name` (lower-case) in "name: value\r\n" lines.
    static func value(_ name: [UInt8], in lines: UnsafeRawBufferPointer) -> Range<Int>? {
        var i = 0
        while i < lines.count {
            var end = i
            while end + 1 < lines.count && !(lines[end] == ASCII.cr && lines[end + 1] == ASCII.lf) { end += 1 }
            if end - i > name.count && lines[i + name.count] == ASCII.colon {
                var same = true
                for k in 0..<name.count where ASCII.lowercased(lines[i + k]) != name[k] { same = false; break }
                if same {
                    var v = i + name.count + 1
                    while v < end && (lines[v] == ASCII.space || lines[v] == 0x09) { v += 1 }
                    return v..<end
                }
            }
            i = end + 2
        }
        return nil
    }

    mutating func removeRange(_ r: Range<Int>) {
        (base + r.lowerBound).copyMemory(from: base + r.upperBound, byteCount: count - r.upperBound)
        count -= r.count
    }

    /// Removes every line named `name` in `[fieldsStart, end)`; `end` moves with the removals.
    mutating func removeAll(_ name: [UInt8], before end: inout Int) {
        var i = fieldsStart
        while i < end {
            let next = lineEnd(i)
            if named(i, name) {
                removeRange(i..<next)
                end -= next - i
            } else {
                i = next
            }
        }
    }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        guard count + bytes.count <= capacity else { overflowed = true; return }
        (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func put(_ bytes: [UInt8]) { bytes.withUnsafeBytes { put($0) } }

    mutating func put(_ literal: StaticString) {
        literal.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
    }

    mutating func writeValue(_ parts: [HeaderMutationPlan.Add.Part], _ ctx: HeaderValueContext, sourceEnd: Int) {
        for part in parts {
            switch part {
            case .literal(let b): put(b)
            case .protocol: put(ctx.http10 ? "HTTP/1.0" : "HTTP/1.1")
            case .remoteAddress, .remoteAddressWithoutPort:
                guard ctx.peer.family > 0 else { continue }
                var w = ByteWriter(base + count, capacity: capacity - count)
                let bracket = ctx.peer.family != AF_INET
                if bracket, case .remoteAddress = part { w.put(byte: 0x5B) }
                ctx.peer.write(&w)
                if case .remoteAddress = part {
                    if bracket { w.put(byte: 0x5D) }
                    w.put(byte: ASCII.colon)
                    w.putDecimal(Int(ctx.peer.port))
                }
                if w.overflowed { overflowed = true } else { count += w.count }
            case .request(let name):
                if let fields = ctx.requestFields {
                    guard let v = HeadFieldEditor.value(name, in: fields), v.count > 0 else { continue }
                    guard count + v.count <= capacity else { overflowed = true; continue }
                    (base + count).copyMemory(from: fields.baseAddress! + v.lowerBound, byteCount: v.count)
                    count += v.count
                    continue
                }
                guard let v = value(name, before: sourceEnd), v.count > 0 else { continue }
                guard count + v.count <= capacity else { overflowed = true; continue }
                (base + count).copyMemory(from: base + v.lowerBound, byteCount: v.count)
                count += v.count
            }
        }
    }

    /// Applies the plan's levels in order, as Envoy's header parser evaluates one level: removals
    /// first, then every add's value and condition against the fields as they stand, then the
    /// overwrites (each replacing all earlier lines of its name), then the appends.
    mutating func apply(_ plan: HeaderMutationPlan, _ ctx: HeaderValueContext) {
        for level in plan.levels {
            for name in level.remove {
                var end = count
                removeAll(name, before: &end)
            }
            var staging = count
            var overwrites: UInt64 = 0
            var staged = 0
            for add in level.add {
                let present = value(add.name, before: staging) != nil
                if add.action == .addIfAbsent && present { continue }
                if add.action == .overwriteIfExists && !present { continue }
                let lineStart = count
                put(add.name)
                put(": ")
                let valueStart = count
                writeValue(add.parts, ctx, sourceEnd: staging)
                if count == valueStart && !add.keepEmpty { count = lineStart; continue }
                put("\r\n")
                if add.action == .overwriteIfExistsOrAdd || add.action == .overwriteIfExists { overwrites |= 1 << UInt64(staged) }
                staged += 1
            }
            guard !overflowed else { return }
            // Overwrites: the last one of a name survives, and no line of that name from before this level.
            var j = 0
            var line = staging
            while j < staged {
                let next = lineEnd(line)
                guard overwrites & (1 << UInt64(j)) != 0 else { line = next; j += 1; continue }
                let name = nameRange(line)
                if laterOverwrite(of: name, after: next, bits: overwrites >> UInt64(j + 1)) {
                    removeRange(line..<next)
                    // Drop bit j; the higher bits move down one.
                    let low = overwrites & ((1 << UInt64(j)) - 1)
                    overwrites = low | ((overwrites >> UInt64(j + 1)) << UInt64(j))
                    staged -= 1
                    continue
                }
                let before = staging
                removeAllNamed(name, before: &staging)
                line = next - (before - staging)
                j += 1
            }
        }
    }

    private func nameRange(_ line: Int) -> Range<Int> {
        var k = line
        while base.load(fromByteOffset: k, as: UInt8.self) != ASCII.colon { k += 1 }
        return line..<k
    }

    /// Whether a staged overwrite line after `start` (bit 0 of `bits` is the line at `start`) has
    /// the name at `name`.
    private func laterOverwrite(of name: Range<Int>, after start: Int, bits: UInt64) -> Bool {
        var b = bits
        var i = start
        while b != 0 && i < count {
            let next = lineEnd(i)
            if b & 1 != 0 && sameName(i, name) { return true }
            b >>= 1
            i = next
        }
        return false
    }

    private func sameName(_ i: Int, _ name: Range<Int>) -> Bool {
        guard i + name.count < count, base.load(fromByteOffset: i + name.count, as: UInt8.self) == ASCII.colon else { return false }
        for k in 0..<name.count
        where ASCII.lowercased(base.load(fromByteOffset: i + k, as: UInt8.self)) != ASCII.lowercased(base.load(fromByteOffset: name.lowerBound + k, as: UInt8.self)) {
            return false
        }
        return true
    }

    /// Removes the lines in `[fieldsStart, end)` named like the line at `name` (which lies after `end`).
    private mutating func removeAllNamed(_ name: Range<Int>, before end: inout Int) {
        var i = fieldsStart
        var n = name
        while i < end {
            let next = lineEnd(i)
            if sameName(i, n) {
                removeRange(i..<next)
                end -= next - i
                n = (n.lowerBound - (next - i))..<(n.upperBound - (next - i))
            } else {
                i = next
            }
        }
    }
}
