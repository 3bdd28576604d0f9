import RealModule
import TensorModule

/// The truncated higher-order SVD (De Lathauwer, De Moor, Vandewalle 2000, SIAM J. Matrix Anal.
/// Appl. 21(4), doi:10.1137/S0895479896305696), or its sequentially truncated variant
/// (Vannieuwenhoven, Vandebril, Meerbergen 2012, SIAM J. Sci. Comput. 34(2), doi:10.1137/110836067).
///
/// Each factor holds the leading left singular vectors of an unfolding; the core is the
/// projection `G = X ×_n U_nᵀ`. With `sequential: true` each unfolding is taken of the tensor
/// already projected in the earlier modes, which is cheaper and has the same error bound:
///
/// ```text
/// ‖X − X̂‖² ≤ Σ_n Σ_{i > R_n} σ_{n,i}²          (σ_{n,i}: singular values of unfold(X, n))
/// ```
///
/// ```swift
/// let t = try hosvd(kernel, ranks: [32, 16, 3, 3])
/// let t2 = try hosvd(kernel, ranks: [32, 16], modes: [0, 1])     // Tucker-2 of an OIHW kernel
/// ```
///
/// - Parameters:
///   - tensor: The tensor, finite and non-empty.
///   - ranks: One rank per entry of `modes`, `1 ≤ R_n ≤ min(I_n, ∏_{m≠n} I_m)`.
///   - modes: The modes to factor (default all), in any order; they are sorted.
///   - sequential: Truncate sequentially (ST-HOSVD).
///   - method: The `svd:` argument: how each unfolding's leading left singular vectors are computed
///     (TensorLy's `svd` argument): ``SVDMethod/automatic`` takes the route of
///     ``SVDMethod/resolvedForLeadingVectors(rows:columns:rank:scalar:)`` (block Krylov only for
///     unfoldings of 2048 or more rows at ranks up to 1/16 of them, the Gram matrix for other wide
///     Float ones, LAPACK otherwise); ``SVDMethod/exact`` forces LAPACK. The bound above is that of
///     exact singular vectors; the automatic route matched LAPACK's error to five digits
///     (`Documentation/Performance.md`, "Tucker of large unfoldings").
/// - Throws: ``DecompositionError`` for invalid ranks or modes and bad input.
/// - Complexity: one truncated SVD per factored mode.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func hosvd<Scalar: BLASScalar>(
    _ tensor: Tensor<Scalar>, ranks: [Int], modes: [Int]? = nil, sequential: Bool = false, svd method: SVDMethod = .automatic
) throws -> TuckerTensor<Scalar> {
    let (ranks, modes) = try validatedTuckerRanks(tensor, ranks: ranks, modes: modes, operation: "hosvd")
    if let exponent = tensor.rangeExponent {
        var tucker = try hosvd(tensor.scaled(byPowerOfTwo: -exponent), ranks: ranks, modes: modes, sequential: sequential, svd: method)
        tucker.core = try tucker.core.scaledBack(byPowerOfTwo: exponent, operation: "hosvd")
        return tucker
    }
    var factors: [Matrix<Scalar>] = []
    var current = tensor
    for (rank, mode) in zip(ranks, modes) {
        let source = sequential ? current : tensor
        let u = try leadingLeftSingularVectors(source.unfolded(mode: mode), count: rank, method: method).u
        factors.append(u)
        if sequential { current = try current.modeProduct(u, mode: mode, transposed: true) }
    }
    let core = sequential ? current : try tensor.multiModeProduct(factors, modes: modes, transposed: true)
    return try TuckerTensor(core: core, factors: factors, modes: modes)
}

/// Checks Tucker ranks and modes; returns them sorted by mode.
func validatedTuckerRanks<Scalar: BLASScalar>(
    _ tensor: Tensor<Scalar>, ranks: [Int], modes: [Int]?, operation: String
) throws -> (ranks: [Int], modes: [Int]) {
    try tensor.validateForDecomposition(operation)
    let modes = modes ?? Array(0..<tensor.order)
    // Modes are indices chosen by the programmer; ranks come from data and throw.
    precondition(Set(modes).count == modes.count && !modes.isEmpty, "\(operation): modes \(modes) must be distinct and not empty")
    for mode in modes {
        precondition(mode >= 0 && mode < tensor.order, "\(operation): mode \(mode) is out of range 0..<\(tensor.order)")
    }
    guard ranks.count == modes.count else {
        throw DecompositionError.rankCount(operation: "\(operation) for modes \(modes)", expected: modes.count, actual: ranks.count)
    }
    for (rank, mode) in zip(ranks, modes) {
        let rest = tensor.scalarCount / tensor.shape[mode]
        try validateMatrixRank(rank, rows: tensor.shape[mode], columns: rest, context: { .forMode(mode, $0) })
    }
    let order = modes.indices.sorted { modes[$0] < modes[$1] }
    return (order.map { ranks[$0] }, order.map { modes[$0] })
}
