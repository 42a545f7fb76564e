import CBallast
import Glibc

/// Checks once whether this kernel lets us use io_uring the way the backend needs it
/// (multishot accept and receive with a provided-buffer ring), and says why not.
public enum IoUringProbe {
    /// nil when io_uring is usable; otherwise the reason, for the start-up error or the fallback log.
    public static let reason: String? = probe()

    private static func probe() -> String? {
        if let forced = getenv("BALLAST_REFUSE_IO_URING") {
            // Test hook: behave as if the kernel refused io_uring, with this text as the reason.
            return "refused by BALLAST_REFUSE_IO_URING=\(String(cString: forced))"
        }
        if let text = readSmallFile("/proc/sys/kernel/io_uring_disabled"),
           let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), value == 2 {
            return "disabled by sysctl kernel.io_uring_disabled=2"
        }
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        if parts.count >= 2, (parts[0], parts[1]) < (6, 0) {
            return "kernel \(release) is older than 6.0 (multishot receive needs 6.0)"
        }
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        defer { ring.deallocate() }
        var params = io_uring_params()
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
        let rc = io_uring_queue_init_params(8, ring, &params)
        if rc < 0 {
            let why = rc == -EPERM ? "not permitted (kernel.io_uring_disabled or seccomp)" : Log.describe(errno: -rc)
            return "io_uring_setup failed: \(why) (errno \(-rc))"
        }
        defer { io_uring_queue_exit(ring) }
        guard let probe = io_uring_get_probe_ring(ring) else { return "io_uring probe failed" }
        defer { io_uring_free_probe(probe) }
        let needed: [(Int32, String)] = [
            (Int32(IORING_OP_ACCEPT.rawValue), "accept"), (Int32(IORING_OP_RECV.rawValue), "recv"),
            (Int32(IORING_OP_SEND.rawValue), "send"), (Int32(IORING_OP_CONNECT.rawValue), "connect"),
            (Int32(IORING_OP_CLOSE.rawValue), "close"), (Int32(IORING_OP_POLL_ADD.rawValue), "poll"),
            (Int32(IORING_OP_ASYNC_CANCEL.rawValue), "cancel"),
        ]
        for (op, label) in needed where io_uring_opcode_supported(probe, op) == 0 {
            return "the kernel does not support IORING_OP_\(label.uppercased())"
        }
        return nil
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buffer, 64)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

extension Set where Element == Character {
    static var whitespacesAndNewlines: Set<Character> { [" ", "\n", "\t", "\r"] }
}
