import RealModule
import TensorModule

/// A tensor stored as factors: CP, Tucker, tensor-train or a truncated SVD.
///
/// Every factorized value can rebuild the full tensor (`Tensor(cp)`), count its parameters and
/// compare with the tensor it approximates.
///
/// ```swift
/// let cp = try cpDecompose(kernel, rank: 16).cp
/// cp.parameterCount                 // Σ I_n·R + R
/// cp.compressionRatio               // ∏ I_n / parameterCount
/// cp.relativeError(to: kernel)      // ‖X − X̂‖ / ‖X‖
/// ```
public protocol FactorizedTensor<Scalar>: Sendable {
    /// The scalar type of the factors.
    associatedtype Scalar: BLASScalar
    /// The shape of the full tensor.
    var shape: [Int] { get }
    /// The number of scalars stored in the factors.
    var parameterCount: Int { get }
    /// The full tensor rebuilt from the factors.
    func reconstructed() throws -> Tensor<Scalar>
}

extension FactorizedTensor {
    /// `∏ shape / parameterCount`: how many times smaller the factors are than the full tensor.
    public var compressionRatio: Double {
        Double(shape.reduce(1, *)) / Double(Swift.max(parameterCount, 1))
    }

    /// The relative error `‖X − X̂‖_F / ‖X‖_F` of the reconstruction against `reference`.
    ///
    /// - Throws: `TensorError.shapeMismatch` (from `TensorModule`) when the shapes differ.
    public func relativeError(to reference: Tensor<Scalar>) throws -> Scalar {
        guard reference.shape == shape else {
            throw TensorError.shapeMismatch(operation: "relativeError", expected: shape, actual: reference.shape)
        }
        return try reconstructed().relativeError(to: reference)
    }
}

extension Tensor {
    /// The full tensor of a factorized value: `Tensor(cp)`, `Tensor(tucker)`, `Tensor(tt)`.
    public init<F: FactorizedTensor>(_ factorized: F) throws where F.Scalar == Scalar {
        self = try factorized.reconstructed()
    }
}
