// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "TensorDecompositions",
    products: [
        .library(name: "TensorModule", targets: ["TensorModule"]),
        .library(name: "Decompositions", targets: ["Decompositions"]),
        .library(name: "NNLayers", targets: ["NNLayers"]),
        .library(name: "TensorIO", targets: ["TensorIO"]),
        .library(name: "ONNX", targets: ["ONNX"]),
        .library(name: "ModelCompression", targets: ["ModelCompression"]),
        .library(name: "TensorDecompositions", targets: ["TensorDecompositions"]),
        .executable(name: "tensor-compress", targets: ["tensor-compress"]),
        .executable(name: "decompose-conv-kernel", targets: ["decompose-conv-kernel"]),
        .executable(name: "compress-conv-layer", targets: ["compress-conv-layer"]),
        .executable(name: "choose-ranks-with-vbmf", targets: ["choose-ranks-with-vbmf"]),
        .executable(name: "tensor-train-linear", targets: ["tensor-train-linear"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // The only target that links BLAS and LAPACK.
        .systemLibrary(
            name: "CLinearAlgebra",
            path: "Sources/CLinearAlgebra",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .target(
            name: "TensorModule",
            dependencies: [
                "CLinearAlgebra",
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        .target(
            name: "Decompositions",
            dependencies: ["TensorModule", .product(name: "RealModule", package: "swift-numerics")]
        ),
        .target(name: "NNLayers", dependencies: ["TensorModule", "Decompositions"]),
        .target(name: "TensorIO", dependencies: ["TensorModule", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .target(name: "ONNX", dependencies: ["TensorModule", "TensorIO", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "ModelCompression", dependencies: ["TensorModule", "Decompositions", "NNLayers", "TensorIO", "ONNX"]),
        .target(name: "TensorDecompositions", dependencies: ["TensorModule", "Decompositions", "NNLayers", "TensorIO", "ONNX", "ModelCompression"]),
        .executableTarget(
            name: "tensor-compress",
            dependencies: ["TensorDecompositions", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "decompose-conv-kernel",
            dependencies: ["TensorDecompositions"],
            path: "Examples/decompose-conv-kernel"
        ),
        .executableTarget(name: "compress-conv-layer", dependencies: ["TensorDecompositions"], path: "Examples/compress-conv-layer"),
        .executableTarget(name: "choose-ranks-with-vbmf", dependencies: ["TensorDecompositions"], path: "Examples/choose-ranks-with-vbmf"),
        .executableTarget(name: "tensor-train-linear", dependencies: ["TensorDecompositions"], path: "Examples/tensor-train-linear"),
        .target(name: "TestSupport", dependencies: ["TensorModule"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorModuleTests", dependencies: ["TensorModule", "TestSupport"]),
        .testTarget(name: "DecompositionsTests", dependencies: ["Decompositions", "TestSupport"]),
        .testTarget(name: "NNLayersTests", dependencies: ["NNLayers", "TestSupport"]),
        .testTarget(name: "ModelCompressionTests", dependencies: ["ModelCompression", "ONNX", "NNLayers", "TensorIO", "TensorModule"]),
        .testTarget(name: "CommandLineTests", dependencies: ["TensorDecompositions"]),
        .testTarget(name: "ONNXTests", dependencies: ["ONNX", "ModelCompression", "NNLayers", "TensorModule", "TensorIO"]),
        .testTarget(
            name: "TensorIOTests",
            dependencies: ["TensorIO", "TestSupport", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
