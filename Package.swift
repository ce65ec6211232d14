// swift-tools-version:6.0
// Lariat: an agent-centric edge tunnel. Module map (see docs/ARCHITECTURE.md):
//   C shims        Sources/C*            system libraries + static inline wrappers
//   LariatProtocol Sources/LariatProtocol syscall-free frame codec and session engine
//   LariatHTTP     Sources/LariatHTTP     syscall-free HTTP/1.1 and WebSocket codecs
//   LariatRuntime  Sources/LariatRuntime  libuv loops, TCP, TLS (OpenSSL), tunnel transport
//   LariatHub      Hub/                   hub library + lariat-hub
//   LariatAgent    Agent/                 agent library + lariat-agent
//   lariat-bench   perf/                  the benchmark program
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Lariat",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lariat-hub", targets: ["lariat-hub"]),
        .executable(name: "lariat-agent", targets: ["lariat-agent"]),
        .executable(name: "lariat-bench", targets: ["lariat-bench"]),
        .executable(name: "lariat-corebench", targets: ["lariat-corebench"]),
        .executable(name: "lariat-allocgate", targets: ["lariat-allocgate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // YAML for the kubeconfigs the control plane generates (LariatControl only).
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CLibUV", path: "Sources/CLibUV", pkgConfig: "libuv",
                       providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),
        // Byte-crunching loops (WebSocket masking) that must be fast even in debug builds.
        .target(name: "CLariatSupport", path: "Sources/CLariatSupport",
                cSettings: [.unsafeFlags(["-O2"])]),
        // The BIO that feeds OpenSSL from socket buffers without memory-BIO copies.
        .target(name: "CLariatBIO", dependencies: ["COpenSSL"], path: "Sources/CLariatBIO",
                cSettings: [.unsafeFlags(["-O2"])]),

        .target(name: "LariatProtocol", dependencies: ["CLZ4"],
                path: "Sources/LariatProtocol", swiftSettings: strict),
        .target(name: "LariatHTTP", dependencies: ["COpenSSL", "CLariatSupport"],
                path: "Sources/LariatHTTP", swiftSettings: strict),
        .target(name: "LariatRuntime",
                dependencies: ["CLibUV", "COpenSSL", "CLariatBIO", "LariatProtocol", "LariatHTTP",
                               .product(name: "Logging", package: "swift-log")],
                path: "Sources/LariatRuntime", swiftSettings: strict),
        // A protocol session carried over WebSocket on a byte stream, and the bridges between
        // its streams and sockets: what hub and agent share.
        .target(name: "LariatTunnel",
                dependencies: ["LariatRuntime", "LariatProtocol", "LariatHTTP"],
                path: "Sources/LariatTunnel", swiftSettings: strict),

        // A whole tunnel in memory (hub and agent over TLS over MemoryByteStream) for tests and
        // the allocation gate; no production target depends on it.
        .target(name: "LariatTestSupport",
                dependencies: ["LariatRuntime", "LariatTunnel", "LariatProtocol"],
                path: "Sources/LariatTestSupport", swiftSettings: strict),

        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        // The control plane's store: Kubernetes object semantics over SQLite (embedded) or etcd.
        .target(name: "LariatStore", dependencies: ["CSQLite", "LariatHTTP", "LariatRuntime"],
                path: "Hub/Sources/LariatStore", swiftSettings: strict),
        // The control plane: kinds, authentication, authorization, controllers and the /v3 API.
        .target(name: "LariatControl",
                dependencies: ["LariatStore", "LariatRuntime", "LariatHTTP", "COpenSSL",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "CoreMetrics", package: "swift-metrics"),
                               .product(name: "Yams", package: "Yams")],
                path: "Hub/Sources/LariatControl", swiftSettings: strict),
        // A child process for the store's durability test: writes, acknowledges, gets SIGKILLed.
        .executableTarget(name: "lariat-store-probe", dependencies: ["LariatStore"],
                          path: "Hub/Sources/lariat-store-probe", swiftSettings: strict),
        .target(name: "LariatHub",
                dependencies: ["LariatTunnel", "LariatRuntime", "LariatProtocol", "LariatHTTP", "LariatControl", "LariatStore",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "CoreMetrics", package: "swift-metrics"),
                               .product(name: "Prometheus", package: "swift-prometheus")],
                path: "Hub/Sources/LariatHub", swiftSettings: strict),
        .executableTarget(name: "lariat-hub",
                          dependencies: ["LariatHub",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Hub/Sources/lariat-hub", swiftSettings: strict),
        .target(name: "LariatAgent",
                dependencies: ["LariatTunnel", "LariatRuntime", "LariatProtocol", "LariatHTTP",
                               .product(name: "Logging", package: "swift-log")],
                path: "Agent/Sources/LariatAgent", swiftSettings: strict),
        .executableTarget(name: "lariat-agent",
                          dependencies: ["LariatAgent",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Agent/Sources/lariat-agent", swiftSettings: strict),
        .executableTarget(name: "lariat-bench",
                          dependencies: ["LariatRuntime", "LariatProtocol", "LariatTunnel", "LariatHTTP",
                                         .product(name: "Histogram", package: "hdrhistogram-swift"),
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "perf/Sources/lariat-bench", swiftSettings: strict),
        // In-process protocol benchmark: no sockets, so callgrind counts only our code.
        .executableTarget(name: "lariat-corebench", dependencies: ["LariatProtocol"],
                          path: "perf/Sources/lariat-corebench", swiftSettings: strict),
        // Counts malloc & co by interposing them: linked into lariat-allocgate ONLY (whatever
        // links it has its allocator wrapped).
        .target(name: "CLariatAllocCounter", path: "perf/Sources/CLariatAllocCounter",
                cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dl")]),
        // Allocations per MiB through the whole path (TLS, WebSocket, session, bridges, both
        // ends) over MemoryByteStream; AllocationGateTests hold it to perf/alloc-budget.json.
        .executableTarget(name: "lariat-allocgate",
                          dependencies: ["CLariatAllocCounter", "LariatTestSupport", "LariatTunnel",
                                         "LariatRuntime", "LariatProtocol"],
                          path: "perf/Sources/lariat-allocgate", swiftSettings: strict),

        .testTarget(name: "LariatProtocolTests", dependencies: ["LariatProtocol"],
                    path: "Tests/LariatProtocolTests",
                    swiftSettings: strict),
        .testTarget(name: "LariatHTTPTests", dependencies: ["LariatHTTP"],
                    path: "Tests/LariatHTTPTests", swiftSettings: strict),
        .testTarget(name: "LariatRuntimeTests", dependencies: ["LariatRuntime", "LariatTunnel", "LariatTestSupport"],
                    path: "Tests/LariatRuntimeTests", swiftSettings: strict),
        // Runs lariat-allocgate (built beside the tests, never linked into them) against its budget.
        .testTarget(name: "AllocationGateTests", path: "Tests/AllocationGateTests", swiftSettings: strict),
        .testTarget(name: "StoreTests", dependencies: ["LariatStore"],
                    path: "Tests/StoreTests", swiftSettings: strict),
        .testTarget(name: "ControlTests", dependencies: ["LariatControl", "LariatStore",
                                                        .product(name: "MetricsTestKit", package: "swift-metrics"),
                                                        .product(name: "Yams", package: "Yams")],
                    path: "Tests/ControlTests", swiftSettings: strict),
        .testTarget(name: "HubTests", dependencies: ["LariatHub", "LariatRuntime"],
                    path: "Tests/HubTests", swiftSettings: strict),
        .testTarget(name: "AgentTests", dependencies: ["LariatAgent"],
                    path: "Tests/AgentTests", swiftSettings: strict),
        .testTarget(name: "EndToEndTests", dependencies: ["LariatRuntime", "LariatHub", "LariatStore", "COpenSSL"],
                    path: "Tests/EndToEndTests", swiftSettings: strict),
    ]
)
