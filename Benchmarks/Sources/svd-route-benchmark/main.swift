// Truncated SVD routes on large weight matrices: LAPACK's exact gesdd against the randomized range
// finder at several oversampling and power-iteration settings, each with its relative error
// against the exact truncated SVD's. Matrices: a power-law spectrum plus a noise bulk (like
// trained weights), and a flat noise spectrum (the hardest case for randomized methods). Then HOSVD
// with each route. All 20 cases take about 15 minutes on one thread; it says so when it starts.
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

/// One matrix of the SVD routes' part.
struct MatrixCase { var rows: Int; var columns: Int; var rank: Int; var label: String; var decay: Double; var noise: Float
    var name: String { "\(rows)×\(columns) \(label)" }
}
/// One tensor of the HOSVD part.
struct TensorCase { var shape: [Int]; var ranks: [Int]; var modes: [Int]
    var name: String { "hosvd " + shape.map(String.init).joined(separator: "×") }
}
let shapes = [(4096, 11008, 512), (2048, 5632, 256), (4096, 4096, 512), (1024, 4096, 128), (1024, 4096, 256), (1024, 4096, 170), (512, 2048, 64), (384, 1536, 96)]
let matrixCases = shapes.flatMap { m, n, k in
    [("power-law", 0.6, Float(0.5)), ("flat noise", 0.0, Float(0))].map { MatrixCase(rows: m, columns: n, rank: k, label: $0.0, decay: $0.1, noise: $0.2) }
}.filter { arguments.includes($0.name, shape: [$0.rows, $0.columns]) }
let tensorCases = [TensorCase(shape: [512, 512, 3, 3], ranks: [128, 128], modes: [0, 1]), TensorCase(shape: [1024, 1024, 3, 3], ranks: [256, 256], modes: [0, 1]),
                   TensorCase(shape: [1024, 1024, 64], ranks: [64, 64, 16], modes: [0, 1, 2]), TensorCase(shape: [2048, 2048, 16], ranks: [128, 128, 8], modes: [0, 1, 2])]
    .filter { arguments.includes($0.name, shape: $0.shape) }
arguments.exitIfNothingMatched()

// What this measures and how long it takes, before the first (and largest) case starts.
let caseCount = matrixCases.count + tensorCases.count
FileHandle.standardError.write(Data("""
    svd-route-benchmark: time and relative error of every truncated-SVD route (exact gesdd, randomized, block Krylov, automatic)
    on 16 weight-sized matrices and ranks up to 4096×11008, then of HOSVD with each route on 4 tensors up to 2048×2048×16.
    All 20 cases take about 15 min with one BLAS thread on a 2-core AMD EPYC (most of it in 4096×11008, 4096×4096,
    1024×1024×64 and 2048×2048×16); --filter TEXT runs a subset (--filter 384x1536 takes seconds). Running \(caseCount) of 20 cases,
    one line each; the table follows at the end.

    """.utf8))
let started = DispatchTime.now().uptimeNanoseconds
var current = 0
/// Starts a case's progress line; `end` completes it with the case's results and the time so far.
@MainActor func begin(_ text: String) {
    current += 1
    FileHandle.standardError.write(Data("[\(current)/\(caseCount)] \(text): ".utf8))
}
@MainActor func end(_ text: String) {
    let seconds = Int(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    FileHandle.standardError.write(Data("\(text); \(seconds / 60) min \(seconds % 60) s so far\n".utf8))
}
func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

for c in matrixCases {
    let (m, n, k) = (c.rows, c.columns, c.rank)
    begin("\(c.name), rank \(k)")
    let a = weight(rows: m, columns: n, decay: c.decay, noise: c.noise, seed: UInt64(m + n))
    let norm = Double(a.frobeniusNorm)
    func error(_ f: SVDFactors<Float>) throws -> Double { Double((try Tensor(f) - Tensor(a)).frobeniusNorm) / norm }
    var exact: SVDFactors<Float>!
    let exactSeconds = try medianSeconds(samples: 1, minimum: 0) { exact = try svd(a, rank: k, method: .exact) }
    let exactError = try error(exact)
    rows.append(Row(matrix: c.name, rank: k, method: "exact (gesdd)", seconds: exactSeconds, relativeError: exactError, errorRatio: 1))
    for (p, q) in [(10, 2), (k / 4, 2)] {
        var f: SVDFactors<Float>!
        let seconds = try medianSeconds(samples: 3, minimum: 0) { f = try randomizedSVD(a, rank: k, oversampling: p, powerIterations: q) }
        let e = try error(f)
        rows.append(Row(matrix: c.name, rank: k, method: "randomized p=\(p) q=\(q)", seconds: seconds, relativeError: e, errorRatio: e / exactError))
    }
    for (b, d) in [(k / 4, 7), (k / 4, 6), (k / 8, 13)] {
        var f: SVDFactors<Float>!
        let seconds = try medianSeconds(samples: 3, minimum: 0) { f = try blockKrylovSVD(a, rank: k, blockSize: b, depth: d) }
        let e = try error(f)
        rows.append(Row(matrix: c.name, rank: k, method: "block Krylov b=\(b) d=\(d)", seconds: seconds, relativeError: e, errorRatio: e / exactError))
    }
    var automatic: SVDFactors<Float>!
    let automaticSeconds = try medianSeconds(samples: 3, minimum: 0) { automatic = try svd(a, rank: k) }
    let e = try error(automatic)
    rows.append(Row(matrix: c.name, rank: k, method: "automatic", seconds: automaticSeconds, relativeError: e, errorRatio: e / exactError))
    end("exact \(format(exactSeconds, 3)) s, automatic \(format(automaticSeconds, 3)) s at ×\(format(e / exactError, 4)) the exact error")
}
// HOSVD of large unfoldings: the same routes for every factor (Tucker-2 of large conv kernels,
// Tucker of 3-way data), each error against the exact route's.
for c in tensorCases {
    let (shape, ranks, modes) = (c.shape, c.ranks, c.modes)
    begin("\(c.name), ranks \(ranks)")
    // A low-multilinear-rank signal (ranks twice the target) plus noise, like a trained kernel.
    let signalRanks = shape.enumerated().map { modes.contains($0.offset) ? min($0.element, 2 * ranks[modes.firstIndex(of: $0.offset)!]) : $0.element }
    let core = Tensor<Float>.randomNormal(shape: signalRanks, seed: 3)
    let factors = modes.map { Matrix<Float>.randomNormal(rows: shape[$0], columns: signalRanks[$0], seed: UInt64(10 + $0)) }
    var t = try core.multiModeProduct(factors, modes: modes)
    t = t + Float(0.3 * Double(t.frobeniusNorm) / Double(t.scalarCount).squareRoot()) * Tensor<Float>.randomNormal(shape: shape, seed: 4)
    let norm = Double(t.frobeniusNorm)
    var exactError = 0.0
    var summary: [String] = []
    for (label, method) in [("exact", SVDMethod.exact), ("gram", .gram), ("block Krylov", .blockKrylov), ("automatic", .automatic)] {
        var result: TuckerTensor<Float>!
        let seconds = try medianSeconds(samples: 3, minimum: 0) { result = try hosvd(t, ranks: ranks, modes: modes, svd: method) }
        let e = Double((try result.reconstructed() - t).frobeniusNorm) / norm
        if label == "exact" { exactError = e }
        rows.append(Row(matrix: c.name, rank: ranks[0], method: "hosvd \(label)", seconds: seconds, relativeError: e, errorRatio: e / exactError))
        summary.append("\(label) \(format(seconds, 3)) s" + (label == "exact" ? "" : " (×\(format(e / exactError, 4)))"))
    }
    end(summary.joined(separator: ", "))
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
