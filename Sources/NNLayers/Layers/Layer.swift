import TensorModule

/// One standard layer, each of a kind that PyTorch, ONNX, Core ML or MLX rebuilds one to one
/// (`nn.Conv2d` with asymmetric padding as `F.pad` + `nn.Conv2d`, `nn.Linear`), or a TT layer.
///
/// Its JSON form is `{"kind": "conv2d" | "linear" | "ttLinear" | "ttConv2d", …}` with the settings
/// and the weights (see `Layer+Codable.swift`); decoding re-checks every setting.
public enum Layer<Scalar: BLASScalar>: Sendable, Equatable {
    case conv2d(Conv2D<Scalar>)
    case linear(Linear<Scalar>)
    case ttLinear(TTLinear<Scalar>)
    case ttConv2d(TTConv2D<Scalar>)

    /// The layer applied to a batch (NCHW for convolutions, `(…, features)` for linear layers).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        switch self {
        case let .conv2d(layer): return try layer(x)
        case let .linear(layer): return try layer(x)
        case let .ttLinear(layer): return try layer(x)
        case let .ttConv2d(layer): return try layer(x)
        }
    }

    /// Parameters (weights and biases) of the layer.
    public var parameterCount: Int {
        switch self {
        case let .conv2d(layer): return layer.parameterCount
        case let .linear(layer): return layer.parameterCount
        case let .ttLinear(layer): return layer.parameterCount
        case let .ttConv2d(layer): return layer.parameterCount
        }
    }

    /// Cost for one sample of the given shape (`[C, H, W]` for convolutions, `[…, features]` for linear layers).
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the shape does not fit,
    ///   ``NNLayersError/countOverflow(quantity:factors:)`` for counts beyond `Int`.
    public func cost(input shape: [Int]) throws -> LayerCost {
        switch self {
        case let .conv2d(layer): return try layer.cost(input: shape)
        case let .linear(layer): return try layer.cost(input: shape)
        case let .ttLinear(layer): return try layer.cost(input: shape)
        case let .ttConv2d(layer): return try layer.cost(input: shape)
        }
    }

    /// A one-line description.
    public var summary: String {
        switch self {
        case let .conv2d(layer): return layer.summary
        case let .linear(layer): return layer.summary
        case let .ttLinear(layer): return layer.summary
        case let .ttConv2d(layer): return layer.summary
        }
    }

    /// The layer's tensors under the state-dict names of a PyTorch module at `prefix`:
    /// `prefix.weight` and `prefix.bias` for convolutions and linear layers, `prefix.core.k` and
    /// `prefix.bias` for TT layers (the cores of ``TTConv2D/rawCores``). Biases are rank-1.
    public func tensors(prefix: String) -> [(name: String, tensor: Tensor<Scalar>)] {
        func biasTensor(_ bias: [Scalar]?) -> [(name: String, tensor: Tensor<Scalar>)] {
            bias.map { [(prefix + ".bias", Tensor(uncheckedShape: [$0.count], scalars: ContiguousArray($0)))] } ?? []
        }
        switch self {
        case let .conv2d(layer): return [(prefix + ".weight", layer.weight)] + biasTensor(layer.bias)
        case let .linear(layer): return [(prefix + ".weight", Tensor(layer.weight))] + biasTensor(layer.bias)
        case let .ttLinear(layer):
            return layer.weight.cores.enumerated().map { ("\(prefix).core.\($0.offset)", $0.element) } + biasTensor(layer.bias)
        case let .ttConv2d(layer):
            return layer.rawCores.enumerated().map { ("\(prefix).core.\($0.offset)", $0.element) } + biasTensor(layer.bias)
        }
    }
}
