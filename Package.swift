// swift-tools-version:6.1
import PackageDescription

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
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLibYAML", path: "Sources/CLibYAML", providers: [.apt(["libyaml-dev"])]),
        .target(
            name: "CordonCore",
            dependencies: [
                "CZlib",
                "CLibYAML",
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "CordonJournal",
            dependencies: [
                "CordonCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "CordonAWS",
            dependencies: [
                "CordonCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "CordonIntegrations",
            dependencies: [
                "CordonCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "CordonDrill",
            dependencies: ["CordonCore", "CordonJournal", "CordonAWS", "CordonIntegrations"]
        ),
        .executableTarget(
            name: "cordon",
            dependencies: [
                "CordonDrill",
                "CordonCore",
                "CordonJournal",
                "CordonAWS",
                "CordonIntegrations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "cordon-bench",
            dependencies: [
                "CordonCore",
                "CordonJournal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "CordonCoreTests",
            dependencies: ["CordonCore"]
        ),
        .testTarget(
            name: "CordonJournalTests",
            dependencies: ["CordonJournal", "CordonCore"]
        ),
        .testTarget(
            name: "CordonAWSTests",
            dependencies: ["CordonAWS", "CordonCore", "CordonJournal", "CordonDrill"]
        ),
        .testTarget(
            name: "CordonIntegrationsTests",
            dependencies: ["CordonIntegrations", "CordonCore", "CordonJournal"]
        ),
        .testTarget(
            name: "CordonDrillTests",
            dependencies: ["CordonDrill", "CordonAWS", "CordonCore", "CordonJournal"]
        ),
        .testTarget(
            name: "CordonCLITests",
            dependencies: [
                "cordon", "CordonJournal", "CordonCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
