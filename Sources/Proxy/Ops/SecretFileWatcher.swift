import Glibc

/// Watches the SDS files with inotify as Envoy's filesystem subscription does (and as
/// `DynamicConfigWatcher` watches LDS / CDS files): a file counts as changed when another file is
/// moved onto its path or, with `watched_directory`, when anything is moved into that directory.
/// Main thread only: `poll` is non-blocking and called from the main loop.
final class SecretFileWatcher {
    private struct Watch {
        let descriptor: Int32
        /// The SDS file this watch stands for.
        let path: String
        /// The file name that must be moved in; nil: any name (watched_directory).
        let name: String?
    }

    private let fd: Int32
    private var watches: [Watch] = []
    private var buffer = [UInt8](repeating: 0, count: 16384)

    init(_ sources: [FileConfigSource]) throws(DynamicConfigWatcher.WatchError) {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw DynamicConfigWatcher.WatchError(description: "inotify_init1: \(String(cString: strerror(errno)))") }
        for source in Set(sources) {
            let directory: String
            let name: String?
            if let watched = source.watchedDirectory {
                directory = watched
                name = nil
            } else {
                let slash = source.path.lastIndex(of: "/")
                directory = slash.map { $0 == source.path.startIndex ? "/" : String(source.path[..<$0]) } ?? "."
                name = slash.map { String(source.path[source.path.index(after: $0)...]) } ?? source.path
            }
            // inotify gives one descriptor per directory: several files in it share it.
            let wd = inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO))
            guard wd >= 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw DynamicConfigWatcher.WatchError(description: "cannot watch '\(directory)' for the SDS file '\(source.path)': \(reason)")
            }
            watches.append(Watch(descriptor: wd, path: source.path, name: name))
        }
    }

    deinit { close(fd) }

    /// The SDS files (paths) replaced since the last call.
    func poll() -> Set<String> {
        var changed: Set<String> = []
        InotifyEvents.drain(fd, buffer: &buffer) { wd, mask, name in
            guard mask & UInt32(IN_MOVED_TO) != 0 else { return }
            for w in watches where w.descriptor == wd && (w.name == nil || w.name == name) { changed.insert(w.path) }
        }
        return changed
    }
}
