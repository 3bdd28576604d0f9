import RealModule
import TensorModule

/// A Tucker tensor `X̂ = G ×_{m_0} U_0 ×_{m_1} U_1 ⋯` over a subset of modes.
///
/// `factors[k]` is the `I_{modes[k]} × R_k` factor of mode `modes[k]`; modes not listed keep
/// their full size in the core (partial Tucker). Tucker-2 of an OIHW conv kernel has
/// `modes == [0, 1]`. Factors from ``hosvd(_:ranks:modes:sequential:svd:)`` and
/// ``tuckerDecompose(_:ranks:modes:options:)`` have orthonormal columns.
public struct TuckerTensor<Scalar: BLASScalar>: FactorizedTensor, Equatable {
    /// The core tensor `G`.
    public var core: Tensor<Scalar>
    /// The factor matrices, one per entry of ``modes``.
    public var factors: [Matrix<Scalar>]
    /// The modes the factors act on, ascending.
    public var modes: [Int]

    /// Creates a Tucker tensor, checking that every factor has as many columns as the core has
    /// in its mode.
    ///
    /// - Throws: ``DecompositionError/inconsistentParts(type:shapes:requirement:)`` for inconsistent parts.
    public init(core: Tensor<Scalar>, factors: [Matrix<Scalar>], modes: [Int]? = nil) throws {
        let modes = modes ?? Array(0..<core.order)
        guard modes.count == factors.count, Set(modes).count == modes.count,
              modes.allSatisfy({ $0 >= 0 && $0 < core.order }) else {
            throw DecompositionError.inconsistentParts(
                type: "TuckerTensor", shapes: [core.shape] + factors.map(\.shape),
                requirement: .tuckerModes(modes))
        }
        for (factor, mode) in zip(factors, modes) where factor.columns != core.shape[mode] {
            throw DecompositionError.inconsistentParts(
                type: "TuckerTensor", shapes: [core.shape] + factors.map(\.shape),
                requirement: .factorColumns(mode: mode, columns: factor.columns, coreSize: core.shape[mode]))
        }
        self.core = core
        self.factors = factors
        self.modes = modes
    }

    /// The multilinear ranks of the factored modes.
    public var ranks: [Int] { modes.map { core.shape[$0] } }

    /// The shape of the full tensor.
    public var shape: [Int] {
        var shape = core.shape
        for (factor, mode) in zip(factors, modes) { shape[mode] = factor.rows }
        return shape
    }

    /// `∏ core + Σ I_n·R_n`.
    public var parameterCount: Int { core.scalarCount + factors.reduce(0) { $0 + $1.rows * $1.columns } }

    /// `G ×_{m} U_m` for every factored mode.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func reconstructed() throws -> Tensor<Scalar> {
        try core.multiModeProduct(factors, modes: modes)
    }
}
