import EventLoop
import HTTP1

/// `%REQ(name)%` in response headers: Envoy reads its request header map when the response goes
/// out, i.e. the request as it went upstream (the router's and the tracer's fields included).
/// The head is gone by then, so the fields a route's response mutations name are copied into the
/// stream ("name: value" lines, pooled) when the head is encoded; a local reply on a route copies
/// them from the client's head.
extension ProxyWorker {
    func captureRequestValues(route: Int, from head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) {
        guard let http = hcm(s), route >= 0, route < http.responseRequestNames.count else { return }
        let names = http.responseRequestNames[route]
        guard !names.isEmpty, s.pointee.requestValues.count == 0 else { return }
        guard let base = pool.reserve(head.count, in: &s.pointee.requestValues) else { return }
        var w = ByteWriter(base, capacity: head.count)
        var i = 0
        while i + 1 < head.count && !(head[i] == ASCII.cr && head[i + 1] == ASCII.lf) { i += 1 }  // the request line
        i += 2
        var taken: UInt64 = 0
        while i + 1 < head.count {
            var end = i
            while end + 1 < head.count && !(head[end] == ASCII.cr && head[end + 1] == ASCII.lf) { end += 1 }
            if end == i { break }
            var colon = i
            while colon < end && head[colon] != ASCII.colon { colon += 1 }
            for (k, name) in names.enumerated() where k < 64 && taken & (1 << UInt64(k)) == 0 && colon - i == name.count {
                var same = true
                for j in 0..<name.count where ASCII.lowercased(head[i + j]) != name[j] { same = false; break }
                guard same else { continue }
                taken |= 1 << UInt64(k)
                w.put(name)
                w.put(UnsafeRawBufferPointer(rebasing: head[colon..<end]))
                w.crlf()
            }
            i = end + 2
        }
        s.pointee.requestValues.count = w.overflowed ? 0 : w.count
    }
}
