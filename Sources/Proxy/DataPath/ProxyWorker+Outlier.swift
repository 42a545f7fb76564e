import EventLoop

/// What an attempt tells its host's outlier detector (Envoy's router and pool calls).
enum OutlierResult {
    /// A response head (putHttpResponseCode).
    case response(Int)
    /// A connect failure, or a reset / close / malformed response (LocalOriginConnectFailed: 503).
    case connectFailed
    /// A per-try or route timeout while awaiting the head (LocalOriginTimeout: 504).
    case timeout
    /// The attempt got its connection (LocalOriginConnectSuccess; counts only in split mode).
    case connectSuccess
    /// A tcp_proxy session's upstream connected (LocalOriginConnectSuccessFinal: a 200 when
    /// errors are not split).
    case connectSuccessFinal
}

extension ProxyWorker {
    /// Feeds an attempt's result on host pool `hp` to its cluster's outlier detector: a few
    /// relaxed atomic operations on the host's state, nothing when the cluster has no detector.
    @inline(__always)
    func reportOutlier(_ hp: Int, _ result: OutlierResult, _ loop: Loop) {
        guard hp >= 0, hp < upstreamPools.count else { return }
        let ci = Int(upstreamPools[hp].cluster)
        guard ci < plane.clusters.count, let health = plane.clusters[ci].health, let detector = health.outlier,
              upstreamPools[hp].dynamicHost == nil else { return }
        let h = Int(upstreamPools[hp].host)
        guard h >= 0 && h < detector.hosts.count else { return }
        switch result {
        case .response(let code): detector.putResponse(h, code: code, health, now: loop.now, random: rng.next())
        case .connectFailed: detector.putLocalFailure(h, code: 503, health, now: loop.now, random: rng.next())
        case .timeout: detector.putLocalFailure(h, code: 504, health, now: loop.now, random: rng.next())
        case .connectSuccess: detector.putConnectSuccess(h)
        case .connectSuccessFinal:
            if detector.config.splitExternalLocalOriginErrors {
                detector.putConnectSuccess(h)
            } else {
                detector.putResponse(h, code: 200, health, now: loop.now, random: 0)
            }
        }
    }
}
