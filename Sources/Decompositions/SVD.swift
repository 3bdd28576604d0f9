import RealModule
import TensorModule

/// How ``svd(_:rank:method:)`` computes a truncated SVD.
public enum SVDMethod: Sendable, Equatable {
    /// The exact thin SVD (LAPACK `gesdd`) unless the matrix is large and the rank small:
    /// randomized when `min(m, n) ≥ 1024` and `rank + 10 ≤ min(m, n) / 8`, with the defaults of
    /// ``randomized(oversampling:powerIterations:seed:)``.
    case automatic
    /// The exact thin SVD by LAPACK `gesdd`, truncated.
    case exact
    /// The randomized range finder of Halko, Martinsson and Tropp (2011).
    case randomized(oversampling: Int = 10, powerIterations: Int = 2, seed: UInt64 = 0)
}

/// The thin singular value decomposition `A = U Σ Vᵀ` with `k = min(m, n)`.
///
/// Always economy-size LAPACK `gesdd`, so a very wide unfolding such as `3 × 300 000` costs
/// `O(m²n)` and `O(mn)` memory. The largest-magnitude entry of each column of `U` is made positive
/// (flipping the matching row of `Vᵀ`), so results are deterministic.
///
/// ```swift
/// let f = try svd(a)
/// f.singularValues   // descending
/// ```
///
/// Any finite input works: a matrix whose magnitudes are far from 1 (e.g. `1e37` in `Float`) is
/// decomposed as `A·2⁻ᵉ`, which is exact, and the singular values are scaled back.
///
/// - Throws: ``DecompositionError/nonFinite(operation:index:)`` for NaN or infinity,
///   ``DecompositionError/emptyInput(operation:shape:)`` for an empty matrix,
///   ``DecompositionError/resultOutOfRange(operation:magnitude:limit:)`` when a singular value
///   exceeds the scalar type's range, `LinearAlgebraError` if LAPACK does not converge.
/// - Complexity: `O(m·n·min(m, n))`.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func svd<Scalar: BLASScalar>(_ a: Matrix<Scalar>) throws -> SVDFactors<Scalar> {
    try Tensor(a).validateForDecomposition("svd")
    if let exponent = Tensor(a).rangeExponent {
        var f = try svd(a.scaled(byPowerOfTwo: -exponent))
        f.singularValues = try scaledBack(f.singularValues, byPowerOfTwo: exponent, operation: "svd")
        return f
    }
    let (u, s, vt) = try a.lapackThinSVD()
    return fixingSigns(SVDFactors(checkedU: u, singularValues: s, vt: vt))
}

/// The truncated SVD of rank `rank`: the best rank-`rank` approximation in the Frobenius and
/// spectral norms (Eckart–Young), `‖A − A_k‖_F² = Σ_{i>k} σ_i²`.
///
/// ```swift
/// let f = try svd(weight, rank: 32)                        // automatic method
/// let g = try svd(weight, rank: 32, method: .exact)
/// let h = try svd(weight, rank: 32, method: .randomized(seed: 7))
/// ```
///
/// - Parameters:
///   - a: An `m × n` matrix.
///   - rank: The rank `k`, `1 ≤ k ≤ min(m, n)`.
///   - method: Exact, randomized or automatic (``SVDMethod/automatic``).
/// - Throws: ``DecompositionError/invalidRank(rank:reason:)`` for a rank out of range, and the
///   errors of ``svd(_:)``.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func svd<Scalar: BLASScalar>(_ a: Matrix<Scalar>, rank: Int, method: SVDMethod = .automatic) throws -> SVDFactors<Scalar> {
    try Tensor(a).validateForDecomposition("svd")
    try validateMatrixRank(rank, rows: a.rows, columns: a.columns)
    let small = Swift.min(a.rows, a.columns)
    switch method {
    case .automatic where small >= 1024 && rank + 10 <= small / 8:
        return try randomizedSVD(a, rank: rank)
    case .automatic, .exact:
        return truncated(try svd(a), to: rank)
    case let .randomized(oversampling, powerIterations, seed):
        return try randomizedSVD(a, rank: rank, oversampling: oversampling, powerIterations: powerIterations, seed: seed)
    }
}

/// A randomized truncated SVD (Halko, Martinsson, Tropp 2011, SIAM Review 53(2),
/// doi:10.1137/090771806, Algorithms 4.4 and 5.1).
///
/// Samples the range of `A` with `k + p` Gaussian vectors drawn from `seed`, sharpens it with
/// `q` power iterations (re-orthonormalized by QR each time), and takes the exact SVD of the
/// small projection `QᵀA`:
///
/// ```text
/// Y = (A Aᵀ)^q A Ω,   Q = qr(Y),   QᵀA = Ũ Σ Vᵀ,   U = Q Ũ
/// ```
///
/// - Parameters:
///   - a: An `m × n` matrix.
///   - rank: The rank `k`.
///   - oversampling: Extra samples `p` (default 10).
///   - powerIterations: Power iterations `q` (default 2).
///   - seed: Seed of the Gaussian test matrix.
/// - Throws: ``DecompositionError/invalidRank(rank:reason:)``, ``DecompositionError/invalidParameter(operation:name:value:requirement:)``
///   for negative `p` or `q`, and the errors of ``svd(_:)``.
/// - Complexity: `O(m·n·(k + p)·(2q + 2))`.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func randomizedSVD<Scalar: BLASScalar>(
    _ a: Matrix<Scalar>, rank: Int, oversampling: Int = 10, powerIterations: Int = 2, seed: UInt64 = 0
) throws -> SVDFactors<Scalar> {
    try Tensor(a).validateForDecomposition("randomizedSVD")
    try validateMatrixRank(rank, rows: a.rows, columns: a.columns)
    guard oversampling >= 0, powerIterations >= 0 else {
        throw DecompositionError.invalidParameter(
            operation: "randomizedSVD", name: oversampling < 0 ? "oversampling" : "powerIterations",
            value: Double(oversampling < 0 ? oversampling : powerIterations), requirement: "non-negative")
    }
    if let exponent = Tensor(a).rangeExponent {
        var f = try randomizedSVD(a.scaled(byPowerOfTwo: -exponent), rank: rank, oversampling: oversampling,
                                  powerIterations: powerIterations, seed: seed)
        f.singularValues = try scaledBack(f.singularValues, byPowerOfTwo: exponent, operation: "randomizedSVD")
        return f
    }
    let samples = Swift.min(rank + oversampling, Swift.min(a.rows, a.columns))
    let omega = Matrix<Scalar>.randomNormal(rows: a.columns, columns: samples, seed: seed)
    var q = try a.matmul(omega).qr().q
    for _ in 0..<powerIterations {
        let z = try a.matmul(q, transposeSelf: true).qr().q   // n × l
        q = try a.matmul(z).qr().q                            // m × l
    }
    let b = q.matmul(a, transposeSelf: true)                  // l × n
    let small = try svd(b)
    let u = q.matmul(small.u)
    return truncated(fixingSigns(SVDFactors(checkedU: u, singularValues: small.singularValues, vt: small.vt)), to: rank)
}

/// The leading `count` left singular vectors (signs fixed) and all singular values, without
/// forming `Vᵀ` (see `Matrix.lapackLeftSingularVectors(rank:)`): what HOSVD, HOOI and the CP start need.
@inlinable
func leadingLeftSingularVectors<Scalar: BLASScalar>(_ a: Matrix<Scalar>, count: Int) throws -> (u: Matrix<Scalar>, s: [Scalar]) {
    try leadingLeftSingularVectors(a) { _ in count }
}

/// The leading left singular vectors (signs fixed), as many as `rank` picks from the singular
/// values (descending), and all singular values: what TT-SVD needs, whose ranks may depend on them.
@inlinable
func leadingLeftSingularVectors<Scalar: BLASScalar>(
    _ a: Matrix<Scalar>, rank: ([Scalar]) -> Int
) throws -> (u: Matrix<Scalar>, s: [Scalar]) {
    let (u, s) = try a.lapackLeftSingularVectors(rank: rank)
    return (u.scalingColumns(by: columnSigns(of: u)), s)
}

/// The leading `rank` singular triplets.
@inlinable
func truncated<Scalar: BLASScalar>(_ f: SVDFactors<Scalar>, to rank: Int) -> SVDFactors<Scalar> {
    if rank >= f.rank { return f }
    return SVDFactors(checkedU: f.u.leadingColumns(rank), singularValues: Array(f.singularValues.prefix(rank)), vt: f.vt.leadingRows(rank))
}

/// Makes the largest-magnitude entry of every column of `U` positive, flipping the row of `Vᵀ`.
@inlinable
func fixingSigns<Scalar: BLASScalar>(_ f: SVDFactors<Scalar>) -> SVDFactors<Scalar> {
    let signs = columnSigns(of: f.u)
    return SVDFactors(checkedU: f.u.scalingColumns(by: signs), singularValues: f.singularValues, vt: f.vt.scalingRows(by: signs))
}

/// `−1` for each column whose largest-magnitude entry is negative, `+1` otherwise.
@inlinable
func columnSigns<Scalar: BLASScalar>(of u: Matrix<Scalar>) -> [Scalar] {
    u.withUnsafeBufferPointer { up in
        (0..<u.columns).map { column in
            var best: Scalar = 0
            for row in 0..<u.rows where abs(up[row * u.columns + column]) > abs(best) { best = up[row * u.columns + column] }
            return best < 0 ? -1 : 1
        }
    }
}
