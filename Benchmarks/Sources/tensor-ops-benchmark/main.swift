// Times modeProduct, mttkrp and transposed against baselines measured in the same run:
// a square GEMM of the same FLOP count for the arithmetic, a contiguous copy for the permutation.
import BenchmarkSupport
import Foundation
import TensorModule

let arguments = BenchmarkArguments()
let shapes: [[Int]] = [[256, 256, 3, 3], [64, 64, 64], [128, 128, 128], [32, 32, 32, 32]]
let rank = 32

func gemmRate<S: BLASScalar>(_: S.Type, flops: Double) -> Double {
    let side = max(16, Int(Foundation.cbrt(flops / 2).rounded()))
    let a = Matrix<S>.randomNormal(rows: side, columns: side, seed: 1)
    let b = Matrix<S>.randomNormal(rows: side, columns: side, seed: 2)
    let seconds = medianSeconds { _ = a.matmul(b) }
    return 2 * Double(side * side * side) / seconds / 1e9
}

func copyRate<S: BLASScalar>(_ x: Tensor<S>) -> Double {
    let seconds = medianSeconds { var y = x; y[indices: [Int](repeating: 0, count: x.order)] += 1 }  // forces one full copy
    return 2 * Double(x.scalarCount * MemoryLayout<S>.size) / seconds / 1e9
}

func run<S: BLASScalar>(_: S.Type) throws -> [BenchmarkResult] {
    var results: [BenchmarkResult] = []
    for shape in shapes {
        let x = Tensor<S>.randomNormal(shape: shape, seed: 3)
        let size = Double(x.scalarCount)
        // Mode products with J = I_n / 2 in the first, a middle and the last mode.
        for mode in Set([0, 1, shape.count - 1]).sorted() {
            let j = max(1, shape[mode] / 2)
            let m = Matrix<S>.randomNormal(rows: j, columns: shape[mode], seed: 4)
            let flops = 2 * size * Double(j)
            let seconds = try medianSeconds { _ = try x.modeProduct(m, mode: mode) }
            let base = gemmRate(S.self, flops: flops)
            results.append(BenchmarkResult(name: "modeProduct mode \(mode) (J = \(j))", scalar: S.typeName, shape: shape, seconds: seconds,
                                       flops: flops, bytes: 0, baselineRate: base, ratio: flops / seconds / 1e9 / base))
        }
        // MTTKRP at rank 32 in every mode; FLOPs counted as the GEMM's 2·S·R.
        let factors = shape.enumerated().map { Matrix<S>.randomNormal(rows: $0.element, columns: rank, seed: UInt64(5 + $0.offset)) }
        for mode in 0..<shape.count {
            let flops = 2 * size * Double(rank)
            let seconds = try medianSeconds { _ = try mttkrp(x, factors: factors, mode: mode) }
            let base = gemmRate(S.self, flops: flops)
            results.append(BenchmarkResult(name: "mttkrp mode \(mode) (R = \(rank))", scalar: S.typeName, shape: shape, seconds: seconds,
                                       flops: flops, bytes: 0, baselineRate: base, ratio: flops / seconds / 1e9 / base))
        }
        // Reversing the axes: the hardest permutation for the cache.
        let permutation = Array((0..<shape.count).reversed())
        let bytes = 2 * size * Double(MemoryLayout<S>.size)
        let seconds = try medianSeconds { _ = try x.transposed(permutation: permutation) }
        let base = copyRate(x)
        results.append(BenchmarkResult(name: "transposed \(permutation)", scalar: S.typeName, shape: shape, seconds: seconds,
                                   flops: 0, bytes: bytes, baselineRate: base, ratio: bytes / seconds / 1e9 / base))
    }
    return results
}

let measurements = try run(Float.self) + run(Double.self)
report(measurements, title: "TensorModule operations vs same-run GEMM / copy", json: arguments.json)
