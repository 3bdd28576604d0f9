import TensorModule

/// A sequence of layers applied one after the other: what a factorized layer becomes.
///
/// ```swift
/// let stack = try conv.compressed(by: .tucker2(.vbmf)).stack
/// let y = try stack(x)
/// print(stack.summary)      // "pointwise 128→32 → conv 32→48 3×3 pad (1, 1, 1, 1) → pointwise 48→256 bias"
/// ```
public struct LayerStack<Scalar: BLASScalar>: Sendable, Equatable, Codable {
    /// The layers, first applied first.
    public var layers: [Layer<Scalar>]

    /// A stack of the given layers, first applied first.
    public init(_ layers: [Layer<Scalar>]) { self.layers = layers }

    /// The layers applied in order.
    ///
    /// A batch of several NCHW samples through convolutions runs sample by sample, so that the
    /// intermediate activations of one sample stay in cache between layers.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        let convolutional = layers.allSatisfy { if case .conv2d = $0 { return true } else { return false } }
        if convolutional && x.order == 4 && x.shape[0] > 1 {
            let sampleShape = [1] + Array(x.shape.dropFirst())
            let sampleSize = x.scalarCount / x.shape[0]
            var outputs = ContiguousArray<Scalar>()
            var outputShape: [Int] = []
            for n in 0..<x.shape[0] {
                var y = try Tensor(shape: sampleShape, scalars: x.scalars[(n * sampleSize)..<((n + 1) * sampleSize)])
                for layer in layers { y = try layer(y) }
                if n == 0 {
                    outputShape = y.shape
                    outputs.reserveCapacity(y.scalarCount * x.shape[0])
                }
                outputs.append(contentsOf: y.scalars)
            }
            outputShape[0] = x.shape[0]
            return try Tensor(shape: outputShape, scalars: outputs)
        }
        var y = x
        for layer in layers { y = try layer(y) }
        return y
    }

    /// Parameters of all layers.
    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }

    /// Total cost for one sample of the given shape.
    public func cost(input shape: [Int]) throws -> LayerCost {
        var total = LayerCost(parameters: 0, flops: 0, outputShape: shape)
        for layer in layers {
            let cost = try layer.cost(input: total.outputShape)
            total.parameters += cost.parameters
            total.flops = try checkedSum(total.flops, cost.flops, "the FLOP count of the stack for input \(shape)")
            total.outputShape = cost.outputShape
        }
        return total
    }

    /// The layers' summaries joined by arrows.
    public var summary: String { layers.map(\.summary).joined(separator: " → ") }
}
