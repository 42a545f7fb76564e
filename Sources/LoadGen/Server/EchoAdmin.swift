import AdminHTTP
import Balancers
import EventLoop

/// The admin endpoints of `ballast server`: per-worker figures as JSON (`/workers`), Envoy-style
/// per-worker listener stats (`/stats`), and `/ready`.
struct AdminView: Sendable {
    /// The listener's name in stat names, Envoy style (`0.0.0.0_8080`).
    let address: String
    let workerStats: [EchoWorkerStats]
    let loopStats: [LoopStats]
    let loads: WorkerLoads
    let strategy: String
    let backend: String
    let cost: WorkerCost?

    struct WorkerFigures {
        var accepted, active, requests, bytesIn, bytesOut, badRequests, acceptWakeups: Int
        var movesOut, movesIn, moveRefusals: Int
        var loop: LoopStats.Snapshot
        var inFlight, busyPPM: Int
    }

    func figures() -> [WorkerFigures] {
        workerStats.indices.map { i in
            let s = workerStats[i]
            return WorkerFigures(accepted: s.accepted.load(ordering: .relaxed), active: s.active.load(ordering: .relaxed),
                                 requests: s.requests.load(ordering: .relaxed), bytesIn: s.bytesIn.load(ordering: .relaxed),
                                 bytesOut: s.bytesOut.load(ordering: .relaxed), badRequests: s.badRequests.load(ordering: .relaxed),
                                 acceptWakeups: s.acceptWakeups.load(ordering: .relaxed),
                                 movesOut: s.movesOut.load(ordering: .relaxed), movesIn: s.movesIn.load(ordering: .relaxed),
                                 moveRefusals: s.moveRefusals.load(ordering: .relaxed), loop: loopStats[i].snapshot(),
                                 inFlight: loads.requests(i), busyPPM: loads.busyPPM(i))
        }
    }

    func respond(to request: AdminServer.Request) -> AdminServer.Response {
        guard request.method == "GET" else { return AdminServer.Response(status: 405, body: "only GET is allowed\n") }
        switch request.path {
        case "/workers": return .json(workersJSON())
        case "/stats": return AdminServer.Response(body: statsText())
        case "/ready": return AdminServer.Response(body: "LIVE\n")
        case "/server_info":
            return .json("{\"strategy\": \"\(strategy)\", \"io\": \"\(backend)\", \"concurrency\": \(workerStats.count), \"worker_cost\": \(cost.map { "\"\($0)\"" } ?? "null")}\n")
        default:
            return AdminServer.Response(status: 404, body: "unknown path \(request.path); endpoints: /workers /stats /ready /server_info\n")
        }
    }

    func workersJSON() -> String {
        let rows = figures().enumerated().map { i, f in
            let perWake = f.acceptWakeups > 0 ? Double(f.accepted) / Double(f.acceptWakeups) : 0
            return "  {\"worker\": \(i), \"accepted\": \(f.accepted), \"active\": \(f.active), \"requests\": \(f.requests), "
                + "\"requests_in_flight\": \(f.inFlight), \"bytes_in\": \(f.bytesIn), \"bytes_out\": \(f.bytesOut), "
                + "\"bad_requests\": \(f.badRequests), \"busy_ns\": \(f.loop.busyNanos), \"idle_ns\": \(f.loop.idleNanos), "
                + "\"turns\": \(f.loop.turns), \"accept_wakeups\": \(f.acceptWakeups), "
                + "\"accepts_per_wakeup\": \((perWake * 100).rounded() / 100), "
                + "\"moves_out\": \(f.movesOut), \"moves_in\": \(f.movesIn), \"move_refusals\": \(f.moveRefusals)}"
        }
        return "[\n" + rows.joined(separator: ",\n") + "\n]\n"
    }

    func statsText() -> String {
        let all = figures()
        var lines: [String] = []
        lines.append("listener.\(address).downstream_cx_total: \(all.reduce(0) { $0 + $1.accepted })")
        lines.append("listener.\(address).downstream_cx_active: \(all.reduce(0) { $0 + $1.active })")
        for (i, f) in all.enumerated() {
            lines.append("listener.\(address).worker_\(i).downstream_cx_total: \(f.accepted)")
            lines.append("listener.\(address).worker_\(i).downstream_cx_active: \(f.active)")
            lines.append("listener.\(address).worker_\(i).downstream_rq_total: \(f.requests)")
            lines.append("listener.\(address).worker_\(i).rebalance_cx_moved_out: \(f.movesOut)")
            lines.append("listener.\(address).worker_\(i).rebalance_cx_moved_in: \(f.movesIn)")
            lines.append("listener.\(address).worker_\(i).rebalance_cx_refused: \(f.moveRefusals)")
        }
        lines.append("listener.\(address).rebalance_cx_moved: \(all.reduce(0) { $0 + $1.movesOut })")
        lines.append("listener.\(address).rebalance_cx_refused: \(all.reduce(0) { $0 + $1.moveRefusals })")
        lines.append("server.concurrency: \(all.count)")
        return lines.sorted().joined(separator: "\n") + "\n"
    }
}
