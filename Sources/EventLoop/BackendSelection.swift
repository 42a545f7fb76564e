/// Resolves `--io auto|epoll|io_uring` once at start.
public enum BackendSelection {
    /// The backend to use, and a line to log when `auto` fell back.
    public struct Choice: Sendable {
        public let kind: IOBackendKind
        public let note: String?
        public init(kind: IOBackendKind, note: String?) {
            self.kind = kind
            self.note = note
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case refused(backend: IOBackendKind, reason: String)
        public var description: String {
            switch self {
            case let .refused(backend, reason): "I/O backend \(backend.rawValue) is not available: \(reason)"
            }
        }
    }

    public static func resolve(_ wanted: IOBackendKind) throws(Failure) -> Choice {
        switch wanted {
        case .epoll:
            return Choice(kind: .epoll, note: nil)
        case .ioUring:
            if let reason = IoUringProbe.reason { throw .refused(backend: .ioUring, reason: reason) }
            return Choice(kind: .ioUring, note: nil)
        case .auto:
            if let reason = IoUringProbe.reason {
                return Choice(kind: .epoll, note: "io_uring unavailable (\(reason)); falling back to epoll")
            }
            return Choice(kind: .ioUring, note: nil)
        }
    }
}
