import Decompositions
import TensorModule

/// Parameters, FLOPs and output shape of a layer (or stack) for one input sample.
public struct LayerCost: Sendable, Equatable, Codable {
    /// Scalars stored in the layer's weights and biases.
    public var parameters: Int
    /// Floating-point operations for one sample: 2 × multiply-adds (bias additions not counted).
    public var flops: Int
    /// The output shape of one sample, e.g. `[C, H, W]` or `[features]`.
    public var outputShape: [Int]

    /// A cost from its parts.
    public init(parameters: Int, flops: Int, outputShape: [Int]) {
        self.parameters = parameters
        self.flops = flops
        self.outputShape = outputShape
    }
}

/// One standard layer, each of a kind that PyTorch, ONNX, Core ML or MLX rebuilds one to one
/// (`nn.Conv2d` with asymmetric padding as `F.pad` + `nn.Conv2d`, `nn.Linear`), or a TT layer.
///
/// Its JSON form is `{"kind": "conv2d" | "linear" | "ttLinear" | "ttConv2d", …}` with the settings
/// and the weights; decoding re-checks every setting.
public enum Layer<Scalar: BLASScalar>: Sendable, Equatable, Codable {
    case conv2d(Conv2D<Scalar>)
    case linear(Linear<Scalar>)
    case ttLinear(TTLinear<Scalar>)
    case ttConv2d(TTConv2D<Scalar>)

    /// The layer applied to a batch (NCHW for convolutions, `(…, features)` for linear layers).
    @inlinable
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        switch self {
        case let .conv2d(layer): return try layer(x)
        case let .linear(layer): return try layer(x)
        case let .ttLinear(layer): return try layer(x)
        case let .ttConv2d(layer): return try layer(x)
        }
    }

    /// Parameters (weights and biases).
    public var parameterCount: Int {
        switch self {
        case let .conv2d(c): return c.weight.scalarCount + (c.bias?.count ?? 0)
        case let .linear(l): return l.weight.rows * l.weight.columns + (l.bias?.count ?? 0)
        case let .ttLinear(l): return l.weight.parameterCount + (l.bias?.count ?? 0)
        case let .ttConv2d(c):
            // The spatial core once (the depthwise weight repeats it for every input channel).
            return c.spatialRank * c.spatial.kernelSize.height * c.spatial.kernelSize.width
                + c.channels.parameterCount + (c.bias?.count ?? 0)
        }
    }

    /// Cost for one sample of the given shape (`[C, H, W]` for convolutions, `[…, features]` for linear layers).
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the shape does not fit.
    public func cost(input shape: [Int]) throws -> LayerCost {
        switch self {
        case let .conv2d(c):
            guard shape.count == 3, shape[0] == c.inChannels else {
                throw NNLayersError.inputShape(layer: "Conv2D \(c.summary)", expected: "[\(c.inChannels), H, W]", actual: shape)
            }
            let out = try c.outputSize(height: shape[1], width: shape[2])
            let flops = try checkedProduct([2, c.outChannels, c.weight.shape[1], c.kernelSize.height, c.kernelSize.width, out.height, out.width],
                                           "the FLOP count of \(c.summary) for input \(shape)")
            return LayerCost(parameters: parameterCount, flops: flops, outputShape: [c.outChannels, out.height, out.width])
        case let .linear(l):
            guard shape.last == l.inFeatures else {
                throw NNLayersError.inputShape(layer: l.summary, expected: "[…, \(l.inFeatures)]", actual: shape)
            }
            let flops = try checkedProduct([2] + shape.dropLast() + [l.inFeatures, l.outFeatures],
                                           "the FLOP count of \(l.summary) for input \(shape)")
            return LayerCost(parameters: parameterCount, flops: flops, outputShape: Array(shape.dropLast()) + [l.outFeatures])
        case let .ttLinear(l):
            guard shape.last == l.inFeatures else {
                throw NNLayersError.inputShape(layer: l.summary, expected: "[…, \(l.inFeatures)]", actual: shape)
            }
            let rows = try checkedProduct(Array(shape.dropLast()), "the row count of input \(shape)")
            return LayerCost(parameters: parameterCount, flops: try l.weight.flops(batch: rows), outputShape: Array(shape.dropLast()) + [l.outFeatures])
        case let .ttConv2d(c):
            guard shape.count == 3, shape[0] == c.inChannels else {
                throw NNLayersError.inputShape(layer: c.summary, expected: "[\(c.inChannels), H, W]", actual: shape)
            }
            let out = try c.spatial.outputSize(height: shape[1], width: shape[2])
            let pixels = try checkedProduct([out.height, out.width], "the output pixels of \(c.summary) for input \(shape)")
            let spatialFlops = try checkedProduct([2, c.spatial.outChannels, c.spatial.kernelSize.height, c.spatial.kernelSize.width, pixels],
                                                  "the FLOP count of \(c.summary) for input \(shape)")
            let flops = try checkedSum(spatialFlops, try c.channels.flops(batch: pixels), "the FLOP count of \(c.summary) for input \(shape)")
            return LayerCost(parameters: parameterCount, flops: flops,
                             outputShape: [c.outChannels, out.height, out.width])
        }
    }

    /// A one-line description.
    public var summary: String {
        switch self {
        case let .conv2d(c): return c.summary
        case let .linear(l): return l.summary
        case let .ttLinear(l): return l.summary
        case let .ttConv2d(c): return c.summary
        }
    }

    // MARK: Codable

    enum CodingKeys: String, CodingKey {
        case kind, weight, bias, stride, padding, dilation, groups, cores, kernel, outputModes, inputModes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(String.self, forKey: .kind)
        let bias = try c.decodeIfPresent([Scalar].self, forKey: .bias)
        func rethrowing<T>(_ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as NNLayersError {
                throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: error.description)
            }
        }
        switch kind {
        case "conv2d":
            let weight = try c.decode(Tensor<Scalar>.self, forKey: .weight)
            let stride = try c.decode(Size2D.self, forKey: .stride)
            let padding = try c.decode(Padding.self, forKey: .padding)
            let dilation = try c.decode(Size2D.self, forKey: .dilation)
            let groups = try c.decode(Int.self, forKey: .groups)
            self = .conv2d(try rethrowing {
                try Conv2D(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
            })
        case "linear":
            let weight = try c.decode(Matrix<Scalar>.self, forKey: .weight)
            self = .linear(try rethrowing { try Linear(weight: weight, bias: bias) })
        case "ttLinear":
            let weight = try c.decode(TTMatrix<Scalar>.self, forKey: .weight)
            self = .ttLinear(try rethrowing { try TTLinear(weight: weight, bias: bias) })
        case "ttConv2d":
            let cores = try c.decode([Tensor<Scalar>].self, forKey: .cores)
            let kernel = try c.decode(Size2D.self, forKey: .kernel)
            let stride = try c.decode(Size2D.self, forKey: .stride)
            let padding = try c.decode(Padding.self, forKey: .padding)
            let dilation = try c.decode(Size2D.self, forKey: .dilation)
            let outputModes = try c.decode([Int].self, forKey: .outputModes)
            let inputModes = try c.decode([Int].self, forKey: .inputModes)
            self = .ttConv2d(try rethrowing {
                try TTConv2D(cores: cores, kernelSize: kernel, outputModes: outputModes, inputModes: inputModes,
                             stride: stride, padding: padding, dilation: dilation, bias: bias)
            })
        default:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown layer kind \(kind)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .conv2d(layer):
            try c.encode("conv2d", forKey: .kind)
            try c.encode(layer.weight, forKey: .weight)
            try c.encodeIfPresent(layer.bias, forKey: .bias)
            try c.encode(layer.stride, forKey: .stride)
            try c.encode(layer.padding, forKey: .padding)
            try c.encode(layer.dilation, forKey: .dilation)
            try c.encode(layer.groups, forKey: .groups)
        case let .linear(layer):
            try c.encode("linear", forKey: .kind)
            try c.encode(layer.weight, forKey: .weight)
            try c.encodeIfPresent(layer.bias, forKey: .bias)
        case let .ttLinear(layer):
            try c.encode("ttLinear", forKey: .kind)
            try c.encode(layer.weight, forKey: .weight)
            try c.encodeIfPresent(layer.bias, forKey: .bias)
        case let .ttConv2d(layer):
            try c.encode("ttConv2d", forKey: .kind)
            try c.encode(layer.rawCores, forKey: .cores)
            try c.encode(layer.spatial.kernelSize, forKey: .kernel)
            try c.encode(layer.spatial.stride, forKey: .stride)
            try c.encode(layer.spatial.padding, forKey: .padding)
            try c.encode(layer.spatial.dilation, forKey: .dilation)
            try c.encode(layer.outputModes, forKey: .outputModes)
            try c.encode(layer.inputModes, forKey: .inputModes)
            try c.encodeIfPresent(layer.bias, forKey: .bias)
        }
    }
}

extension TTConv2D {
    /// The TT cores of the reshaped kernel, as given to ``init(cores:kernelSize:outputModes:inputModes:stride:padding:dilation:bias:)``.
    public var rawCores: [Tensor<Scalar>] {
        let (kh, kw) = (spatial.kernelSize.height, spatial.kernelSize.width)
        // Depthwise channel r of input channel 0 holds G_0[:, r].
        let first = Matrix(try! spatial.weight.reshaped(to: [inChannels * spatialRank, kh * kw])).leadingRows(spatialRank)
        var cores = [try! Tensor(first.transposed()).reshaped(to: [1, kh * kw, spatialRank])]
        for (k, core) in channels.cores.enumerated() {
            let (ra, t, s, rb) = (core.shape[0], core.shape[1], core.shape[2], core.shape[3])
            if k == 0 {
                // (1, t_1, r0·s_1, r_1) → (r0, t_1·s_1, r_1)
                let split = try! core.reshaped(to: [t, spatialRank, s / spatialRank, rb]).transposed(permutation: [1, 0, 2, 3])
                cores.append(try! split.reshaped(to: [spatialRank, t * (s / spatialRank), rb]))
            } else {
                cores.append(try! core.reshaped(to: [ra, t * s, rb]))
            }
        }
        return cores
    }
}

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
    @inlinable
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
