// swift-tools-version: 6.1
import PackageDescription

// Dependencies stay few: argument parsing, logging, service lifecycle,
// swift-nio for the one HTTP server (Docker's plugin API, the metrics) and
// swift-prometheus for the metrics' text format. JSON-RPC (OVSDB),
// the Docker client and netlink are small and written here.
let package = Package(
    name: "netkeep",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "netkeep", targets: ["netkeep"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // The daemon: services, graceful shutdown on SIGTERM.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // The Docker network plugin's HTTP server (NIOPosix, NIOHTTP1).
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        // The metrics' Prometheus text format (`--metrics-textfile`, `--metrics-listen`).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: property tests of the planner.
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        .target(name: "CLinux"),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "Systemd", dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]),
        .target(name: "NetkeepCore"),
        .target(name: "HostIO", dependencies: ["NetkeepCore"]),
        .target(name: "NetkeepState", dependencies: ["CLinux", "NetkeepCore", "HostIO"]),
        .target(name: "OVSDB", dependencies: ["NetkeepCore", "HostIO"]),
        .target(name: "Netlink", dependencies: ["CLinux", "NetkeepCore", "HostIO"]),
        .target(name: "DockerEngine", dependencies: ["NetkeepCore", "HostIO"]),
        .target(name: "DHCP", dependencies: ["NetkeepCore", "HostIO", "CLinux"]),
        .target(name: "CNI", dependencies: ["NetkeepCore"]),
        // Docker's remote network driver protocol: its messages and an HTTP server for them.
        .target(
            name: "DockerPlugin",
            dependencies: [
                "NetkeepCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "NetkeepService",
            dependencies: [
                "NetkeepCore", "NetkeepState", "OVSDB", "Netlink", "DockerEngine", "DHCP", "HostIO", "Systemd",
                "DockerPlugin", "CNI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "netkeep",
            dependencies: [
                "CLinux", "NetkeepCore", "NetkeepState", "NetkeepService", "HostIO", "Systemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            plugins: ["BuildCommit"]
        ),
        // The commit in `netkeep --version`, from every way of building it.
        .plugin(name: "BuildCommit", capability: .buildTool(), dependencies: ["stamp-commit"]),
        .executableTarget(name: "stamp-commit", path: "Plugins/StampCommit"),
        .testTarget(
            name: "NetkeepCoreTests",
            dependencies: ["NetkeepCore", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(name: "NetkeepStateTests", dependencies: ["NetkeepState", "NetkeepCore"]),
        .testTarget(name: "OVSDBTests", dependencies: ["OVSDB", "NetkeepCore"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "CLinux", "NetkeepCore"]),
        .testTarget(name: "DockerEngineTests", dependencies: ["DockerEngine", "NetkeepCore"]),
        .testTarget(name: "DockerPluginTests", dependencies: ["DockerPlugin", "NetkeepCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CNITests", dependencies: ["CNI", "NetkeepCore"]),
        .testTarget(name: "SystemdTests", dependencies: ["Systemd", "NetkeepCore"]),
        .testTarget(name: "DHCPTests", dependencies: ["DHCP", "NetkeepCore"], resources: [.copy("Fixtures")]),
        // The real executor, observer and commands against an in-memory host: no root.
        .testTarget(
            name: "HostModelTests",
            dependencies: [
                "NetkeepService", "NetkeepCore", "NetkeepState", "OVSDB", "Netlink", "DockerEngine", "DHCP", "HostIO",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["NetkeepCore", "NetkeepState", "OVSDB", "Netlink", "DockerEngine"],
            // Python helpers the tests spawn (a hostile DHCP server, a Docker socket proxy).
            exclude: ["Tools"]
        ),
    ]
)
