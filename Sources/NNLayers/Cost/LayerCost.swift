import TensorModule

/// Parameters, FLOPs and output shape of a layer (or stack) for one input sample.
public struct LayerCost: Sendable, Equatable, Codable {
    /// Scalars stored in the layer's weights and biases.
    public var parameters: Int
    /// Floating-point operations for one sample: 2 × multiply-adds (bias additions not counted).
    public var flops: Int
    /// Multiply-adds for one sample: half of ``flops``.
    public var macs: Int { flops / 2 }
    /// The output shape of one sample, e.g. `[C, H, W]` or `[features]`.
    public var outputShape: [Int]

    /// A cost from its parts.
    public init(parameters: Int, flops: Int, outputShape: [Int]) {
        self.parameters = parameters
        self.flops = flops
        self.outputShape = outputShape
    }
}
