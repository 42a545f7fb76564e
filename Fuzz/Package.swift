// swift-tools-version: 6.0
import PackageDescription

// libFuzzer entry points for Ballast's parsers. Not part of `make test` or CI: build and run with
// `make fuzz` (scripts/fuzz.sh), which passes `-sanitize=fuzzer,address -parse-as-library` to every
// module so the code under test is instrumented. Each target defines LLVMFuzzerTestOneInput and a
// `<Target>_main` (SwiftPM's entry point on Linux) that runs libFuzzer's driver on it.
let package = Package(
    name: "BallastFuzz",
    dependencies: [.package(name: "Ballast", path: "..")],
    targets: [
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], path: "Sources/FuzzSupport"),
        .executableTarget(name: "FuzzRequestHead", dependencies: ["FuzzSupport", .product(name: "BallastHTTP1", package: "Ballast")]),
        .executableTarget(name: "FuzzResponseHead", dependencies: ["FuzzSupport", .product(name: "BallastHTTP1", package: "Ballast")]),
        .executableTarget(name: "FuzzChunked", dependencies: ["FuzzSupport", .product(name: "BallastHTTP1", package: "Ballast")]),
        .executableTarget(name: "FuzzBootstrapYAML", dependencies: ["FuzzSupport", .product(name: "BallastProxy", package: "Ballast")]),
        .executableTarget(name: "FuzzAccessLogFormat", dependencies: ["FuzzSupport", .product(name: "BallastProxy", package: "Ballast")]),
        // tls_inspector's and http_inspector's parsers (internal to Proxy: needs -enable-testing).
        .executableTarget(name: "FuzzListenerInspectors", dependencies: ["FuzzSupport", .product(name: "BallastProxy", package: "Ballast")]),
        // One client connection through a proxy worker on the scripted backend (needs -enable-testing).
        .executableTarget(name: "FuzzProxyConnection", dependencies: [
            "FuzzSupport", .product(name: "BallastProxy", package: "Ballast"), .product(name: "BallastProxyTestSupport", package: "Ballast"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
