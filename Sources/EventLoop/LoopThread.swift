import CBallast
import Glibc

/// Starts OS threads for loops, optionally pinned to one CPU each.
public enum LoopThread {
    private final class Box {
        let body: @Sendable () -> Void
        let cpu: Int?
        let name: String
        init(body: @escaping @Sendable () -> Void, cpu: Int?, name: String) {
            self.body = body
            self.cpu = cpu
            self.name = name
        }
    }

    /// A running thread that can be joined.
    public struct Handle: Sendable {
        let thread: pthread_t
        public func join() { pthread_join(thread, nil) }
    }

    /// Starts `body` on a new thread. With `cpu`, the thread pins itself before running it; a
    /// failed pin is reported on stderr and the thread runs unpinned.
    public static func start(name: String, cpu: Int?, _ body: @escaping @Sendable () -> Void) -> Handle {
        let box = Unmanaged.passRetained(Box(body: body, cpu: cpu, name: name)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.name.withCString { cb_set_thread_name($0) }
            if let cpu = box.cpu {
                let err = cb_pin_current_thread(Int32(cpu))
                if err != 0 {
                    Log.warning("cannot pin \(box.name) to cpu \(cpu): \(Log.describe(errno: err))")
                }
            }
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        return Handle(thread: thread)
    }
}

/// CPU placement: `--cpus 0,1,4-7` lists, checked against the CPUs this process may use.
public enum CPUList {
    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parse(_ text: String) throws(ParseError) -> [Int] {
        let available = Int(cb_allowed_cpu_count())
        var cpus: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.filter { $0 != " " }
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let lo = Int(bounds[0]), let hi = Int(bounds[bounds.count - 1]), lo >= 0, lo <= hi else {
                throw ParseError(description: "bad CPU list '\(text)': expected numbers and ranges such as 0,1 or 0-3")
            }
            cpus.append(contentsOf: lo...hi)
        }
        let configured = Int(sysconf(Int32(_SC_NPROCESSORS_CONF)))
        if let bad = cpus.first(where: { $0 >= configured }) {
            throw ParseError(description: "CPU \(bad) does not exist: this machine has CPUs 0-\(configured - 1) (\(available) usable)")
        }
        return cpus
    }

    /// The CPU for worker `i` when workers outnumber the listed CPUs: round robin over the list.
    public static func cpu(forWorker i: Int, in cpus: [Int]) -> Int? {
        cpus.isEmpty ? nil : cpus[i % cpus.count]
    }

    /// NUMA node of a CPU (libnuma), or nil when NUMA is unavailable.
    public static func numaNode(ofCPU cpu: Int) -> Int? {
        let node = cb_numa_node_of_cpu(Int32(cpu))
        return node < 0 ? nil : Int(node)
    }

    public static var numaNodeCount: Int { Int(cb_numa_node_count()) }
}
