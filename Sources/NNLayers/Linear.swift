import TensorModule

/// A fully connected layer `y = x Wᵀ + b` with PyTorch's `(out, in)` weight.
///
/// ```swift
/// let fc = try Linear(weight: .randomNormal(rows: 10, columns: 64, seed: 1), bias: nil)
/// let y = try fc(x)      // x: (N, 64) → y: (N, 10)
/// ```
public struct Linear<Scalar: BLASScalar>: Sendable, Equatable, Codable {
    /// The weight, `(out features, in features)`.
    public let weight: Matrix<Scalar>
    /// One bias per output feature, or `nil`.
    public let bias: [Scalar]?

    /// Creates a linear layer.
    ///
    /// - Throws: ``NNLayersError/invalidConfiguration(_:)`` for an empty weight, a bias of the
    ///   wrong length or non-finite values.
    public init(weight: Matrix<Scalar>, bias: [Scalar]? = nil) throws {
        guard weight.rows > 0, weight.columns > 0 else {
            throw NNLayersError.invalidConfiguration("Linear: weight shape \(weight.shape) must have positive sizes")
        }
        if let bias, bias.count != weight.rows {
            throw NNLayersError.invalidConfiguration("Linear: \(bias.count) biases for \(weight.rows) output features")
        }
        if let index = Tensor(weight).firstNonFiniteIndex {
            throw NNLayersError.invalidConfiguration("Linear: the weight has a non-finite value at flat index \(index)")
        }
        if let bias, let index = bias.firstIndex(where: { !$0.isFinite }) {
            throw NNLayersError.invalidConfiguration("Linear: bias \(index) is not finite")
        }
        self.weight = weight
        self.bias = bias
    }

    /// Input features.
    public var inFeatures: Int { weight.columns }
    /// Output features.
    public var outFeatures: Int { weight.rows }

    /// `x Wᵀ + b` for `x` of shape `(…, in)`: one GEMM over all leading indices.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` unless the last axis has `in` features.
    @inlinable
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        guard x.order >= 1, x.shape.last == inFeatures else {
            throw NNLayersError.inputShape(layer: "Linear \(inFeatures)→\(outFeatures)", expected: "(…, \(inFeatures))", actual: x.shape)
        }
        let rows = x.scalarCount / inFeatures
        let product = Matrix(try x.reshaped(to: [rows, inFeatures])).matmul(weight, transposeOther: true)
        var y = try Tensor(product).reshaped(to: Array(x.shape.dropLast()) + [outFeatures])
        if let bias { y = y.addingBias(bias, axis: y.order - 1) }
        return y
    }

    /// A one-line description.
    public var summary: String { "linear \(inFeatures)→\(outFeatures)\(bias != nil ? " bias" : "")" }
}

extension Tensor {
    /// The tensor with `bias[c]` added to every scalar whose index along `axis` is `c`.
    @inlinable
    func addingBias(_ bias: [Scalar], axis: Int) -> Tensor {
        let inner = shape[(axis + 1)...].reduce(1, *)
        let count = shape[axis]
        var result = self
        result.withUnsafeMutableBufferPointer { p in
            var index = 0
            while index < p.count {
                for c in 0..<count {
                    let b = bias[c]
                    for k in 0..<inner { p[index + k] += b }
                    index += inner
                }
            }
        }
        return result
    }
}
