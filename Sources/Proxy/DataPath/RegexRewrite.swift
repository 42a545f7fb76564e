import CRE2

/// A route's `regex_rewrite` (a pattern and an RE2 substitution: `\0`-`\9` name groups, `\\` is a
/// backslash), applied to the path as RE2::GlobalReplace does, which is what Envoy calls: every
/// non-overlapping match replaced, an empty match right after the previous match skipped. Written
/// straight into the upstream head: no allocation per request.
public struct RegexRewrite: Sendable {
    enum Piece: Sendable {
        case literal([UInt8])
        case group(Int)
    }

    let regex: RE2Regex
    let pieces: [Piece]
    /// Groups read per match (the highest referenced + 1, at least 1 for the whole match).
    let groups: Int
    /// Literal bytes and group references of one substitution (for the head's size bound).
    let literalBytes: Int
    let groupReferences: Int

    public struct SubstitutionError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `substitution` against `regex` (its referenced groups must exist).
    public init(_ regex: RE2Regex, substitution: String) throws(SubstitutionError) {
        var pieces: [Piece] = []
        var literal: [UInt8] = []
        var highest = 0
        var bytes = Array(substitution.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == 0x5C else { literal.append(b); continue }  // '\'
            guard let next = bytes.popFirst() else { throw SubstitutionError(description: "ends with a lone backslash") }
            if next == 0x5C { literal.append(0x5C); continue }
            guard next >= 0x30 && next <= 0x39 else {
                throw SubstitutionError(description: "'\\\(Character(UnicodeScalar(next)))' is not a group reference (\\0-\\9) or \\\\")
            }
            let n = Int(next - 0x30)
            guard n <= regex.groupCount else {
                throw SubstitutionError(description: "refers to group \\\(n) but the pattern has \(regex.groupCount) group(s)")
            }
            if !literal.isEmpty { pieces.append(.literal(literal)); literal = [] }
            pieces.append(.group(n))
            highest = max(highest, n)
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        self.regex = regex
        self.pieces = pieces
        groups = highest + 1
        literalBytes = pieces.reduce(0) { if case .literal(let l) = $1 { $0 + l.count } else { $0 } }
        groupReferences = pieces.reduce(0) { if case .group = $1 { $0 + 1 } else { $0 } }
    }

    /// An upper bound of the rewrite of `count` bytes, for reserving head space: each match
    /// (at most count + 1) adds the literals and groups no longer than the text. A longer result
    /// overflows the writer, and the request gets 431 as for any head too large.
    func bound(_ count: Int) -> Int {
        count + min((count + 1) * (literalBytes + groupReferences * count), 16_384)
    }

    /// Writes `text` with every match replaced.
    func rewrite(_ text: UnsafeRawBufferPointer, into w: inout ByteWriter) {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 20) { spans in
            var position = 0
            var lastEnd = -1
            while position <= text.count {
                guard regex.match(text, from: position, groups: groups, into: spans.baseAddress!) else { break }
                let begin = spans[0], end = spans[1]
                if begin == end && begin == lastEnd {
                    // An empty match where the last one ended: copy one character and go on.
                    guard position < text.count else { break }
                    let n = Self.characterLength(text[position])
                    let stop = min(position + n, text.count)
                    w.put(UnsafeRawBufferPointer(rebasing: text[position..<stop]))
                    position = stop
                    continue
                }
                w.put(UnsafeRawBufferPointer(rebasing: text[position..<begin]))
                for piece in pieces {
                    switch piece {
                    case .literal(let l): l.withUnsafeBytes { w.put($0) }
                    case .group(let g):
                        let gb = spans[2 * g], ge = spans[2 * g + 1]
                        if gb >= 0 { w.put(UnsafeRawBufferPointer(rebasing: text[gb..<ge])) }
                    }
                }
                position = end
                lastEnd = end
            }
            if position < text.count { w.put(UnsafeRawBufferPointer(rebasing: text[position...])) }
        }
    }

    /// Bytes in the UTF-8 sequence a lead byte starts (1 for ASCII and stray continuation bytes).
    static func characterLength(_ lead: UInt8) -> Int {
        switch lead {
        case 0xF0...: return 4
        case 0xE0...: return 3
        case 0xC0...: return 2
        default: return 1
        }
    }
}

extension RE2Regex {
    public var groupCount: Int { Int(ballast_re2_group_count(pointer)) }

    /// The leftmost match in `text` at or after `start`: `groups` (begin, end) pairs into `spans`
    /// ((-1, -1) for a group that did not take part). False when nothing matches.
    func match(_ text: UnsafeRawBufferPointer, from start: Int, groups: Int, into spans: UnsafeMutablePointer<Int>) -> Bool {
        ballast_re2_match(pointer, text.baseAddress?.assumingMemoryBound(to: CChar.self), text.count, start, spans, Int32(groups)) != 0
    }
}
