import Balancers

/// `ballast.filters.http.worker_cost`: spends the configured cost on the worker thread in
/// decodeHeaders, then lets the chain continue (to the router). The worker counts applied costs
/// (`http.<stat_prefix>.worker_cost.applied`).
enum WorkerCostFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, cost: WorkerCost) -> FilterStatus {
        // The request's own random draw seeds the exponential draw: no shared generator state.
        var rng = SplitMix64(seed: ctx.random)
        cost.spend(using: &rng)
        ctx.workerCostsApplied &+= 1
        return .continue
    }
}

extension HTTPFilterChain {
    /// Once on each worker thread: block costs need the thread's fine timer slack.
    func prepareThread() {
        for f in filters {
            if case .workerCost(let cost) = f { cost.prepareThread() }
        }
    }

    var hasWorkerCost: Bool {
        filters.contains { if case .workerCost = $0 { true } else { false } }
    }
}
