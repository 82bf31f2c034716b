// swift-tools-version:6.1
import Foundation
import PackageDescription

/// The executables allocate with jemalloc when its development files are installed
/// (Debian: `libjemalloc-dev`): Cordon's intake allocates and frees many small objects on
/// several threads, and with glibc's malloc a finding costs about a tenth more CPU (README,
/// "The engine"). Without them, or with `CORDON_ALLOCATOR=system`, the executables use the
/// system's malloc. `cordon run` and the benchmarks print which one is in use.
let jemalloc: [LinkerSetting] = {
    #if os(Linux)
    if ProcessInfo.processInfo.environment["CORDON_ALLOCATOR"] == "system" { return [] }
    let directories = [
        "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib",
    ]
    if directories.contains(where: { FileManager.default.fileExists(atPath: $0 + "/libjemalloc.so") }) {
        return [.linkedLibrary("jemalloc")]
    }
    #endif
    return []
}()

let package = Package(
    name: "Cordon",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cordon", targets: ["cordon"]),
        .library(name: "CordonCore", targets: ["CordonCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLibYAML", path: "Sources/CLibYAML", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CCordonSys", path: "Sources/CCordonSys"),
        .target(name: "CCordonCrash"),
        .target(
            name: "CordonCore",
            dependencies: [
                "CZlib",
                "CLibYAML",
                "CCordonSys",
                "CCordonCrash",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The engine: intake ledger, incident runs, approvals, rollback, the incident index.
        .target(
            name: "CordonEngine",
            dependencies: [
                "CordonCore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Finding sources (queue directory, SQS), the receipt queue and the handler pool, as
        // ServiceLifecycle services.
        .target(
            name: "CordonIntake",
            dependencies: [
                "CordonCore",
                "CordonEngine",
                "CordonCloud",
                "CordonAWS",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CordonJournal",
            dependencies: [
                "CordonCore", "CCordonSys",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Cloud protocols and models, the aws.* actions with their specs, IAM policy, faults.
        .target(
            name: "CordonCloud",
            dependencies: [
                "CordonCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The HTTP client every outgoing call goes through: one configuration, one
        // classification of transport failures.
        .target(
            name: "CordonHTTP",
            dependencies: [
                "CordonCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The AWS client: SigV4, credentials, services, over CordonHTTP.
        .target(
            name: "CordonAWS",
            dependencies: [
                "CordonCore",
                "CordonCloud",
                "CordonHTTP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The simulated cloud, inventory seeding and fault timelines: drills and tests.
        .target(
            name: "CordonSimulatedCloud",
            dependencies: [
                "CordonCore",
                "CordonCloud",
                "CordonAWS",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "CordonIntegrations",
            dependencies: [
                "CordonCore",
                "CordonCloud",
                "CordonHTTP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .target(
            name: "CordonDrill",
            dependencies: ["CordonCore", "CordonEngine", "CordonJournal", "CordonCloud", "CordonAWS", "CordonSimulatedCloud", "CordonIntegrations", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "CordonServer",
            dependencies: [
                "CordonCore",
                "CordonEngine",
                "CordonIntake",
                "CordonJournal",
                "CordonCloud",
                "CordonAWS",
                "CordonHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The commands and the composition root, for the `cordon` executable and the tests' own.
        .target(
            name: "CordonCLI",
            dependencies: [
                "CordonDrill",
                "CordonCore",
                "CordonEngine",
                "CordonIntake",
                "CordonJournal",
                "CordonCloud",
                "CordonAWS",
                "CordonSimulatedCloud",
                "CordonIntegrations",
                "CordonServer",
                "CordonHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "cordon",
            dependencies: ["CordonCLI"],
            linkerSettings: jemalloc
        ),
        .executableTarget(
            name: "cordon-bench",
            dependencies: [
                "CordonCore",
                "CordonIntegrations",
                "CordonEngine",
                "CordonIntake",
                "CordonJournal",
                "CordonServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            linkerSettings: jemalloc
        ),
        // `cordon` with the crash tests' recording action: built for the tests, never shipped.
        .executableTarget(
            name: "cordon-testbed",
            dependencies: ["CordonCLI", "CordonCore"],
            path: "Tests/cordon-testbed",
            linkerSettings: jemalloc
        ),
        // What several test targets share: child processes, Python servers, temporary
        // directories, the in-memory journal and evidence sink, and the engine's fixture.
        .target(
            name: "CordonTestSupport",
            dependencies: [
                "CordonCore",
                "CordonEngine",
                "CordonIntegrations",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/CordonTestSupport"
        ),
        .testTarget(
            name: "CordonCoreTests",
            dependencies: ["CordonCore", "CordonEngine", "CordonIntake", "CordonIntegrations", "CordonTestSupport"]
        ),
        // The engine on the in-memory journal: what it journals and decides, not how a
        // file keeps it (that is CordonJournalTests').
        .testTarget(
            name: "CordonEngineTests",
            dependencies: ["CordonEngine", "CordonCore", "CordonTestSupport"]
        ),
        .testTarget(
            name: "CordonJournalTests",
            dependencies: ["CordonJournal", "CordonCore", "CordonEngine", "CordonIntake", "CordonTestSupport"]
        ),
        .testTarget(
            name: "CordonAWSTests",
            dependencies: ["CordonCloud", "CordonAWS", "CordonSimulatedCloud", "CordonCore", "CordonEngine", "CordonIntake", "CordonJournal", "CordonDrill", "CordonIntegrations", "CordonTestSupport"]
        ),
        .testTarget(
            name: "CordonHTTPTests",
            dependencies: [
                "CordonHTTP", "CordonCore", "CordonTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "CordonIntegrationsTests",
            dependencies: ["CordonIntegrations", "CordonCore", "CordonEngine", "CordonIntake", "CordonJournal", "CordonTestSupport"]
        ),
        .testTarget(
            name: "CordonDrillTests",
            dependencies: ["CordonDrill", "CordonCloud", "CordonAWS", "CordonSimulatedCloud", "CordonCore", "CordonEngine", "CordonIntake", "CordonIntegrations", "CordonJournal"]
        ),
        .testTarget(
            name: "CordonServerTests",
            dependencies: [
                "CordonServer", "CordonCore", "CordonEngine", "CordonIntake", "CordonIntegrations", "CordonJournal", "CordonCloud", "CordonAWS", "CordonTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "CordonCLITests",
            dependencies: [
                "cordon", "cordon-testbed", "CordonJournal", "CordonCore", "CordonEngine", "CordonAWS", "CordonTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
