import Glibc

/// Watches the SDS files with inotify as Envoy's filesystem subscription does (and as
/// `DynamicConfigWatcher` watches LDS / CDS files): a file counts as changed when another file is
/// moved onto its path or, with `watched_directory`, when anything is moved into that directory.
/// It also watches the directories of the files each secret names (certificate, key, CA), as
/// Envoy's SDS does: a move into such a directory asks for the secret's files to be re-read, once
/// per named file in it (Envoy has one watch callback per file). Rebuilt after each applied update
/// (the files a secret names may change). Main thread only: `poll` is non-blocking.
final class SecretFileWatcher {
    private struct Watch {
        let descriptor: Int32
        /// The SDS file this watch stands for, or nil for a secret's named file.
        let path: String?
        /// The file name that must be moved in; nil: any name (watched_directory, named files).
        let name: String?
        /// The secret whose named file is in the directory (nil for SDS files).
        let secret: String?
    }

    /// What changed since the last poll: SDS files replaced, and per secret the number of its
    /// named files whose directory saw a move.
    struct Changes {
        var files: Set<String> = []
        var keyFiles: [String: Int] = [:]

        var isEmpty: Bool { files.isEmpty && keyFiles.isEmpty }
    }

    private let fd: Int32
    private var watches: [Watch] = []
    /// The sources and named files it watches (rebuilt when the configuration's differ).
    let sources: [String: FileConfigSource]
    let files: [String: [String]]
    private var buffer = [UInt8](repeating: 0, count: 16384)

    init(_ secrets: SecretState) throws(DynamicConfigWatcher.WatchError) {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw DynamicConfigWatcher.WatchError(description: "inotify_init1: \(String(cString: strerror(errno)))") }
        sources = secrets.sources
        files = secrets.files
        for source in Set(secrets.sources.values) {
            if let watched = source.watchedDirectory {
                try add(watched, Watch(descriptor: 0, path: source.path, name: nil, secret: nil), for: source.path)
            } else {
                let (directory, name) = Self.split(source.path)
                try add(directory, Watch(descriptor: 0, path: source.path, name: name, secret: nil), for: source.path)
            }
        }
        for (secret, files) in secrets.files.sorted(by: { $0.key < $1.key }) {
            for file in files { try add(Self.split(file).directory, Watch(descriptor: 0, path: nil, name: nil, secret: secret), for: file) }
        }
    }

    deinit { close(fd) }

    private func add(_ directory: String, _ watch: Watch, for file: String) throws(DynamicConfigWatcher.WatchError) {
        // inotify gives one descriptor per directory: several files in it share it.
        let wd = inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO))
        guard wd >= 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DynamicConfigWatcher.WatchError(description: "cannot watch '\(directory)' for the SDS file '\(file)': \(reason)")
        }
        watches.append(Watch(descriptor: wd, path: watch.path, name: watch.name, secret: watch.secret))
    }

    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        return (slash == path.startIndex ? "/" : String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    func poll() -> Changes {
        var changes = Changes()
        InotifyEvents.drain(fd, buffer: &buffer) { wd, mask, name in
            guard mask & UInt32(IN_MOVED_TO) != 0 else { return }
            for w in watches where w.descriptor == wd && (w.name == nil || w.name == name) {
                if let path = w.path { changes.files.insert(path) }
                if let secret = w.secret { changes.keyFiles[secret, default: 0] += 1 }
            }
        }
        return changes
    }
}
