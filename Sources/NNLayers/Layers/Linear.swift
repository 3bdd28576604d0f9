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
    /// - Throws: ``NNLayersError/invalidWeightShape(layer:shape:expected:)`` for an empty weight,
    ///   ``NNLayersError/biasCount(layer:count:expected:)`` and ``NNLayersError/nonFinite(layer:tensor:index:)``.
    public init(weight: Matrix<Scalar>, bias: [Scalar]? = nil) throws {
        guard weight.rows > 0, weight.columns > 0 else {
            throw NNLayersError.invalidWeightShape(layer: "Linear", shape: weight.shape, expected: "(out, in) with positive sizes")
        }
        if let bias, bias.count != weight.rows {
            throw NNLayersError.biasCount(layer: "Linear", count: bias.count, expected: weight.rows)
        }
        if let index = Tensor(weight).firstNonFiniteIndex {
            throw NNLayersError.nonFinite(layer: "Linear", tensor: "weight", index: index)
        }
        if let bias, let index = bias.firstIndex(where: { !$0.isFinite }) {
            throw NNLayersError.nonFinite(layer: "Linear", tensor: "bias", index: index)
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
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        guard x.order >= 1, x.shape.last == inFeatures else {
            throw NNLayersError.inputShape(layer: "Linear \(inFeatures)→\(outFeatures)", expected: "(…, \(inFeatures))", actual: x.shape)
        }
        let rows = x.scalarCount / inFeatures
        let product = try Matrix(reshaping: x, rows: rows, columns: inFeatures).matmul(weight, transposeOther: true)
        var y = try Tensor(product).reshaped(to: Array(x.shape.dropLast()) + [outFeatures])
        if let bias { y = y.addingBias(bias, axis: y.order - 1) }
        return y
    }

    /// Parameters: the weight and the bias.
    public var parameterCount: Int { weight.rows * weight.columns + (bias?.count ?? 0) }

    /// Parameters, FLOPs (2 × multiply-adds) and output shape for one sample of shape `[…, in]`.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` unless the last axis has `in`
    ///   features, ``NNLayersError/countOverflow(quantity:factors:)`` for counts beyond `Int`.
    public func cost(input shape: [Int]) throws -> LayerCost {
        guard shape.last == inFeatures else {
            throw NNLayersError.inputShape(layer: summary, expected: "[…, \(inFeatures)]", actual: shape)
        }
        let flops = try checkedProduct([2] + shape.dropLast() + [inFeatures, outFeatures], "the FLOP count of \(summary) for input \(shape)")
        return LayerCost(parameters: parameterCount, flops: flops, outputShape: Array(shape.dropLast()) + [outFeatures])
    }

    /// A one-line description.
    public var summary: String { "linear \(inFeatures)→\(outFeatures)\(bias != nil ? " bias" : "")" }
}

extension Tensor {
    /// The tensor with `bias[c]` added to every scalar whose index along `axis` is `c`.
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
