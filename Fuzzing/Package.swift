// swift-tools-version: 6.0
import PackageDescription

// A libFuzzer target for the file readers (.npy, safetensors, .npz) and the layer-configuration JSON. Build and run:
//     swift build --package-path Fuzzing -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//     mkdir -p Fuzzing/.build/corpus && cp Fuzzing/corpus/*.seed Fuzzing/.build/corpus/
//     ASAN_OPTIONS=detect_leaks=0 Fuzzing/.build/debug/io-fuzzer Fuzzing/.build/corpus -max_total_time=60 -detect_leaks=0
// (ZIPFoundation 0.9.20 leaks 55 bytes per opened archive; see Documentation/Reliability.md.)
// It is kept out of the main package: without -sanitize=fuzzer the target has no main().
let package = Package(
    name: "Fuzzing",
    dependencies: [.package(name: "TensorDecompositions", path: "..")],
    targets: [
        .executableTarget(
            name: "io-fuzzer",
            dependencies: [.product(name: "TensorIO", package: "TensorDecompositions"),
                           .product(name: "TensorModule", package: "TensorDecompositions"),
                           .product(name: "NNLayers", package: "TensorDecompositions")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
