// swift-tools-version: 6.0
import PackageDescription

// Dependencies point downwards only:
// ballast -> Testbed -> {Proxy, LoadGen, Report, Simulator} -> {Balancers, AdminHTTP, HTTP1} -> EventLoop -> CBallast
// Proxy -> CRE2 (C++ over libre2), CTLS (C over OpenSSL), CZlib (C over zlib), CBrotli (C over libbrotli), CZstd (C over libzstd)
// Release builds of the data-plane modules skip dynamic exclusivity checks: every access to a
// class's stored var otherwise calls swift_beginAccess (about a quarter of the server's
// instructions per request under callgrind). Debug builds, which the tests use, keep the checks.
let dataPlane: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Ballast",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ballast", targets: ["ballast"]),
        // For the fuzz package (Fuzz/, built only by `make fuzz`), which depends on this one by path.
        .library(name: "BallastHTTP1", targets: ["HTTP1"]),
        .library(name: "BallastProxy", targets: ["Proxy"]),
        .library(name: "BallastProxyTestSupport", targets: ["ProxyTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // C shims only: epoll/eventfd/timerfd headers, GNU-only calls, CPU sets, liburing, libnuma.
        .target(
            name: "CBallast",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("uring"), .linkedLibrary("numa")]
        ),
        // RE2 (safe_regex, admin ?filter=) behind a C interface: a few lines of C++ over libre2.
        .target(name: "CRE2", linkerSettings: [.linkedLibrary("re2")]),
        // OpenSSL (libssl-dev) on memory BIOs: TLS without touching sockets (docs/tls.md).
        .target(name: "CTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // zlib (zlib1g-dev) for the compressor / decompressor filters' gzip (docs/filters.md).
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        // libbrotli (libbrotli-dev) for the compressor filter's brotli: the codec Envoy uses.
        .target(name: "CBrotli", linkerSettings: [.linkedLibrary("brotlienc"), .linkedLibrary("brotlidec")]),
        // libzstd (libzstd-dev) for the compressor filter's zstd: the codec Envoy uses.
        .target(name: "CZstd", linkerSettings: [.linkedLibrary("zstd")]),
        .target(name: "EventLoop", dependencies: ["CBallast"], swiftSettings: dataPlane),
        .target(name: "HTTP1", swiftSettings: dataPlane),
        .target(name: "Balancers", dependencies: ["EventLoop", "CBallast"], swiftSettings: dataPlane),
        // A small blocking HTTP server for admin endpoints (ballast server and proxy).
        .target(name: "AdminHTTP", dependencies: ["EventLoop", "HTTP1"]),
        .target(name: "Proxy", dependencies: ["Balancers", "HTTP1", "EventLoop", "AdminHTTP", "CRE2", "CTLS", "CZlib", "CBrotli", "CZstd", .product(name: "Yams", package: "Yams"), .product(name: "Histogram", package: "hdrhistogram-swift")],
                swiftSettings: dataPlane),
        .target(name: "LoadGen", dependencies: [
            "Balancers", "HTTP1", "EventLoop", "AdminHTTP",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], swiftSettings: dataPlane),
        .target(name: "Report"),
        // Discrete-event simulation of workers and accept strategies (the same Decisions as the acceptor).
        .target(name: "Simulator", dependencies: ["Balancers"], swiftSettings: dataPlane),
        .target(name: "Testbed", dependencies: ["Proxy", "LoadGen", "Report", "Simulator", "Balancers", .product(name: "Yams", package: "Yams")]),
        .executableTarget(name: "ballast", dependencies: [
            "Testbed", "LoadGen", "Proxy", "EventLoop",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Shared by every test target (docs/testing.md): child processes, ports, raw sockets,
        // waiting for conditions, the io_uring skip-or-fail policy. Never linked into `ballast`.
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .target(name: "TestSupport", dependencies: ["EventLoop", "CTestSupport"], path: "Tests/TestSupport"),
        // The scripted I/O backend and one proxy worker on it: for ProxyTests and the whole-connection
        // fuzz target (Fuzz/). Uses `@testable import Proxy`, so it builds only where testability is
        // on (debug, or `-enable-testing` as scripts/fuzz.sh passes). Never linked into `ballast`.
        // `@testable import Proxy`, so it only has content where Proxy is testable (see its files).
        .target(name: "ProxyTestSupport", dependencies: ["Proxy", "Balancers", "EventLoop"], path: "Tests/ProxyTestSupport",
                swiftSettings: [.define("BALLAST_TESTABLE", .when(configuration: .debug))]),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop", "CBallast", "TestSupport"]),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1", "TestSupport"]),
        .testTarget(name: "BalancersTests", dependencies: ["Balancers", "EventLoop", "TestSupport"]),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "EventLoop", "HTTP1", "TestSupport", "ProxyTestSupport"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "TestSupport"]),
        .testTarget(name: "TestbedTests", dependencies: ["Testbed", "TestSupport"]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "Testbed", "Report", "Balancers", "TestSupport"]),
        .testTarget(name: "LoadGenTests", dependencies: ["LoadGen", "EventLoop", "HTTP1", "CBallast", "ballast", "TestSupport"]),
        // Real Envoy 1.40 (scripts/ensure-envoy.sh) and `ballast proxy` side by side.
        .testTarget(name: "DifferentialTests", dependencies: ["ballast", "TestSupport", "CZlib", "CBrotli", "CZstd"]),
    ],
    swiftLanguageModes: [.v6]
)
