import FuzzSupport
import HTTP1

/// The chunked decoder on arbitrary bytes delivered in arbitrary pieces: it must not trap, every
/// data range must lie inside the window it was given, and the payload, the outcome and the bytes
/// consumed must not depend on the segmentation.
struct Run: Equatable {
    var payload: [UInt8] = []
    var consumed = 0
    var outcome = "needMore"
}

func decode(_ all: UnsafeRawBufferPointer, cuts: [Int]) -> Run {
    var decoder = ChunkedDecoder(maxExtensionBytes: 64, maxTrailerBytes: 256)
    var run = Run()
    var cutIndex = 0
    var available = cuts.first ?? 0
    while true {
        let window = UnsafeRawBufferPointer(rebasing: all[run.consumed..<available])
        switch decoder.decode(window) {
        case .data(let r, let c):
            fuzzCheck(!r.isEmpty && r.lowerBound >= 0 && r.upperBound <= window.count && c <= window.count, "data \(r) consumed \(c) of \(window.count)")
            run.payload += window[r]
            run.consumed += c
        case .needMore(let c):
            fuzzCheck(c == window.count, "needMore consumed \(c) of \(window.count)")
            run.consumed += c
            cutIndex += 1
            if cutIndex >= cuts.count { return run }
            available = cuts[cutIndex]
        case .done(let c):
            fuzzCheck(c <= window.count, "done consumed \(c) of \(window.count)")
            run.consumed += c
            run.outcome = "done"
            return run
        case .failure(let e):
            run.outcome = "failure \(e.kind)"
            run.consumed = 0  // not reported on failure
            return run
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChunked(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Segmentation(UnsafeRawBufferPointer(start: data, count: size))
    input.payload.withUnsafeBytes { all in
        let whole = decode(all, cuts: [all.count])
        let pieces = decode(all, cuts: input.cuts.isEmpty ? [0] : input.cuts)
        fuzzCheck(whole == pieces, "whole \(whole.outcome)/\(whole.consumed)/\(whole.payload.count) vs pieces \(pieces.outcome)/\(pieces.consumed)/\(pieces.payload.count)")
    }
    return 0
}

@_cdecl("FuzzChunked_main")
public func fuzzChunkedMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzChunked)
}
