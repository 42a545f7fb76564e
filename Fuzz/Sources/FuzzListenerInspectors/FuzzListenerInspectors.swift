import FuzzSupport
@testable import Proxy

/// tls_inspector's ClientHello parser and http_inspector's request-line reader on arbitrary bytes
/// cut at arbitrary points: they must not trap, a found name or protocol lies inside the bytes,
/// and the first decision on a growing prefix is the decision on the whole input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzListenerInspectors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Segmentation(UnsafeRawBufferPointer(start: data, count: size))
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: ClientHelloInspector.maxClientHello, alignment: 16)
    defer { scratch.deallocate() }
    input.payload.withUnsafeBytes { all in
        let whole = ClientHelloInspector.inspect(all, scratch: scratch)
        if case .clientHello(let f) = whole {
            let limit = f.inScratch ? scratch.count : all.count
            if let n = f.serverName { fuzzCheck(n.lowerBound >= 0 && n.upperBound <= limit, "server name \(n) outside \(limit) bytes") }
            for i in 0..<f.protocols.count {
                fuzzCheck(f.protocols[i].lowerBound >= 0 && f.protocols[i].upperBound <= limit, "protocol outside the bytes")
            }
        }
        var tlsDecided: ClientHelloInspector.Outcome? = nil
        var httpDecided: HTTPInspector.Outcome? = nil
        for cut in input.cuts {
            let prefix = UnsafeRawBufferPointer(rebasing: all[0..<cut])
            if tlsDecided == nil {
                let got = ClientHelloInspector.inspect(prefix, scratch: scratch)
                if got != .needMore { tlsDecided = got }
            }
            if httpDecided == nil {
                let got = HTTPInspector.inspect(prefix)
                if got != .needMore { httpDecided = got }
            }
        }
        if let tlsDecided { fuzzCheck(tlsDecided == whole, "tls: pieces \(tlsDecided) vs whole \(whole)") }
        if let httpDecided { fuzzCheck(httpDecided == HTTPInspector.inspect(all), "http: pieces \(httpDecided) vs whole") }
    }
    return 0
}

@_cdecl("FuzzListenerInspectors_main")
public func fuzzListenerInspectorsMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzListenerInspectors)
}
