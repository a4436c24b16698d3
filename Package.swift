// swift-tools-version:6.0
// libslay: a Swift core (SlayCore) behind a hand-written C ABI (SlayCABI → libslay.so).
import PackageDescription

let package = Package(
    name: "slay",
    products: [
        .library(name: "slay", type: .dynamic, targets: ["SlayCABI"]),
    ],
    targets: [
        // The public header reaches Swift through include/module.modulemap, so the C structs in
        // slay.h are the ones the exports read and write (Swift cannot declare C-layout structs).
        // A system-library target hands the module map to every dependent, test discovery included.
        .systemLibrary(name: "CSlay", path: "include"),
        .target(name: "SlayCore"),
        .target(
            name: "SlayCABI",
            dependencies: ["SlayCore", "CSlay"],
            // Export only the slay_* C symbols; every public Swift symbol would leak otherwise.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=Sources/SlayCABI/exports.map"])]
        ),
        .testTarget(name: "SlayCoreTests", dependencies: ["SlayCore"]),
        .testTarget(name: "SlayCABITests", dependencies: ["SlayCABI", "CSlay"]),
    ]
)
