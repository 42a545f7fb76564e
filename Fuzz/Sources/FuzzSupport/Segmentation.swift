import CFuzzDriver
/// Arbitrary segmentation of a fuzz input: the first byte seeds where the input is cut, so
/// libFuzzer explores cut points as well as bytes. Cuts are cumulative prefixes (the head parsers
/// re-read the buffer so far) or consecutive pieces (the chunked decoder consumes as it goes).
public struct Segmentation {
    public let payload: [UInt8]
    public let cutSeed: UInt8

    public init(_ data: UnsafeRawBufferPointer) {
        cutSeed = data.first ?? 0
        payload = data.count > 1 ? Array(data[1...]) : []
    }

    /// Ascending cut positions in 1...payload.count, ending at payload.count.
    public var cuts: [Int] {
        var out: [Int] = []
        var state = UInt32(cutSeed) &* 2654435761 | 1
        var at = 0
        while at < payload.count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            // Mostly small pieces (1..8 bytes), sometimes everything left.
            let step = cutSeed == 0 ? payload.count : (state % 16 == 0 ? payload.count - at : Int(state % 8) + 1)
            at = min(payload.count, at + step)
            out.append(at)
        }
        return out
    }
}

/// Crashes (so libFuzzer reports the input) when `condition` is false: an invariant the parser
/// promises, checked on every input.
@inline(__always)
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant: \(message())") }
}

/// Runs libFuzzer with `callback` as the fuzz target (from a target's `<Target>_main`).
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}
