// From cpDecompose(kernel, rank:) to a checked forward pass: a 3×3 convolution with stride 2 and
// asymmetric padding, decomposed by CP into pointwise → depthwise 3×1 → depthwise 1×3 → pointwise
// (Lebedev et al. 2015), and by Tucker-2 for comparison. Exits non-zero if a check fails.
import Foundation
import TensorDecompositions

func check(_ condition: Bool, _ message: String) {
    if !condition {
        FileHandle.standardError.write(Data("compress-conv-layer: check failed: \(message)\n".utf8))
        exit(1)
    }
}

// A 128→64 kernel that is CP rank 24 plus 1% noise, like a layer that compresses well.
let rank = 24
let factors = [128, 64, 3, 3].enumerated().map { Matrix<Float>.randomNormal(rows: $0.element, columns: rank, seed: UInt64($0.offset)) }
let clean = try Tensor(CPTensor(factors: factors))
let kernel = clean + (0.01 * clean.frobeniusNorm / Float(clean.scalarCount).squareRoot()) * Tensor.randomNormal(shape: clean.shape, seed: 9)
let conv = try Conv2D(weight: kernel, bias: [Float](repeating: 0.1, count: 128),
                      stride: Size2D(2), padding: Padding(top: 1, bottom: 0, left: 1, right: 0))
print("original: \(conv.summary)")

let decomposition = try cpDecompose(kernel, rank: rank, options: CPOptions(maxIterations: 300))
print("CP-ALS: \(decomposition.iterations) iterations, converged \(decomposition.converged), kernel error \(try decomposition.cp.relativeError(to: kernel))")
let stack = try LayerStack(cp: [decomposition.cp], replacing: conv)
print("stack:    \(stack.summary)")

let x = Tensor<Float>.randomNormal(shape: [4, 64, 32, 30], seed: 11)
let y = try conv(x)
let approximation = try stack(x)
let outputError = try approximation.relativeError(to: y)
let before = try Layer.conv2d(conv).cost(input: [64, 32, 30])
let after = try stack.cost(input: [64, 32, 30])
print("output \(y.shape), relative output error \(outputError)")
print("parameters \(before.parameters) → \(after.parameters) (\(String(format: "%.1f", Double(before.parameters) / Double(after.parameters)))× smaller), "
      + "FLOPs per image \(before.flops) → \(after.flops) (\(String(format: "%.1f", Double(before.flops) / Double(after.flops)))× fewer)")
check(approximation.shape == y.shape, "the stack's output shape \(approximation.shape) differs from \(y.shape)")
check(outputError < 0.05, "CP output error \(outputError) should be near the 1% noise")

let tucker = try conv.compressed(by: .tucker2(.vbmf))
let tuckerError = try tucker.stack(x).relativeError(to: y)
print("Tucker-2 (EVBMF ranks \(tucker.ranks)): \(tucker.stack.summary), output error \(tuckerError)")
check(tuckerError.isFinite && tuckerError < 1, "Tucker-2 output error \(tuckerError)")
print("all checks passed")
