import Foundation
import LoadGen
import XCTest

/// fortio's result types as Go declares them (periodic.RunnerResults, fhttp.HTTPRunnerResults,
/// stats.HistogramData), for decoding both a fortio fixture and our own JSON.
struct FortioResult: Decodable {
    struct Bucket: Decodable { var Start: Double; var End: Double; var Percent: Double; var Count: Int64 }
    struct Percentile: Decodable { var Percentile: Double; var Value: Double }
    struct HistogramData: Decodable {
        var Count: Int64
        var Min: Double
        var Max: Double
        var Sum: Double
        var Avg: Double
        var StdDev: Double
        var Data: [Bucket]?
        var Percentiles: [Percentile]?
    }
    var RunType: String
    var Labels: String
    var StartTime: String
    var RequestedQPS: String
    var RequestedDuration: String
    var ActualQPS: Double
    var ActualDuration: Int64
    var NumThreads: Int
    var Version: String
    var DurationHistogram: HistogramData
    var ErrorsDurationHistogram: HistogramData
    var Exactly: Int64
    var Jitter: Bool
    var Uniform: Bool
    var NoCatchUp: Bool
    var RunID: Int64
    var AccessLoggerInfo: String
    var ID: String
    var RetCodes: [String: Int64]
    var IPCountMap: [String: Int]
    var URL: String
    var DisableKeepAlive: Bool
    var HTTPReqTimeOut: Int64
    var ContentType: String
    var Resolution: Double
    var Sizes: HistogramData
    var HeaderSizes: HistogramData
    var Sockets: [Int]
    var SocketCount: Int
    var AbortOn: Int
}

/// A fortio 1.x HTTP result, written by hand after fortio's documented example output
/// (2 connections, exactly 20 calls, -qps max).
let fortioFixture = """
{
  "RunType": "HTTP",
  "Labels": "Fortio test",
  "StartTime": "2017-10-13T11:35:45.000386209-07:00",
  "RequestedQPS": "max",
  "RequestedDuration": "exactly 20 calls",
  "ActualQPS": 7022.558024080564,
  "ActualDuration": 2847964,
  "NumThreads": 2,
  "Version": "1.60.3",
  "DurationHistogram": {
    "Count": 20, "Min": 0.000131281, "Max": 0.000638011, "Sum": 0.005634493,
    "Avg": 0.00028172465, "StdDev": 0.00011785,
    "Data": [
      {"Start": 0.000131281, "End": 0.0002, "Percent": 25, "Count": 5},
      {"Start": 0.0002, "End": 0.0003, "Percent": 75, "Count": 10},
      {"Start": 0.0003, "End": 0.000638011, "Percent": 100, "Count": 5}
    ],
    "Percentiles": [
      {"Percentile": 50, "Value": 0.00025},
      {"Percentile": 75, "Value": 0.0003},
      {"Percentile": 90, "Value": 0.00046},
      {"Percentile": 99, "Value": 0.00062},
      {"Percentile": 99.9, "Value": 0.000636}
    ]
  },
  "ErrorsDurationHistogram": {
    "Count": 0, "Min": 0, "Max": 0, "Sum": 0, "Avg": 0, "StdDev": 0, "Data": null, "Percentiles": null
  },
  "Exactly": 20,
  "Jitter": false,
  "Uniform": false,
  "NoCatchUp": false,
  "RunID": 0,
  "AccessLoggerInfo": "",
  "ID": "2017-10-13-113545_Fortio_test",
  "RetCodes": {"200": 20},
  "IPCountMap": {"127.0.0.1:8080": 2},
  "URL": "http://localhost:8080/",
  "DisableKeepAlive": false,
  "HTTPReqTimeOut": 3000000000,
  "ContentType": "",
  "Resolution": 0.001,
  "Sizes": {
    "Count": 20, "Min": 142, "Max": 142, "Sum": 2840, "Avg": 142, "StdDev": 0,
    "Data": [{"Start": 142, "End": 142, "Percent": 100, "Count": 20}],
    "Percentiles": null
  },
  "HeaderSizes": {
    "Count": 20, "Min": 142, "Max": 142, "Sum": 2840, "Avg": 142, "StdDev": 0,
    "Data": [{"Start": 142, "End": 142, "Percent": 100, "Count": 20}],
    "Percentiles": null
  },
  "Sockets": [1, 1],
  "SocketCount": 2,
  "AbortOn": 0
}
"""

/// The JSON kind of a value: fortio's UI reads fields by name and type.
func jsonKind(_ value: Any) -> String {
    switch value {
    case is NSNull: return "null"
    case let n as NSNumber: return String(cString: n.objCType) == "c" ? "bool" : "number"
    case is String: return "string"
    case is [Any]: return "array"
    case is [String: Any]: return "object"
    default: return "?"
    }
}

final class LoadJSONTests: XCTestCase {
    /// Every field of the fortio fixture is in our JSON with the same JSON kind (a Go nil slice,
    /// null, matches an array), recursively through the histograms; and it decodes as fortio's types.
    func testBallastJSONHasEveryFortioFieldWithFortiosTypes() throws {
        let server = try ServerUnderTest(io: "epoll")
        defer { server.stop() }
        let run = try runLoad(["-qps", "0", "-n", "200", "-c", "2", "-labels", "Ballast test", "http://127.0.0.1:\(server.port)/?status=503:10"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let ours = run.json
        let theirs = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(fortioFixture.utf8)) as? [String: Any])
        compare(theirs, ours, path: "")
        let data = try JSONSerialization.data(withJSONObject: ours)
        let decoded = try JSONDecoder().decode(FortioResult.self, from: data)
        XCTAssertEqual(decoded.RunType, "HTTP")
        XCTAssertEqual(decoded.RequestedQPS, "max")
        XCTAssertEqual(decoded.RequestedDuration, "exactly 200 calls")
        XCTAssertEqual(decoded.Exactly, 200)
        XCTAssertEqual(decoded.NumThreads, 2)
        XCTAssertEqual(decoded.Labels, "Ballast test")
        XCTAssertTrue(decoded.ID.hasSuffix("_Ballast_test"), decoded.ID)
        XCTAssertEqual(decoded.DurationHistogram.Count, 200)
        XCTAssertEqual(decoded.RetCodes.values.reduce(0, +), 200)
        XCTAssertEqual(decoded.DurationHistogram.Data?.last?.Percent, 100)
        XCTAssertEqual(decoded.DurationHistogram.Data?.map(\.Count).reduce(0, +), 200)
        XCTAssertNotNil(ours["Ballast"] as? [String: Any])
        // StartTime is Go's RFC 3339 with nanoseconds.
        XCTAssertNotNil(decoded.StartTime.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"#, options: .regularExpression), decoded.StartTime)
    }

    func compare(_ theirs: [String: Any], _ ours: [String: Any], path: String) {
        for (key, value) in theirs {
            guard let mine = ours[key] else {
                XCTFail("missing field \(path)\(key)")
                continue
            }
            let a = jsonKind(value), b = jsonKind(mine)
            let compatible = a == b || (a == "null" && b == "array") || (a == "array" && b == "null")
            XCTAssertTrue(compatible, "\(path)\(key): fortio has \(a), ours \(b)")
            if let t = value as? [String: Any], let m = mine as? [String: Any], key != "RetCodes", key != "IPCountMap" {
                compare(t, m, path: path + key + ".")
            }
            if let t = (value as? [Any])?.first as? [String: Any], let m = (mine as? [Any])?.first as? [String: Any] {
                compare(t, m, path: path + key + "[0].")
            }
        }
    }
}

/// Parsing of URLs, headers and the fortio bucket histogram.
final class LoadPartsTests: XCTestCase {
    func testURLs() throws {
        let u = try LoadURL("http://127.0.0.1:8080/a/b?x=1")
        XCTAssertEqual(u.port, 8080)
        XCTAssertEqual(u.target, "/a/b?x=1")
        XCTAssertEqual(u.hostHeader, "127.0.0.1:8080")
        let v6 = try LoadURL("http://[::1]:9000")
        XCTAssertEqual(v6.target, "/")
        XCTAssertEqual(v6.hostHeader, "[::1]:9000")
        XCTAssertEqual(try LoadURL("http://localhost?q").target, "/?q")
        XCTAssertEqual(try LoadURL("http://localhost/").port, 80)
        for bad in ["https://127.0.0.1/", "127.0.0.1:80", "http://example.com/", "http://127.0.0.1:0/", "http://127.0.0.1:99999/",
                    "http:///", "http://127.0.0.1/a b", "http://u@127.0.0.1/", "http://127.0.0.1/#frag"] {
            XCTAssertThrowsError(try LoadURL(bad), bad)
        }
    }

    func testHeaders() throws {
        let h = try LoadHeader(parsing: "X-Name:  some value ")
        XCTAssertEqual(h.name, "X-Name")
        XCTAssertEqual(h.value, "some value")
        for bad in ["NoColon", "Bad Name: x", ": empty", "X: a\r\nInjected: 1", "Content-Length: 5"] {
            XCTAssertThrowsError(try LoadHeader(parsing: bad), bad)
        }
    }

    func testBucketHistogramMatchesFortioBuckets() {
        var h = BucketHistogram(scale: 1e-9, divider: 0.001)  // ns in, 1 ms resolution
        for ms in [0.5, 1.0, 1.5, 3.0, 250.0] { h.record(Int(ms * 1e6)) }
        XCTAssertEqual(h.count, 5)
        XCTAssertEqual(h.min, 0.0005, accuracy: 1e-12)
        XCTAssertEqual(h.max, 0.25, accuracy: 1e-12)
        let b = h.exportedBuckets
        XCTAssertEqual(b.map(\.count), [2, 1, 1, 1])   // ]0,1] ]1,2] ]2,3] ]200,250]
        XCTAssertEqual(b.first?.start ?? -1, 0.0005, accuracy: 1e-12)
        XCTAssertEqual(b.last?.end ?? -1, 0.25, accuracy: 1e-12)
        XCTAssertEqual(b.last?.percent, 100)
        XCTAssertEqual(b.map(\.percent), [40, 60, 80, 100])
        XCTAssertEqual(h.average, (0.0005 + 0.001 + 0.0015 + 0.003 + 0.25) / 5, accuracy: 1e-12)
    }

    func testRunIDFollowsFortio() {
        let id = LoadReport.runID(seconds: 0, labels: "a b--c!")
        XCTAssertTrue(id.hasSuffix("_a_b_c"), id)
        XCTAssertEqual(LoadReport.runID(seconds: 0, labels: "").count, 17)
    }
}
