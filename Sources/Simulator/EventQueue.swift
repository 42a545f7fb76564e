/// A discrete-event queue: a binary min-heap ordered by time, then by insertion order, so equal
/// times replay in the same order on every run (the simulator's determinism rests on it).
struct EventQueue {
    enum Kind: UInt8 {
        /// A connection's connect reaches the server.
        case connect
        /// A request reaches its worker.
        case requestArrives
        /// A worker finishes what it was doing (a request or an accept).
        case workerFree
        /// Open loop: a connection's next intended send time.
        case intendedSend
    }

    struct Event {
        var time: Double
        var sequence: UInt64
        var kind: Kind
        /// Connection or worker index, by kind.
        var subject: Int32

        @inline(__always)
        func precedes(_ other: Event) -> Bool {
            time < other.time || (time == other.time && sequence < other.sequence)
        }
    }

    private var heap: [Event] = []
    private var nextSequence: UInt64 = 0

    init(capacity: Int) { heap.reserveCapacity(capacity) }

    var isEmpty: Bool { heap.isEmpty }

    mutating func push(_ time: Double, _ kind: Kind, _ subject: Int) {
        heap.append(Event(time: time, sequence: nextSequence, kind: kind, subject: Int32(subject)))
        nextSequence &+= 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Event? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < heap.count else { break }
                let right = left + 1
                let child = right < heap.count && heap[right].precedes(heap[left]) ? right : left
                guard heap[child].precedes(heap[parent]) else { break }
                heap.swapAt(child, parent)
                parent = child
            }
        }
        return first
    }
}
