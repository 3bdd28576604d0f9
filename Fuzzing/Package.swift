// swift-tools-version: 6.0
import PackageDescription

// A libFuzzer target for the file readers (.npy, safetensors, .npz) and the layer-configuration JSON. Build and run:
//     swift build --package-path Fuzzing -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//     mkdir -p Fuzzing/.build/corpus && cp Fuzzing/corpus/*.seed Fuzzing/.build/corpus/
//     ASAN_OPTIONS=detect_leaks=0 Fuzzing/.build/debug/io-fuzzer Fuzzing/.build/corpus -max_total_time=60 -detect_leaks=0
// (ZIPFoundation 0.9.20 leaks 55 bytes per opened archive; see Documentation/Reliability.md.)
// The ONNX target (reader, shape inference, simplify; ONNX_FUZZ_MODE=0|1|2 picks the mode, see
// Sources/onnx-fuzzer/Fuzz.swift), one corpus directory per mode:
//     mkdir -p Fuzzing/.build/corpus-onnx-shape && cp Fuzzing/corpus/onnx_shape_*.seed Fuzzing/.build/corpus-onnx-shape/
//     ONNX_FUZZ_MODE=1 ASAN_OPTIONS=detect_leaks=0 Fuzzing/.build/debug/onnx-fuzzer Fuzzing/.build/corpus-onnx-shape \
//         -max_total_time=600 -detect_leaks=0 -rss_limit_mb=2048 -timeout=10
// (reader seeds: onnx_reader_*.seed, mode 0; simplify seeds: onnx_simplify_*.seed, mode 2.)
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
        // ONNX reader, shape inference and simplify (structure-aware); see Sources/onnx-fuzzer/Fuzz.swift.
        .executableTarget(
            name: "onnx-fuzzer",
            dependencies: [.product(name: "ONNX", package: "TensorDecompositions"),
                           .product(name: "ModelCompression", package: "TensorDecompositions"),
                           .product(name: "TensorModule", package: "TensorDecompositions"),
                           .product(name: "TensorIO", package: "TensorDecompositions"),
                           .product(name: "NNLayers", package: "TensorDecompositions"),
                           .product(name: "Decompositions", package: "TensorDecompositions")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
