import TensorModule

/// CP of a convolution kernel `W` (`T × S × kh × kw`, rank `R`; any order from 3, such as a 1-D
/// kernel `T × S × k` or a 3-D one `T × S × kd × kh × kw`) that minimises the output error
/// `tr((W − Ŵ)_(0) C (W − Ŵ)_(0)ᵀ)` for the patch metric `C` (`S·kh·kw` square, the product of
/// the non-output modes): alternating least squares in the output space, each factor update
/// optimal given the others.
///
/// With `K = A_S ⊙ A_H ⊙ A_W` (`S·kh·kw × R`, Khatri-Rao in the patch order), the output factor
/// (with the weights folded in) is the regression `A_T = W_(0) C K (Kᵀ C K)⁻¹`; each input factor
/// `A_n` solves the normal equations of the quadratic objective in `I_n·R` unknowns,
///
/// ```text
/// H[(r, i), (r', i')] = (A_TᵀA_T)[r, r'] · Σ_{o, o'} u_r[o] C[(i, o), (i', o')] u_{r'}[o'],   u_r = ⊗ of the other input factors' columns
/// ```
///
/// (the channel factor is skipped beyond ``OutputAwareOptions/maxUnknowns`` unknowns). The start
/// is the data-free CP-ALS result from the given options; the error is non-increasing.
///
/// - Parameters:
///   - kernel: `(T, S, kh, kw)`, or `(T, S, …)` of any order from 3.
///   - rank: The CP rank.
///   - metric: `E[x xᵀ]` (or the covariance) of the im2col patches.
///   - options: The metric's damping and the alternations' iterations, tolerance and size limit.
///   - start: CP-ALS options of the data-free start.
/// - Throws: the errors of ``cpDecompose(_:rank:options:)``, ``DecompositionError`` for a metric
///   that does not fit, `LinearAlgebraError` (from `TensorModule`) if LAPACK fails.
public func cpDecompose<Scalar: BLASScalar>(
    _ kernel: Tensor<Scalar>, rank: Int, metric: Matrix<Double>, options: OutputAwareOptions = OutputAwareOptions(),
    start: CPOptions<Scalar> = CPOptions()
) throws -> OutputAwareDecomposition<CPTensor<Scalar>> {
    guard kernel.order >= 3 else {
        throw DecompositionError.inconsistentParts(type: "cpDecompose(metric:)", shapes: [kernel.shape], requirement: .kernelOrder(minimum: 3))
    }
    let initial = try cpDecompose(kernel, rank: rank, options: start).cp
    let t = kernel.shape[0]
    let inputSizes = Array(kernel.shape.dropFirst())
    let modes = inputSizes.count
    let d = inputSizes.reduce(1, *)
    let c = try dampedMetric(metric, dimension: d, damping: options.damping, operation: "cpDecompose(metric:)")
    let w0 = doubleMatrix(kernel, rows: t, columns: d)
    let energy = quadraticError(w0, c)
    func relative(_ e: Double) -> Double { energy > 0 ? (Swift.max(e, 0) / energy).squareRoot() : 0 }
    var aT = doubleMatrix(initial.factors[0]).scalingColumns(by: initial.weights.map { Double($0) })
    var inputs = initial.factors[1...].map { doubleMatrix($0) }                 // A_S, A_H, A_W (or the kernel's other modes)
    func k() throws -> Matrix<Double> { try khatriRao(inputs) }      // d × R, (s, p, q) with s slowest
    func error() throws -> Double { relative(quadraticError(w0 - aT.matmul(try k(), transposeOther: true), c)) }
    var history = [try error()]
    func updateOutput() throws {
        let kk = try k()
        let ck = c.matmul(kk)
        var gram = kk.matmul(ck, transposeSelf: true)                // Kᵀ C K
        let trace = (0..<rank).reduce(0.0) { $0 + gram[$1, $1] }
        for i in 0..<rank { gram[i, i] += 1e-12 * trace / Double(rank) + Double.leastNormalMagnitude }
        aT = try gram.choleskySolve(w0.matmul(ck), side: .right)
    }
    /// The input factor `n` (0: channels, then the kernel's spatial axes) by its normal equations.
    func updateInput(_ n: Int) throws {
        let size = inputSizes[n]
        let unknowns = size * rank
        guard unknowns <= options.maxUnknowns else { return }
        let others = (0..<modes).filter { $0 != n }
        let o = others.map { inputSizes[$0] }.reduce(1, *)
        let u = try khatriRao(others.map { inputs[$0] })            // O × R
        // C with mode n first on both sides: (i, o) × (i', o').
        let permutation = [n] + others
        let c6 = try Tensor(c).reshaped(to: inputSizes + inputSizes)
            .transposed(permutation: permutation + permutation.map { $0 + modes })
        let cp = Matrix(uncheckedRows: size * o * size, columns: o, scalars: c6.scalars)
        let y = cp.matmul(u)                                          // (i, o, i') × r'
        // Σ_o u_r[o] Y[i, o, i', r'] → (r, i, i', r').
        let yt = try Tensor(y).reshaped(to: [size, o, size, rank]).transposed(permutation: [1, 0, 2, 3])
        let z = u.matmul(Matrix(uncheckedRows: o, columns: size * size * rank, scalars: yt.scalars), transposeSelf: true)   // r × (i, i', r')
        let weights = aT.gram()                                       // (A_TᵀA_T)[r, r']
        var h = Matrix<Double>.zeros(rows: unknowns, columns: unknowns)
        for r in 0..<rank { for i in 0..<size { for i2 in 0..<size { for r2 in 0..<rank {
            h[r * size + i, r2 * size + i2] = weights[r, r2] * z[r, (i * size + i2) * rank + r2]
        } } } }
        // g[(r, i)] = Σ_t A_T[t, r] Σ_o (W C)[t, (i, o)] u_r[o].
        let wc = Tensor(w0.matmul(c))
        let wcPermuted = try wc.reshaped(to: [t] + inputSizes).transposed(permutation: [0] + permutation.map { $0 + 1 })
        let q = aT.matmul(Matrix(uncheckedRows: t, columns: size * o, scalars: wcPermuted.scalars), transposeSelf: true)   // r × (i, o)
        var g = [Double](repeating: 0, count: unknowns)
        for r in 0..<rank { for i in 0..<size {
            var sum = 0.0
            for j in 0..<o { sum += q[r, i * o + j] * u[j, r] }
            g[r * size + i] = sum
        } }
        let trace = (0..<unknowns).reduce(0.0) { $0 + h[$1, $1] }
        for i in 0..<unknowns { h[i, i] += 1e-12 * trace / Double(unknowns) + Double.leastNormalMagnitude }
        guard let x = try? h.choleskySolve(Matrix(uncheckedRows: unknowns, columns: 1, scalars: ContiguousArray(g))) else { return }
        // x is (r, i): the factor is its transpose.
        inputs[n] = Matrix(uncheckedRows: rank, columns: size, scalars: x.scalars).transposed()
    }
    try updateOutput()
    history.append(try error())
    var iterations = 0
    while iterations < options.maxIterations {
        iterations += 1
        let before = history.last!
        for n in 0..<modes {
            let saved = inputs
            try updateInput(n)
            let e = try error()
            if e > history.last! { inputs = saved; continue }   // a near-singular solve: keep the better factor
            history.append(e)
            try updateOutput()
            history.append(try error())
        }
        if before - history.last! < options.tolerance { break }
    }
    // Unit-norm columns with the norms in the weights (the sign convention of CPTensor.normalized()).
    let norms = (0..<rank).map { r in ([aT] + inputs).map { m in (0..<m.rows).reduce(0.0) { $0 + m[$1, r] * m[$1, r] }.squareRoot() } }
    let factors = ([aT] + inputs).enumerated().map { n, m in m.scalingColumns(by: (0..<rank).map { norms[$0][n] > 0 ? 1 / norms[$0][n] : 0 }) }
    let weights = norms.map { $0.reduce(1, *) }
    let cp = try CPTensor(weights: weights.map { Scalar($0) }, factors: factors.map { scalarMatrix($0, as: Scalar.self) }).normalized()
    return OutputAwareDecomposition(result: cp, errorHistory: history, iterations: iterations)
}
