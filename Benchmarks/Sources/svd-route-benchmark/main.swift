// Truncated SVD routes on large weight matrices: LAPACK's exact gesdd against the randomized range
// finder at several oversampling and power-iteration settings, each with its relative error
// against the exact truncated SVD's. Matrices: a power-law spectrum plus a noise bulk (like
// trained weights), and a flat noise spectrum (the hardest case for randomized methods).
//     swift run --package-path Benchmarks -c release svd-route-benchmark [--filter TEXT] [--json]
import BenchmarkSupport
import Foundation
import TensorDecompositions

let arguments = BenchmarkArguments()

/// `G1 · diag(i^(−decay)) · G2 / √r + noise · N`, normalised: a decaying spectrum over a bulk.
func weight(rows m: Int, columns n: Int, decay: Double, noise: Float, seed: UInt64) -> Matrix<Float> {
    let r = min(m, n, 1024)
    let left = Matrix<Float>.randomNormal(rows: m, columns: r, seed: seed).scalingColumns(by: (0..<r).map { Float(pow(Double($0 + 1), -decay)) })
    let signal = left.matmul(Matrix<Float>.randomNormal(rows: r, columns: n, seed: seed + 1))
    return signal + (noise * Float(Double(r).squareRoot() / Double(n).squareRoot())) * Matrix<Float>.randomNormal(rows: m, columns: n, seed: seed + 2)
}

struct Row: Codable {
    var matrix: String
    var rank: Int
    var method: String
    var seconds: Double
    var relativeError: Double
    var errorRatio: Double        // relative error / exact truncated relative error
}

var rows: [Row] = []
let shapes = [(4096, 11008, 512), (2048, 5632, 256), (4096, 4096, 512), (1024, 4096, 128), (1024, 4096, 256), (1024, 4096, 170), (512, 2048, 64), (384, 1536, 96)]
for (m, n, k) in shapes {
    for (label, decay, noise) in [("power-law", 0.6, Float(0.5)), ("flat noise", 0.0, Float(0))] {
        let name = "\(m)×\(n) \(label)"
        guard arguments.includes(name, shape: [m, n]) else { continue }
        let a = weight(rows: m, columns: n, decay: decay, noise: noise, seed: UInt64(m + n))
        let norm = Double(a.frobeniusNorm)
        func error(_ f: SVDFactors<Float>) throws -> Double { Double((try Tensor(f) - Tensor(a)).frobeniusNorm) / norm }
        var exact: SVDFactors<Float>!
        let exactSeconds = try medianSeconds(samples: 1, minimum: 0) { exact = try svd(a, rank: k, method: .exact) }
        let exactError = try error(exact)
        rows.append(Row(matrix: name, rank: k, method: "exact (gesdd)", seconds: exactSeconds, relativeError: exactError, errorRatio: 1))
        for (p, q) in [(10, 2), (k / 4, 2)] {
            var f: SVDFactors<Float>!
            let seconds = try medianSeconds(samples: 3, minimum: 0) { f = try randomizedSVD(a, rank: k, oversampling: p, powerIterations: q) }
            let e = try error(f)
            rows.append(Row(matrix: name, rank: k, method: "randomized p=\(p) q=\(q)", seconds: seconds, relativeError: e, errorRatio: e / exactError))
        }
        for (b, d) in [(k / 4, 7), (k / 4, 6), (k / 8, 13)] {
            var f: SVDFactors<Float>!
            let seconds = try medianSeconds(samples: 3, minimum: 0) { f = try blockKrylovSVD(a, rank: k, blockSize: b, depth: d) }
            let e = try error(f)
            rows.append(Row(matrix: name, rank: k, method: "block Krylov b=\(b) d=\(d)", seconds: seconds, relativeError: e, errorRatio: e / exactError))
        }
        var automatic: SVDFactors<Float>!
        let automaticSeconds = try medianSeconds(samples: 3, minimum: 0) { automatic = try svd(a, rank: k) }
        let e = try error(automatic)
        rows.append(Row(matrix: name, rank: k, method: "automatic", seconds: automaticSeconds, relativeError: e, errorRatio: e / exactError))
        for row in rows.suffix(10) {
            FileHandle.standardError.write(Data("\(row.matrix) k=\(row.rank) \(row.method): \(String(format: "%.3f", row.seconds)) s, error \(String(format: "%.5f", row.relativeError)) (×\(String(format: "%.4f", row.errorRatio)))\n".utf8))
        }
    }
}
// HOSVD of large unfoldings: the same routes for every factor (Tucker-2 of large conv kernels,
// Tucker of 3-way data), each error against the exact route's.
for (shape, ranks, modes) in [([512, 512, 3, 3], [128, 128], [0, 1]), ([1024, 1024, 3, 3], [256, 256], [0, 1]),
                              ([1024, 1024, 64], [64, 64, 16], [0, 1, 2]), ([2048, 2048, 16], [128, 128, 8], [0, 1, 2])] {
    let name = "hosvd " + shape.map(String.init).joined(separator: "×")
    guard arguments.includes(name, shape: shape) else { continue }
    // A low-multilinear-rank signal (ranks twice the target) plus noise, like a trained kernel.
    let signalRanks = shape.enumerated().map { modes.contains($0.offset) ? min($0.element, 2 * ranks[modes.firstIndex(of: $0.offset)!]) : $0.element }
    let core = Tensor<Float>.randomNormal(shape: signalRanks, seed: 3)
    let factors = modes.map { Matrix<Float>.randomNormal(rows: shape[$0], columns: signalRanks[$0], seed: UInt64(10 + $0)) }
    var t = try core.multiModeProduct(factors, modes: modes)
    t = t + Float(0.3 * Double(t.frobeniusNorm) / Double(t.scalarCount).squareRoot()) * Tensor<Float>.randomNormal(shape: shape, seed: 4)
    let norm = Double(t.frobeniusNorm)
    var exactError = 0.0
    for (label, method) in [("exact", SVDMethod.exact), ("gram", .gram), ("block Krylov", .blockKrylov), ("automatic", .automatic)] {
        var result: TuckerTensor<Float>!
        let seconds = try medianSeconds(samples: 3, minimum: 0) { result = try hosvd(t, ranks: ranks, modes: modes, svd: method) }
        let e = Double((try result.reconstructed() - t).frobeniusNorm) / norm
        if label == "exact" { exactError = e }
        rows.append(Row(matrix: name, rank: ranks[0], method: "hosvd \(label)", seconds: seconds, relativeError: e, errorRatio: e / exactError))
        FileHandle.standardError.write(Data("\(name) ranks \(ranks) \(label): \(String(format: "%.3f", seconds)) s, error \(String(format: "%.5f", e)) (×\(String(format: "%.4f", e / exactError)))\n".utf8))
    }
}
if arguments.json {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(rows), as: UTF8.self))
} else {
    print("| matrix | rank | method | seconds | relative error | × exact's |")
    print("|---|---|---|---|---|---|")
    for r in rows { print("| \(r.matrix) | \(r.rank) | \(r.method) | \(String(format: "%.3f", r.seconds)) | \(String(format: "%.5f", r.relativeError)) | \(String(format: "%.4f", r.errorRatio)) |") }
    print("\nthreads: OPENBLAS_NUM_THREADS=\(ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "default")")
}
