import Foundation

/// A result file that cannot be used: names the file and, when known, the field (`a.b[2].c`).
public struct ResultFileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var field: String?
    public var message: String

    public init(file: String, field: String?, message: String) {
        self.file = file; self.field = field; self.message = message
    }

    public var description: String {
        if let field, !field.isEmpty { return "\(file): \(field): \(message)" }
        return "\(file): \(message)"
    }

    /// Decodes `data` as `T`, turning any decoding failure into a `ResultFileError`.
    public static func decoding<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw ResultFileError(file: file, decodingError: error)
        } catch {
            throw ResultFileError(file: file, field: nil, message: "not valid JSON (\(error))")
        }
    }

    init(file: String, decodingError: DecodingError) {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for k in keys {
                if let i = k.intValue { out += "[\(i)]" } else { out += out.isEmpty ? k.stringValue : ".\(k.stringValue)" }
            }
            return out
        }
        switch decodingError {
        case .keyNotFound(let key, let ctx):
            self.init(file: file, field: path(ctx.codingPath + [key]), message: "missing")
        case .valueNotFound(let type, let ctx):
            self.init(file: file, field: path(ctx.codingPath).nilIfEmpty, message: "is null, expected \(Self.describe(type))")
        case .typeMismatch(let type, let ctx):
            self.init(file: file, field: path(ctx.codingPath).nilIfEmpty, message: "expected \(Self.describe(type))")
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty {
                let detail = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                self.init(file: file, field: nil, message: "not valid JSON" + (detail.map { " (\($0))" } ?? ""))
            } else {
                self.init(file: file, field: path(ctx.codingPath), message: ctx.debugDescription)
            }
        @unknown default:
            self.init(file: file, field: nil, message: "\(decodingError)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int64.Type, is UInt64.Type: return "a whole number"
        case is Double.Type: return "a number"
        case is AxisValue.Type: return "a string, number or boolean"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "an object (\(name))"
        }
    }
}

/// One point file, loaded and checked.
public struct LoadedPoint: Sendable {
    /// Path as given to the loader (directory + file name).
    public var file: String
    public var result: PointResult
    /// `axes.connections`, else fortio's `NumThreads`.
    public var connections: Int
    /// `axes.repetition`, else its order among files of the same point (1-based).
    public var repetition: Int
    public var environment: RunEnvironment?
}

/// A line on a chart: one variant, plus any axes that vary within the variant (not connections
/// and repetition).
public struct SeriesKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var variant: String
    public var axes: [String: AxisValue]

    public init(variant: String, axes: [String: AxisValue] = [:]) {
        self.variant = variant; self.axes = axes
    }

    public var description: String {
        if axes.isEmpty { return variant }
        return variant + (variant.isEmpty ? "(" : " (") + axes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")"
    }

    public static func < (a: SeriesKey, b: SeriesKey) -> Bool { a.description < b.description }
}

/// The repetitions of one point: one series at one connection count.
public struct PointGroup: Sendable {
    public var series: SeriesKey
    public var connections: Int
    /// Sorted by repetition.
    public var repetitions: [LoadedPoint]

    /// The metric of each repetition that has it.
    public func values(_ metric: Metric) -> [Double] { repetitions.compactMap { metric.value(of: $0.result) } }
}

/// A results directory (or a single point file), loaded.
public struct ResultSet: Sendable {
    /// The directory the set came from (or the point file's directory).
    public var directory: String
    public var manifest: Manifest?
    public var points: [LoadedPoint]
    /// Things worth saying that did not stop the load (skipped failed points, missing environment).
    public var warnings: [String]

    public init(directory: String, manifest: Manifest?, points: [LoadedPoint], warnings: [String] = []) throws {
        self.directory = directory; self.manifest = manifest; self.points = []; self.warnings = warnings
        try assign(points)
    }

    /// Largest result file read (a point file of fortio's is a few hundred kB).
    public static let maxFileBytes = 64 << 20

    /// Loads `path`: a results directory, its `manifest.json`, a single point file, or an
    /// experiment directory (`results/<experiment>/`) whose newest run is taken.
    /// Throws `ResultFileError` naming the file (and field) that is unusable.
    public static func load(_ path: String) throws -> ResultSet {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ResultFileError(file: path, field: nil, message: "no such file or directory")
        }
        if !isDir.boolValue {
            if (path as NSString).lastPathComponent == "manifest.json" {
                return try loadDirectory((path as NSString).deletingLastPathComponent.nilIfEmpty ?? ".")
            }
            let point = try readPoint(path)
            var warnings: [String] = []
            if point.environment == nil { warnings.append("\(path): no environment recorded") }
            let dir = (path as NSString).deletingLastPathComponent.nilIfEmpty ?? "."
            return try ResultSet(directory: dir, manifest: nil, points: [rawPoint(point, file: path)], warnings: warnings)
        }
        if !fm.fileExists(atPath: (path as NSString).appendingPathComponent("manifest.json")) {
            // An experiment directory: take the newest run (timestamps sort as text).
            let runs = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted().filter {
                fm.fileExists(atPath: ((path as NSString).appendingPathComponent($0) as NSString).appendingPathComponent("manifest.json"))
            }
            if let newest = runs.last {
                var set = try loadDirectory((path as NSString).appendingPathComponent(newest))
                if runs.count > 1 { set.warnings.insert("\(path) holds \(runs.count) runs; using the newest, \(newest)", at: 0) }
                return set
            }
        }
        return try loadDirectory(path)
    }

    static func loadDirectory(_ dir: String) throws -> ResultSet {
        let fm = FileManager.default
        let manifestPath = (dir as NSString).appendingPathComponent("manifest.json")
        var manifest: Manifest?
        var warnings: [String] = []
        if fm.fileExists(atPath: manifestPath) {
            manifest = try ResultFileError.decoding(Manifest.self, from: readFile(manifestPath), file: manifestPath)
            if manifest?.complete == false { warnings.append("\(manifestPath): the run did not complete; reporting the points it finished") }
        } else {
            warnings.append("\(dir): no manifest.json; reading every *.json as a point")
        }
        var files: [String] = []
        if let listed = manifest?.points, !listed.isEmpty {
            for (i, entry) in listed.enumerated() {
                if entry.status == .failed {
                    warnings.append("\(manifestPath): points[\(i)] (\(entry.file)) failed\(entry.error.map { ": \($0)" } ?? ""); skipped")
                    continue
                }
                guard !entry.file.isEmpty, !entry.file.hasPrefix("/"), !entry.file.split(separator: "/").contains("..") else {
                    throw ResultFileError(file: manifestPath, field: "points[\(i)].file", message: "must be a file name inside the results directory, got \"\(entry.file)\"")
                }
                files.append(entry.file)
            }
        } else {
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: dir) } catch {
                throw ResultFileError(file: dir, field: nil, message: "cannot list the directory (\(error.localizedDescription))")
            }
            files = names.filter { $0.hasSuffix(".json") && $0 != "manifest.json" }.sorted()
        }
        var points: [LoadedPoint] = []
        for name in files {
            let path = (dir as NSString).appendingPathComponent(name)
            let point = try readPoint(path)
            points.append(try rawPoint(point, file: path, fallbackEnvironment: manifest?.environment))
        }
        if points.isEmpty { throw ResultFileError(file: dir, field: nil, message: "no point files") }
        if manifest?.environment == nil && points.contains(where: { $0.environment == nil }) {
            warnings.append("\(dir): some points carry no environment (kernel, CPU, pinning); their figures do not travel")
        }
        return try ResultSet(directory: dir, manifest: manifest, points: points, warnings: warnings)
    }

    static func readFile(_ path: String) throws -> Data {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attributes?[.size] as? NSNumber, size.intValue > maxFileBytes {
            throw ResultFileError(file: path, field: nil, message: "too large (\(size.intValue) bytes; the limit is \(maxFileBytes))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ResultFileError(file: path, field: nil, message: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return data
    }

    static func readPoint(_ path: String) throws -> PointResult {
        try ResultFileError.decoding(PointResult.self, from: readFile(path), file: path)
    }

    static func rawPoint(_ point: PointResult, file: String, fallbackEnvironment: RunEnvironment? = nil) throws -> LoadedPoint {
        let connections: Int
        if let value = point.axes["connections"] {
            guard let n = value.intValue, n >= 1 else {
                throw ResultFileError(file: file, field: "axes.connections", message: "expected a whole number >= 1, got \(value)")
            }
            connections = n
        } else if let n = point.numThreads, n >= 1 {
            connections = n
        } else {
            throw ResultFileError(file: file, field: "axes.connections", message: "missing (and no NumThreads)")
        }
        var repetition = 0
        if let value = point.axes["repetition"] {
            guard let n = value.intValue, n >= 1 else {
                throw ResultFileError(file: file, field: "axes.repetition", message: "expected a whole number >= 1, got \(value)")
            }
            repetition = n
        }
        if let workers = point.workers {
            var seen = Set<Int>()
            for (i, w) in workers.enumerated() where !seen.insert(w.worker).inserted {
                throw ResultFileError(file: file, field: "workers[\(i)].worker", message: "worker \(w.worker) appears twice")
            }
        }
        return LoadedPoint(file: file, result: point, connections: connections, repetition: repetition,
                           environment: point.environment ?? fallbackEnvironment)
    }

    /// Numbers repetitions that have none and rejects two files claiming the same repetition.
    private mutating func assign(_ raw: [LoadedPoint]) throws {
        var byKey: [String: [Int: String]] = [:]
        var next: [String: Int] = [:]
        var out: [LoadedPoint] = []
        for var p in raw {
            let key = Self.pointKey(p)
            if p.repetition == 0 {
                var n = next[key, default: 1]
                while byKey[key]?[n] != nil { n += 1 }
                p.repetition = n
            }
            if let other = byKey[key]?[p.repetition] {
                throw ResultFileError(file: p.file, field: "axes.repetition",
                                      message: "repetition \(p.repetition) of this point is also in \(other)")
            }
            byKey[key, default: [:]][p.repetition] = p.file
            next[key] = p.repetition + 1
            out.append(p)
        }
        points = out
    }

    static func pointKey(_ p: LoadedPoint) -> String {
        let axes = p.result.axes.filter { $0.key != "repetition" && $0.key != "connections" }
        return SeriesKey(variant: p.result.variant, axes: axes).description + "|c=\(p.connections)"
    }

    /// The experiment's name: the manifest's, else the directory's.
    public var experiment: String {
        manifest?.experiment ?? (directory as NSString).lastPathComponent
    }

    /// Axes (other than connections and repetition) whose value differs within some variant;
    /// they become part of the series key. Axes constant within each variant only describe it.
    public var seriesAxes: [String] {
        var valuesByVariantAxis: [String: [String: Set<AxisValue>]] = [:]
        for p in points {
            for (k, v) in p.result.axes where k != "connections" && k != "repetition" {
                valuesByVariantAxis[p.result.variant, default: [:]][k, default: []].insert(v)
            }
        }
        var keys = Set<String>()
        for (_, axes) in valuesByVariantAxis { for (k, values) in axes where values.count > 1 { keys.insert(k) } }
        // An axis present on some points of a variant and absent on others also separates series.
        for variant in Set(points.map(\.result.variant)) {
            let pts = points.filter { $0.result.variant == variant }
            let all = Set(pts.flatMap { $0.result.axes.keys })
            for k in all where k != "connections" && k != "repetition" && pts.contains(where: { $0.result.axes[k] == nil }) {
                keys.insert(k)
            }
        }
        return keys.sorted()
    }

    public func seriesKey(of p: LoadedPoint) -> SeriesKey {
        let keys = Set(seriesAxes)
        return SeriesKey(variant: p.result.variant, axes: p.result.axes.filter { keys.contains($0.key) })
    }

    /// Points grouped by series and connection count, repetitions sorted; groups sorted by
    /// series (in the manifest's variant order when it has one), then connections.
    public func groups() -> [PointGroup] {
        var map: [SeriesKey: [Int: [LoadedPoint]]] = [:]
        for p in points { map[seriesKey(of: p), default: [:]][p.connections, default: []].append(p) }
        var out: [PointGroup] = []
        for series in orderedSeries(Array(map.keys)) {
            for (c, reps) in map[series]!.sorted(by: { $0.key < $1.key }) {
                out.append(PointGroup(series: series, connections: c, repetitions: reps.sorted { $0.repetition < $1.repetition }))
            }
        }
        return out
    }

    /// Series in manifest variant order (then first appearance in the files), then by label.
    public func orderedSeries(_ keys: [SeriesKey]? = nil) -> [SeriesKey] {
        let keys = keys ?? Array(Set(points.map { seriesKey(of: $0) }))
        var rank: [String: Int] = [:]
        for (i, v) in (manifest?.variants ?? []).enumerated() where rank[v] == nil { rank[v] = i }
        var n = rank.count
        for p in points where rank[p.result.variant] == nil { rank[p.result.variant] = n; n += 1 }
        return keys.sorted { a, b in
            let ra = rank[a.variant] ?? Int.max, rb = rank[b.variant] ?? Int.max
            return ra != rb ? ra < rb : a < b
        }
    }

    /// The environment shared by the run (the manifest's, else the first point's).
    public var environment: RunEnvironment? {
        manifest?.environment ?? points.first(where: { $0.environment != nil })?.environment
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
