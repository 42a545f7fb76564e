import EventLoop
import Glibc

/// Where an acceptor sends the connections it accepted.
public protocol HandoffSink: Sendable {
    /// Gives `fd` to worker `worker`. Called on the acceptor thread with the acceptor loop's
    /// backend (for IORING_OP_MSG_RING hand-offs); must not block.
    func handOff<B: IOBackend>(fd: Int32, to worker: Int, via backend: B)
}

public enum AcceptorMessage: Sendable {
    case markDraining(worker: Int)
}

/// The acceptor thread of the dispatch, least-loaded and p2c strategies: accepts on one
/// listening socket and hands each connection to the worker the decision picks. The decision is
/// one of the pure functions in `Decisions`; this type only applies it.
public final class AcceptorHandler<Backend: IOBackend, Sink: HandoffSink>: LoopHandler {
    public typealias Message = AcceptorMessage
    public typealias Loop = EventLoop<Backend, AcceptorMessage>

    /// How often worker busy fractions are sampled for the busy metric.
    public static var busySampleNanos: Int64 { 10_000_000 }

    let listener: Int32
    let spec: BalanceSpec
    let loads: WorkerLoads
    let sink: Sink
    let workerLoops: [LoopStats]
    var previous = -1
    var tieStart = 0
    var draining = DrainMask()
    var rng: SplitMix64
    var lastBusy: [Int]
    var lastIdle: [Int]
    var busyEWMA: [Double]
    /// busy metric: hand-offs since the last sample, each counted as 10% busy, so a burst of
    /// connects between two 10 ms samples does not all go to the worker that looked idlest.
    var handoffsSinceSample: [Int]
    public private(set) var handedOff = 0

    static var listenerToken: UInt64 { 1 }
    static var busyTimer: UInt64 { 1 }
    static var rearmTimer: UInt64 { 2 }

    public init(listener: Int32, spec: BalanceSpec, loads: WorkerLoads, workerLoops: [LoopStats], sink: Sink, seed: UInt64) {
        self.listener = listener
        self.spec = spec
        self.loads = loads
        self.sink = sink
        self.workerLoops = workerLoops
        self.rng = SplitMix64(seed: seed)
        lastBusy = Array(repeating: 0, count: loads.count)
        lastIdle = Array(repeating: 0, count: loads.count)
        busyEWMA = Array(repeating: 0, count: loads.count)
        handoffsSinceSample = Array(repeating: 0, count: loads.count)
    }

    /// The busy metric as decisions see it: the sampled EWMA plus 10% per recent hand-off.
    struct BusyView: LoadReading {
        let loads: WorkerLoads
        let recent: [Int]
        var count: Int { loads.count }
        func load(_ worker: Int) -> Int { loads.busyPPM(worker) + recent[worker] * 100_000 }
    }

    /// Arms accepting (and the busy sampler). Call on the acceptor thread before `run`.
    public func start(loop: Loop) {
        loop.backend.armAccept(listener: listener, token: Self.listenerToken)
        if spec.metric == .busy && spec.strategy != .dispatch {
            loop.timers.schedule(at: loop.now + Self.busySampleNanos, id: Self.busyTimer)
        }
    }

    /// The worker for the next connection.
    func pick() -> Int? {
        switch spec.strategy {
        case .leastLoaded:
            let w = spec.metric == .busy
                ? Decisions.leastLoaded(BusyView(loads: loads, recent: handoffsSinceSample), tieStart: tieStart, draining: draining)
                : Decisions.leastLoaded(loads.view(spec.metric), tieStart: tieStart, draining: draining)
            // Ties rotate from the worker after the one just picked, so a worker that keeps
            // looking loaded does not hand its turn to its neighbour twice.
            if let w { tieStart = (w + 1) % loads.count }
            return w
        case .p2c:
            return spec.metric == .busy
                ? Decisions.powerOfTwo(BusyView(loads: loads, recent: handoffsSinceSample), rng: &rng, draining: draining)
                : Decisions.powerOfTwo(loads.view(spec.metric), rng: &rng, draining: draining)
        default:
            return Decisions.roundRobin(previous: previous, workers: loads.count, draining: draining)
        }
    }

    public func handle(_ c: Completion, loop: Loop) {
        guard c.kind == .accept else { return }
        guard c.result >= 0 else {
            // Shut by a removed listener's drain (WorkerGroup.shutdownListeners): nothing to retry.
            if !Sockets.isListening(listener) { return }
            Log.warning("acceptor: accept failed: \(Log.describe(errno: -c.result)); retrying in 100 ms")
            loop.timers.schedule(at: loop.now + 100_000_000, id: Self.rearmTimer)
            return
        }
        guard let worker = pick() else {
            Glibc.close(c.result)  // every worker drains: refuse
            return
        }
        previous = worker
        handoffsSinceSample[worker] += 1
        // Counted before the worker adopts it, so a burst of accepts sees each earlier choice.
        loads.connectionOpened(worker)
        handedOff += 1
        sink.handOff(fd: c.result, to: worker, via: loop.backend)
    }

    public func timerFired(_ id: UInt64, loop: Loop) {
        if id == Self.rearmTimer {
            loop.backend.armAccept(listener: listener, token: Self.listenerToken)
            return
        }
        for (w, stats) in workerLoops.enumerated() {
            let s = stats.snapshot()
            let busy = s.busyNanos - lastBusy[w]
            let idle = s.idleNanos - lastIdle[w]
            lastBusy[w] = s.busyNanos
            lastIdle[w] = s.idleNanos
            let fraction = busy + idle > 0 ? Double(busy) / Double(busy + idle) : 0
            busyEWMA[w] = 0.7 * busyEWMA[w] + 0.3 * fraction
            loads.setBusyPPM(w, Int(busyEWMA[w] * 1_000_000))
            handoffsSinceSample[w] = 0
        }
        loop.timers.schedule(at: loop.now + Self.busySampleNanos, id: Self.busyTimer)
    }

    public func received(_ message: AcceptorMessage, loop: Loop) {
        switch message {
        case let .markDraining(worker): draining.insert(worker)
        }
    }

    public func stopping(loop: Loop) {}
}
