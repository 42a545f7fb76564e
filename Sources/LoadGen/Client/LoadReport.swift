import EventLoop
import Glibc
import Histogram

/// The reports of a finished run: fortio's text summary, fortio's JSON (plus a `Ballast` object),
/// and the HdrHistogram percentile distribution (`-hgrm`).
public struct LoadReport {
    public let result: LoadResult
    public let version: String
    /// Bodies fetched from `-workers-url` before and after the run (stored as JSON strings), or nil.
    public var workersBefore: String?
    public var workersAfter: String?

    public init(result: LoadResult, version: String) {
        self.result = result
        self.version = version
    }

    var options: LoadOptions { result.options }
    var tally: LoadTally { result.tally }
    var openLoop: Bool { options.qps > 0 }

    // MARK: percentiles

    static func percentiles(_ h: Histogram<UInt64>, _ list: [Double]) -> [(Double, Double)] {
        guard h.totalCount > 0 else { return [] }
        return list.map { ($0, Double(h.valueAtPercentile($0)) / 1e9) }
    }

    // MARK: text

    /// fortio-like text summary.
    public func text() -> String {
        var out: [String] = []
        let r = result
        let qpsText = openLoop ? "\(LoadFormat.g(options.qps)) qps" : "max qps"
        out.append("ballast load \(version): \(qpsText), \(options.connections) connection(s) on \(r.threads) \(r.backend.rawValue) thread(s), \(options.requestedDurationText)\(options.keepAlive ? "" : ", no keep-alive") to \(options.url.text)")
        out.append("Ended after \(GoDuration.format(nanos: r.actualDurationNanos)) : \(r.calls) calls. qps=\(LoadFormat.g(r.actualQPS, 5))\(r.interrupted ? " (interrupted)" : "")\(r.aborted ? " (aborted by -abort-on \(options.abortOn))" : "")")
        out += histogramText("Aggregated Function Time", tally.duration, Self.percentiles(tally.latency, options.percentiles), withBuckets: true)
        if tally.errorDuration.count > 0 {
            out += histogramText("Error cases", tally.errorDuration, [], withBuckets: false)
        } else {
            out.append("Error cases : no data")
        }
        if openLoop {
            let corrected = Self.percentiles(tally.corrected, options.percentiles)
            out += histogramText("Corrected for coordinated omission (from the intended send time)", tally.correctedStats, corrected, withBuckets: false)
            let late = r.calls > 0 ? 100 * Double(tally.lateStarts) / Double(r.calls) : 0
            out.append("Requested \(LoadFormat.g(options.qps)) qps, achieved \(LoadFormat.g(r.actualQPS, 5)) qps; \(tally.lateStarts) request(s) (\(LoadFormat.c("%.1f", late)) %) started more than one interval late")
            if r.calls > 0 && (r.actualQPS < 0.95 * options.qps || late > 5) && !r.interrupted {
                out.append("WARNING: the target did not keep up with the requested rate")
            }
        }
        let sockets = tally.socketsPerConnection.reduce(0, +)
        out.append("Sockets used: \(sockets) (for perfect keepalive, would be \(options.connections))")
        out.append("Uniform: \(options.uniform), Jitter: \(options.jitter)")
        let total = Double(max(1, r.calls))
        for (code, n) in retCodes() {
            out.append("Code \(code < 0 ? " -1" : LoadFormat.c("%3d", Int32(code))) : \(n) (\(LoadFormat.c("%.1f", 100 * Double(n) / total)) %)")
        }
        if tally.socketErrors > 0 {
            let kinds = LoadErrorKind.allCases.filter { tally.errorKinds[$0.rawValue] > 0 }
                .map { "\($0.name) \(tally.errorKinds[$0.rawValue])" }
            out.append("Socket errors: \(kinds.joined(separator: ", "))")
        }
        out.append(counterText("Response Header Sizes", tally.headerSizes))
        out.append(counterText("Response Body/Total Sizes", tally.sizes))
        let pc = perConnection()
        out.append("Requests per connection: min \(pc.min) max \(pc.max) avg \(LoadFormat.g(pc.avg)) +/- \(LoadFormat.g(pc.stdDev, 4))")
        if r.calls > 0 {
            out.append("CPU: \(LoadFormat.c("%.3f", Double(r.cpuNanos) / 1e9)) s, \(LoadFormat.c("%.2f", Double(r.cpuNanos) / 1e3 / Double(r.calls))) µs per call")
        }
        let avgMs = tally.duration.average * 1000
        out.append("All done \(r.calls) calls (plus \(tally.warmupCalls) warmup) \(LoadFormat.c("%.3f", avgMs)) ms avg, \(LoadFormat.c("%.1f", r.actualQPS)) qps")
        return out.joined(separator: "\n") + "\n"
    }

    func counterText(_ title: String, _ h: BucketHistogram) -> String {
        guard h.count > 0 else { return "\(title) : no data" }
        return "\(title) : count \(h.count) avg \(LoadFormat.g(h.average, 8)) +/- \(LoadFormat.g(h.standardDeviation, 4)) min \(LoadFormat.g(h.min)) max \(LoadFormat.g(h.max)) sum \(LoadFormat.g(h.sum, 9))"
    }

    func histogramText(_ title: String, _ h: BucketHistogram, _ percentiles: [(Double, Double)], withBuckets: Bool) -> [String] {
        guard h.count > 0 else { return ["\(title) : no data"] }
        var out = [counterText(title, h)]
        if withBuckets {
            out.append("# range, mid point, percentile, count")
            for (i, b) in h.exportedBuckets.enumerated() {
                out.append("\(i == 0 ? ">=" : ">") \(LoadFormat.g(b.start)) <= \(LoadFormat.g(b.end)) , \(LoadFormat.g((b.start + b.end) / 2)) , \(LoadFormat.c("%.2f", b.percent)), \(b.count)")
            }
        }
        for (p, v) in percentiles { out.append("# target \(LoadFormat.g(p))% \(LoadFormat.g(v))") }
        return out
    }

    /// Status codes with their counts, ascending, -1 (socket errors) first.
    func retCodes() -> [(Int, Int)] {
        var codes: [(Int, Int)] = []
        if tally.statusCounts[0] > 0 { codes.append((-1, tally.statusCounts[0])) }
        for code in 1..<tally.statusCounts.count where tally.statusCounts[code] > 0 { codes.append((code, tally.statusCounts[code])) }
        return codes
    }

    func perConnection() -> (min: Int, max: Int, avg: Double, stdDev: Double) {
        let counts = tally.perConnection
        guard !counts.isEmpty else { return (0, 0, 0, 0) }
        let avg = Double(counts.reduce(0, +)) / Double(counts.count)
        let variance = counts.reduce(0.0) { $0 + (Double($1) - avg) * (Double($1) - avg) } / Double(counts.count)
        return (counts.min()!, counts.max()!, avg, variance.squareRoot())
    }

    // MARK: JSON

    /// fortio's result JSON (field names and types as fortio writes them) plus `Ballast`.
    public func json() -> String {
        let r = result
        var j = JSONObject()
        j.string("RunType", "HTTP")
        j.string("Labels", options.labels)
        j.string("StartTime", Self.rfc3339(seconds: r.startSeconds, nanos: r.startNanosecond))
        j.string("RequestedQPS", options.requestedQPSText)
        j.string("RequestedDuration", requestedDuration())
        j.number("ActualQPS", r.actualQPS)
        j.int("ActualDuration", Int(r.actualDurationNanos))
        j.int("NumThreads", options.connections)
        j.string("Version", version)
        j.raw("DurationHistogram", Self.histogramJSON(tally.duration, Self.percentiles(tally.latency, options.percentiles), computed: true))
        j.raw("ErrorsDurationHistogram", Self.histogramJSON(tally.errorDuration, Self.percentiles(tally.errorLatency, options.percentiles), computed: true))
        j.int("Exactly", options.exactly)
        j.bool("Jitter", options.jitter)
        j.bool("Uniform", options.uniform)
        j.bool("NoCatchUp", false)
        j.int("RunID", 0)
        j.string("AccessLoggerInfo", "")
        j.string("ID", Self.runID(seconds: r.startSeconds, labels: options.labels))
        var codes = JSONObject()
        for (code, n) in retCodes() { codes.int(String(code), n) }
        j.raw("RetCodes", codes.text)
        var ips = JSONObject()
        ips.int(options.url.address.description, tally.socketsPerConnection.reduce(0, +))
        j.raw("IPCountMap", ips.text)
        j.string("URL", options.url.text)
        j.bool("DisableKeepAlive", !options.keepAlive)
        j.int("HTTPReqTimeOut", Int(options.timeoutNanos))
        j.string("ContentType", options.contentType)
        j.number("Resolution", options.resolution)
        j.raw("Sizes", Self.histogramJSON(tally.sizes, [], computed: false))
        j.raw("HeaderSizes", Self.histogramJSON(tally.headerSizes, [], computed: false))
        j.raw("Sockets", "[" + tally.socketsPerConnection.map(String.init).joined(separator: ",") + "]")
        j.int("SocketCount", tally.socketsPerConnection.reduce(0, +))
        j.int("AbortOn", options.abortOn)
        j.raw("Ballast", ballastJSON())
        return j.text + "\n"
    }

    /// fortio appends ", interrupted after N" to an exact count that was not reached.
    func requestedDuration() -> String {
        var text = options.requestedDurationText
        if options.exactly > 0 && result.calls != options.exactly { text += ", interrupted after \(result.calls)" }
        return text
    }

    func ballastJSON() -> String {
        let r = result
        var b = JSONObject()
        b.string("Version", version)
        b.string("IO", r.backend.rawValue)
        b.int("Threads", r.threads)
        b.int("Connections", options.connections)
        b.string("Mode", openLoop ? "open" : "closed")
        b.bool("KeepAlive", options.keepAlive)
        b.int("WarmupNanos", Int(options.warmupNanos))
        b.int("RampNanos", Int(options.rampNanos))
        b.bool("Interrupted", r.interrupted)
        b.bool("Aborted", r.aborted)
        if openLoop {
            b.raw("CorrectedHistogram", Self.histogramJSON(tally.correctedStats, Self.percentiles(tally.corrected, options.percentiles), computed: true, withBuckets: false))
            b.int("LateStarts", tally.lateStarts)
        } else {
            b.raw("CorrectedHistogram", "null")
            b.int("LateStarts", 0)
        }
        var errors = JSONObject()
        for kind in LoadErrorKind.allCases { errors.int(kind.name, tally.errorKinds[kind.rawValue]) }
        b.raw("Errors", errors.text)
        b.int("SocketErrors", tally.socketErrors)
        b.int("WarmupCalls", tally.warmupCalls)
        let pc = perConnection()
        var per = JSONObject()
        per.int("Min", pc.min)
        per.int("Max", pc.max)
        per.number("Avg", pc.avg)
        per.number("StdDev", pc.stdDev)
        per.raw("Counts", "[" + tally.perConnection.map(String.init).joined(separator: ",") + "]")
        b.raw("RequestsPerConnection", per.text)
        b.number("CPUSeconds", Double(r.cpuNanos) / 1e9)
        b.number("CPUMicrosPerCall", r.calls > 0 ? Double(r.cpuNanos) / 1e3 / Double(r.calls) : 0)
        b.number("MeasuredCPUSeconds", Double(r.measuredCPUNanos) / 1e9)
        var workers = JSONObject()
        workers.raw("Before", workersBefore.map(LoadFormat.jsonString) ?? "null")
        workers.raw("After", workersAfter.map(LoadFormat.jsonString) ?? "null")
        b.raw("Workers", workersBefore == nil && workersAfter == nil ? "null" : workers.text)
        return b.text
    }

    /// fortio's `HistogramData`: Count, Min, Max, Sum, Avg, StdDev, Data, Percentiles.
    static func histogramJSON(_ h: BucketHistogram, _ percentiles: [(Double, Double)], computed: Bool, withBuckets: Bool = true) -> String {
        var o = JSONObject()
        o.int("Count", h.count)
        o.number("Min", h.min)
        o.number("Max", h.max)
        o.number("Sum", h.sum)
        o.number("Avg", h.average)
        o.number("StdDev", h.standardDeviation)
        if withBuckets {
            let buckets = h.exportedBuckets
            if buckets.isEmpty {
                o.raw("Data", "null")
            } else {
                o.raw("Data", "[" + buckets.map { b in
                    var e = JSONObject()
                    e.number("Start", b.start)
                    e.number("End", b.end)
                    e.number("Percent", b.percent)
                    e.int("Count", b.count)
                    return e.text
                }.joined(separator: ",") + "]")
            }
        }
        if computed && !percentiles.isEmpty {
            o.raw("Percentiles", "[" + percentiles.map { p in
                var e = JSONObject()
                e.number("Percentile", p.0)
                e.number("Value", p.1)
                return e.text
            }.joined(separator: ",") + "]")
        } else {
            o.raw("Percentiles", "null")
        }
        return o.text
    }

    /// Go's RFC 3339 with nanoseconds in local time (trailing zeros of the fraction dropped, Z for UTC).
    static func rfc3339(seconds: Int, nanos: Int) -> String {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        var text = LoadFormat.c("%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
        if nanos > 0 {
            var fraction = LoadFormat.c("%09d", Int32(nanos))
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        let offset = tm.tm_gmtoff
        if offset == 0 { return text + "Z" }
        let sign = offset < 0 ? "-" : "+"
        let minutes = abs(offset) / 60
        return text + sign + LoadFormat.c("%02d:%02d", Int32(minutes / 60), Int32(minutes % 60))
    }

    /// fortio's run ID: `YYYY-MM-DD-HHMMSS` and, with labels, `_` and the labels' letters and
    /// digits with single `_` between runs of them; at most 96 bytes. Also the `-a` file name.
    public static func runID(seconds: Int, labels: String) -> String {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        var id = LoadFormat.c("%04d-%02d-%02d-%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
        guard !labels.isEmpty else { return id }
        var last: Character = "_"
        id.append("_")
        for ch in labels {
            if ch.isASCII && (ch.isLetter || ch.isNumber) {
                id.append(ch)
                last = ch
            } else if last != "_" {
                id.append("_")
                last = "_"
            }
        }
        if id.hasSuffix("_") { id.removeLast() }
        return String(id.prefix(96))
    }

    // MARK: HdrHistogram

    /// HdrHistogram's percentile distribution in milliseconds: the corrected latency in open loop,
    /// the latency from the actual send otherwise.
    public func hgrm() -> String {
        var text = ""
        let h = openLoop ? tally.corrected : tally.latency
        h.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1e6)
        return text
    }
}

/// A JSON object written field by field in order (fortio's field order), no Foundation.
struct JSONObject {
    private var fields: [String] = []

    mutating func raw(_ key: String, _ value: String) { fields.append(LoadFormat.jsonString(key) + ":" + value) }
    mutating func string(_ key: String, _ value: String) { raw(key, LoadFormat.jsonString(value)) }
    mutating func int(_ key: String, _ value: Int) { raw(key, String(value)) }
    mutating func number(_ key: String, _ value: Double) { raw(key, LoadFormat.json(value)) }
    mutating func bool(_ key: String, _ value: Bool) { raw(key, value ? "true" : "false") }

    var text: String { "{" + fields.joined(separator: ",") + "}" }
}
