import FuzzSupport
import Proxy

/// The Envoy bootstrap loader on arbitrary bytes: a bootstrap or a diagnostic, never a crash;
/// a loaded bootstrap must also compile into a data plane or be refused with an error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBootstrapYAML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let loaded = try BootstrapLoader.load(yaml: text)
        _ = try? DataPlane.compile(loaded.bootstrap)
    } catch {
        if error.errors.isEmpty { fatalError("a refused config must name at least one error") }
        _ = error.errors.map(\.description)
    }
    return 0
}

@_cdecl("FuzzBootstrapYAML_main")
public func fuzzBootstrapYAMLMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzBootstrapYAML)
}
