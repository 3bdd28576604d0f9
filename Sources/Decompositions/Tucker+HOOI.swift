import RealModule
import TensorModule

/// Options of ``tuckerDecompose(_:ranks:modes:options:)``.
public struct TuckerOptions: Sendable {
    /// The HOOI iteration limit (default 100). Zero returns the HOSVD start.
    public var maxIterations: Int = 100
    /// Stop when the relative error changes by less than this (default 1e-8).
    public var tolerance: Double = 1e-8
    /// How each factor's leading singular vectors are computed (TensorLy's `svd` argument; default
    /// ``SVDMethod/automatic``, the route of ``SVDMethod/resolvedForLeadingVectors(rows:columns:rank:scalar:)``;
    /// ``SVDMethod/exact`` forces LAPACK).
    public var svd: SVDMethod = .automatic

    /// Options with the given settings.
    public init(maxIterations: Int = 100, tolerance: Double = 1e-8, svd: SVDMethod = .automatic) {
        self.maxIterations = maxIterations
        self.tolerance = tolerance
        self.svd = svd
    }
}

/// The result of ``tuckerDecompose(_:ranks:modes:options:)``.
public struct TuckerDecomposition<Scalar: BLASScalar>: Sendable {
    /// The Tucker tensor with orthonormal factors.
    public var tucker: TuckerTensor<Scalar>
    /// HOOI iterations run.
    public var iterations: Int
    /// Whether the change of relative error fell below the tolerance.
    public var converged: Bool
    /// The relative error after the HOSVD start and after every iteration.
    public var errorHistory: [Double]
    /// The last relative error.
    public var relativeError: Double { errorHistory.last ?? .nan }

    /// Creates the value from its parts.
    public init(tucker: TuckerTensor<Scalar>, iterations: Int, converged: Bool, errorHistory: [Double]) {
        self.tucker = tucker
        self.iterations = iterations
        self.converged = converged
        self.errorHistory = errorHistory
    }
}

/// Tucker decomposition by higher-order orthogonal iteration (De Lathauwer, De Moor, Vandewalle
/// 2000, SIAM J. Matrix Anal. Appl. 21(4), doi:10.1137/S0895479898346995), from the HOSVD start,
/// over all modes or a subset (partial Tucker; Tucker-2 of a conv kernel is `modes: [0, 1]`).
///
/// Each sweep replaces every factor by the leading left singular vectors of the tensor projected
/// onto the other factors. With orthonormal factors the error needs only the core:
///
/// ```text
/// U_n ← leading R_n left singular vectors of unfold(X ×_{m≠n} U_mᵀ, n)
/// ‖X − X̂‖² = ‖X‖² − ‖G‖²
/// ```
///
/// ```swift
/// let result = try tuckerDecompose(kernel, ranks: [32, 16], modes: [0, 1])
/// result.tucker.core.shape     // [32, 16, 3, 3]
/// ```
///
/// - Throws: ``DecompositionError`` for invalid ranks, modes or options and bad input.
/// - Complexity: per sweep, one projection and one thin SVD per factored mode.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func tuckerDecompose<Scalar: BLASScalar>(
    _ tensor: Tensor<Scalar>, ranks: [Int], modes: [Int]? = nil, options: TuckerOptions = TuckerOptions()
) throws -> TuckerDecomposition<Scalar> {
    guard options.maxIterations >= 0, options.tolerance >= 0 else {
        throw DecompositionError.invalidParameter(
            operation: "tuckerDecompose", name: options.maxIterations < 0 ? "maxIterations" : "tolerance",
            value: options.maxIterations < 0 ? Double(options.maxIterations) : Double(options.tolerance), requirement: .nonNegative)
    }
    let (ranks, modes) = try validatedTuckerRanks(tensor, ranks: ranks, modes: modes, operation: "tuckerDecompose")
    if let exponent = tensor.rangeExponent {
        var result = try tuckerDecompose(tensor.scaled(byPowerOfTwo: -exponent), ranks: ranks, modes: modes, options: options)
        result.tucker.core = try result.tucker.core.scaledBack(byPowerOfTwo: exponent, operation: "tuckerDecompose")
        return result
    }
    var tucker = try hosvd(tensor, ranks: ranks, modes: modes, svd: options.svd)
    let norm = Double(tensor.frobeniusNorm)
    func error(_ core: Tensor<Scalar>) -> Double {
        if norm == 0 { return 0 }
        let coreNorm = Double(core.frobeniusNorm)
        return Swift.max(norm * norm - coreNorm * coreNorm, 0).squareRoot() / norm
    }
    var history = [error(tucker.core)]
    var iterations = 0
    var converged = false
    while iterations < options.maxIterations && norm > 0 {
        iterations += 1
        for (k, mode) in modes.enumerated() {
            let otherModes = modes.enumerated().filter { $0.offset != k }
            let projected = try tensor.multiModeProduct(
                otherModes.map { tucker.factors[$0.offset] }, modes: otherModes.map(\.element), transposed: true)
            tucker.factors[k] = try leadingLeftSingularVectors(projected.unfolded(mode: mode), count: ranks[k], method: options.svd).u
        }
        tucker.core = try tensor.multiModeProduct(tucker.factors, modes: modes, transposed: true)
        history.append(error(tucker.core))
        if abs(history[history.count - 2] - history[history.count - 1]) < options.tolerance {
            converged = true
            break
        }
    }
    return TuckerDecomposition(tucker: tucker, iterations: iterations, converged: converged || norm == 0, errorHistory: history)
}
