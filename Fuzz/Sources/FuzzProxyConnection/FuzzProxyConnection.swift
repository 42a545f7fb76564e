import FuzzSupport
@testable import ProxyTestSupport

/// One client connection through a proxy worker on the scripted backend: the driver and its
/// invariants are `runConnectionScript` (Tests/ProxyTestSupport/ConnectionScript.swift), shared
/// with the regression tests in ProxyTests (`ConnectionScriptTests`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyConnection(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let problem = runConnectionScript(UnsafeRawBufferPointer(start: data, count: size))
    fuzzCheck(problem == nil, problem ?? "")
    return 0
}

@_cdecl("FuzzProxyConnection_main")
public func fuzzProxyConnectionMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzProxyConnection)
}
