// A 384 × 1536 fully connected layer (1536 = 8·8·24 inputs, 384 = 8·6·8 outputs) in the TT-matrix
// format of Novikov et al. (2015): compression and error at several maximal ranks, and a forward
// pass computed core by core that matches the dense layer with the reconstructed weight.
// Exits non-zero if a check fails.
import Foundation
import TensorDecompositions

func check(_ condition: Bool, _ message: String) {
    if !condition {
        FileHandle.standardError.write(Data("tensor-train-linear: check failed: \(message)\n".utf8))
        exit(1)
    }
}

// A weight with structure: a TT-matrix of ranks 6 plus 1% noise.
let base = try ttMatrixDecompose(Matrix<Float>.randomNormal(rows: 384, columns: 1536, seed: 1),
                                 rowModes: [8, 6, 8], columnModes: [8, 8, 24], maxRank: 6)
let signal = Matrix(try base.reconstructed())
let noiseScale = 0.01 * signal.frobeniusNorm / Float(384 * 1536).squareRoot()   // 1% of the signal
let w = signal + noiseScale * Matrix.randomNormal(rows: 384, columns: 1536, seed: 2)
let fc = try Linear(weight: w, bias: [Float](repeating: 0, count: 384))
let x = Tensor<Float>.randomNormal(shape: [16, 1536], seed: 3)
let y = try fc(x)

var previous = Float.infinity
for maxRank in [2, 4, 6, 12] {
    let compressed = try fc.compressed(by: .tensorTrain(outputModes: [8, 6, 8], inputModes: [8, 8, 24], maxRank: maxRank))
    let error = try compressed.stack(x).relativeError(to: y)
    let report = try compressed.report(input: [1536])
    print("max rank \(maxRank): ranks \(compressed.ranks), \(report.parameters) parameters (\(String(format: "%.0f", report.compression))× smaller), "
          + "\(report.flops) FLOPs per sample (FLOP ratio \(String(format: "%.1f", report.predictedSpeedup))), output error \(error)")
    check(error <= previous * 1.001, "the error should not grow with the rank")
    previous = error
}
check(previous < 0.05, "rank 12 should reach the noise level, got \(previous)")

// The TT layer's forward pass equals the dense layer built from its own (reconstructed) weight.
let tt = try fc.compressed(by: .tensorTrain(outputModes: [8, 6, 8], inputModes: [8, 8, 24], maxRank: 6))
guard case let .ttLinear(layer) = tt.stack.layers[0] else { fatalError("expected a TT layer") }
let dense = try Linear(weight: Matrix(layer.weight.reconstructed()), bias: layer.bias)
let difference = try layer(x).relativeError(to: dense(x))
print("core-by-core forward vs dense reconstruction: relative difference \(difference)")
check(difference < 1e-4, "core-by-core and dense forward passes differ by \(difference)")
print("all checks passed")
