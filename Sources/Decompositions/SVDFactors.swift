import RealModule
import TensorModule

/// A thin or truncated singular value decomposition `A ≈ U Σ Vᵀ`.
///
/// `U` is `m × k` and `Vᵀ` is `k × n`, both with orthonormal columns/rows; the singular values
/// are descending. Signs are fixed: the largest-magnitude entry of every column of `U` is positive.
///
/// ```swift
/// let f = try svd(weight, rank: 64)
/// let a = try Matrix(Tensor(f))           // U Σ Vᵀ
/// f.parameterCount                         // k·(m + n + 1)
/// ```
public struct SVDFactors<Scalar: BLASScalar>: FactorizedTensor, Equatable {
    /// The left singular vectors, `m × k`.
    public var u: Matrix<Scalar>
    /// The singular values, descending, `k` of them.
    public var singularValues: [Scalar]
    /// The transposed right singular vectors, `k × n`.
    public var vt: Matrix<Scalar>

    /// Creates the factors from their parts.
    ///
    /// - Throws: ``DecompositionError/inconsistentParts(type:shapes:requirement:)`` unless `U` has one
    ///   column and `Vᵀ` one row per singular value.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public init(u: Matrix<Scalar>, singularValues: [Scalar], vt: Matrix<Scalar>) throws {
        guard u.columns == singularValues.count && vt.rows == singularValues.count else {
            throw DecompositionError.inconsistentParts(
                type: "SVDFactors", shapes: [u.shape, [singularValues.count], vt.shape],
                requirement: .svdFactors)
        }
        self.u = u
        self.singularValues = singularValues
        self.vt = vt
    }

    /// Factors whose shapes the caller has checked.
    init(checkedU u: Matrix<Scalar>, singularValues: [Scalar], vt: Matrix<Scalar>) {
        (self.u, self.singularValues, self.vt) = (u, singularValues, vt)
    }

    /// The rank `k`.
    public var rank: Int { singularValues.count }

    /// `[m, n]`.
    public var shape: [Int] { [u.rows, vt.columns] }

    /// `k·(m + n + 1)`.
    public var parameterCount: Int { rank * (u.rows + vt.columns + 1) }

    /// `U Σ Vᵀ` as an order-2 tensor.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func reconstructed() -> Tensor<Scalar> {
        Tensor(u.scalingColumns(by: singularValues).matmul(vt))
    }

    /// The relative error of `U Σ Vᵀ` against the matrix that was decomposed.
    ///
    /// ```
    /// ‖A − U Σ Vᵀ‖_F / ‖A‖_F
    /// ```
    ///
    /// The same value as ``FactorizedTensor/relativeError(to:)`` with `Tensor(reference)`, for the
    /// `Matrix` that ``svd(_:rank:method:)`` took:
    ///
    /// ```swift
    /// let f = try svd(weight, rank: 64)
    /// let error = try f.relativeError(to: weight)
    /// ```
    ///
    /// - Parameter reference: The `m × n` matrix `A`.
    /// - Returns: `‖A − U Σ Vᵀ‖_F / ‖A‖_F`; `0` when both are zero and `+∞` when only `A` is.
    /// - Throws: `TensorError.shapeMismatch` (from `TensorModule`) when `A` is not `m × n`.
    /// - Complexity: O(m·n·k) for the reconstruction.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func relativeError(to reference: Matrix<Scalar>) throws -> Scalar {
        try relativeError(to: Tensor(reference))
    }
}
