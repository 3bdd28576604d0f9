// Decomposes a generated 3×3 conv kernel (OIHW, 256 outputs, 128 inputs) of low channel rank
// plus noise, the way a compressor would: EVBMF chooses Tucker-2 ranks, then CP, Tucker-2 and
// tensor-train decompositions are computed and compared. Exits non-zero if a check fails.
import Foundation
import TensorDecompositions

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func check(_ condition: Bool, _ message: String) {
    if !condition {
        FileHandle.standardError.write(Data("decompose-conv-kernel: check failed: \(message)\n".utf8))
        exit(1)
    }
}

let (outChannels, inChannels, kh, kw) = (256, 128, 3, 3)
let (trueOut, trueIn) = (48, 32)
let core = Tensor<Float>.randomNormal(shape: [trueOut, trueIn, kh, kw], seed: 1)
let uOut = Matrix<Float>.randomNormal(rows: outChannels, columns: trueOut, seed: 2)
let uIn = Matrix<Float>.randomNormal(rows: inChannels, columns: trueIn, seed: 3)
let clean = try core.multiModeProduct([uOut, uIn], modes: [0, 1])
let kernel = clean + (0.02 * clean.frobeniusNorm / Float(clean.scalarCount).squareRoot()) * Tensor.randomNormal(shape: clean.shape, seed: 4)

print("kernel \(kernel.shape) (OIHW), \(kernel.scalarCount) parameters, OpenBLAS threads: \(BLASThreads.count)")

var choice = RankChoice(ranks: [], reasons: [])
let vbmfTime = try seconds { choice = try selectRanks(for: kernel, modes: [0, 1], selection: .vbmf) }
for reason in choice.reasons { print("  \(reason)") }
print(String(format: "EVBMF ranks %@ in %.3f s", "\(choice.ranks)", vbmfTime))
check(choice.ranks == [trueOut, trueIn], "EVBMF should find the channel ranks [\(trueOut), \(trueIn)], found \(choice.ranks)")

var tucker: TuckerDecomposition<Float>!
let tuckerTime = try seconds { tucker = try tuckerDecompose(kernel, ranks: choice.ranks, modes: [0, 1]) }
let tuckerError = try tucker.tucker.relativeError(to: kernel)
print(String(format: "Tucker-2 ranks %@: core %@, %d parameters (%.1f× smaller), relative error %.4f, %d HOOI iterations, %.3f s",
             "\(choice.ranks)", "\(tucker.tucker.core.shape)", tucker.tucker.parameterCount, tucker.tucker.compressionRatio,
             tuckerError, tucker.iterations, tuckerTime))
check(tuckerError < 0.05, "Tucker-2 error \(tuckerError) should be near the noise level 0.02")

var cp: CPDecomposition<Float>!
let cpTime = try seconds { cp = try cpDecompose(kernel, rank: 64, options: CPOptions(maxIterations: 50)) }
let cpError = try cp.cp.relativeError(to: kernel)
print(String(format: "CP rank 64: %d parameters (%.1f× smaller), relative error %.4f after %d iterations (converged: %@), %.3f s",
             cp.cp.parameterCount, cp.cp.compressionRatio, cpError, cp.iterations, "\(cp.converged)", cpTime))
check(cpError.isFinite && cpError < 1, "CP error \(cpError) should be finite and below 1")
check(abs(Double(cpError) - cp.relativeError) < 1e-2, "the ALS error from the Gram matrices should match the rebuilt error")

var tt: TTTensor<Float>!
let ttTime = try seconds { tt = try ttDecompose(kernel, tolerance: 0.05) }
let ttError = try tt.relativeError(to: kernel)
print(String(format: "TT-SVD ε = 0.05: ranks %@, %d parameters (%.1f× smaller), relative error %.4f, %.3f s",
             "\(tt.ranks)", tt.parameterCount, tt.compressionRatio, ttError, ttTime))
check(ttError <= 0.05 * 1.001, "TT-SVD error \(ttError) should be at most ε = 0.05")
print("all checks passed")
