import Decompositions
import TensorModule

/// A fully connected layer whose weight is a `TTMatrix` (Novikov, Podoprikhin, Osokin, Vetrov 2015,
/// arXiv:1509.06569): `y = x Wᵀ + b` computed core by core, never forming `W`.
public struct TTLinear<Scalar: BLASScalar>: Sendable, Equatable, Codable {
    /// The weight in TT-matrix form, `(out, in)` = `(∏ m_k, ∏ n_k)`.
    public let weight: TTMatrix<Scalar>
    /// One bias per output feature, or `nil`.
    public let bias: [Scalar]?

    /// Creates a TT linear layer.
    ///
    /// - Throws: ``NNLayersError/biasCount(layer:count:expected:)`` for a bias of the wrong length.
    public init(weight: TTMatrix<Scalar>, bias: [Scalar]? = nil) throws {
        if let bias, bias.count != weight.shape[0] {
            throw NNLayersError.biasCount(layer: "TTLinear", count: bias.count, expected: weight.shape[0])
        }
        self.weight = weight
        self.bias = bias
    }

    /// Input features `N = ∏ n_k`.
    public var inFeatures: Int { weight.shape[1] }
    /// Output features `M = ∏ m_k`.
    public var outFeatures: Int { weight.shape[0] }

    /// `x Wᵀ + b` for `x` of shape `(…, in)`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        guard x.order >= 1, x.shape.last == inFeatures else {
            throw NNLayersError.inputShape(layer: "TTLinear \(inFeatures)→\(outFeatures)", expected: "(…, \(inFeatures))", actual: x.shape)
        }
        let rows = x.scalarCount / inFeatures
        let product = try weight.applied(to: Matrix(reshaping: x, rows: rows, columns: inFeatures))
        var y = try Tensor(product).reshaped(to: Array(x.shape.dropLast()) + [outFeatures])
        if let bias { y = y.addingBias(bias, axis: y.order - 1) }
        return y
    }

    /// Parameters: the TT cores and the bias.
    public var parameterCount: Int { weight.parameterCount + (bias?.count ?? 0) }

    /// Parameters, FLOPs and output shape for one sample of shape `[…, in]`.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` unless the last axis has `in`
    ///   features, ``NNLayersError/countOverflow(quantity:factors:)`` for counts beyond `Int`.
    public func cost(input shape: [Int]) throws -> LayerCost {
        guard shape.last == inFeatures else {
            throw NNLayersError.inputShape(layer: summary, expected: "[…, \(inFeatures)]", actual: shape)
        }
        let rows = try checkedProduct(Array(shape.dropLast()), "the row count of input \(shape)")
        let flops: Int
        do { flops = try weight.flops(batch: rows) } catch {
            throw NNLayersError.countOverflow(quantity: "the FLOP count of \(summary) for input \(shape)", factors: [rows, inFeatures, outFeatures])
        }
        return LayerCost(parameters: parameterCount, flops: flops, outputShape: Array(shape.dropLast()) + [outFeatures])
    }

    /// A one-line description.
    public var summary: String {
        "tt-linear \(inFeatures)→\(outFeatures) modes \(weight.columnModes)→\(weight.rowModes) ranks \(weight.ranks)\(bias != nil ? " bias" : "")"
    }
}
