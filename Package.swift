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
        // The compute kernels, compiled twice from one folder (SlayKernelsAVX2 is a symlink):
        // for the x86-64 baseline, and for AVX2/FMA; SlayCore picks one per process at run time.
        // CSlayCPU: CPU detection, and the prefetch hint the decode row streams use.
        .target(name: "SlayKernels", dependencies: ["CSlayCPU"]),
        .target(
            name: "SlayKernelsAVX2",
            dependencies: ["CSlayCPU"],
            swiftSettings: [.define("SLAY_AVX2"), .unsafeFlags(["-target-cpu", "haswell"])]
        ),
        .target(name: "CSlayCPU"),
        .target(name: "SlayCore", dependencies: ["SlayKernels", "SlayKernelsAVX2", "CSlayCPU"]),
        .target(
            name: "SlayCABI",
            dependencies: ["SlayCore", "CSlay"],
            exclude: ["exports.map"],
            // Export only the slay_* C symbols; every public Swift symbol would leak otherwise.
            // SONAME libslay.so.<SLAY_ABI_VERSION> (slay.h; a test compares them): programs linked
            // with -lslay record the ABI they were built for, and installs keep one file per ABI.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=Sources/SlayCABI/exports.map",
                                           "-Xlinker", "-soname=libslay.so.1"])]
        ),
        .testTarget(name: "SlayCoreTests", dependencies: ["SlayCore", "SlayKernels", "SlayKernelsAVX2", "CSlayCPU"]),
        .testTarget(name: "SlayCABITests", dependencies: ["SlayCABI", "SlayCore", "CSlay"]),
    ]
)
