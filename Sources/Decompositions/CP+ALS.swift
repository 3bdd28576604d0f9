import RealModule
import TensorModule

/// How CP-ALS starts.
public enum CPInitialization<Scalar: BLASScalar>: Sendable {
    /// The leading left singular vectors of each unfolding (mode 0 scaled by the singular values,
    /// as TensorLy does); modes smaller than the rank are padded with seeded uniform columns.
    case svd(seed: UInt64 = 0)
    /// Seeded uniform `[0, 1)` factors.
    case random(seed: UInt64)
    /// A given CP tensor of the same shape and rank.
    case given(CPTensor<Scalar>)
}

/// What CP-ALS reports to an observer after every iteration.
public struct CPIterationReport: Sendable {
    /// The iteration just finished, from 1.
    public var iteration: Int
    /// The relative error `‖X − X̂‖ / ‖X‖` after it.
    public var relativeError: Double

    /// Creates the value from its parts.
    public init(iteration: Int, relativeError: Double) {
        self.iteration = iteration
        self.relativeError = relativeError
    }
}

/// Options of ``cpDecompose(_:rank:options:)``.
public struct CPOptions<Scalar: BLASScalar>: Sendable {
    /// The iteration limit (default 100). Reaching it is not an error.
    public var maxIterations: Int = 100
    /// Stop when the relative error changes by less than this between iterations (default 1e-8, as TensorLy).
    public var tolerance: Double = 1e-8
    /// The start (default ``CPInitialization/svd(seed:)``).
    public var initialization: CPInitialization<Scalar> = .svd()
    /// Normalize the columns of each updated factor into the weights (default `true`).
    public var normalizeFactors: Bool = true
    /// A ridge (L2) term `μ`: every normal equation solves `A_n (V + μI) = M`. Default 0.
    public var ridge: Double = 0
    /// Bro's line-search extrapolation of the factors between iterations (default off).
    public var lineSearch: Bool = false
    /// Modes whose factors stay as initialized.
    public var fixedModes: Set<Int> = []
    /// Called after every iteration; return `false` to stop the run.
    public var observer: (@Sendable (CPIterationReport) -> Bool)? = nil

    /// Default options.
    public init() {}

    /// Options with the given settings.
    public init(
        maxIterations: Int = 100, tolerance: Double = 1e-8, initialization: CPInitialization<Scalar> = .svd(),
        normalizeFactors: Bool = true, ridge: Double = 0, lineSearch: Bool = false, fixedModes: Set<Int> = [],
        observer: (@Sendable (CPIterationReport) -> Bool)? = nil
    ) {
        self.maxIterations = maxIterations
        self.tolerance = tolerance
        self.initialization = initialization
        self.normalizeFactors = normalizeFactors
        self.ridge = ridge
        self.lineSearch = lineSearch
        self.fixedModes = fixedModes
        self.observer = observer
    }
}

/// The result of ``cpDecompose(_:rank:options:)``: the CP tensor and how the run went.
public struct CPDecomposition<Scalar: BLASScalar>: Sendable {
    /// The normalized CP tensor (weights descending, unit-norm columns, fixed signs).
    public var cp: CPTensor<Scalar>
    /// The iterations run.
    public var iterations: Int
    /// Whether the change of relative error fell below the tolerance.
    public var converged: Bool
    /// The relative error after each iteration (from the MTTKRP and Gram matrices).
    public var errorHistory: [Double]
    /// The last relative error of ``errorHistory``.
    public var relativeError: Double { errorHistory.last ?? .nan }

    /// Creates the value from its parts.
    public init(cp: CPTensor<Scalar>, iterations: Int, converged: Bool, errorHistory: [Double]) {
        self.cp = cp
        self.iterations = iterations
        self.converged = converged
        self.errorHistory = errorHistory
    }
}

/// CP decomposition by alternating least squares (Kolda & Bader 2009, SIAM Review 51(3),
/// doi:10.1137/07070111X).
///
/// For each mode in turn, the factor solves its normal equations with the others fixed:
///
/// ```text
/// A_n · V_n = MTTKRP_n(X; A),     V_n = ∗_{m≠n} A_mᵀ A_m  (+ μI with a ridge)
/// ‖X − X̂‖² = ‖X‖² − 2 Σ_r λ_r Σ_i A_n[i, r]·M_n[i, r] + λᵀ(∗_m A_mᵀA_m)λ
/// ```
///
/// The error comes from the last MTTKRP and the Gram matrices; the tensor is rebuilt only when
/// that estimate falls below `10·√ε` (3.5e-3 in Float, 1.5e-7 in Double), where the formula is too
/// imprecise to decide convergence.
/// The normal equations are solved by Cholesky; when `V_n` is singular or ill-conditioned the
/// solve falls back to the pseudo-inverse, so the result is never NaN.
///
/// ```swift
/// let kernel = Tensor<Float>.randomNormal(shape: [64, 32, 3, 3], seed: 1)
/// let result = try cpDecompose(kernel, rank: 16)
/// result.cp.weights          // descending
/// result.converged, result.iterations, result.errorHistory
/// ```
///
/// - Parameters:
///   - tensor: A tensor of order ≥ 2 with finite scalars.
///   - rank: The rank `1 ≤ R ≤ maximumCPRank(shape:)` (the product of all mode sizes but the
///     largest, where CP is exact). It may exceed a mode's size (the SVD start pads that mode).
///   - options: Iterations, tolerance, initialization, ridge, line search, fixed modes, observer.
/// - Returns: The normalized CP tensor and the run's history.
/// - Throws: ``DecompositionError`` for an empty or non-finite tensor, a rank below 1 or above
///   ``maximumCPRank(shape:)`` (checked before anything is allocated), weights beyond the scalar
///   type's range (``DecompositionError/resultOutOfRange(operation:magnitude:limit:)``), fixed
///   modes out of range, or a given initialization of the wrong shape or rank.
/// - Complexity: per iteration `N` MTTKRPs of `2·S·R` flops, `S` the scalar count.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func cpDecompose<Scalar: BLASScalar>(
    _ tensor: Tensor<Scalar>, rank: Int, options: CPOptions<Scalar> = CPOptions()
) throws -> CPDecomposition<Scalar> {
    try tensor.validateForDecomposition("cpDecompose")
    guard tensor.order >= 2 else {
        throw DecompositionError.orderTooLow(operation: "cpDecompose", shape: tensor.shape, minimum: 2)
    }
    try validateCPRank(rank, shape: tensor.shape)
    let order = tensor.order
    for mode in options.fixedModes {
        precondition(mode >= 0 && mode < order, "cpDecompose: fixed mode \(mode) is out of range 0..<\(order)")
    }
    for (name, value) in [("maxIterations", Double(options.maxIterations)), ("tolerance", Double(options.tolerance)), ("ridge", Double(options.ridge))]
    where !(value >= 0) {
        throw DecompositionError.invalidParameter(operation: "cpDecompose", name: name, value: value, requirement: .nonNegative)
    }
    if let exponent = tensor.rangeExponent {
        // ‖X‖ itself may overflow (1e37 in Float): first scale by a power of two, which is exact.
        var scaledOptions = options
        if case let .given(start) = options.initialization {
            var start = start
            start.weights = start.weights.map { Scalar(sign: .plus, exponent: Scalar.Exponent(-exponent), significand: $0) }
            scaledOptions.initialization = .given(start)
        }
        var result = try cpDecompose(tensor.scaled(byPowerOfTwo: -exponent), rank: rank, options: scaledOptions)
        result.cp.weights = try scaledBack(result.cp.weights, byPowerOfTwo: exponent, operation: "cpDecompose")
        return result
    }
    // Work on X/‖X‖ so that Gram matrices neither overflow nor underflow; the weights are scaled
    // back at the end.
    let scale = tensor.frobeniusNorm
    if scale == 0 {
        var cp = try initialCP(tensor, rank: rank, initialization: .random(seed: 0))
        cp.weights = [Scalar](repeating: 0, count: rank)
        return CPDecomposition(cp: cp.normalized(), iterations: 0, converged: true, errorHistory: [0])
    }
    let tensor = tensor / scale
    var cp = try initialCP(tensor, rank: rank, initialization: options.initialization)
    if case .given = options.initialization { cp.weights = cp.weights.map { $0 / scale } }
    // Work with unit weights folded into the factors unless normalizing.
    if !options.normalizeFactors {
        cp.factors[0] = cp.factors[0].scalingColumns(by: cp.weights)
        cp.weights = [Scalar](repeating: 1, count: rank)
    }
    var grams = cp.factors.map { $0.gram() }
    let updated = (0..<order).filter { !options.fixedModes.contains($0) }
    var history: [Double] = []
    var converged = false
    var iterations = 0
    var previous: CPTensor<Scalar>? = nil
    var lineSearchExponent = 2.0, lineSearchFailures = 0

    func relativeError(of cp: CPTensor<Scalar>, grams: [Matrix<Scalar>], lastMode: Int, lastMTTKRP: Matrix<Scalar>) -> Double {
        let weighted = cp.factors[lastMode].scalingColumns(by: cp.weights).hadamard(lastMTTKRP)
        let inner = Double(weighted.scalars.reduce(0, +))
        let squared = Double(cpSquaredNorm(weights: cp.weights, grams: grams))
        return Swift.max(1 - 2 * inner + squared, 0).squareRoot()   // ‖X‖ = 1 after scaling
    }

    while iterations < options.maxIterations {
        iterations += 1
        var lastMode = order - 1
        var lastMTTKRP: Matrix<Scalar>? = nil
        for mode in updated {
            var v = try hadamardProduct(grams, skipping: mode)
            if options.ridge > 0 {
                for i in 0..<rank { v[i, i] += Scalar(options.ridge) }
            }
            let m = try mttkrp(tensor, factors: cp.factors, mode: mode)
            var factor = solveNormalEquations(m, v)
            if options.normalizeFactors {
                let norms = factor.columnNorms()
                cp.weights = norms
                factor = factor.scalingColumns(by: norms.map { $0 > 0 ? 1 / $0 : 0 })
            } else if mode == updated.first {
                cp.weights = [Scalar](repeating: 1, count: rank)
            }
            cp.factors[mode] = factor
            grams[mode] = factor.gram()
            lastMode = mode
            lastMTTKRP = m
        }
        let finalMTTKRP = try lastMTTKRP ?? mttkrp(tensor, factors: cp.factors, mode: lastMode)
        var error = relativeError(of: cp, grams: grams, lastMode: lastMode, lastMTTKRP: finalMTTKRP)

        if options.lineSearch, let old = previous, iterations > 2 {
            // Bro's extrapolation: A ← A_old + s·(A − A_old) with s = iteration^(1/exponent).
            let step = Scalar(power(Double(iterations), 1 / lineSearchExponent))
            var candidate = cp
            for mode in updated {
                candidate.factors[mode] = old.factors[mode] + step * (cp.factors[mode] - old.factors[mode])
            }
            candidate.weights = zip(old.weights, cp.weights).map { $0 + step * ($1 - $0) }
            let candidateGrams = candidate.factors.map { $0.gram() }
            let lastCandidateMode = updated.last ?? order - 1
            let candidateM = try mttkrp(tensor, factors: candidate.factors, mode: lastCandidateMode)
            let candidateError = relativeError(of: candidate, grams: candidateGrams, lastMode: lastCandidateMode, lastMTTKRP: candidateM)
            if candidateError.isFinite && candidateError < error {
                cp = candidate
                grams = candidateGrams
                error = candidateError
                lineSearchFailures = 0
            } else {
                lineSearchFailures += 1
                if lineSearchFailures >= 4 { lineSearchExponent += 1; lineSearchFailures = 0 }
            }
        }
        previous = cp
        // The MTTKRP/Gram formula loses about half the digits (its error² has an absolute rounding
        // error near ε): below a floor of 10√ε the estimate is noise and the tolerance test would
        // stop at random, so the error is taken from the rebuilt tensor there.
        if error < 10 * Double(Scalar.ulpOfOne).squareRoot() {
            error = Double((try Tensor(cp) - tensor).frobeniusNorm)
        }
        history.append(error)
        if history.count >= 2 && abs(history[history.count - 2] - error) < options.tolerance {
            converged = true
        }
        if let observer = options.observer, !observer(CPIterationReport(iteration: iterations, relativeError: error)) {
            break
        }
        if converged || updated.isEmpty { break }
    }
    cp.weights = cp.weights.map { $0 * scale }
    return CPDecomposition(cp: cp.normalized(), iterations: iterations, converged: converged, errorHistory: history)
}

/// `x^y` for positive `x`.
func power(_ x: Double, _ y: Double) -> Double { Double.exp(y * Double.log(x)) }

/// Solves `A · V = M` for symmetric positive semi-definite `V`: Cholesky when it succeeds with a
/// finite answer, otherwise the pseudo-inverse.
func solveNormalEquations<Scalar: BLASScalar>(_ m: Matrix<Scalar>, _ v: Matrix<Scalar>) -> Matrix<Scalar> {
    if let solution = try? v.choleskySolve(m, side: .right), solution.scalars.allSatisfy({ $0.isFinite }) {
        // Reject solutions that amplify the right-hand side absurdly (an ill-conditioned V).
        let diagonal = (0..<v.rows).map { v[$0, $0] }
        let largest = diagonal.max() ?? 0
        let smallest = diagonal.min() ?? 0
        if smallest > largest * Scalar.ulpOfOne * 1000 { return solution }
    }
    if let inverse = try? v.pseudoInverse(), inverse.scalars.allSatisfy({ $0.isFinite }) {
        return m.matmul(inverse)
    }
    return Matrix.zeros(rows: m.rows, columns: m.columns)
}

/// The starting CP tensor.
func initialCP<Scalar: BLASScalar>(
    _ tensor: Tensor<Scalar>, rank: Int, initialization: CPInitialization<Scalar>
) throws -> CPTensor<Scalar> {
    let shape = tensor.shape
    switch initialization {
    case let .given(cp):
        guard cp.shape == shape, cp.rank == rank else {
            throw DecompositionError.inconsistentParts(
                type: "cpDecompose initialization", shapes: cp.factors.map(\.shape),
                requirement: .cpInitialization(shape: shape, rank: rank))
        }
        for (n, factor) in cp.factors.enumerated() {
            if let index = Tensor(factor).firstNonFiniteIndex {
                throw DecompositionError.nonFinite(operation: "cpDecompose: initial factor \(n)", index: index)
            }
        }
        return cp
    case let .random(seed):
        var generator = SeededGenerator(seed: seed)
        let factors = shape.map { Matrix<Scalar>.randomUniform(rows: $0, columns: rank, using: &generator) }
        return try CPTensor(factors: factors)
    case let .svd(seed):
        var generator = SeededGenerator(seed: seed)
        var factors: [Matrix<Scalar>] = []
        for mode in 0..<shape.count {
            let unfolding = tensor.unfolded(mode: mode)
            let keep = Swift.min(rank, unfolding.rows, unfolding.columns)
            let f = try leadingLeftSingularVectors(unfolding, count: keep)
            var u = f.u
            if mode == 0 { u = u.scalingColumns(by: Array(f.s.prefix(keep))) }
            var factor = Matrix<Scalar>.zeros(rows: shape[mode], columns: rank)
            for i in 0..<shape[mode] {
                for r in 0..<rank {
                    factor[i, r] = r < keep ? u[i, r] : Scalar(generator.nextUniform())
                }
            }
            factors.append(factor)
        }
        return try CPTensor(factors: factors)
    }
}
