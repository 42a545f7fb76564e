import Balancers

/// A discrete-event simulation of N workers serving long-lived keep-alive connections: connections
/// are placed by the same decision code as the real acceptor (`Decisions`), each worker serves its
/// requests one at a time in arrival order, and the clients send in a closed or open loop.
///
/// What it models is what the `block:` worker-cost experiments measure: a worker is either serving
/// (blocked) or waiting, workers do not compete for CPU, and a request's latency is the round trip
/// plus its wait in the worker's queue plus its cost. Deterministic for a seed.
public struct Simulation {
    public let model: SimulationModel

    public init(_ model: SimulationModel) throws(SimulationError) {
        try model.validate()
        self.model = model
    }

    public func run() -> SimulationResult {
        var engine = Engine(model)
        return engine.run()
    }
}

/// The event loop of one simulation run.
private struct Engine {
    let model: SimulationModel
    var events: EventQueue
    var rng: SplitMix64

    // Per connection.
    var workerOf: [Int32]
    /// When the request in flight was sent (closed loop) or intended (open loop).
    var sentAt: [Double]
    /// Open loop: the next intended send time; `.infinity` while none is due.
    var nextIntended: [Double]
    var awaitingResponse: [Bool]
    /// Open loop: an intended send came while the connection still waited for a response.
    var overdue: [Bool]

    // Per worker.
    var queues: [WorkerQueue]
    var busy: [Bool]
    /// The connection being served (or accepted, while accepting), -1 when idle.
    var serving: [Int32]
    var connectionsPerWorker: [Int]
    var requestsPerWorker: [Int]
    var busyTime: [Double]
    /// Requests received and not yet answered, per worker (the rebalancing load).
    var inFlight: [Int]
    /// Each worker's connections, and each connection's index in its worker's list (rebalancing).
    var members: [[Int32]]
    var memberIndex: [Int32]
    /// The connection's request is queued or being served: the worker has it (not idle).
    var atWorker: [Bool]
    var moves = 0
    var rebalanceTieStart = 0

    // Placement state.
    var tieStart = 0
    var previousDispatch = -1
    /// `shared`: connections waiting in the listening socket's queue, and the worker accepting them.
    var pendingAccepts: [Int32] = []
    var pendingHead = 0
    var acceptingWorker = -1

    var latencies: [Double] = []
    let windowStart: Double
    let windowEnd: Double

    init(_ model: SimulationModel) {
        self.model = model
        let n = model.connections
        events = EventQueue(capacity: n * 2 + model.workers)
        rng = SplitMix64(seed: model.seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x1234_5678)
        workerOf = Array(repeating: -1, count: n)
        sentAt = Array(repeating: 0, count: n)
        nextIntended = Array(repeating: .infinity, count: n)
        awaitingResponse = Array(repeating: false, count: n)
        overdue = Array(repeating: false, count: n)
        queues = Array(repeating: WorkerQueue(), count: model.workers)
        busy = Array(repeating: false, count: model.workers)
        serving = Array(repeating: -1, count: model.workers)
        connectionsPerWorker = Array(repeating: 0, count: model.workers)
        requestsPerWorker = Array(repeating: 0, count: model.workers)
        busyTime = Array(repeating: 0, count: model.workers)
        inFlight = Array(repeating: 0, count: model.workers)
        members = Array(repeating: [], count: model.workers)
        memberIndex = Array(repeating: -1, count: n)
        atWorker = Array(repeating: false, count: n)
        windowStart = model.warmup
        windowEnd = model.warmup + model.duration
    }

    mutating func run() -> SimulationResult {
        scheduleConnects()
        while let e = events.pop() {
            if e.time > windowEnd { break }
            let subject = Int(e.subject)
            switch e.kind {
            case .connect: connectArrives(subject, at: e.time)
            case .requestArrives: requestArrives(subject, at: e.time)
            case .workerFree: workerFinishes(subject, at: e.time)
            case .intendedSend: intendedSendDue(subject, at: e.time)
            }
        }
        latencies.sort()
        return SimulationResult(model: model, sortedLatencies: latencies, connectionsPerWorker: connectionsPerWorker,
                                requestsPerWorker: requestsPerWorker,
                                busyFraction: busyTime.map { min(1, $0 / model.duration) }, moves: moves)
    }

    // MARK: connections

    mutating func scheduleConnects() {
        let n = model.connections
        let spacing: Double
        switch model.arrival {
        case .allAtOnce:
            if case .strategy(_, let shared) = model.placement { spacing = shared.connectSpacing } else { spacing = 0 }
        case .ramp(let seconds): spacing = n > 1 ? seconds / Double(n - 1) : 0
        }
        for c in 0..<n { events.push(Double(c) * spacing, .connect, c) }
    }

    mutating func connectArrives(_ c: Int, at t: Double) {
        switch model.placement {
        case .measured(let counts):
            // Fill workers in turn up to their measured counts: the placement is an input here.
            var w = c % model.workers
            while connectionsPerWorker[w] >= counts[w] { w = (w + 1) % model.workers }
            adopt(c, worker: w, at: t)
        case .strategy(let strategy, let shared):
            switch strategy {
            case .reuseport:
                let tuple = FourTuple(sourceAddress: 0x7F00_0001, sourcePort: UInt16(truncatingIfNeeded: rng.next()),
                                      destinationAddress: 0x7F00_0001, destinationPort: 8080)
                adopt(c, worker: Decisions.reusePortHash(tuple, workers: model.workers), at: t)
            case .dispatch:
                let w = Decisions.roundRobin(previous: previousDispatch, workers: model.workers) ?? 0
                previousDispatch = w
                adopt(c, worker: w, at: t)
            case .leastLoaded:
                let w = Decisions.leastLoaded(connectionsPerWorker, tieStart: tieStart) ?? 0
                tieStart = (w + 1) % model.workers
                adopt(c, worker: w, at: t)
            case .p2c:
                adopt(c, worker: Decisions.powerOfTwo(connectionsPerWorker, rng: &rng) ?? 0, at: t)
            case .shared:
                pendingAccepts.append(Int32(c))
                if acceptingWorker < 0, let w = randomIdleWorker() { startAccepting(w, at: t, cost: shared.acceptCost) }
            }
        }
    }

    /// The connection now belongs to worker `w`: its first request is already on its way.
    mutating func adopt(_ c: Int, worker w: Int, at t: Double) {
        workerOf[c] = Int32(w)
        connectionsPerWorker[w] += 1
        if model.rebalance != nil { join(c, w) }
        switch model.loop {
        case .closed:
            send(c, at: t)
        case .open(let rate):
            let perConnection = rate / Double(model.connections)
            let first = t - CostDistribution.logOfUniform(&rng) / perConnection
            nextIntended[c] = first
            events.push(first, .intendedSend, c)
        }
    }

    mutating func send(_ c: Int, at t: Double) {
        sentAt[c] = t
        awaitingResponse[c] = true
        events.push(t + model.roundTrip / 2, .requestArrives, c)
    }

    /// Open loop: an intended send time came. A connection still waiting for its response sends
    /// when the response arrives (as fortio and `ballast load` do).
    mutating func intendedSendDue(_ c: Int, at t: Double) {
        if awaitingResponse[c] { overdue[c] = true } else { sendIntended(c, now: t) }
    }

    /// Open loop: send the request intended at `nextIntended[c]` now, count its latency from the
    /// intended time (coordinated-omission correction), and draw the next intended time.
    mutating func sendIntended(_ c: Int, now: Double) {
        guard case .open(let rate) = model.loop else { return }
        let intended = nextIntended[c]
        send(c, at: now)
        sentAt[c] = intended
        let next = intended - CostDistribution.logOfUniform(&rng) / (rate / Double(model.connections))
        nextIntended[c] = next
        events.push(max(next, now), .intendedSend, c)
    }

    // MARK: workers

    mutating func requestArrives(_ c: Int, at t: Double) {
        let w = Int(workerOf[c])
        queues[w].push(Int32(c))
        atWorker[c] = true
        inFlight[w] += 1
        if !busy[w] { serveNext(w, at: t) }
    }

    mutating func serveNext(_ w: Int, at t: Double) {
        guard let c = queues[w].pop() else {
            busy[w] = false
            serving[w] = -1
            return
        }
        let cost = model.cost.draw(&rng)
        busy[w] = true
        serving[w] = c
        addBusy(w, from: t, to: t + cost)
        events.push(t + cost, .workerFree, w)
    }

    mutating func workerFinishes(_ w: Int, at t: Double) {
        if acceptingWorker == w {
            finishAccept(w, at: t)
            return
        }
        let c = Int(serving[w])
        atWorker[c] = false
        respond(c, worker: w, at: t)
        inFlight[w] -= 1
        if let policy = model.rebalance { rebalance(from: w, policy, at: t) }
        if acceptingWorker < 0 && pendingHead < pendingAccepts.count, case .strategy(_, let shared) = model.placement {
            startAccepting(w, at: t, cost: shared.acceptCost)    // the listener is in this turn's events
            return
        }
        serveNext(w, at: t)
    }

    mutating func respond(_ c: Int, worker w: Int, at t: Double) {
        let arrival = t + model.roundTrip / 2
        if arrival >= windowStart && arrival <= windowEnd {
            latencies.append(arrival - sentAt[c])
            requestsPerWorker[w] += 1
        }
        awaitingResponse[c] = false
        switch model.loop {
        case .closed:
            send(c, at: arrival)
        case .open:
            if overdue[c] {
                overdue[c] = false
                sendIntended(c, now: arrival)
            }
        }
    }

    // MARK: live rebalancing

    mutating func join(_ c: Int, _ w: Int) {
        memberIndex[c] = Int32(members[w].count)
        members[w].append(Int32(c))
    }

    mutating func leave(_ c: Int, _ w: Int) {
        let i = Int(memberIndex[c])
        let last = members[w].removeLast()
        if Int(last) != c {
            members[w][i] = last
            memberIndex[Int(last)] = Int32(i)
        }
        memberIndex[c] = -1
    }

    /// At a request boundary of worker `w`: above the mean by more than the margin, hand one idle
    /// connection to the worker with the fewest requests in flight.
    mutating func rebalance(from w: Int, _ policy: Rebalance, at t: Double) {
        guard !members[w].isEmpty,
              let target = Decisions.rebalanceTarget(inFlight, from: w, margin: policy.margin, tieStart: rebalanceTieStart) else { return }
        rebalanceTieStart = (target + 1) % model.workers
        for _ in 0..<policy.attempts {
            let c = Int(members[w][Int(rng.next() % UInt64(members[w].count))])
            // Idle as the server sees it: nothing queued or being served. A request already on its
            // way arrives at the new worker (the kernel keeps it in the socket until then).
            guard !atWorker[c] else { continue }
            leave(c, w)
            join(c, target)
            workerOf[c] = Int32(target)
            connectionsPerWorker[w] -= 1
            connectionsPerWorker[target] += 1
            if t >= windowStart { moves += 1 }
            return
        }
    }

    // MARK: shared accept (accept until EAGAIN)

    mutating func randomIdleWorker() -> Int? {
        var idle = 0
        for w in 0..<model.workers where !busy[w] { idle += 1 }
        guard idle > 0 else { return nil }
        var pick = Int(rng.next() % UInt64(idle))
        for w in 0..<model.workers where !busy[w] {
            if pick == 0 { return w }
            pick -= 1
        }
        return nil
    }

    mutating func startAccepting(_ w: Int, at t: Double, cost: Double) {
        acceptingWorker = w
        busy[w] = true
        serving[w] = pendingAccepts[pendingHead]
        pendingHead += 1
        addBusy(w, from: t, to: t + cost)
        events.push(t + cost, .workerFree, w)
    }

    mutating func finishAccept(_ w: Int, at t: Double) {
        adopt(Int(serving[w]), worker: w, at: t)
        if pendingHead < pendingAccepts.count, case .strategy(_, let shared) = model.placement {
            startAccepting(w, at: t, cost: shared.acceptCost)
            return
        }
        acceptingWorker = -1
        serveNext(w, at: t)
    }

    mutating func addBusy(_ w: Int, from: Double, to: Double) {
        let overlap = min(to, windowEnd) - max(from, windowStart)
        if overlap > 0 { busyTime[w] += overlap }
    }
}

/// A FIFO of connection indices (one worker's queued requests).
struct WorkerQueue {
    private var items: [Int32] = []
    private var head = 0

    mutating func push(_ c: Int32) { items.append(c) }

    mutating func pop() -> Int32? {
        guard head < items.count else { return nil }
        let c = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return c
    }
}
