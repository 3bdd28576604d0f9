// Times the decompositions on conv kernels (3×3, 64–512 channels, ranks 16–128) and weight
// matrices (384×1536 and larger). With --write-inputs DIR it also writes every input, the CP
// starting points and its own results there, for Benchmarks/Peers/compare-tensorly.sh.
import BenchmarkSupport
import Foundation
import TensorDecompositions

let arguments = BenchmarkArguments()

/// A low-rank-plus-noise kernel, closer to a trained layer than pure noise.
func kernel(_ t: Int, _ s: Int, seed: UInt64) throws -> Tensor<Float> {
    let core = Tensor<Float>.randomNormal(shape: [t / 2, s / 2, 3, 3], seed: seed)
    let clean = try core.multiModeProduct([.randomNormal(rows: t, columns: t / 2, seed: seed + 1),
                                           .randomNormal(rows: s, columns: s / 2, seed: seed + 2)], modes: [0, 1])
    return clean + (0.1 * clean.frobeniusNorm / Float(clean.scalarCount).squareRoot()) * Tensor.randomNormal(shape: clean.shape, seed: seed + 3)
}

struct Case: Codable {
    var name: String
    var method: String          // cp, tucker2, hosvd2, tt, svd, evbmf
    var input: String
    var shape: [Int]
    var ranks: [Int]
    var iterations: Int
    var seconds: Double = 0
    var relativeError: Double = 0
    var baselineSeconds: Double? = nil   // evbmf: the singular values alone
}

let directory = arguments.inputDirectory.map { URL(fileURLWithPath: $0, isDirectory: true) }
if let directory { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
func save(_ tensor: Tensor<Float>, _ name: String) throws {
    if let directory { try tensor.writeNPY(to: directory.appendingPathComponent(name)) }
}

var cases: [Case] = []
let kernels = [(64, 64, 16), (256, 128, 64), (512, 256, 128)]
for (t, s, rank) in kernels {
    let x = try kernel(t, s, seed: UInt64(t + s))
    let file = "kernel_\(t)x\(s).npy"
    try save(x, file)
    let label = "\(t)×\(s)×3×3"

    // CP-ALS, 10 iterations from the SVD start, which is saved so TensorLy starts from the same point.
    let iterations = 10
    if arguments.includes("CP-ALS \(label) R=\(rank)", shape: x.shape) {
        let start = try cpDecompose(x, rank: rank, options: CPOptions(maxIterations: 0)).cp
        try save(try Tensor(shape: [rank], scalars: start.weights), "cp_\(t)x\(s)_weights.npy")
        for (n, factor) in start.factors.enumerated() { try save(Tensor(factor), "cp_\(t)x\(s)_factor\(n).npy") }
        let options = CPOptions<Float>(maxIterations: iterations, tolerance: 0, initialization: .given(start))
        var cp: CPDecomposition<Float>!
        let cpSeconds = try medianSeconds(samples: 5, minimum: 0.1) { cp = try cpDecompose(x, rank: rank, options: options) }
        cases.append(Case(name: "CP-ALS \(label) R=\(rank)", method: "cp", input: file, shape: x.shape, ranks: [rank],
                          iterations: iterations, seconds: cpSeconds, relativeError: Double(try cp.cp.relativeError(to: x))))
    }

    // Tucker-2 (HOOI on modes 0 and 1, ranks C/4, 5 sweeps) and its HOSVD start.
    let ranks = [t / 4, s / 4]
    if arguments.includes("Tucker-2 HOOI \(label) R=\(ranks)", shape: x.shape) {
        var hooi: TuckerDecomposition<Float>!
        let hooiSeconds = try medianSeconds(samples: 5, minimum: 0.1) {
            hooi = try tuckerDecompose(x, ranks: ranks, modes: [0, 1], options: TuckerOptions(maxIterations: 5, tolerance: 0))
        }
        cases.append(Case(name: "Tucker-2 HOOI \(label) R=\(ranks)", method: "tucker2", input: file, shape: x.shape, ranks: ranks,
                          iterations: 5, seconds: hooiSeconds, relativeError: Double(try hooi.tucker.relativeError(to: x))))
    }
    if arguments.includes("HOSVD (modes 0, 1) \(label) R=\(ranks)", shape: x.shape) {
        var hosvdResult: TuckerTensor<Float>!
        let hosvdSeconds = try medianSeconds(samples: 5, minimum: 0.1) { hosvdResult = try hosvd(x, ranks: ranks, modes: [0, 1]) }
        cases.append(Case(name: "HOSVD (modes 0, 1) \(label) R=\(ranks)", method: "hosvd2", input: file, shape: x.shape, ranks: ranks,
                          iterations: 0, seconds: hosvdSeconds, relativeError: Double(try hosvdResult.relativeError(to: x))))
    }

    // TT-SVD with every rank at most R.
    if arguments.includes("TT-SVD \(label) max rank \(rank)", shape: x.shape) {
        var tt: TTTensor<Float>!
        let ttSeconds = try medianSeconds(samples: 5, minimum: 0.1) { tt = try ttDecompose(x, maxRank: rank) }
        cases.append(Case(name: "TT-SVD \(label) max rank \(rank)", method: "tt", input: file, shape: x.shape, ranks: [rank],
                          iterations: 0, seconds: ttSeconds, relativeError: Double(try tt.relativeError(to: x))))
    }
}

for (m, n) in [(384, 1536), (1536, 384), (1024, 4096)] {
    let w = Matrix<Float>.randomNormal(rows: m, columns: 64, seed: 1).matmul(.randomNormal(rows: 64, columns: n, seed: 2))
        + 0.5 * Matrix.randomNormal(rows: m, columns: n, seed: 3)
    let file = "matrix_\(m)x\(n).npy"
    try save(Tensor(w), file)
    if arguments.includes("thin SVD \(m)×\(n)", shape: [m, n]) {
        var f: SVDFactors<Float>!
        let svdSeconds = try medianSeconds(samples: 5, minimum: 0.1) { f = try svd(w) }
        cases.append(Case(name: "thin SVD \(m)×\(n)", method: "svd", input: file, shape: [m, n], ranks: [min(m, n)],
                          iterations: 0, seconds: svdSeconds, relativeError: Double(try f.reconstructed().relativeError(to: Tensor(w)))))
    }
    guard arguments.includes("EVBMF \(m)×\(n)", shape: [m, n]) else { continue }
    var estimate: VBMFResult<Float>!
    let evbmfSeconds = try medianSeconds(samples: 5, minimum: 0.1) { estimate = try evbmf(w) }
    let valuesSeconds = try medianSeconds(samples: 5, minimum: 0.1) { _ = try w.singularValues() }
    cases.append(Case(name: "EVBMF \(m)×\(n) (rank \(estimate.rank))", method: "evbmf", input: file, shape: [m, n],
                      ranks: [estimate.rank], iterations: 0, seconds: evbmfSeconds, relativeError: 0, baselineSeconds: valuesSeconds))
}

arguments.exitIfNothingMatched()
if let directory {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(cases).write(to: directory.appendingPathComponent("ours.json"))
}
if arguments.json {
    struct Document: Codable { var machine: String; var blasThreads: Int; var cases: [Case] }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(Document(machine: machineDescription(), blasThreads: BLASThreads.count, cases: cases)), as: UTF8.self))
} else {
    print("# Decompositions (Float)\n# \(machineDescription())")
    print("| case | median ms | relative error | note |")
    print("|---|---:|---:|---|")
    for c in cases {
        let note = c.baselineSeconds.map { String(format: "%.2f× the time of its singular values (%.2f ms)", c.seconds / $0, $0 * 1e3) } ?? ""
        print(String(format: "| %@ | %.2f | %.4f | %@ |", c.name, c.seconds * 1e3, c.relativeError, note))
    }
}
