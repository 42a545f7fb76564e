import HTTP1

/// The request target as Envoy reads it: origin-form (`/a?b`) as is; absolute-form
/// (`http://host/a?b`, RFC 9112 3.2.2) split into its authority, which replaces Host, and the
/// origin-form part, which is routed and sent upstream (`/` when the URL has no path).
struct RequestTarget {
    /// What goes on the upstream request line (empty: write `/`).
    var origin: Range<Int>
    /// The path for routing (origin up to `?`); empty with an empty origin (the path is `/`).
    var path: Range<Int>
    var query: Range<Int>?
    /// The URL's authority for absolute-form targets, else nil (the Host field counts).
    var authority: Range<Int>?
    /// `http://host` or `http://host?x`: the upstream line needs a `/` before `origin`.
    var needsSlash = false

    init(_ head: UnsafeRawBufferPointer, _ p: UnsafeMutablePointer<RequestHeadParser>) {
        let target = p.pointee.targetRange
        origin = target
        path = p.pointee.pathRange
        query = p.pointee.queryRange
        authority = nil
        guard target.count > 7, head[target.lowerBound] != 0x2F else { return }
        let schemeLength: Int
        if ASCII.equalsCaseInsensitive(head, target.lowerBound..<(target.lowerBound + 7), "http://") {
            schemeLength = 7
        } else if target.count > 8, ASCII.equalsCaseInsensitive(head, target.lowerBound..<(target.lowerBound + 8), "https://") {
            schemeLength = 8
        } else {
            return
        }
        let start = target.lowerBound + schemeLength
        var end = start
        while end < target.upperBound, head[end] != 0x2F, head[end] != 0x3F { end += 1 }
        authority = start..<end
        origin = end..<target.upperBound
        needsSlash = end == target.upperBound || head[end] == 0x3F
        if let q = query, q.lowerBound > end {
            path = end..<(q.lowerBound - 1)
        } else if query != nil {
            path = end..<end  // `http://host?x`: path `/`
        } else {
            path = end..<target.upperBound
        }
    }

}
