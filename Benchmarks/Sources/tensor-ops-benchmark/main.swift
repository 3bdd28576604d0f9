// Times modeProduct, mttkrp and transposed against baselines measured in the same run:
// a square GEMM of the same FLOP count for the arithmetic, a contiguous copy for the permutation.
import BenchmarkSupport
import Foundation
import TensorModule

let arguments = BenchmarkArguments()
let shapes: [[Int]] = [[256, 256, 3, 3], [64, 64, 64], [128, 128, 128], [32, 32, 32, 32]]
let rank = 32

/// A square GEMM of (about) `flops` floating-point operations and its exact count.
func squareGEMM<S: BLASScalar>(_: S.Type, flops: Double) -> (run: () -> Void, flops: Double) {
    let side = max(16, Int(Foundation.cbrt(flops / 2).rounded()))
    let a = Matrix<S>.randomNormal(rows: side, columns: side, seed: 1)
    let b = Matrix<S>.randomNormal(rows: side, columns: side, seed: 2)
    return ({ _ = a.matmul(b) }, 2 * Double(side * side * side))
}

/// Measures `operation` (of `flops` FLOPs) against a same-size square GEMM, interleaved.
func againstGEMM<S: BLASScalar>(_: S.Type, name: String, shape: [Int], flops: Double, _ operation: () throws -> Void) rethrows -> BenchmarkResult {
    let gemm = squareGEMM(S.self, flops: flops)
    let t = try interleavedMedians(operation, baseline: gemm.run)
    let baseRate = gemm.flops / t.baseline / 1e9
    return BenchmarkResult(name: name, scalar: S.typeName, shape: shape, seconds: t.operation, flops: flops, bytes: 0,
                           baselineRate: baseRate, ratio: t.speedRatio * flops / gemm.flops)
}

@MainActor func run<S: BLASScalar>(_: S.Type) throws -> [BenchmarkResult] {
    var results: [BenchmarkResult] = []
    for shape in shapes {
        let x = Tensor<S>.randomNormal(shape: shape, seed: 3)
        let size = Double(x.scalarCount)
        // Mode products with J = I_n / 2 in the first, a middle and the last mode.
        for mode in Set([0, 1, shape.count - 1]).sorted() {
            let j = max(1, shape[mode] / 2)
            let m = Matrix<S>.randomNormal(rows: j, columns: shape[mode], seed: 4)
            guard arguments.includes("modeProduct mode \(mode) (J = \(j))", shape: shape) else { continue }
            results.append(try againstGEMM(S.self, name: "modeProduct mode \(mode) (J = \(j))", shape: shape, flops: 2 * size * Double(j)) {
                _ = try x.modeProduct(m, mode: mode)
            })
        }
        // MTTKRP at rank 32 in every mode; FLOPs counted as the GEMM's 2·S·R.
        let factors = shape.enumerated().map { Matrix<S>.randomNormal(rows: $0.element, columns: rank, seed: UInt64(5 + $0.offset)) }
        for mode in 0..<shape.count where arguments.includes("mttkrp mode \(mode) (R = \(rank))", shape: shape) {
            results.append(try againstGEMM(S.self, name: "mttkrp mode \(mode) (R = \(rank))", shape: shape, flops: 2 * size * Double(rank)) {
                _ = try mttkrp(x, factors: factors, mode: mode)
            })
        }
        // Reversing the axes: the hardest permutation for the cache.
        let permutation = Array((0..<shape.count).reversed())
        guard arguments.includes("transposed \(permutation)", shape: shape) else { continue }
        let bytes = 2 * size * Double(MemoryLayout<S>.size)
        let t = try interleavedMedians({ _ = try x.transposed(permutation: permutation) }, baseline: {
            var y = x  // a contiguous copy of the same bytes into a fresh buffer
            y[indices: [Int](repeating: 0, count: x.order)] += 1
        })
        results.append(BenchmarkResult(name: "transposed \(permutation)", scalar: S.typeName, shape: shape, seconds: t.operation,
                                       flops: 0, bytes: bytes, baselineRate: bytes / t.baseline / 1e9, ratio: t.speedRatio))
    }
    return results
}

let measurements = try run(Float.self) + run(Double.self)
arguments.exitIfNothingMatched()
report(measurements, title: "TensorModule operations vs same-run GEMM / copy", json: arguments.json)
