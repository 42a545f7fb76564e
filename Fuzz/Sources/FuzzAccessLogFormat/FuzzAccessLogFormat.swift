import FuzzSupport
import Proxy

/// The access-log format parser (`text_format` strings) on arbitrary text: a template or a
/// ParseError, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAccessLogFormat(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let template = try AccessLogTemplate(parsing: text)
        _ = template.segments.count
    } catch {
        _ = error.description
    }
    return 0
}

@_cdecl("FuzzAccessLogFormat_main")
public func fuzzAccessLogFormatMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzAccessLogFormat)
}
