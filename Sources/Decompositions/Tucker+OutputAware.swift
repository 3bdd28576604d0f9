import TensorModule

/// Tucker-2 of a convolution kernel `W` (`T × S × kh × kw`) that minimises the output error
/// `tr((W − Ŵ)_(0) C (W − Ŵ)_(0)ᵀ)` for the patch metric `C` (`S·kh·kw` square), by alternating
/// two steps that are each optimal given the other factors:
///
/// 1. given `U_S`, the output factor and the core jointly: with `z = (U_S ⊗ I)ᵀ x`, the
///    reduced-rank regression of the responses `W_(0) x` on `z` (Zhang, Zou, He & Sun 2015,
///    arXiv:1505.06798, "response reconstruction"): `M* = W_(0) C P (PᵀCP)⁻¹`, then
///    `U_T G_(0) = [M* (PᵀCP)^{1/2}]_{R_out} (PᵀCP)^{-1/2}`;
/// 2. given `U_T` (orthonormal) and `G`, the input factor `U_S` by the normal equations of the
///    quadratic objective (`S·R_in` unknowns; skipped beyond ``OutputAwareOptions/maxUnknowns``),
///    then re-orthonormalised with the triangle folded into the core (the product is unchanged).
///
/// The start is the data-free truncated HOSVD of modes 0 and 1, followed by step 1. The error is
/// non-increasing through the history.
///
/// - Parameters:
///   - kernel: `(T, S, kh, kw)`.
///   - ranks: `[R_out, R_in]`.
///   - metric: `E[x xᵀ]` (or the covariance) of the im2col patches, `(S·kh·kw)²`.
///   - options: The metric's damping and the alternations' iterations, tolerance and size limit.
/// - Throws: the errors of ``hosvd(_:ranks:modes:sequential:svd:)`` for impossible ranks, ``DecompositionError``
///   for a metric that does not fit, `LinearAlgebraError` (from `TensorModule`) if LAPACK fails.
public func tucker2Decompose<Scalar: BLASScalar>(
    _ kernel: Tensor<Scalar>, ranks: [Int], metric: Matrix<Double>, options: OutputAwareOptions = OutputAwareOptions()
) throws -> OutputAwareDecomposition<TuckerTensor<Scalar>> {
    guard kernel.order == 4, ranks.count == 2 else {
        throw DecompositionError.inconsistentParts(type: "tucker2Decompose", shapes: [kernel.shape, ranks],
                                                   requirement: .kernelAndTwoRanks)
    }
    let (t, s, kh, kw) = (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3])
    let (rOut, rIn, pq) = (ranks[0], ranks[1], kh * kw)
    let d = s * pq
    guard rOut <= rIn * pq, rIn <= rOut * pq else {
        throw DecompositionError.invalidRank(rank: rOut <= rIn * pq ? rIn : rOut,
                                             problem: .tucker2(ranks: ranks, kernelHeight: kh, kernelWidth: kw))
    }
    let start = try hosvd(kernel, ranks: ranks, modes: [0, 1])
    let c = try dampedMetric(metric, dimension: d, damping: options.damping, operation: "tucker2Decompose")
    let w0 = doubleMatrix(kernel, rows: t, columns: d)
    let energy = quadraticError(w0, c)
    func relative(_ e: Double) -> Double { energy > 0 ? (Swift.max(e, 0) / energy).squareRoot() : 0 }
    var uS = doubleMatrix(Tensor(start.factors[1]), rows: s, columns: rIn)
    var uT = doubleMatrix(Tensor(start.factors[0]), rows: t, columns: rOut)
    var core = doubleMatrix(start.core, rows: rOut, columns: rIn * pq)          // G[a, (b, p, q)]
    /// Ŵ_(0) = U_T G_(0) (U_S ⊗ I)ᵀ: (T, R_in, pq) ×_1 U_S.
    func reconstruction() throws -> Matrix<Double> {
        let x = try Tensor(uT.matmul(core)).reshaped(to: [t, rIn, pq]).modeProduct(uS, mode: 1)
        return Matrix(uncheckedRows: t, columns: d, scalars: x.scalars)
    }
    let c4 = try Tensor(c).reshaped(to: [s, pq, s, pq])
    let wc = try Tensor(w0.matmul(c)).reshaped(to: [t, s, pq])
    func stepA() throws {
        // C_z = (U_S ⊗ I)ᵀ C (U_S ⊗ I) and W C (U_S ⊗ I), by mode products.
        let cz = Matrix(uncheckedRows: rIn * pq, columns: rIn * pq,
                        scalars: try c4.modeProduct(uS, mode: 0, transposed: true).modeProduct(uS, mode: 2, transposed: true).scalars)
        let b = Matrix(uncheckedRows: t, columns: rIn * pq, scalars: try wc.modeProduct(uS, mode: 1, transposed: true).scalars)
        let (values, vectors) = try cz.symmetricEigen()
        let top = values.max() ?? 1
        let roots = values.map { Swift.max($0, top * 1e-14).squareRoot() }
        let half = vectors.scalingColumns(by: roots).matmul(vectors, transposeOther: true)            // C_z^{1/2}
        let inverseHalf = vectors.scalingColumns(by: roots.map { 1 / $0 }).matmul(vectors, transposeOther: true)
        let mStar = b.matmul(inverseHalf).matmul(inverseHalf)                  // W C P C_z⁻¹
        let f = try svd(mStar.matmul(half), rank: rOut)
        uT = f.u
        core = uT.matmul(mStar, transposeSelf: true)                           // U_Tᵀ M*
    }
    func stepB() throws {
        let n = s * rIn
        guard n <= options.maxUnknowns else { return }
        let v = uT.matmul(w0, transposeSelf: true)                              // R_out × d
        let vc = v.matmul(c)
        // H[(s, b), (s', b')] = Σ_a Σ_{pq, p'q'} G[a, b, pq] C[(s, pq), (s', p'q')] G[a, b', p'q']
        //                    = Σ_{pq, p'q'} C[(s, pq), (s', p'q')] K[(b, pq), (b', p'q')],  K = G_(0)ᵀ G_(0):
        // one GEMM of C and K laid out as ((s, s'), (pq, p'q')) and ((b, b'), (pq, p'q')).
        let k = core.matmul(core, transposeSelf: true)                          // (R_in·pq)², from R_out × (R_in·pq)
        let pairs = pq * pq
        var cPairs = ContiguousArray<Double>(repeating: 0, count: s * s * pairs)
        c.withUnsafeBufferPointer { cp in
            for s1 in 0..<s { for k1 in 0..<pq { for s2 in 0..<s { for k2 in 0..<pq {
                cPairs[(s1 * s + s2) * pairs + k1 * pq + k2] = cp[(s1 * pq + k1) * d + s2 * pq + k2]
            } } } }
        }
        var kPairs = ContiguousArray<Double>(repeating: 0, count: rIn * rIn * pairs)
        let width = rIn * pq
        k.withUnsafeBufferPointer { kp in
            for b1 in 0..<rIn { for k1 in 0..<pq { for b2 in 0..<rIn { for k2 in 0..<pq {
                kPairs[(b1 * rIn + b2) * pairs + k1 * pq + k2] = kp[(b1 * pq + k1) * width + b2 * pq + k2]
            } } } }
        }
        let m = Matrix(uncheckedRows: s * s, columns: pairs, scalars: cPairs)
            .matmul(Matrix(uncheckedRows: rIn * rIn, columns: pairs, scalars: kPairs), transposeOther: true)   // ((s, s'), (b, b'))
        var h = Matrix<Double>.zeros(rows: n, columns: n)
        m.withUnsafeBufferPointer { mp in
            h.withUnsafeMutableBufferPointer { hp in
                for s1 in 0..<s { for s2 in 0..<s { for b1 in 0..<rIn { for b2 in 0..<rIn {
                    hp[(s1 * rIn + b1) * n + s2 * rIn + b2] = mp[(s1 * s + s2) * (rIn * rIn) + b1 * rIn + b2]
                } } } }
            }
        }
        var g = [Double](repeating: 0, count: n)
        for si in 0..<s {
            for b in 0..<rIn {
                var sum = 0.0
                for a in 0..<rOut { for k in 0..<pq { sum += core[a, b * pq + k] * vc[a, si * pq + k] } }
                g[si * rIn + b] = sum
            }
        }
        let trace = (0..<n).reduce(0.0) { $0 + h[$1, $1] }
        for i in 0..<n { h[i, i] += 1e-12 * trace / Double(n) }
        guard let solution = try? h.choleskySolve(Matrix(uncheckedRows: n, columns: 1, scalars: ContiguousArray(g))) else { return }
        let candidate = Matrix(uncheckedRows: s, columns: rIn, scalars: solution.scalars)
        // Orthonormalise U_S = Q R and fold R into the core: G'[a, c, pq] = Σ_b R[c, b] G[a, b, pq].
        let (q, r) = try candidate.qr()
        let previous = (uS, core)
        uS = q
        var folded = Matrix<Double>.zeros(rows: rOut, columns: rIn * pq)
        for a in 0..<rOut { for cIndex in 0..<rIn { for k in 0..<pq {
            var sum = 0.0
            for b in 0..<rIn { sum += r[cIndex, b] * previous.1[a, b * pq + k] }
            folded[a, cIndex * pq + k] = sum
        } } }
        core = folded
    }
    var history = [relative(quadraticError(w0 - (try reconstruction()), c))]
    try stepA()
    history.append(relative(quadraticError(w0 - (try reconstruction()), c)))
    var iterations = 0
    while iterations < options.maxIterations && s * rIn <= options.maxUnknowns {
        iterations += 1
        let saved = (uS, uT, core)
        try stepB()
        let afterB = relative(quadraticError(w0 - (try reconstruction()), c))
        if afterB > history.last! {
            // Rounding in a near-singular solve: keep the better factors.
            (uS, uT, core) = saved
            break
        }
        history.append(afterB)
        try stepA()
        history.append(relative(quadraticError(w0 - (try reconstruction()), c)))
        if history[history.count - 3] - history.last! < options.tolerance { break }
    }
    let coreTensor = Tensor<Scalar>(uncheckedShape: [rOut, rIn, kh, kw], scalars: ContiguousArray(core.scalars.lazy.map { Scalar($0) }))
    let tucker = try TuckerTensor(core: coreTensor, factors: [scalarMatrix(uT, as: Scalar.self), scalarMatrix(uS, as: Scalar.self)], modes: [0, 1])
    return OutputAwareDecomposition(result: tucker, errorHistory: history, iterations: iterations)
}

/// Squared relative output errors of Tucker-2 over a grid of ranks, as after the first step of
/// ``tucker2Decompose(_:ranks:metric:options:)``: the input factor from the truncated HOSVD (the
/// leading left singular vectors of the mode-1 unfolding), the output factor and core optimal
/// for it. For each `R_in` one eigendecomposition and one SVD give every `R_out`:
///
/// ```text
/// e²(R_out, R_in) = (tr(W C Wᵀ) − Σ_{i ≤ R_out} σ_i²(B C_z^{-1/2})) / tr(W C Wᵀ),
/// B = W_(0) C (U_S ⊗ I),  C_z = (U_S ⊗ I)ᵀ C (U_S ⊗ I)
/// ```
///
/// Without a metric, `C = I` (the kernel error). The budget allocation of `ModelCompression`
/// uses it to price rank choices.
///
/// - Returns: `errors[i][j]` for `inputRanks[i]` and `outputRanks[j]`; `nan` where a pair is
///   impossible (`R_out > R_in·kh·kw` or `R_in > R_out·kh·kw`).
public func tucker2OutputErrors<Scalar: BLASScalar>(
    _ kernel: Tensor<Scalar>, metric: Matrix<Double>?, outputRanks: [Int], inputRanks: [Int], damping: Double = OutputAwareOptions().damping
) throws -> [[Double]] {
    guard kernel.order == 4 else {
        throw DecompositionError.inconsistentParts(type: "tucker2OutputErrors", shapes: [kernel.shape], requirement: .orderFourKernel)
    }
    let (t, s, kh, kw) = (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3])
    let pq = kh * kw, d = s * pq
    let c = try metric.map { try dampedMetric($0, dimension: d, damping: damping, operation: "tucker2OutputErrors") } ?? Matrix<Double>.identity(d)
    let w0 = doubleMatrix(kernel, rows: t, columns: d)
    let energy = quadraticError(w0, c)
    let unfolding = kernel.unfolded(mode: 1)
    let full = try svd(unfolding)
    let r = full.rank
    let uS = doubleMatrix(Tensor(full.u), rows: s, columns: r)
    let rotated = Matrix(uncheckedRows: r * pq, columns: r * pq, scalars: try Tensor(c).reshaped(to: [s, pq, s, pq])
        .modeProduct(uS, mode: 0, transposed: true).modeProduct(uS, mode: 2, transposed: true).scalars)
    let bFull = Matrix(uncheckedRows: t, columns: r * pq, scalars: try Tensor(w0.matmul(c)).reshaped(to: [t, s, pq]).modeProduct(uS, mode: 1, transposed: true).scalars)
    return try inputRanks.map { rIn -> [Double] in
        guard rIn >= 1, rIn <= r else { return outputRanks.map { _ in .nan } }
        let n = rIn * pq
        var cz = Matrix<Double>.zeros(rows: n, columns: n)
        for i in 0..<n { for j in 0..<n { cz[i, j] = rotated[i, j] } }
        let b = bFull.leadingColumns(n)
        let (values, vectors) = try cz.symmetricEigen()
        let top = values.max() ?? 1
        let scaled = b.matmul(vectors).scalingColumns(by: values.map { 1 / Swift.max($0, top * 1e-14).squareRoot() })
        let sigma = try scaled.singularValues().map { $0 * $0 }
        return outputRanks.map { rOut in
            guard rOut >= 1, rOut <= rIn * pq, rIn <= rOut * pq, rOut <= t else { return .nan }
            let kept = sigma.prefix(rOut).reduce(0, +)
            return energy > 0 ? Swift.max(energy - kept, 0) / energy : 0
        }
    }
}
