import Balancers

/// `ballast.filters.http.worker_cost`: a Ballast extension HTTP filter that spends a fixed (or
/// exponentially drawn) cost on the worker thread for every request, as `ballast server
/// --worker-cost` does, so `ballast proxy` and Envoy (with its Lua filter) run the same experiment.
///
/// ```yaml
/// - name: ballast.filters.http.worker_cost
///   typed_config:
///     "@type": type.googleapis.com/ballast.extensions.filters.http.worker_cost.v1.WorkerCost
///     mode: block            # spin | block | spin-exp | block-exp | exp (= block-exp)
///     duration: 0.0002s      # the cost (exp modes: the mean), protobuf Duration, at most 10s
/// ```
public struct WorkerCostFilterConfig: Sendable, Hashable {
    public let cost: WorkerCost

    public enum Mode: String, CaseIterable {
        case spin, block, exp
        case spinExp = "spin-exp"
        case blockExp = "block-exp"
    }
}

extension WorkerCost: Hashable {
    public func hash(into h: inout Hasher) {
        h.combine(mode.rawValue)
        h.combine(meanNanos)
        h.combine(exponential)
    }
}

extension BootstrapParser {
    func parseWorkerCostFilter(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> WorkerCostFilterConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config"), "\(FilterNames.workerCost) needs typed_config with mode and duration")
            return nil
        }
        guard let f = body.fields(known: (typed ? ["@type"] : []) + ["mode", "duration"]) else { return nil }
        guard let modeValue = f.required("mode"), let durationValue = f.required("duration") else { return nil }
        guard let mode = modeValue.enumeration(WorkerCostFilterConfig.Mode.self), let nanos = durationValue.duration() else { return nil }
        guard nanos <= 10_000_000_000 else {
            durationValue.error("a worker cost of at most 10s, got \(EnvoyDuration.format(nanos: nanos))")
            return nil
        }
        let cost = switch mode {
        case .spin: WorkerCost(mode: .spin, meanNanos: nanos)
        case .block: WorkerCost(mode: .block, meanNanos: nanos)
        case .spinExp: WorkerCost(mode: .spin, meanNanos: nanos, exponential: true)
        case .blockExp, .exp: WorkerCost(mode: .block, meanNanos: nanos, exponential: true)
        }
        return WorkerCostFilterConfig(cost: cost)
    }
}
