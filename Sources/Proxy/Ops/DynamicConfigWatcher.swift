import EventLoop
import Glibc

/// Watches the dynamic-resource files with inotify, as Envoy's filesystem subscription does: a
/// file counts as changed when another file is moved onto its path (`mv new lds.yaml`, the
/// atomic replace Envoy's docs ask for) or, with `watched_directory`, when anything is moved
/// into that directory. Writes in place are not noticed (Envoy does not notice them either).
/// Main thread only: `poll` is non-blocking and called from the main loop.
final class DynamicConfigWatcher {
    private struct Watch {
        let descriptor: Int32
        let kind: SubscriptionKey
        /// The file name that must be moved in; nil: any name (watched_directory).
        let name: String?
    }

    private let fd: Int32
    private var watches: [Watch] = []
    private var buffer = [UInt8](repeating: 0, count: 16384)

    struct WatchError: Error, CustomStringConvertible {
        let description: String
    }

    /// One watch per subscription (inotify gives a directory watched twice one descriptor; each
    /// subscription matches its own file name against the events).
    init(_ sources: [SubscriptionKey: FileConfigSource]) throws(WatchError) {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw WatchError(description: "inotify_init1: \(String(cString: strerror(errno)))") }
        for (kind, source) in sources.sorted(by: { $0.key < $1.key }) {
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
            let wd = inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO))
            guard wd >= 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw WatchError(description: "cannot watch '\(directory)' for \(kind): \(reason)")
            }
            watches.append(Watch(descriptor: wd, kind: kind, name: name))
        }
    }

    deinit { close(fd) }

    /// The sources whose file was replaced since the last call (each at most once).
    func poll() -> [SubscriptionKey] {
        var changed: [SubscriptionKey] = []
        InotifyEvents.drain(fd, buffer: &buffer) { wd, mask, name in
            guard mask & UInt32(IN_MOVED_TO) != 0 else { return }
            for w in watches where w.descriptor == wd && (w.name == nil || w.name == name) && !changed.contains(w.kind) {
                changed.append(w.kind)
            }
        }
        // CDS, EDS, LDS, RDS (Envoy's order): a listener update may name a cluster the cluster
        // update brings.
        return changed.sorted()
    }
}
