import ONNX

/// Why a node of a graph cannot be compressed, with the values that decide it. Its
/// ``description`` is the one-line reason that reports and `inspect` print.
///
/// ```swift
/// for layer in try compressor.layers(in: model) {
///     if case let .sharedWeight(weight, readers, _) = layer.refusal { print(layer.name, weight, readers) }
/// }
/// ```
public enum LayerRefusal: Sendable, Equatable, CustomStringConvertible {
    /// The kind of layer a method setting turns off.
    public enum LayerKind: String, Sendable, Equatable {
        case convolution, linear
    }

    /// A `ConvTranspose` with `SAME` padding, an output shape, output padding not below its
    /// stride or dilation, a stride above 2³¹, or not 2-D: 2-D ones with explicit (or `VALID`)
    /// padding are compressed.
    case transposedSettings(strides: [Int], outputPadding: [Int], autoPad: String, outputShape: Bool)
    /// A 3-D convolution or a strided `ConvTranspose` whose input or output shape is unknown:
    /// their costs need both.
    case unknownShapes(op: String, spatialRank: Int)
    /// A 3-D convolution whose input or output (shapes given) has no positions: nothing to cost
    /// or to run.
    case emptyShapes(input: [Int], output: [Int])
    /// A 3-D convolution with the tensor-train method, or a strided `ConvTranspose` with a method
    /// other than Tucker-2 (SVD for pointwise kernels): their stacks are written through a 2-D
    /// stand-in, which takes Tucker-2 and SVD (and CP for a 3-D convolution) only.
    case methodThroughStandIn(op: String, spatialRank: Int, method: String)
    /// A `ConvTranspose` padded beyond its dilated kernel: no equivalent convolution.
    case transposedPaddingBeyondKernel(pads: [Int])
    /// A `Gather` of a constant matrix: an embedding table, indexed rather than multiplied.
    case embeddingTable
    /// A `Gather` of anything else.
    case gather
    /// An `LSTM`, `GRU` or `RNN` node whose input weights W and recurrent weights R (their
    /// shapes) do not fit its gates and `hidden_size` (`[directions, gates·H, I]` and
    /// `[directions, gates·H, H]`).
    case recurrent(op: String, inputWeights: [Int], recurrentWeights: [Int])
    /// An `LSTM`, `GRU` or `RNN` node with the tensor-train method: its input projection is
    /// rewritten only as a low-rank `MatMul` (SVD).
    case recurrentTensorTrain(op: String)
    /// A `MatMul` whose right operand is an activation, not a constant.
    case computedOperand(name: String)
    /// A weight computed in the graph rather than a constant.
    case computedWeight(name: String)
    /// A bias computed in the graph rather than a constant.
    case computedBias(name: String)
    /// A weight or bias whose data does not fit its shape or type (the reading error).
    case unusable(role: String, name: String, error: ONNXError)
    /// A convolution whose attributes do not fit its weight, or are not positive.
    case convolutionSettings(kernel: [Int], strides: [Int], dilations: [Int], pads: [Int]?, groups: Int?, weight: [Int])
    /// A convolution whose kernel, strides or dilations are not positive or overflow.
    case convolutionOverflow(kernel: [Int], strides: [Int], dilations: [Int])
    /// `pads` that do not fit a 1-D convolution.
    case oneDimensionalPads([Int])
    /// A convolution over this many spatial axes (1-D, 2-D and 3-D ones are compressed).
    case spatialRank(Int)
    /// A 1-D convolution with the tensor-train method (TT convolutions are 2-D).
    case oneDimensionalTensorTrain
    /// A depthwise convolution (one input channel per group; one output channel per group for a
    /// `ConvTranspose`): no channel modes to factor.
    case depthwise(groups: Int, transposed: Bool)
    /// The options' method for this kind of layer is `none`.
    case methodNone(LayerKind)
    /// `Gemm` with `transA = 1`.
    case transposedGemmInput
    /// A `Gemm`'s or `MatMul`'s constant operand that is not a matrix.
    case notMatrix(shape: [Int], op: String)
    /// A weight or bias of a type that is not floating point.
    case notFloatingPoint(role: String, dataType: String)
    /// A weight read by other nodes too (their names, the first three, and their count).
    case sharedWeight(name: String, others: [String], count: Int)
    /// Fewer weights than ``CompressionOptions/minimumParameters``.
    case belowMinimum(parameters: Int, minimum: Int)
    /// Excluded by ``CompressionOptions/include`` or ``CompressionOptions/exclude``.
    case filtered

    /// The reason in words, with the numbers.
    public var description: String {
        switch self {
        case let .transposedSettings(strides, outputPadding, autoPad, outputShape):
            return "a ConvTranspose with strides \(strides), output_padding \(outputPadding), auto_pad \(autoPad)"
                + "\(outputShape ? " and output_shape" : ""): only 2-D ones with explicit or VALID padding, no output_shape "
                + "and output_padding below the stride or dilation are compressed"
        case let .unknownShapes(op, rank):
            return "a \(rank)-D \(op == "Conv" ? "convolution" : "strided ConvTranspose") whose input or output shape is unknown "
                + "(its costs need both)"
        case let .emptyShapes(input, output):
            return "a 3-D convolution whose input \(input) or output \(output) has an empty axis: nothing to compress"
        case let .methodThroughStandIn(op, rank, method):
            return "a \(rank)-D \(op == "Conv" ? "convolution" : "strided ConvTranspose") with the \(method) method: "
                + (op == "Conv" ? "only Tucker-2 and CP (SVD for 1×1×1 kernels) are written for it" : "only Tucker-2 (SVD for 1×1 kernels) is written for it")
        case let .transposedPaddingBeyondKernel(pads): return "a ConvTranspose with pads \(pads) beyond its dilated kernel: no equivalent convolution"
        case .embeddingTable: return "an embedding table (Gather): indexed, not multiplied"
        case .gather: return "Gather is not a layer"
        case let .recurrent(op, w, r):
            return "a recurrent layer (\(op)) whose input weights W \(w) and recurrent weights R \(r) do not fit its gates and hidden_size"
        case let .recurrentTensorTrain(op):
            return "a recurrent layer (\(op)) with the tensor-train method: its input projection is rewritten only by SVD"
        case let .computedOperand(name): return "the right operand \(name) is computed in the graph (a product of activations), not a constant weight"
        case let .computedWeight(name): return "the weight \(name) is computed in the graph, not a constant"
        case let .computedBias(name): return "the bias \(name) is computed in the graph, not a constant"
        case let .unusable(role, name, error): return "the \(role) \(name) is unusable: \(error)"
        case let .convolutionSettings(kernel, strides, dilations, pads, groups, weight):
            if let pads, let groups {
                return "kernel_shape \(kernel), dilations \(dilations), pads \(pads) or group \(groups) do not fit the weight \(weight)"
            }
            return "kernel_shape \(kernel), strides \(strides) or dilations \(dilations) do not fit the weight \(weight)"
        case let .convolutionOverflow(kernel, strides, dilations):
            return "kernel \(kernel), strides \(strides) or dilations \(dilations) are not positive or overflow"
        case let .oneDimensionalPads(pads): return "pads \(pads) do not fit a 1-D convolution"
        case let .spatialRank(rank): return "a \(rank)-D convolution; 1-D, 2-D and 3-D convolutions are compressed"
        case .oneDimensionalTensorTrain: return "a 1-D convolution: tensor-train convolutions are 2-D only (Tucker-2, CP and SVD apply)"
        case let .depthwise(groups, transposed):
            return transposed
                ? "a depthwise ConvTranspose (groups = \(groups), one output channel per group): no channel modes to factor"
                : "a depthwise convolution (groups = \(groups), one input channel per group): no channel modes to factor"
        case let .methodNone(kind):
            return kind == .convolution ? "convolutions are not compressed (the convolution method is none)"
                : "linear layers are not compressed (the linear method is none)"
        case .transposedGemmInput: return "Gemm with transA = 1"
        case let .notMatrix(shape, op):
            return op == "Gemm" ? "B of shape \(shape) is not a matrix" : "the right operand of shape \(shape) is not a constant matrix"
        case let .notFloatingPoint(role, dataType): return "the \(role) is \(dataType), not floating point"
        case let .sharedWeight(name, others, count):
            return "the weight \(name) is shared with \(count) other node(s) (\(others.joined(separator: ", ")))"
        case let .belowMinimum(parameters, minimum): return "\(parameters) weights, fewer than the minimum of \(minimum)"
        case .filtered: return "excluded by the include/exclude filters"
        }
    }
}
