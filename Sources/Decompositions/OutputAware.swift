import TensorModule

/// Options of the output-aware decompositions (``WhitenedSVD``, ``tucker2Decompose(_:ranks:metric:options:)``,
/// ``cpDecompose(_:rank:metric:options:start:)``).
public struct OutputAwareOptions: Sendable, Equatable {
    /// The damping `δ`, relative to the mean eigenvalue of the metric: `C + δ·tr(C)/d·I` is used
    /// in its place, so that a singular or ill-conditioned metric (dead inputs, constant patches)
    /// gives finite factors. Default `1e-6`.
    public var damping: Double = 1e-6
    /// Alternating iterations of Tucker-2 and CP (each half-step is optimal given the others).
    public var maxIterations: Int = 8
    /// Stop when the relative output error changes by less than this. Default `1e-5`.
    public var tolerance: Double = 1e-5
    /// The largest linear system solved for the input factor (`S·R_in` unknowns for Tucker-2,
    /// `S·R` for CP); beyond it that factor stays as initialized. Default 4096.
    public var maxUnknowns: Int = 4096

    /// The defaults.
    public init() {}
}

/// The metric `C + δ·tr(C)/d·I` of ``OutputAwareOptions/damping``, checked.
func dampedMetric(_ metric: Matrix<Double>, dimension d: Int, damping: Double, operation: String) throws -> Matrix<Double> {
    guard metric.rows == d, metric.columns == d else {
        throw DecompositionError.inconsistentParts(type: operation, shapes: [metric.shape], requirement: .metric(dimension: d))
    }
    guard metric.scalars.allSatisfy(\.isFinite) else { throw DecompositionError.nonFinite(operation: "\(operation): the metric", index: 0) }
    guard damping >= 0, damping.isFinite else {
        throw DecompositionError.invalidParameter(operation: operation, name: "damping", value: damping, requirement: .finiteAndNonNegative)
    }
    let trace = (0..<d).reduce(0.0) { $0 + metric[$1, $1] }
    // An all-zero metric (no signal at all) falls back to the identity: the plain kernel objective.
    let shift = trace > 0 ? damping * trace / Double(d) : 1
    var c = metric
    c.withUnsafeMutableBufferPointer { p in
        for i in 0..<d {
            for j in 0..<i {
                let m = 0.5 * (p[i * d + j] + p[j * d + i])
                (p[i * d + j], p[j * d + i]) = (m, m)
            }
            p[i * d + i] += shift
        }
    }
    return c
}

/// Throws unless the eigenvalues of a (damped) metric are non-negative up to rounding: an
/// indefinite metric would give a meaningless or negative output error.
package func checkSemidefinite(_ eigenvalues: [Double], operation: String) throws {
    let largest = eigenvalues.map(abs).max() ?? 0
    if let smallest = eigenvalues.min(), smallest < -1e-9 * largest {
        throw DecompositionError.invalidParameter(operation: operation, name: "the metric's smallest eigenvalue", value: smallest,
                                                  requirement: .semidefinite(largestEigenvalue: largest))
    }
}

/// `tr(Δ C Δᵀ)` for `Δ` of shape `m × d`.
package func quadraticError(_ delta: Matrix<Double>, _ metric: Matrix<Double>) -> Double {
    let product = delta.matmul(metric)
    return zip(product.scalars, delta.scalars).reduce(0) { $0 + $1.0 * $1.1 }
}

/// The truncated SVD that minimises the output error on calibration inputs (truncation-aware
/// whitening, Wang et al. 2024, "SVD-LLM", arXiv:2403.07378).
///
/// For a layer `y = W x` and input statistics `C = E[x xᵀ]` (or the covariance, when the mean
/// shift is corrected in the bias) with `C = L Lᵀ`,
///
/// ```text
/// Ŵ_k = [W L]_k L⁻¹   minimises   E‖(W − Ŵ) x‖² = ‖(W − Ŵ) L‖²_F   over rank k,
/// with  ‖(W − Ŵ_k) L‖²_F = Σ_{i>k} σ_i(W L)²
/// ```
///
/// `L = V Λ^{1/2}` from the eigendecomposition of the (damped) metric, so a singular `C` is
/// handled without a Cholesky failure. The factors are `U_k` (orthonormal), `Σ_k` and
/// `Z_kᵀ L⁻¹` (not orthonormal) for `W L = U Σ Zᵀ`. Everything is computed in `Double`.
///
/// An output metric `M = R Rᵀ` weights the output error by what the network does with it next
/// (two-sided whitening): `E[(W − Ŵ)x]ᵀ M [(W − Ŵ)x] = ‖Rᵀ(W − Ŵ) L‖²_F`, minimised over rank
/// `k` by `Ŵ_k = R⁻ᵀ [Rᵀ W L]_k L⁻¹`. A LayerNorm that reads the output (after a bias and a
/// residual) sees an error through `M = P diag(γ²) P`, `P = I − 11ᵀ/m` (the mean over channels
/// removed, each channel scaled by its `γ`), the linearisation that `tensor-compress` uses
/// (`CompressionOptions.normWeightedOutputs`). With it, `U_k` becomes `R⁻ᵀ U_k` (not
/// orthonormal) and the singular values are those of `Rᵀ W L`.
///
/// ```swift
/// let whitened = try WhitenedSVD(weight, metric: stats.covariance())
/// let f = try whitened.factors(rank: 64)        // SVDFactors: u, singularValues, vt = Z_kᵀ L⁻¹
/// whitened.outputRelativeError(rank: 64)        // √(Σ_{i>64} σ_i² / Σ σ_i²)
/// ```
public struct WhitenedSVD<Scalar: BLASScalar>: Sendable {
    /// The singular values of `W L` (of `Rᵀ W L` with an output metric), descending: the output
    /// energy per rank.
    public let singularValues: [Double]
    let u: Matrix<Double>
    let zTLinverse: Matrix<Double>

    /// Whitens and decomposes `w` (`m × d`) for the metric `C` (`d × d`), and, when given, the
    /// output metric `M` (`m × m`).
    ///
    /// - Parameters:
    ///   - w: The weight, `m × d`.
    ///   - metric: The input metric `C`, damped by `damping`.
    ///   - outputMetric: The output metric `M`, damped by `damping` the same way (a centred
    ///     metric such as a LayerNorm's is singular), or `nil` for the identity.
    ///   - damping: ``OutputAwareOptions/damping``.
    /// - Throws: ``DecompositionError`` for non-finite values or a metric of the wrong size,
    ///   `LinearAlgebraError` (from `TensorModule`) if LAPACK fails.
    public init(_ w: Matrix<Scalar>, metric: Matrix<Double>, outputMetric: Matrix<Double>? = nil,
                damping: Double = OutputAwareOptions().damping) throws {
        try Tensor(w).validateForDecomposition("WhitenedSVD")
        let (l, lInverse) = try Self.roots(of: metric, dimension: w.columns, damping: damping, side: "input")
        var target = doubleMatrix(w).matmul(l)
        var rInverseT: Matrix<Double>?
        if let outputMetric {
            let (r, rInverse) = try Self.roots(of: outputMetric, dimension: w.rows, damping: damping, side: "output")
            target = r.transposed().matmul(target)
            rInverseT = rInverse.transposed()
        }
        let f = try svd(target)
        singularValues = f.singularValues
        u = rInverseT.map { $0.matmul(f.u) } ?? f.u
        zTLinverse = f.vt.matmul(lInverse)
    }

    /// `L = V Λ^{1/2}` and `L⁻¹ = Λ^{-1/2} Vᵀ` of a metric, damped and checked, with `L Lᵀ = C`.
    private static func roots(of metric: Matrix<Double>, dimension d: Int, damping: Double, side: String) throws -> (Matrix<Double>, Matrix<Double>) {
        let operation = side == "input" ? "WhitenedSVD" : "WhitenedSVD (output metric)"
        let c = try dampedMetric(metric, dimension: d, damping: damping, operation: operation)
        let (values, vectors) = try c.symmetricEigen()
        try checkSemidefinite(values, operation: operation)
        let roots = values.map { Swift.max($0, 0).squareRoot() }
        let smallest = (roots.max() ?? 1) * 1e-12
        return (vectors.scalingColumns(by: roots), vectors.scalingColumns(by: roots.map { 1 / Swift.max($0, smallest) }).transposed())
    }

    /// The rank-`k` factors `U_k`, `Σ_k`, `Z_kᵀ L⁻¹` in `Scalar`.
    ///
    /// - Throws: ``DecompositionError/invalidRank(rank:problem:)`` unless `1 ≤ k ≤ min(m, d)`.
    public func factors(rank k: Int) throws -> SVDFactors<Scalar> {
        try validateMatrixRank(k, rows: u.rows, columns: zTLinverse.columns)
        let uk = u.leadingColumns(k), vk = zTLinverse.leadingRows(k)
        return try SVDFactors(u: Matrix(uncheckedRows: uk.rows, columns: k, scalars: ContiguousArray(uk.scalars.lazy.map { Scalar($0) })),
                              singularValues: singularValues.prefix(k).map { Scalar($0) },
                              vt: Matrix(uncheckedRows: k, columns: vk.columns, scalars: ContiguousArray(vk.scalars.lazy.map { Scalar($0) })))
    }

    /// `‖(W − Ŵ_k) L‖ / ‖W L‖ = √(Σ_{i>k} σ_i² / Σ σ_i²)` (with an output metric,
    /// `‖Rᵀ(W − Ŵ_k) L‖ / ‖Rᵀ W L‖`).
    public func outputRelativeError(rank k: Int) -> Double {
        let total = singularValues.reduce(0) { $0 + $1 * $1 }
        guard total > 0 else { return 0 }
        return (singularValues.dropFirst(k).reduce(0) { $0 + $1 * $1 } / total).squareRoot()
    }
}

/// The result of an output-aware alternating decomposition.
public struct OutputAwareDecomposition<Factorized: Sendable>: Sendable {
    /// The factors.
    public var result: Factorized
    /// `√(tr(ΔCΔᵀ) / tr(WCWᵀ))` after the start and after every half-step, non-increasing.
    public var errorHistory: [Double]
    /// Full iterations run.
    public var iterations: Int
    /// The last relative output error.
    public var outputRelativeError: Double { errorHistory.last ?? .nan }
}

/// A tensor's data as a `Double` matrix of `rows × columns`.
func doubleMatrix<Scalar: BLASScalar>(_ t: Tensor<Scalar>, rows: Int, columns: Int) -> Matrix<Double> {
    Matrix(uncheckedRows: rows, columns: columns, scalars: ContiguousArray(t.scalars.lazy.map { Double($0) }))
}

/// A matrix in `Double`.
package func doubleMatrix<Scalar: BLASScalar>(_ m: Matrix<Scalar>) -> Matrix<Double> {
    Matrix(uncheckedRows: m.rows, columns: m.columns, scalars: ContiguousArray(m.scalars.lazy.map { Double($0) }))
}

/// A `Double` matrix in `Scalar`.
func scalarMatrix<Scalar: BLASScalar>(_ m: Matrix<Double>, as _: Scalar.Type) -> Matrix<Scalar> {
    Matrix(uncheckedRows: m.rows, columns: m.columns, scalars: ContiguousArray(m.scalars.lazy.map { Scalar($0) }))
}

