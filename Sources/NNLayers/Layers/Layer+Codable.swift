import Decompositions
import TensorModule

/// The JSON form of a layer: `{"kind": …}` with its settings, and its weights either as values or,
/// when ``Layer/tensorNamePrefix`` is set in the encoder's `userInfo`, as the names of
/// ``Layer/tensors(prefix:)`` (what a safetensors file's metadata holds).
extension Layer: Codable {
    /// A `userInfo` key whose `String` value makes ``encode(to:)`` write tensor names under that
    /// prefix (`"<prefix>.weight"`, `"<prefix>.bias"`, `["<prefix>.core.0", …]`) instead of values,
    /// with the channel counts beside them.
    public static var tensorNamePrefix: CodingUserInfoKey { CodingUserInfoKey(rawValue: "NNLayers.Layer.tensorNamePrefix")! }


    enum CodingKeys: String, CodingKey {
        case kind, weight, bias, stride, padding, dilation, groups, cores, kernel, outputModes, inputModes, inChannels, outChannels
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(String.self, forKey: .kind)
        let bias = try c.decodeIfPresent([Scalar].self, forKey: .bias)
        func rethrowing<T>(_ body: () throws -> T) throws -> T {
            do { return try body() } catch {
                throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "\(error)")
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
        // With a prefix, tensors are written as their names (and the channel counts beside them).
        let names = (encoder.userInfo[Self.tensorNamePrefix] as? String).map { tensors(prefix: $0).map(\.name) }
        let biasName = names?.last.flatMap { $0.hasSuffix(".bias") ? $0 : nil }
        let coreNames = names?.filter { $0 != biasName }
        func encode(weight: some Encodable) throws {
            if let coreNames { try c.encode(coreNames[0], forKey: .weight) } else { try c.encode(weight, forKey: .weight) }
        }
        func encode(bias: [Scalar]?) throws {
            if names != nil { try c.encodeIfPresent(biasName, forKey: .bias) } else { try c.encodeIfPresent(bias, forKey: .bias) }
        }
        func encode(channels input: Int, _ output: Int) throws {
            guard names != nil else { return }
            try c.encode(input, forKey: .inChannels)
            try c.encode(output, forKey: .outChannels)
        }
        func encode(spatial conv: Conv2D<Scalar>, kernel: Bool) throws {
            if kernel || names != nil { try c.encode(conv.kernelSize, forKey: .kernel) }
            try c.encode(conv.stride, forKey: .stride)
            try c.encode(conv.padding, forKey: .padding)
            try c.encode(conv.dilation, forKey: .dilation)
        }
        switch self {
        case let .conv2d(layer):
            try c.encode("conv2d", forKey: .kind)
            try encode(weight: layer.weight)
            try encode(channels: layer.inChannels, layer.outChannels)
            try encode(spatial: layer, kernel: false)
            try c.encode(layer.groups, forKey: .groups)
            try encode(bias: layer.bias)
        case let .linear(layer):
            try c.encode("linear", forKey: .kind)
            try encode(weight: layer.weight)
            try encode(channels: layer.inFeatures, layer.outFeatures)
            try encode(bias: layer.bias)
        case let .ttLinear(layer):
            try c.encode("ttLinear", forKey: .kind)
            if let coreNames {
                try c.encode(coreNames, forKey: .cores)
                try c.encode(layer.weight.rowModes, forKey: .outputModes)
                try c.encode(layer.weight.columnModes, forKey: .inputModes)
            } else {
                try c.encode(layer.weight, forKey: .weight)
            }
            try encode(channels: layer.inFeatures, layer.outFeatures)
            try encode(bias: layer.bias)
        case let .ttConv2d(layer):
            try c.encode("ttConv2d", forKey: .kind)
            if let coreNames { try c.encode(coreNames, forKey: .cores) } else { try c.encode(layer.rawCores, forKey: .cores) }
            try encode(channels: layer.inChannels, layer.outChannels)
            try encode(spatial: layer.spatial, kernel: true)
            try c.encode(layer.outputModes, forKey: .outputModes)
            try c.encode(layer.inputModes, forKey: .inputModes)
            try encode(bias: layer.bias)
        }
    }
}
