import FuzzSupport
import HTTP1

/// The response head parser on arbitrary bytes cut at arbitrary points: it must not trap, and
/// parsing the growing buffer piece by piece must give the same result as parsing it whole.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponseHead(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Segmentation(UnsafeRawBufferPointer(start: data, count: size))
    input.payload.withUnsafeBytes { all in
        var whole = ResponseHeadParser(maxHeaderBytes: 4096, maxHeaders: 16)
        let expected = whole.parse(all)
        if case .complete = expected {
            fuzzCheck(whole.headLength <= all.count, "head length \(whole.headLength) beyond \(all.count) bytes")
            for i in 0..<whole.headerCount {
                fuzzCheck(whole.headerNameRange(at: i).upperBound <= whole.headLength, "header name outside the head")
                fuzzCheck(whole.headerValueRange(at: i).upperBound <= whole.headLength, "header value outside the head")
            }
        }
        var stepped = ResponseHeadParser(maxHeaderBytes: 4096, maxHeaders: 16)
        var got = HeadParseResult.incomplete
        for cut in input.cuts {
            got = stepped.parse(UnsafeRawBufferPointer(rebasing: all[0..<cut]))
            if got != .incomplete { break }
        }
        if all.isEmpty { got = stepped.parse(all) }
        fuzzCheck(got == expected, "whole \(expected) vs pieces \(got)")
    }
    return 0
}

@_cdecl("FuzzResponseHead_main")
public func fuzzResponseHeadMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzResponseHead)
}
