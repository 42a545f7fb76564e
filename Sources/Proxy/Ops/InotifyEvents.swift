import Glibc

/// Reads the pending events of a non-blocking inotify descriptor: each event's watch descriptor,
/// mask and name (empty for events on the watched object itself). Off the hot path (the config
/// watchers' polling).
enum InotifyEvents {
    static func drain(_ fd: Int32, buffer: inout [UInt8], _ body: (_ wd: Int32, _ mask: UInt32, _ name: String) -> Void) {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= n {
                let (wd, mask, length, name) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int, String) in
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let start = offset + MemoryLayout<inotify_event>.size
                    let bytes = raw[start..<(start + length)].prefix { $0 != 0 }
                    return (wd, mask, length, String(decoding: bytes, as: UTF8.self))
                }
                offset += MemoryLayout<inotify_event>.size + length
                body(wd, mask, name)
            }
        }
    }
}
