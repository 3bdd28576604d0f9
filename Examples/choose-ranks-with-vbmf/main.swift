// Choosing ranks with EVBMF (Nakajima et al. 2013), as Kim et al. (2016) do for Tucker-2: a weight
// matrix and a conv kernel of known rank plus Gaussian noise; EVBMF recovers the ranks and the
// noise variance. Exits non-zero if a check fails.
import Foundation
import TensorDecompositions

func check(_ condition: Bool, _ message: String) {
    if !condition {
        FileHandle.standardError.write(Data("choose-ranks-with-vbmf: check failed: \(message)\n".utf8))
        exit(1)
    }
}

// A 300 × 120 matrix of rank 12 plus noise of σ = 0.3 (more rows than columns: EVBMF transposes).
let w = Matrix<Double>.randomNormal(rows: 300, columns: 12, seed: 1).matmul(.randomNormal(rows: 12, columns: 120, seed: 2))
    + 0.3 * Matrix.randomNormal(rows: 300, columns: 120, seed: 3)
let estimate = try evbmf(w)
print("matrix 300×120: EVBMF rank \(estimate.rank), σ² = \(estimate.noiseVariance) (true 0.09), threshold \(estimate.threshold), transposed \(estimate.transposed)")
check(estimate.rank == 12, "EVBMF should find rank 12, found \(estimate.rank)")
check(abs(estimate.noiseVariance - 0.09) < 0.009, "σ² \(estimate.noiseVariance) should be within 10% of 0.09")

// A conv kernel with channel ranks (20, 10): EVBMF on the mode-0 and mode-1 unfoldings.
let core = Tensor<Double>.randomNormal(shape: [20, 10, 3, 3], seed: 4)
let kernel = try core.multiModeProduct([.randomNormal(rows: 96, columns: 20, seed: 5), .randomNormal(rows: 48, columns: 10, seed: 6)], modes: [0, 1])
    + 0.05 * Tensor.randomNormal(shape: [96, 48, 3, 3], seed: 7)
let choice = try selectRanks(for: kernel, modes: [0, 1], selection: .vbmf)
for reason in choice.reasons { print("  " + reason) }
check(choice.ranks == [20, 10], "Tucker-2 ranks should be [20, 10], found \(choice.ranks)")

// The other rules on the same kernel, for comparison.
for selection in [RankSelection.energy(0.99), .relativeError(0.1), .parameterBudget(0.1)] {
    let other = try selectRanks(for: kernel, modes: [0, 1], selection: selection)
    let tucker = try hosvd(kernel, ranks: other.ranks, modes: [0, 1])
    print("\(selection): ranks \(other.ranks), error \(try tucker.relativeError(to: kernel)), \(tucker.parameterCount) parameters")
}
print("all checks passed")
