import RealModule
import TensorModule

/// A CP (CANDECOMP/PARAFAC) tensor `X̂ = Σ_r λ_r a⁰_r ∘ a¹_r ∘ ⋯ ∘ a^{N−1}_r`.
///
/// `factors[n]` is the `I_n × R` matrix whose columns are the vectors `aⁿ_r`; `weights` are the
/// `λ_r`. In its normalized form (what ``cpDecompose(_:rank:options:)`` returns) the columns have
/// unit norm, the weights are non-negative and descending, and the largest-magnitude entry of each
/// column is positive in every mode but the last (which carries the sign).
///
/// ```text
/// unfold(X̂, n) = A_n · diag(λ) · khatriRao(A, skipping: n)ᵀ
/// ```
public struct CPTensor<Scalar: BLASScalar>: FactorizedTensor, Equatable {
    /// The weights `λ_r`.
    public var weights: [Scalar]
    /// The factor matrices, `I_n × R` each.
    public var factors: [Matrix<Scalar>]

    /// Creates a CP tensor, checking that every factor has `weights.count` columns.
    ///
    /// - Throws: ``DecompositionError/inconsistentParts(type:shapes:requirement:)`` for inconsistent factors.
    public init(weights: [Scalar], factors: [Matrix<Scalar>]) throws {
        guard !factors.isEmpty, factors.allSatisfy({ $0.columns == weights.count }) else {
            throw DecompositionError.inconsistentParts(
                type: "CPTensor", shapes: [[weights.count]] + factors.map(\.shape),
                requirement: .cpFactors(weights: weights.count))
        }
        self.weights = weights
        self.factors = factors
    }

    /// A CP tensor whose shapes the caller has checked.
    init(checkedWeights weights: [Scalar], factors: [Matrix<Scalar>]) {
        (self.weights, self.factors) = (weights, factors)
    }

    /// A CP tensor with unit weights.
    public init(factors: [Matrix<Scalar>]) throws {
        try self.init(weights: [Scalar](repeating: 1, count: factors.first?.columns ?? 0), factors: factors)
    }

    /// The rank `R`.
    public var rank: Int { weights.count }

    /// `[I_0, …, I_{N−1}]`.
    public var shape: [Int] { factors.map(\.rows) }

    /// `R · Σ I_n + R`.
    public var parameterCount: Int { rank * (shape.reduce(0, +) + 1) }

    /// The full tensor, from `unfold(X̂, 0) = A_0 diag(λ) khatriRao(A, skipping: 0)ᵀ`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func reconstructed() throws -> Tensor<Scalar> {
        let first = factors[0].scalingColumns(by: weights)
        if factors.count == 1 {
            return try Tensor(shape: shape, scalars: (0..<first.rows).map { i in first.row(i).reduce(0, +) })
        }
        let unfolding = first.matmul(try khatriRao(factors, skipping: 0), transposeOther: true)
        return try Tensor(folding: unfolding, mode: 0, shape: shape)
    }

    /// The normalized form: unit-norm columns, weights descending, signs fixed.
    ///
    /// The norms of the columns move into the weights; a component whose weight is zero keeps
    /// zero columns. In every mode but the last, each column's largest-magnitude entry is made
    /// positive, and the last mode's column absorbs the sign, so the tensor is unchanged.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func normalized() -> CPTensor {
        var weights = self.weights
        var factors = self.factors
        let last = factors.count - 1
        for n in factors.indices {
            let norms = factors[n].columnNorms()
            for r in 0..<rank { weights[r] *= norms[r] }
            factors[n] = factors[n].scalingColumns(by: norms.map { $0 > 0 ? 1 / $0 : 0 })
        }
        for r in 0..<rank where weights[r] < 0 {
            weights[r] = -weights[r]
            factors[last] = factors[last].scalingColumns(by: (0..<rank).map { $0 == r ? -1 : 1 })
        }
        for n in 0..<last {
            var signs = [Scalar](repeating: 1, count: rank)
            for r in 0..<rank {
                let column = factors[n].column(r)
                let largest = column.max { abs($0) < abs($1) } ?? 0
                if largest < 0 { signs[r] = -1 }
            }
            factors[n] = factors[n].scalingColumns(by: signs)
            factors[last] = factors[last].scalingColumns(by: signs)
        }
        let order = (0..<rank).sorted { weights[$0] > weights[$1] || (weights[$0] == weights[$1] && $0 < $1) }
        return CPTensor(checkedWeights: order.map { weights[$0] }, factors: factors.map { $0.selectingColumns(order) })
    }
}

/// `‖X̂‖² = λᵀ (∗_n G_n) λ` from the Gram matrices `G_n = A_nᵀA_n`.
func cpSquaredNorm<Scalar: BLASScalar>(weights: [Scalar], grams: [Matrix<Scalar>]) -> Scalar {
    let r = weights.count
    var product = Matrix<Scalar>(repeating: 1, rows: r, columns: r)
    for gram in grams { product = product.hadamard(gram) }
    var sum: Scalar = 0
    for i in 0..<r { for j in 0..<r { sum += weights[i] * product[i, j] * weights[j] } }
    return sum
}
