import RealModule
import TensorModule

/// The outcome of ``evbmf(_:forceAtLeastOne:)`` and ``vbmf(_:noiseVariance:forceAtLeastOne:)``.
public struct VBMFResult<Scalar: BLASScalar>: Sendable, Equatable {
    /// The estimated rank: the number of singular values above ``threshold`` (at least 1 when forced).
    public var rank: Int
    /// The noise variance `σ²`, estimated (EVBMF) or given.
    public var noiseVariance: Double
    /// The threshold `√(M σ² (1 + τ̄)(1 + α/τ̄))` a singular value must exceed to be kept.
    public var threshold: Double
    /// All singular values of the matrix, descending.
    public var singularValues: [Scalar]
    /// The `rank` kept singular values after the VB shrinkage.
    public var shrunkSingularValues: [Scalar]
    /// Whether the matrix had more rows than columns and was transposed (`L ≤ M` is required).
    public var transposed: Bool
    /// Whether ``rank`` was raised from 0 to 1 by `forceAtLeastOne`.
    public var forced: Bool

    /// Creates the value from its parts.
    public init(rank: Int, noiseVariance: Double, threshold: Double, singularValues: [Scalar], shrunkSingularValues: [Scalar], transposed: Bool, forced: Bool) {
        self.rank = rank
        self.noiseVariance = noiseVariance
        self.threshold = threshold
        self.singularValues = singularValues
        self.shrunkSingularValues = shrunkSingularValues
        self.transposed = transposed
        self.forced = forced
    }
}

/// Empirical variational Bayesian matrix factorization: the analytic global solution of
/// Nakajima, Sugiyama, Babacan and Tomioka (2013, JMLR 14, "Global analytic solution of
/// fully-observed variational Bayesian matrix factorization"), with the noise variance estimated
/// by a bounded one-dimensional minimization of the free energy (Brent's method).
///
/// For `Y` of shape `L × M` with `L ≤ M` (the matrix is transposed otherwise), `α = L/M` and
/// `τ̄ = 2.5129 √α`:
///
/// ```text
/// keep γ_h  ⇔  γ_h > √(M σ² (1 + τ̄)(1 + α/τ̄))
/// γ̂_h = γ_h/2 · (1 − (L+M)σ²/γ_h² + √((1 − (L+M)σ²/γ_h²)² − 4LMσ⁴/γ_h⁴))
/// ```
///
/// Kim et al. (2016, arXiv:1511.06530) apply it to the mode-0 and mode-1 unfoldings of a conv
/// kernel to choose Tucker-2 ranks.
///
/// ```swift
/// let estimate = try evbmf(weight)
/// estimate.rank, estimate.noiseVariance
/// ```
///
/// - Parameters:
///   - y: The observed matrix, finite and non-empty.
///   - forceAtLeastOne: Return rank 1 instead of 0 (and say so in ``VBMFResult/forced``).
/// - Throws: ``DecompositionError`` for bad input; `LinearAlgebraError` if the SVD fails.
/// - Complexity: one SVD without vectors, plus `O(L)` per free-energy evaluation.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func evbmf<Scalar: BLASScalar>(_ y: Matrix<Scalar>, forceAtLeastOne: Bool = false) throws -> VBMFResult<Scalar> {
    try vbmfSolution(y, noiseVariance: nil, forceAtLeastOne: forceAtLeastOne)
}

/// The EVBMF solution of ``evbmf(_:forceAtLeastOne:)`` with a known noise variance `σ²`.
///
/// - Throws: ``DecompositionError/invalidParameter(operation:name:value:requirement:)`` unless `σ² > 0` and finite.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func vbmf<Scalar: BLASScalar>(_ y: Matrix<Scalar>, noiseVariance: Double, forceAtLeastOne: Bool = false) throws -> VBMFResult<Scalar> {
    guard noiseVariance > 0, noiseVariance.isFinite else {
        throw DecompositionError.invalidParameter(operation: "vbmf", name: "noise variance", value: noiseVariance, requirement: .positiveAndFinite)
    }
    return try vbmfSolution(y, noiseVariance: noiseVariance, forceAtLeastOne: forceAtLeastOne)
}

func vbmfSolution<Scalar: BLASScalar>(_ y: Matrix<Scalar>, noiseVariance: Double?, forceAtLeastOne: Bool) throws -> VBMFResult<Scalar> {
    try Tensor(y).validateForDecomposition("evbmf")
    let transposed = y.rows > y.columns
    let (l, m) = transposed ? (Double(y.columns), Double(y.rows)) : (Double(y.rows), Double(y.columns))
    let values = try y.singularValues()
    let s = values.map(Double.init)
    let alpha = l / m
    let tauBar = 2.5129 * alpha.squareRoot()
    let xBar = (1 + tauBar) * (1 + alpha / tauBar)
    let count = s.count
    let sigma2: Double
    if let noiseVariance {
        sigma2 = noiseVariance
    } else {
        let upper = s.reduce(0) { $0 + $1 * $1 } / (l * m)
        if upper == 0 {
            sigma2 = 0
        } else {
            let bound = Swift.max(Swift.min(Int((l / (1 + alpha)).rounded(.up)) - 1, count) - 1, -1)
            let tail = s[(bound + 1)...]
            let lowerCandidates = [s[bound + 1] * s[bound + 1] / (m * xBar), tail.reduce(0) { $0 + $1 * $1 } / Double(tail.count) / m]
            var lower = lowerCandidates.max()!
            if !(lower > 0) { lower = upper * 1e-12 }
            let (a, b) = lower < upper ? (lower, upper) : (upper, lower)
            sigma2 = boundedMinimum(lower: a, upper: b) { evbmfFreeEnergy(sigma2: $0, l: l, m: m, s: s, xBar: xBar) }
        }
    }
    let threshold = (m * sigma2 * (1 + tauBar) * (1 + alpha / tauBar)).squareRoot()
    var rank = s.filter { $0 > threshold }.count
    var forced = false
    if rank == 0 && forceAtLeastOne && count > 0 {
        rank = 1
        forced = true
    }
    let shrunk = s.prefix(rank).map { gamma -> Scalar in
        let ratio = (l + m) * sigma2 / (gamma * gamma)
        let discriminant = Swift.max((1 - ratio) * (1 - ratio) - 4 * l * m * sigma2 * sigma2 / (gamma * gamma * gamma * gamma), 0)
        return Scalar(Swift.max(gamma / 2 * (1 - ratio + discriminant.squareRoot()), 0))
    }
    return VBMFResult(rank: rank, noiseVariance: sigma2, threshold: threshold, singularValues: values,
                      shrunkSingularValues: shrunk, transposed: transposed, forced: forced)
}

/// The EVBMF free energy as a function of `σ²`, up to a constant (Nakajima et al. 2013).
func evbmfFreeEnergy(sigma2: Double, l: Double, m: Double, s: [Double], xBar: Double) -> Double {
    let alpha = l / m
    let logScale = Double.log(m * sigma2)
    var energy = 0.0
    for value in s {
        let x = value * value / (m * sigma2)
        if x > xBar {
            let shifted = x - (1 + alpha)
            let tau = 0.5 * (shifted + Swift.max(shifted * shifted - 4 * alpha, 0).squareRoot())
            energy += x - tau + Double.log(tau + 1) + logScale + alpha * Double.log(tau / alpha + 1)
        } else {
            energy += x + logScale
        }
    }
    // Singular values beyond min(L, M) (none for a full SVD) would add (L − H)·log σ².
    energy += (l - Double(s.count)) * Double.log(sigma2)
    return energy
}

/// Brent's bounded minimization (golden section with parabolic steps) of `f` on `[lower, upper]`
/// (R. P. Brent, Algorithms for Minimization without Derivatives, 1973, ch. 5).
func boundedMinimum(lower: Double, upper: Double, _ f: (Double) -> Double) -> Double {
    let golden = 0.5 * (3 - 5.0.squareRoot())
    let absoluteTolerance = 1e-12 * Swift.max(upper - lower, .leastNormalMagnitude)
    var (a, b) = (lower, upper)
    var x = a + golden * (b - a)
    var (w, v) = (x, x)
    var fx = f(x)
    var (fw, fv) = (fx, fx)
    var (d, e) = (0.0, 0.0)
    for _ in 0..<500 {
        let middle = 0.5 * (a + b)
        let tolerance1 = Double.ulpOfOne.squareRoot() * abs(x) + absoluteTolerance / 3
        let tolerance2 = 2 * tolerance1
        if abs(x - middle) <= tolerance2 - 0.5 * (b - a) { break }
        var useGolden = true
        if abs(e) > tolerance1 {
            var r = (x - w) * (fx - fv)
            var q = (x - v) * (fx - fw)
            var p = (x - v) * q - (x - w) * r
            q = 2 * (q - r)
            if q > 0 { p = -p }
            q = abs(q)
            r = e
            e = d
            if abs(p) < abs(0.5 * q * r) && p > q * (a - x) && p < q * (b - x) {
                d = p / q
                let u = x + d
                if u - a < tolerance2 || b - u < tolerance2 { d = middle >= x ? tolerance1 : -tolerance1 }
                useGolden = false
            }
        }
        if useGolden {
            e = x >= middle ? a - x : b - x
            d = golden * e
        }
        let u = x + (abs(d) >= tolerance1 ? d : (d >= 0 ? tolerance1 : -tolerance1))
        let fu = f(u)
        if fu <= fx {
            if u >= x { a = x } else { b = x }
            (v, fv, w, fw, x, fx) = (w, fw, x, fx, u, fu)
        } else {
            if u < x { a = u } else { b = u }
            if fu <= fw || w == x {
                (v, fv, w, fw) = (w, fw, u, fu)
            } else if fu <= fv || v == x || v == w {
                (v, fv) = (u, fu)
            }
        }
    }
    return x
}
