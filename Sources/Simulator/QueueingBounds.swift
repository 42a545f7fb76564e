import Glibc

/// Textbook open-loop bounds for c workers, each serving requests at rate mu = 1/cost with
/// exponential costs and Poisson arrivals at total rate lambda (utilisation rho = lambda / (c mu)).
///
/// - Connection-level balancing at its best gives every worker the same share of the arrivals:
///   c independent M/M/1 queues (what least-loaded or exact_balance can reach).
/// - Request-level balancing (any idle worker takes the next request) is one M/M/c queue: the bound
///   that no strategy placing whole connections can beat.
public enum QueueingBounds {
    /// Response time (wait + service) quantile of M/M/1: exponential with rate mu - lambda.
    public static func mm1ResponseQuantile(_ q: Double, utilisation rho: Double, cost: Double) -> Double {
        guard rho < 1 else { return .infinity }
        return -Glibc.log(1 - q) * cost / (1 - rho)
    }

    public static func mm1MeanResponse(utilisation rho: Double, cost: Double) -> Double {
        rho < 1 ? cost / (1 - rho) : .infinity
    }

    /// Erlang C: the probability that an arrival waits in M/M/c at utilisation rho.
    public static func erlangC(servers c: Int, utilisation rho: Double) -> Double {
        guard rho < 1 else { return 1 }
        let a = rho * Double(c)                      // offered load in Erlangs
        // sum_{k<c} a^k/k! computed with running terms for stability.
        var term = 1.0
        var sum = 1.0
        for k in 1..<max(c, 1) {
            term *= a / Double(k)
            sum += term
        }
        let last = term * a / Double(c)              // a^c / c!
        let top = last / (1 - rho)
        return top / (sum + top)
    }

    public static func mmcMeanResponse(servers c: Int, utilisation rho: Double, cost: Double) -> Double {
        guard rho < 1 else { return .infinity }
        let mu = 1 / cost
        return erlangC(servers: c, utilisation: rho) / (Double(c) * mu * (1 - rho)) + cost
    }

    /// Response time quantile of M/M/c: the wait is 0 with probability 1 - C, else exponential with
    /// rate c mu (1 - rho); the service is exponential with rate mu. Solved by bisection on the CDF.
    public static func mmcResponseQuantile(_ q: Double, servers c: Int, utilisation rho: Double, cost: Double) -> Double {
        guard rho < 1 else { return .infinity }
        let mu = 1 / cost
        let waitRate = Double(c) * mu * (1 - rho)
        let pWait = erlangC(servers: c, utilisation: rho)
        func cdf(_ t: Double) -> Double {
            // P(S <= t) * (1 - pWait) + P(W + S <= t) * pWait, W ~ Exp(waitRate), S ~ Exp(mu).
            let service = 1 - Glibc.exp(-mu * t)
            let both: Double
            if abs(waitRate - mu) < 1e-12 * mu {
                both = 1 - Glibc.exp(-mu * t) * (1 + mu * t)
            } else {
                both = 1 - (waitRate * Glibc.exp(-mu * t) - mu * Glibc.exp(-waitRate * t)) / (waitRate - mu)
            }
            return (1 - pWait) * service + pWait * both
        }
        var low = 0.0
        var high = cost
        while cdf(high) < q { high *= 2 }
        for _ in 0..<200 {
            let mid = (low + high) / 2
            if cdf(mid) < q { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }
}
