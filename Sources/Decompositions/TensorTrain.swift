import RealModule
import TensorModule

/// How ``ttDecompose(_:ranks:)`` and its variants bound the TT ranks.
@usableFromInline
enum TTTruncation {
    case maxRank(Int)
    case ranks([Int])
    case tolerance(Double, maxRank: Int?)
}

/// TT-SVD with every internal rank at most `maxRank` (Oseledets 2011, Algorithm 1).
///
/// ```swift
/// let tt = try ttDecompose(x, maxRank: 8)
/// tt.ranks   // [1, r_1, …, 1], each r_k ≤ 8 and ≤ the unfolding's size
/// ```
///
/// - Throws: ``DecompositionError`` for `maxRank < 1`, an order below 2, or bad input.
/// Each step factors only the left singular vectors of the current unfolding `C` and carries
/// `U_kᵀ·C` (which equals `Σ_k V_kᵀ`) to the next step by one GEMM.
///
/// - Complexity: `d − 1` thin SVDs of shrinking unfoldings.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func ttDecompose<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>, maxRank: Int) throws -> TTTensor<Scalar> {
    guard maxRank >= 1 else { throw DecompositionError.invalidRank(rank: maxRank, problem: .maxRank(.belowOne)) }
    return try ttSVD(tensor, truncation: .maxRank(maxRank))
}

/// TT-SVD with the internal ranks `[r_1, …, r_{d−1}]` given.
///
/// - Throws: ``DecompositionError/invalidRank(rank:problem:)`` when `r_k` exceeds the size of the
///   `k`-th unfolding `min(r_{k−1}·n_k, n_{k+1}⋯n_d)`, or is below 1.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func ttDecompose<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>, ranks: [Int]) throws -> TTTensor<Scalar> {
    guard ranks.count == tensor.order - 1 else {
        throw DecompositionError.rankCount(operation: "ttDecompose of a tensor of order \(tensor.order)", expected: tensor.order - 1, actual: ranks.count)
    }
    return try ttSVD(tensor, truncation: .ranks(ranks))
}

/// TT-SVD to a relative accuracy `ε`: each unfolding is truncated at `δ = ε/√(d−1)·‖X‖_F`,
/// which guarantees `‖X − X̂‖_F ≤ ε‖X‖_F` (Oseledets 2011, Theorem 2.2), with the smallest ranks
/// that do.
///
/// ```swift
/// let tt = try ttDecompose(x, tolerance: 1e-3)
/// try tt.relativeError(to: x) <= 1e-3   // true
/// ```
///
/// - Parameters:
///   - tensor: The tensor, finite and non-empty.
///   - tolerance: `ε ≥ 0`.
///   - maxRank: An optional cap on every rank (the bound no longer holds when it binds).
/// - Throws: ``DecompositionError`` for a negative tolerance or bad input.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func ttDecompose<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>, tolerance: Double, maxRank: Int? = nil) throws -> TTTensor<Scalar> {
    guard tolerance >= 0, tolerance.isFinite else {
        throw DecompositionError.invalidParameter(operation: "ttDecompose", name: "tolerance", value: tolerance, requirement: .finiteAndNonNegative)
    }
    if let maxRank, maxRank < 1 { throw DecompositionError.invalidRank(rank: maxRank, problem: .maxRank(.belowOne)) }
    return try ttSVD(tensor, truncation: .tolerance(tolerance, maxRank: maxRank))
}

/// The smallest rank `r` with `Σ_{i>r} σ_i² ≤ δ²` (at least 1).
func rankForTolerance<Scalar: BLASScalar>(_ singularValues: [Scalar], delta: Double) -> Int {
    var tail = 0.0
    var rank = singularValues.count
    while rank > 1 {
        let next = tail + Double(singularValues[rank - 1]) * Double(singularValues[rank - 1])
        if next > delta * delta { break }
        tail = next
        rank -= 1
    }
    return rank
}

func ttSVD<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>, truncation: TTTruncation) throws -> TTTensor<Scalar> {
    try tensor.validateForDecomposition("ttDecompose")
    if let exponent = tensor.rangeExponent {
        var tt = try ttSVD(tensor.scaled(byPowerOfTwo: -exponent), truncation: truncation)
        tt.cores[tt.cores.count - 1] = try tt.cores[tt.cores.count - 1].scaledBack(byPowerOfTwo: exponent, operation: "ttDecompose")
        return tt
    }
    let shape = tensor.shape
    let d = shape.count
    if d == 1 { return try TTTensor(cores: [tensor.reshaped(to: [1, shape[0], 1])]) }
    let delta: Double
    if case let .tolerance(epsilon, _) = truncation {
        delta = epsilon / Double(d - 1).squareRoot() * Double(tensor.frobeniusNorm)
    } else {
        delta = 0
    }
    var cores: [Tensor<Scalar>] = []
    var rest = try Matrix(reshaping: tensor, rows: shape[0], columns: tensor.scalarCount / shape[0])
    var previousRank = 1
    for k in 0..<(d - 1) {
        // Only U is factored, and only as many vectors as the rank: the carried matrix Σ_k V_kᵀ
        // equals U_kᵀ·C, one GEMM.
        if case let .ranks(ranks) = truncation {
            try validateMatrixRank(ranks[k], rows: rest.rows, columns: rest.columns, context: { .forTTCore(k + 1, of: d, $0) })
        }
        // Fixed ranks need no singular values first, so large unfoldings may take block Krylov.
        var fixed: Int?
        switch truncation {
        case let .maxRank(maxRank): fixed = maxRank
        case let .ranks(ranks): fixed = ranks[k]
        case .tolerance: fixed = nil
        }
        let (leading, _) = try fixed.map { try leadingLeftSingularVectors(rest, count: Swift.max(1, Swift.min($0, rest.rows, rest.columns))) }
            ?? leadingLeftSingularVectors(rest) { values in
            var rank: Int
            switch truncation {
            case let .maxRank(maxRank): rank = maxRank
            case let .ranks(ranks): rank = ranks[k]
            case let .tolerance(_, maxRank):
                rank = rankForTolerance(values, delta: delta)
                if let maxRank { rank = Swift.min(rank, maxRank) }
            }
            return Swift.max(1, Swift.min(rank, values.count))
        }
        let rank = leading.columns
        cores.append(try Tensor(leading).reshaped(to: [previousRank, shape[k], rank]))
        let carried = leading.matmul(rest, transposeSelf: true)          // rank × (n_{k+1}⋯n_d)
        rest = try carried.reshaped(rows: rank * shape[k + 1], columns: carried.columns / shape[k + 1])
        previousRank = rank
    }
    cores.append(try Tensor(rest).reshaped(to: [previousRank, shape[d - 1], 1]))
    return try TTTensor(cores: cores)
}

extension TTTensor {
    /// TT-rounding (Oseledets 2011, Algorithm 2): right-to-left orthogonalization by QR, then
    /// left-to-right truncated SVDs at `δ = ε/√(d−1)·‖X̂‖`, so that the rounded tensor is within
    /// `ε‖X̂‖` of this one; `maxRank` caps every rank.
    ///
    /// ```swift
    /// let sum = try TTTensor(cores: …)           // e.g. with redundant ranks
    /// let compact = try sum.rounded(tolerance: 1e-10)
    /// ```
    ///
    /// - Throws: ``DecompositionError/invalidParameter(operation:name:value:requirement:)`` for a negative
    ///   tolerance, ``DecompositionError/invalidRank(rank:problem:)`` for `maxRank < 1`.
    /// - Complexity: `O(d·n·r³)`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func rounded(tolerance: Double, maxRank: Int? = nil) throws -> TTTensor {
        guard tolerance >= 0, tolerance.isFinite else {
            throw DecompositionError.invalidParameter(operation: "TTTensor.rounded", name: "tolerance", value: tolerance, requirement: .finiteAndNonNegative)
        }
        if let maxRank, maxRank < 1 { throw DecompositionError.invalidRank(rank: maxRank, problem: .maxRank(.belowOne)) }
        var cores = self.cores
        let d = cores.count
        if d == 1 { return self }
        // Right-to-left: G_k = R_kᵀ Q_kᵀ with Q_k orthonormal; R_kᵀ moves into G_{k−1}.
        for k in stride(from: d - 1, through: 1, by: -1) {
            let (_, n, r1) = (cores[k].shape[0], cores[k].shape[1], cores[k].shape[2])
            let (q, r) = try cores[k].rightUnfolding.transposed().qr()   // (n r1) × r',  r' × r0
            let newRank = q.columns
            cores[k] = try Tensor(q.transposed()).reshaped(to: [newRank, n, r1])
            let (p0, pn) = (cores[k - 1].shape[0], cores[k - 1].shape[1])
            cores[k - 1] = try Tensor(cores[k - 1].leftUnfolding.matmul(r, transposeOther: true)).reshaped(to: [p0, pn, newRank])
        }
        let norm = Double(cores[0].frobeniusNorm)
        let delta = tolerance / Double(d - 1).squareRoot() * norm
        // Left-to-right truncation.
        for k in 0..<(d - 1) {
            let (r0, n) = (cores[k].shape[0], cores[k].shape[1])
            let f = try svd(cores[k].leftUnfolding)
            var rank = rankForTolerance(f.singularValues, delta: delta)
            if let maxRank { rank = Swift.min(rank, maxRank) }
            let t = truncated(f, to: Swift.max(1, rank))
            cores[k] = try Tensor(t.u).reshaped(to: [r0, n, t.rank])
            let carry = t.vt.scalingRows(by: t.singularValues)  // rank × r1
            let (qn, q1) = (cores[k + 1].shape[1], cores[k + 1].shape[2])
            cores[k + 1] = try Tensor(carry.matmul(cores[k + 1].rightUnfolding)).reshaped(to: [t.rank, qn, q1])
        }
        return try TTTensor(cores: cores)
    }
}
