// swift-tools-version: 6.0
import PackageDescription

// Benchmark executables, kept apart from the library so that their dependencies never reach users.
// Build and run in release mode:
//     swift run --package-path Benchmarks -c release tensor-ops-benchmark [--json]
let package = Package(
    name: "Benchmarks",
    dependencies: [
        .package(name: "TensorDecompositions", path: ".."),
    ],
    targets: [
        .target(
            name: "BenchmarkSupport",
            dependencies: [.product(name: "TensorModule", package: "TensorDecompositions")]
        ),
        .executableTarget(
            name: "tensor-ops-benchmark",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "TensorModule", package: "TensorDecompositions"),
            ]
        ),
        .executableTarget(
            name: "decompositions-benchmark",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "TensorDecompositions", package: "TensorDecompositions"),
            ]
        ),
        .executableTarget(
            name: "svd-route-benchmark",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "TensorDecompositions", package: "TensorDecompositions"),
            ]
        ),
        .executableTarget(
            name: "layers-benchmark",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "TensorDecompositions", package: "TensorDecompositions"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
