import RealModule
import TensorModule

/// How ``svd(_:rank:method:)`` computes a truncated SVD.
public enum SVDMethod: Sendable, Equatable {
    /// The exact thin SVD (LAPACK `gesdd`) unless the matrix is large and the rank small: the
    /// block Krylov route (``blockKrylovSVD(_:rank:blockSize:depth:seed:)`` with its defaults,
    /// blocks of `k/4` and a `2k`-column basis) when `min(m, n) ≥ 512` and `k ≤ min(m, n)/4`,
    /// where it measured 1.7–5.3× faster than `gesdd` with a relative error within 1% of the exact
    /// truncated SVD's on power-law spectra (`Documentation/Performance.md`).
    ///
    /// Above that rank, a Float matrix with `min(m, n) ≥ 512` takes the Gram route
    /// (``gramSVD(_:rank:)``): 2.2–2.4× faster than `gesdd` on 5632 × 2048 at `k = 750`, 1.9× on
    /// 2048 × 2048 at `k = 600`, 1.4× at `k = 1024`, with the same error to six digits.
    case automatic
    /// The exact thin SVD by LAPACK `gesdd`, truncated.
    case exact
    /// The leading eigenpairs of the Gram matrix formed in Double (``gramSVD(_:rank:)``).
    case gram
    /// The block Krylov method with its defaults (``blockKrylovSVD(_:rank:blockSize:depth:seed:)``).
    case blockKrylov
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
/// - Throws: ``DecompositionError/invalidRank(rank:problem:)`` for a rank out of range, and the
///   errors of ``svd(_:)``.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func svd<Scalar: BLASScalar>(_ a: Matrix<Scalar>, rank: Int, method: SVDMethod = .automatic) throws -> SVDFactors<Scalar> {
    try Tensor(a).validateForDecomposition("svd")
    try validateMatrixRank(rank, rows: a.rows, columns: a.columns)
    switch method.resolved(rows: a.rows, columns: a.columns, rank: rank, scalar: Scalar.self) {
    case .automatic, .exact: return truncated(try svd(a), to: rank)
    case .blockKrylov: return try blockKrylovSVD(a, rank: rank)
    case .gram: return try gramSVD(a, rank: rank)
    case let .randomized(oversampling, powerIterations, seed):
        return try randomizedSVD(a, rank: rank, oversampling: oversampling, powerIterations: powerIterations, seed: seed)
    }
}

extension SVDMethod {
    /// The route ``svd(_:rank:method:)`` takes for an `rows × columns` matrix of `scalar` at
    /// `rank`: never ``automatic`` (``blockKrylov`` when `min ≥ 512` and `k ≤ min/4`; ``gram``
    /// for Float with `min ≥ 512` above that; ``exact`` otherwise); any other method as it is.
    public func resolved<Scalar: BLASScalar>(rows: Int, columns: Int, rank: Int, scalar: Scalar.Type) -> SVDMethod {
        guard self == .automatic else { return self }
        let small = Swift.min(rows, columns)
        if small >= 512 && 4 * rank <= small { return .blockKrylov }
        if small >= 512 && Scalar.gramRouteIsAccurate { return .gram }
        return .exact
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
/// - Throws: ``DecompositionError/invalidRank(rank:problem:)``, ``DecompositionError/invalidParameter(operation:name:value:requirement:)``
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
            value: Double(oversampling < 0 ? oversampling : powerIterations), requirement: .nonNegative)
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

/// A randomized block Krylov truncated SVD (Musco & Musco 2015, "Randomized Block Krylov
/// Methods for Stronger and Faster Approximate Singular Value Decomposition", arXiv:1504.05477).
///
/// With `b`-column Gaussian `Ω` on the larger side, the Krylov basis
///
/// ```text
/// K = [A Ω, (A Aᵀ) A Ω, …, (A Aᵀ)^d A Ω]      (b·(d + 1) columns on the smaller side)
/// ```
///
/// is built block by block (each block orthogonalised twice against the earlier ones), made
/// orthonormal once more in `Double` (`basis = Q R`), and the leading `k` singular triplets of the
/// small projection `Qᵀ A` give the factors (``gramSVD(_:rank:)`` for Float, `gesdd` for Double).
/// The projection needs no pass of its own: the products `Aᵀ B_j` of the iteration are its rows,
/// `Qᵀ A = R⁻ᵀ [Aᵀ B_0, …, Aᵀ B_d]ᵀ`, so one more block product and a `2k × 2k` solve replace a
/// `2k`-column pass over `A`. For the same number of passes over `A`, a Krylov basis holds the leading singular
/// subspace far better than the last power iterate alone, so narrow blocks and several steps
/// reach the exact truncated SVD's error within a fraction of a percent at a fraction of the
/// cost (`Documentation/Performance.md`, "Truncated SVD routes").
///
/// - Parameters:
///   - a: An `m × n` matrix.
///   - rank: The rank `k`.
///   - blockSize: `b`, default `max(k/4, 8)`.
///   - depth: `d`, default the smallest giving `b·(d + 1) ≥ 2k` (7 for the default block size).
///   - seed: Seed of `Ω`.
/// - Throws: ``DecompositionError/invalidRank(rank:problem:)``, ``DecompositionError/invalidParameter(operation:name:value:requirement:)``,
///   and the errors of ``svd(_:)``.
/// - Complexity: `(2d + 2)·b` columns' worth of passes over `A`, i.e. `O(m·n·b·(2d + 2))`, plus `O(min(m, n)·k²)` for the orthogonalisations.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func blockKrylovSVD<Scalar: BLASScalar>(
    _ a: Matrix<Scalar>, rank: Int, blockSize: Int? = nil, depth: Int? = nil, seed: UInt64 = 0
) throws -> SVDFactors<Scalar> {
    try Tensor(a).validateForDecomposition("blockKrylovSVD")
    try validateMatrixRank(rank, rows: a.rows, columns: a.columns)
    let small = Swift.min(a.rows, a.columns), large = Swift.max(a.rows, a.columns)
    let b = Swift.min(small, blockSize ?? Swift.max(rank / 4, 8))
    guard b >= 1, (depth ?? 0) >= 0 else {
        throw DecompositionError.invalidParameter(operation: "blockKrylovSVD", name: b < 1 ? "blockSize" : "depth",
                                                  value: Double(b < 1 ? b : depth ?? 0), requirement: b < 1 ? .positive : .nonNegative)
    }
    if let exponent = Tensor(a).rangeExponent {
        var f = try blockKrylovSVD(a.scaled(byPowerOfTwo: -exponent), rank: rank, blockSize: blockSize, depth: depth, seed: seed)
        f.singularValues = try scaledBack(f.singularValues, byPowerOfTwo: exponent, operation: "blockKrylovSVD")
        return f
    }
    let target = 2 * rank
    let d = Swift.min(depth ?? Swift.max(0, (target + b - 1) / b - 1), Swift.max(0, small / b - 1))
    // The basis lives on the smaller side: rows when a is wide, columns when it is tall.
    let wide = a.rows <= a.columns
    func times(_ x: Matrix<Scalar>) -> Matrix<Scalar> { wide ? a.matmul(x) : a.matmul(x, transposeSelf: true) }          // large → small
    func timesTransposed(_ y: Matrix<Scalar>) -> Matrix<Scalar> { wide ? a.matmul(y, transposeSelf: true) : a.matmul(y) } // small → large
    func orthogonalized(_ y: Matrix<Scalar>, against blocks: [Matrix<Scalar>]) throws -> Matrix<Scalar> {
        var y = y
        for _ in 0..<2 {
            for p in blocks { y = y - p.matmul(p.matmul(y, transposeSelf: true)) }
        }
        return try y.qr().q
    }
    var blocks = [try times(Matrix<Scalar>.randomNormal(rows: large, columns: b, seed: seed)).qr().q]
    // Z_j = Mᵀ B_j (M = A when wide, Aᵀ when tall): each step needs it anyway, and together they
    // are the projection of M on the Krylov blocks, so the final projection costs one more block.
    var products: [Matrix<Scalar>] = []
    for _ in 0..<d {
        products.append(timesTransposed(blocks.last!))
        blocks.append(try orthogonalized(times(products.last!), against: blocks))
    }
    products.append(timesTransposed(blocks.last!))
    let width = blocks.count * b
    var basis = Matrix<Double>.zeros(rows: small, columns: width)
    for (j, block) in blocks.enumerated() {
        for r in 0..<small { for c in 0..<b { basis[r, j * b + c] = Double(block[r, c]) } }
    }
    // basis = Q R in Double (R ≈ I: the blocks are orthonormal to Float's precision), so
    // Qᵀ M = R⁻ᵀ basisᵀ M = R⁻ᵀ [Z_0 … Z_d]ᵀ: a width × width product instead of a pass over M.
    let (q, r) = try basis.qr()
    let rInverse = try r.luSolve(.identity(width))
    let k = Matrix<Scalar>(uncheckedRows: small, columns: q.columns, scalars: ContiguousArray(q.scalars.lazy.map { Scalar($0) }))
    var stacked = Matrix<Scalar>.zeros(rows: large, columns: width)   // [Z_0 … Z_d]
    stacked.withUnsafeMutableBufferPointer { out in
        for (j, z) in products.enumerated() {
            z.withUnsafeBufferPointer { zp in
                for row in 0..<large {
                    (out.baseAddress! + row * width + j * b).update(from: zp.baseAddress! + row * b, count: b)
                }
            }
        }
    }
    let rInverseScalar = Matrix<Scalar>(uncheckedRows: width, columns: width, scalars: ContiguousArray(rInverse.scalars.lazy.map { Scalar($0) }))
    let projection = rInverseScalar.matmul(stacked, transposeSelf: true, transposeOther: true)   // Kᵀ M: width × large
    // The projection's leading k triplets: from its Gram matrix in Double for Float (as accurate
    // as Float's SVD for σ_i > 1e-9·σ_max, and only k vectors), by gesdd for Double.
    let f = Scalar.gramRouteIsAccurate
        ? try gramSVD(projection, rank: Swift.min(rank, projection.rows)) : try svd(projection)
    let u = k.matmul(f.u)                                            // small × r
    let factors = wide ? SVDFactors(checkedU: u, singularValues: f.singularValues, vt: f.vt)
                       : SVDFactors(checkedU: f.vt.transposed(), singularValues: f.singularValues, vt: u.transposed())
    return truncated(fixingSigns(factors), to: rank)
}

/// A truncated SVD from the Gram matrix of the smaller side, formed and eigendecomposed in
/// Double, with only the `k` leading eigenvectors computed:
///
/// ```text
/// A Aᵀ = U Σ² Uᵀ  (m ≤ n; Aᵀ A for tall A),   B = U_kᵀ A,   σ_i = ‖B_i‖,   V_kᵀ = Σ_k⁻¹ B
/// ```
///
/// `U_k U_kᵀ A` is the best approximation with the computed `U_k`, so the error is the exact
/// truncated SVD's to the accuracy of `U_k`. The Gram matrix squares the condition number: in
/// Double that matches an SVD in a precision of `√ε_Double ≈ 1.5e-8`, which is Float's SVD for
/// every `σ_i > 1e-9·σ_max` (see `Documentation/Performance.md`, "Truncated SVD routes"), so
/// ``SVDMethod/automatic`` takes this route for Float only. The cost is one `syrk` over `A`, a
/// tridiagonal reduction of the small side and `k` eigenvectors, and one GEMM for `B`, against
/// `gesdd`'s full bidiagonalisation and all vectors.
///
/// ```swift
/// let f = try gramSVD(weight, rank: 750)        // 5632 × 2048: 2.3× faster than gesdd
/// ```
///
/// - Parameters:
///   - a: An `m × n` matrix.
///   - rank: The rank `k`, `1 ≤ k ≤ min(m, n)`.
/// - Throws: ``DecompositionError/invalidRank(rank:problem:)`` and the errors of ``svd(_:)``.
/// - Complexity: `O(m·n·min(m, n))` in `syrk` (half a GEMM), `O(min(m, n)³)` in the eigensolver.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func gramSVD<Scalar: BLASScalar>(_ a: Matrix<Scalar>, rank: Int) throws -> SVDFactors<Scalar> {
    try Tensor(a).validateForDecomposition("gramSVD")
    try validateMatrixRank(rank, rows: a.rows, columns: a.columns)
    if let exponent = Tensor(a).rangeExponent {
        var f = try gramSVD(a.scaled(byPowerOfTwo: -exponent), rank: rank)
        f.singularValues = try scaledBack(f.singularValues, byPowerOfTwo: exponent, operation: "gramSVD")
        return f
    }
    let wide = a.rows <= a.columns
    let m = wide ? a : a.transposed()
    let u = try m.gramLeftSingularVectors { _ in rank }.u           // small × k, orthonormal columns
    var b = u.matmul(m, transposeSelf: true)                        // k × large: Σ Vᵀ
    let sigma = (0..<rank).map { i in b.withUnsafeBufferPointer { p in Scalar.nrm2(n: b.columns, x: p.baseAddress! + i * b.columns, incx: 1) } }
    b = b.scalingRows(by: sigma.map { $0 > 0 ? 1 / $0 : 0 })
    // Descending order: σ_i = ‖B_i‖ may swap neighbours that the eigenvalues ordered within rounding.
    let order = sigma.indices.sorted { sigma[$0] > sigma[$1] }
    let (uk, vt) = (u.selectingColumns(order), b.selectingRows(order))
    let factors = wide ? SVDFactors(checkedU: uk, singularValues: order.map { sigma[$0] }, vt: vt)
                       : SVDFactors(checkedU: vt.transposed(), singularValues: order.map { sigma[$0] }, vt: uk.transposed())
    return fixingSigns(factors)
}

/// The leading `count` left singular vectors (signs fixed) and singular values by `method` (see
/// ``SVDMethod/resolvedForLeadingVectors(rows:columns:rank:scalar:)``): what HOSVD, HOOI, TT-SVD at
/// fixed ranks and the CP start need. The Gram and LAPACK routes return all singular values, the
/// others `count`.
func leadingLeftSingularVectors<Scalar: BLASScalar>(
    _ a: Matrix<Scalar>, count: Int, method: SVDMethod = .automatic
) throws -> (u: Matrix<Scalar>, s: [Scalar]) {
    let f: SVDFactors<Scalar>
    switch method.resolvedForLeadingVectors(rows: a.rows, columns: a.columns, rank: count, scalar: Scalar.self) {
    case .blockKrylov where method == .automatic:
        // A deeper Krylov space (3k columns against svd's 2k): the factors then match LAPACK's
        // error to five digits on noisy unfoldings, where 2k left 1% (Performance.md).
        let b = Swift.max(count / 4, 8)
        f = try blockKrylovSVD(a, rank: count, blockSize: b, depth: Swift.max(0, (3 * count + b - 1) / b - 1))
    case .blockKrylov: f = try blockKrylovSVD(a, rank: count)
    case let .randomized(oversampling, powerIterations, seed):
        f = try randomizedSVD(a, rank: count, oversampling: oversampling, powerIterations: powerIterations, seed: seed)
    case .gram where a.rows <= a.columns:
        let (u, s) = try a.gramLeftSingularVectors { _ in count }
        return (u.scalingColumns(by: columnSigns(of: u)), s)
    case .gram: f = try gramSVD(a, rank: count)
    case .automatic, .exact:
        if method == .exact { f = truncated(try svd(a), to: count) } else { return try leadingLeftSingularVectors(a) { _ in count } }
    }
    return (f.u.scalingColumns(by: columnSigns(of: f.u)), f.singularValues)
}

extension SVDMethod {
    /// The route HOSVD, HOOI and TT-SVD at fixed ranks take for the leading `rank` left singular
    /// vectors of one `rows × columns` unfolding: for ``automatic``, ``blockKrylov`` when
    /// `min(rows, columns) ≥ 2048` and `rank ≤ min/16`, ``gram`` for wide unfoldings where
    /// `Scalar` keeps it accurate (Float), and ``exact`` otherwise; any other method as it is.
    ///
    /// Only the left vectors are needed here, so the Gram route costs one `syrk` and a partial
    /// eigen-decomposition: it beat block Krylov 1.7× on Tucker-2 of 512- and 1024-channel
    /// kernels, and block Krylov pays only for the largest unfoldings (2048 × 32768 at rank 128:
    /// 1.1–1.3× faster, the same error; `Documentation/Performance.md`, "Tucker of large unfoldings").
    public func resolvedForLeadingVectors<Scalar: BLASScalar>(rows: Int, columns: Int, rank: Int, scalar: Scalar.Type) -> SVDMethod {
        guard self == .automatic else { return self }
        let small = Swift.min(rows, columns)
        if small >= 2048 && 16 * rank <= small { return .blockKrylov }
        return rows <= columns && rows > 0 && Scalar.gramRouteIsAccurate ? .gram : .exact
    }
}

/// The leading left singular vectors (signs fixed), as many as `rank` picks from the singular
/// values (descending), and all singular values: what TT-SVD needs, whose ranks may depend on them.
func leadingLeftSingularVectors<Scalar: BLASScalar>(
    _ a: Matrix<Scalar>, rank: ([Scalar]) -> Int
) throws -> (u: Matrix<Scalar>, s: [Scalar]) {
    let (u, s) = try a.lapackLeftSingularVectors(rank: rank)
    return (u.scalingColumns(by: columnSigns(of: u)), s)
}

/// The leading `rank` singular triplets.
func truncated<Scalar: BLASScalar>(_ f: SVDFactors<Scalar>, to rank: Int) -> SVDFactors<Scalar> {
    if rank >= f.rank { return f }
    return SVDFactors(checkedU: f.u.leadingColumns(rank), singularValues: Array(f.singularValues.prefix(rank)), vt: f.vt.leadingRows(rank))
}

/// Makes the largest-magnitude entry of every column of `U` positive, flipping the row of `Vᵀ`.
func fixingSigns<Scalar: BLASScalar>(_ f: SVDFactors<Scalar>) -> SVDFactors<Scalar> {
    let signs = columnSigns(of: f.u)
    return SVDFactors(checkedU: f.u.scalingColumns(by: signs), singularValues: f.singularValues, vt: f.vt.scalingRows(by: signs))
}

/// `−1` for each column whose largest-magnitude entry is negative, `+1` otherwise.
func columnSigns<Scalar: BLASScalar>(of u: Matrix<Scalar>) -> [Scalar] {
    u.withUnsafeBufferPointer { up in
        (0..<u.columns).map { column in
            var best: Scalar = 0
            for row in 0..<u.rows where abs(up[row * u.columns + column]) > abs(best) { best = up[row * u.columns + column] }
            return best < 0 ? -1 : 1
        }
    }
}
