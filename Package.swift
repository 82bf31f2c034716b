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
            ]
        ),
        .executableTarget(
            name: "cordon",
            dependencies: [
                "CordonCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "cordon-bench",
            dependencies: [
                "CordonCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "CordonCoreTests",
            dependencies: ["CordonCore"]
        ),
        .testTarget(
            name: "CordonCLITests",
            dependencies: ["cordon"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
