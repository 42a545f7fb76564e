// Every difference between Envoy 1.40 and Ballast that the differential suite tolerates, with the
// reason. Keys are `case/aspect` (aspects: status, headers, body, upstream, log, connection),
// `*/aspect` for every case, or `stats/<name>`. Anything not listed here fails the suite, and so
// does an entry that no longer shows.

enum Verdict: String {
    /// Ballast does better than Envoy here, on purpose.
    case better
    /// Ballast refuses the feature with a clear message.
    case refused
    /// Ballast behaves differently for a stated reason.
    case differs
    /// Found by the suite, not fixed yet (issue 11).
    case pending
}

struct IntentionalDifference {
    let key: String
    let verdict: Verdict
    let reason: String
}

let intentionalDifferences: [IntentionalDifference] = [
    IntentionalDifference(key: "stats/http.plain.downstream_rq_completed", verdict: .pending, reason: "stat missing or counted differently"),
    IntentionalDifference(key: "stats/http.plain.rq_direct_response", verdict: .pending, reason: "stat missing or counted differently"),
    IntentionalDifference(key: "stats/http.plain.downstream_rq_http1_total", verdict: .pending, reason: "stat missing or counted differently"),
    IntentionalDifference(key: "stats/cluster.up.upstream_rq_2xx", verdict: .pending, reason: "stat missing or counted differently"),
    IntentionalDifference(key: "stats/cluster.up.upstream_rq_200", verdict: .pending, reason: "stat missing or counted differently"),
    IntentionalDifference(key: "stats/cluster.up.upstream_rq_completed", verdict: .pending, reason: "stat missing or counted differently"),
    IntentionalDifference(key: "stats/cluster.dead.upstream_rq_total", verdict: .pending, reason: "stat missing or counted differently"),
]

enum IntentionalDifferences {
    static func matches(_ pattern: String, _ key: String) -> Bool {
        if pattern == key { return true }
        if pattern.hasPrefix("*/") { return key.hasSuffix("/" + pattern.dropFirst(2)) }
        return false
    }

    static func reason(for key: String) -> IntentionalDifference? {
        intentionalDifferences.first { matches($0.key, key) }
    }
}
