/// One worker's pool of connections to one upstream host (a cluster has one per host): the idle
/// keep-alive connections, the streams waiting for a connection (max_connections reached), and
/// the counts the load balancer reads. Tokens only: the connections live in the worker's table.
struct UpstreamPool {
    var cluster: Int32
    var host: Int32
    /// Idle connections (a stack: the most recently used first, warm in cache).
    private(set) var idle: [UInt64] = []
    /// Open connections of this worker to this host (any state).
    var connections = 0
    /// Streams of this worker assigned to this host and not finished (LEAST_REQUEST).
    var activeRequests = 0
    /// Grows when a reload changes this host's address: connections of an older epoch are not
    /// reused (idle ones close at the reload, busy ones after their exchange).
    var epoch: UInt32 = 0
    /// ORIGINAL_DST clusters: the destination this pool was created for (nil: configured host
    /// `host` of the cluster).
    var dynamicHost: DynamicHost? = nil
    /// Its host left the cluster (reload, DNS refresh): no new requests; the slot is freed once
    /// its connections and requests are gone.
    var retired = false
    /// This worker's `/clusters` figures for the host (registered by slot in `DataPathStats.hosts`).
    let counters = HostCounters()
    /// Downstream tokens waiting for a connection, FIFO from `queueHead`.
    private var queue: [UInt64] = []
    private var queueHead = 0

    init(cluster: Int, host: Int) {
        self.cluster = Int32(cluster)
        self.host = Int32(host)
        idle.reserveCapacity(64)
        queue.reserveCapacity(64)
    }

    // MARK: idle connections

    /// The most recently idled connection, taken out of the stack.
    mutating func popIdle() -> UInt64? { idle.popLast() }

    /// Puts a connection on the stack; returns its position (for `removeIdle(at:)`).
    mutating func pushIdle(_ token: UInt64) -> Int {
        idle.append(token)
        return idle.count - 1
    }

    /// Removes the connection at `index` (swap-remove). Returns the token that moved into
    /// `index`, whose recorded position must be updated, or nil when none moved.
    mutating func removeIdle(at index: Int) -> UInt64? {
        let last = idle.removeLast()
        guard index < idle.count else { return nil }
        idle[index] = last
        return last
    }

    // MARK: streams waiting for a connection

    mutating func enqueue(_ downstream: UInt64) { queue.append(downstream) }

    /// The oldest waiting downstream token (it may have gone stale: the caller checks).
    mutating func dequeue() -> UInt64? {
        guard queueHead < queue.count else { return nil }
        let token = queue[queueHead]
        queueHead += 1
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
        return token
    }

    /// Puts a just dequeued token back at the front (its connection slot was taken meanwhile).
    mutating func requeueFirst(_ downstream: UInt64) {
        if queueHead > 0 {
            queueHead -= 1
            queue[queueHead] = downstream
        } else {
            queue.insert(downstream, at: 0)
        }
    }
}
