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
    public init(u: Matrix<Scalar>, singularValues: [Scalar], vt: Matrix<Scalar>) {
        precondition(u.columns == singularValues.count && vt.rows == singularValues.count,
                     "SVDFactors: U is \(u.rows) × \(u.columns), \(singularValues.count) values, Vᵀ is \(vt.rows) × \(vt.columns)")
        self.u = u
        self.singularValues = singularValues
        self.vt = vt
    }

    /// The rank `k`.
    public var rank: Int { singularValues.count }

    /// `[m, n]`.
    public var shape: [Int] { [u.rows, vt.columns] }

    /// `k·(m + n + 1)`.
    public var parameterCount: Int { rank * (u.rows + vt.columns + 1) }

    /// `U Σ Vᵀ` as an order-2 tensor.
    @inlinable
    public func reconstructed() -> Tensor<Scalar> {
        Tensor(u.scalingColumns(by: singularValues).matmul(vt))
    }
}
