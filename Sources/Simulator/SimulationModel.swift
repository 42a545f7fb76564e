import Balancers

/// Everything one simulated point needs: the workers, how connections are placed on them, how
/// requests are sent and what each one costs. Times are in seconds.
public struct SimulationModel: Sendable, Equatable {
    /// Worker threads; each serves its queue of requests one at a time (FIFO), as a blocked
    /// (`block:` worker-cost) event-loop thread does.
    public var workers: Int
    public var connections: Int
    public var placement: Placement
    public var arrival: ConnectionArrival
    public var loop: LoadLoop
    public var cost: CostDistribution
    /// Time a request spends outside the worker's queue and service: client, kernel and network, both
    /// ways. Latency = roundTrip + wait + service.
    public var roundTrip: Double
    /// Simulated load time after the warm-up (results cover this window only).
    public var duration: Double
    public var warmup: Double
    public var seed: UInt64
    /// Live rebalancing of idle keep-alive connections at request boundaries; nil: off.
    public var rebalance: Rebalance?

    public init(workers: Int, connections: Int, placement: Placement, arrival: ConnectionArrival = .allAtOnce,
                loop: LoadLoop = .closed, cost: CostDistribution, roundTrip: Double, duration: Double,
                warmup: Double = 0.2, seed: UInt64 = 1) {
        self.workers = workers
        self.connections = connections
        self.placement = placement
        self.arrival = arrival
        self.loop = loop
        self.cost = cost
        self.roundTrip = roundTrip
        self.duration = duration
        self.warmup = warmup
        self.seed = seed
    }

    /// Checks the model; the message names the field.
    public func validate() throws(SimulationError) {
        guard (1...4096).contains(workers) else { throw SimulationError("workers must be 1...4096, got \(workers)") }
        guard (1...10_000_000).contains(connections) else { throw SimulationError("connections must be 1...10000000, got \(connections)") }
        guard roundTrip.isFinite, roundTrip >= 0 else { throw SimulationError("round trip must be >= 0 seconds") }
        guard duration.isFinite, duration > 0 else { throw SimulationError("duration must be > 0 seconds") }
        guard warmup.isFinite, warmup >= 0 else { throw SimulationError("warm-up must be >= 0 seconds") }
        try cost.validate()
        if case .measured(let counts) = placement {
            guard counts.count == workers else {
                throw SimulationError("measured placement has \(counts.count) workers, the model \(workers)")
            }
            guard counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == connections else {
                throw SimulationError("measured placement \(counts) does not add up to \(connections) connections")
            }
        }
        if case .open(let rate) = loop { guard rate.isFinite, rate > 0 else { throw SimulationError("open-loop rate must be > 0 requests/s") } }
        if let r = rebalance, r.margin < 0 || r.attempts < 1 { throw SimulationError("rebalance needs a margin >= 0 and attempts >= 1") }
        if case .ramp(let seconds) = arrival { guard seconds.isFinite, seconds >= 0 else { throw SimulationError("ramp must be >= 0 seconds") } }
    }
}

/// Who gets each connection.
public enum Placement: Sendable, Equatable {
    /// The real strategies' decisions (`Decisions`), replayed as connections arrive.
    case strategy(AcceptStrategy, SharedAcceptModel = SharedAcceptModel())
    /// Connections per worker as a sweep measured them (validation: the placement is then not a model).
    case measured([Int])

    public var name: String {
        switch self {
        case .strategy(let s, _): s.rawValue
        case .measured: "measured"
        }
    }
}

/// How `shared` (one listening socket in every worker's loop, accept until EAGAIN) is modelled: a
/// woken worker accepts every pending connection, `acceptCost` each, before it serves again; a new
/// connection wakes a random worker with an empty queue, else the next worker to finish a request.
public struct SharedAcceptModel: Sendable, Equatable {
    /// Time between two connects of the load generator opening its connections back to back.
    public var connectSpacing: Double
    /// Worker time per accepted connection.
    public var acceptCost: Double

    public init(connectSpacing: Double = 2e-6, acceptCost: Double = 4e-6) {
        self.connectSpacing = connectSpacing
        self.acceptCost = acceptCost
    }
}

/// Live rebalancing: when a worker finishes a request while it holds more than `margin` requests
/// above the mean (requests received and not answered), it hands one of its idle keep-alive
/// connections (no request in flight) to the worker with the fewest. Up to `attempts` of its
/// connections are tried at random for an idle one. A move is modelled as instant.
public struct Rebalance: Sendable, Equatable {
    public var margin: Int
    public var attempts: Int

    public init(margin: Int = 2, attempts: Int = 8) {
        self.margin = margin
        self.attempts = attempts
    }
}

/// When connections open.
public enum ConnectionArrival: Sendable, Equatable {
    /// Back to back at the start (what `ballast load` does), `SharedAcceptModel.connectSpacing` apart.
    case allAtOnce
    /// Evenly spread over this many seconds.
    case ramp(Double)
}

/// How each connection sends.
public enum LoadLoop: Sendable, Equatable {
    /// The next request leaves when the previous response arrives (`-qps 0`).
    case closed
    /// Poisson arrivals at this many requests/s over all connections; a connection still waiting
    /// for a response sends late, and latency counts from the intended time (coordinated omission).
    case open(Double)
}

public struct SimulationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
