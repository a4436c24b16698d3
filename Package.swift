// swift-tools-version:6.0
// libslay: a Swift core (SlayCore) behind a hand-written C ABI (SlayCABI → libslay.so).
import PackageDescription

// The public header reaches Swift through a module map, so the C structs in slay.h are the ones
// the exports read and write (Swift cannot declare C-layout structs itself).
let cHeaderFlags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-fmodule-map-file=include/module.modulemap", "-I", "include"]),
]

let package = Package(
    name: "slay",
    products: [
        .library(name: "slay", type: .dynamic, targets: ["SlayCABI"]),
    ],
    targets: [
        .target(
            name: "SlayCore",
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "SlayCABI",
            dependencies: ["SlayCore"],
            swiftSettings: cHeaderFlags,
            // Export only the slay_* C symbols; every public Swift symbol would leak otherwise.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=Sources/SlayCABI/exports.map"])]
        ),
        .testTarget(name: "SlayCoreTests", dependencies: ["SlayCore"]),
        .testTarget(name: "SlayCABITests", dependencies: ["SlayCABI"], swiftSettings: cHeaderFlags),
    ]
)
