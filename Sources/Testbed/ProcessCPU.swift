import Foundation
import Glibc
import Report

/// CPU time (user + system) of a process tree: the process, all its threads, its live
/// descendants (e.g. nginx's workers under the master) and the children it has already reaped.
/// Live processes are read through their CPU-time clocks (nanosecond resolution, every thread
/// included); reaped children only through `/proc/PID/stat`'s cutime+cstime (clock ticks).
enum ProcessTreeCPU {
    /// The tree's CPU time in nanoseconds, or nil when `root` is gone.
    static func nanos(root: pid_t) -> Int64? {
        let table = processTable()
        guard table[root] != nil else { return nil }
        var total: Int64 = 0
        for pid in descendants(of: root, parents: table.mapValues(\.parent)) {
            if let live = clockNanos(pid) {
                total += live
            } else if let entry = table[pid] {
                total += entry.ticks * nanosPerTick  // exited between the scan and the read
            }
            total += (table[pid]?.reapedTicks ?? 0) * nanosPerTick
        }
        return total
    }

    /// `root` and every process whose parent chain leads to it.
    static func descendants(of root: pid_t, parents: [pid_t: pid_t]) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for (pid, parent) in parents { children[parent, default: []].append(pid) }
        var out: [pid_t] = []
        var stack = [root]
        var seen: Set<pid_t> = []
        while let pid = stack.popLast() {
            guard seen.insert(pid).inserted else { continue }
            out.append(pid)
            stack += children[pid] ?? []
        }
        return out.sorted()
    }

    struct StatEntry: Equatable {
        var parent: pid_t
        /// utime + stime of the process (all its threads), clock ticks.
        var ticks: Int64
        /// cutime + cstime: children it waited for, clock ticks.
        var reapedTicks: Int64
    }

    /// Parses `/proc/PID/stat` (the command name may hold spaces and parentheses: fields are
    /// counted after the last `)`).
    static func parseStat(_ text: String) -> StatEntry? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] = state (field 3), [1] = ppid (4), [11] = utime (14), [12] = stime, [13] = cutime, [14] = cstime.
        guard fields.count > 14, let parent = pid_t(fields[1]),
              let u = Int64(fields[11]), let s = Int64(fields[12]), let cu = Int64(fields[13]), let cs = Int64(fields[14]) else { return nil }
        return StatEntry(parent: parent, ticks: u + s, reapedTicks: cu + cs)
    }

    static func processTable() -> [pid_t: StatEntry] {
        var table: [pid_t: StatEntry] = [:]
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return table }
        for name in names {
            guard let pid = pid_t(name), let text = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let entry = parseStat(text) else { continue }
            table[pid] = entry
        }
        return table
    }

    /// The process's CPU-time clock: every thread, live or exited, in nanoseconds.
    static func clockNanos(_ pid: pid_t) -> Int64? {
        var clock = clockid_t()
        guard clock_getcpuclockid(pid, &clock) == 0 else { return nil }
        var ts = timespec()
        guard clock_gettime(clock, &ts) == 0 else { return nil }
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static let nanosPerTick: Int64 = 1_000_000_000 / Int64(max(1, sysconf(Int32(_SC_CLK_TCK))))
}

/// The system under test's CPU time over the load's measured window: sampled when the load
/// prints its window markers on stderr (`ballast load` does, after the warm-up and at the end).
struct CPUWindowSampler {
    let systemPID: pid_t
    let loadStderrPath: String
    private(set) var startNanos: Int64?
    private(set) var endNanos: Int64?
    /// CPU time of the system over the window, once both ends were sampled.
    var systemSeconds: Double? {
        guard let s = startNanos, let e = endNanos, e >= s else { return nil }
        return Double(e - s) / 1e9
    }
    var waiting: Bool { endNanos == nil }

    init(systemPID: pid_t, loadStderrPath: String) {
        self.systemPID = systemPID
        self.loadStderrPath = loadStderrPath
    }

    /// Looks for the next marker and samples at it; call often while the load runs.
    mutating func poll(startMarker: String, endMarker: String) {
        guard waiting, let text = try? String(contentsOfFile: loadStderrPath, encoding: .utf8) else { return }
        if startNanos == nil, text.contains(startMarker) { startNanos = ProcessTreeCPU.nanos(root: systemPID) }
        if startNanos != nil, text.contains(endMarker) { endNanos = ProcessTreeCPU.nanos(root: systemPID) }
    }

    /// The load exited without an end marker (killed): sample now.
    mutating func finish() {
        if startNanos != nil && endNanos == nil { endNanos = ProcessTreeCPU.nanos(root: systemPID) }
    }
}

extension PointCPU {
    /// The load generator's own CPU time over the measured window, from its JSON (`Ballast.MeasuredCPUSeconds`).
    static func loadSeconds(from ballast: JSONValue?) -> Double? {
        guard case .object(let o)? = ballast, case .number(let v)? = o["MeasuredCPUSeconds"], v > 0 else { return nil }
        return v
    }
}
