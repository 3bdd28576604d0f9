/// Why shape inference could not derive a node's output shape, with the values that show it.
/// ``ONNXShapeInference`` lists these in ``ONNXShapeInference/failures`` (rendered by
/// ``description``), and ``ONNXShapeInference/broadcast(_:)`` throws them.
public enum ShapeInferenceProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The shape of the value `name` is not known.
    case unknownShape(name: String)
    /// The input `name`, read as `role` (e.g. "the target shape"), is not a constant.
    case notConstant(role: String, name: String)
    /// A value read as `role` holds a NaN or an infinity.
    case notInteger(role: String, value: Double)
    /// `a · b` does not fit a 64-bit integer.
    case productOverflow(Int, Int)
    /// `a + b` does not fit a 64-bit integer.
    case sumOverflow(Int, Int)
    /// A derived shape has a negative dimension.
    case negativeDimension(shape: [Int])
    /// Shapes that do not broadcast.
    case notBroadcastable(shapes: [[Int]])
    /// An axis outside a tensor of rank `rank`.
    case axisOutside(axis: Int, rank: Int)
    /// Window attributes whose lengths do not fit a kernel of `spatialAxes` axes on `input`.
    case windowLengths(strides: [Int], dilations: [Int], pads: [Int], spatialAxes: Int, input: [Int])
    /// Window attributes out of range: strides, dilations and kernel sizes must be positive, pads non-negative.
    case windowValues(strides: [Int], dilations: [Int], kernel: [Int], pads: [Int])
    /// A spatial input (padded, unless `padded` is false) smaller than the dilated kernel.
    case inputSmallerThanKernel(input: [Int], padded: Bool)
    /// An operator of a domain other than ONNX's.
    case unsupportedDomain(String)
    /// An operator that shape inference does not cover.
    case unsupportedOperator
    /// A `Constant` node without a value attribute.
    case missingValue
    /// A convolution's input and weight of ranks that do not fit.
    case inputAndWeight(input: [Int], weight: [Int])
    /// A `ConvTranspose`'s `output_shape` shorter than its `spatialAxes` spatial axes.
    case outputShapeLength(outputShape: [Int], spatialAxes: Int)
    /// `ConvTranspose` attributes whose lengths do not fit `spatialAxes` axes.
    case transposedWindowLengths(kernel: [Int], strides: [Int], dilations: [Int], pads: [Int], outputPadding: [Int], spatialAxes: Int)
    /// `ConvTranspose` attributes out of range.
    case transposedWindowValues(kernel: [Int], strides: [Int], dilations: [Int], pads: [Int], outputPadding: [Int])
    /// A pooling node whose `kernel_shape` does not fit its input.
    case poolingKernel(input: [Int])
    /// `MatMul` operands whose inner dimensions differ.
    case notMultipliable([Int], [Int])
    /// `Gemm` operands that are not both 2-D.
    case gemmOperands([Int], [Int])
    /// A recurrent layer's input that is not `[steps, batch, features]`.
    case recurrentInput(input: [Int])
    /// A `Gather` index outside `count` values.
    case indexOutside(index: Int, count: Int)
    /// `Slice` starts, ends, axes and steps of different lengths.
    case sliceLengths(starts: [Int], ends: [Int], axes: [Int], steps: [Int])
    /// A `Slice` step of 0 (or `Int.min`).
    case sliceStep(Int)
    /// `Split`'s `num_outputs` against its outputs.
    case splitOutputs(numOutputs: Int, outputs: Int)
    /// A `Reshape` target that copies (0) a dimension the input lacks.
    case reshapeCopy(target: [Int], input: [Int])
    /// A `Reshape` target that the input's element count does not fit.
    case reshape(input: [Int], target: [Int])
    /// A `Transpose` permutation that does not fit the input.
    case permutation([Int], input: [Int])
    /// An operator that needs axes and has none.
    case missingAxes
    /// An operator without inputs.
    case missingInputs
    /// `Concat` inputs whose shapes differ off the axis.
    case notConcatenable(shapes: [[Int]], axis: Int)
    /// `Resize`/`Upsample` scales and sizes that are not constant.
    case scalesNotConstant
    /// Scales of another length than the input's rank.
    case scales([Double], input: [Int])
    /// A `Range` bound (`role`) that is not a constant scalar.
    case notConstantScalar(role: String)
    /// A `Range` with delta 0.
    case zeroDelta
    /// A `Range` of more values than a shape can hold.
    case rangeLength(Double)
    /// `Tile` repeats that do not fit the input.
    case repeats([Int], input: [Int])
    /// `Pad` pads that do not fit the input.
    case pads([Int], input: [Int])
    /// `DepthToSpace`/`SpaceToDepth` without a 4-D input and a positive `blocksize`.
    case blocksize

    /// The problem in one line.
    public var description: String {
        switch self {
        case let .unknownShape(name): return "the shape of \(name) is unknown"
        case let .notConstant(role, name): return "\(role) (\(name)) is not a constant"
        case let .notInteger(role, value): return "\(role) holds \(value), not an integer"
        case let .productOverflow(a, b): return "\(a) × \(b) overflows a 64-bit integer"
        case let .sumOverflow(a, b): return "\(a) + \(b) overflows a 64-bit integer"
        case let .negativeDimension(shape): return "the derived shape \(shape) has a negative dimension"
        case let .notBroadcastable(shapes): return "shapes \(shapes) do not broadcast"
        case let .axisOutside(axis, rank): return "axis \(axis) is outside a rank-\(rank) tensor"
        case let .windowLengths(strides, dilations, pads, n, input):
            return "strides \(strides), dilations \(dilations), pads \(pads) do not fit a \(n)-D kernel on \(input)"
        case let .windowValues(strides, dilations, kernel, pads):
            return "strides \(strides), dilations \(dilations) and kernel \(kernel) must be positive, pads \(pads) non-negative"
        case let .inputSmallerThanKernel(input, padded): return "\(padded ? "padded input" : "input") \(input) is smaller than the kernel extent"
        case let .unsupportedDomain(domain): return "operators of domain \(domain) are not covered"
        case .unsupportedOperator: return "operator not covered by shape inference"
        case .missingValue: return "no value attribute"
        case let .inputAndWeight(input, weight): return "input \(input) and weight \(weight) do not fit"
        case let .outputShapeLength(outputShape, n): return "output_shape \(outputShape) does not fit a \(n)-D input"
        case let .transposedWindowLengths(kernel, strides, dilations, pads, outputPadding, n):
            return "kernel_shape \(kernel), strides \(strides), dilations \(dilations), pads \(pads) or output_padding \(outputPadding) do not fit a \(n)-D input"
        case let .transposedWindowValues(kernel, strides, dilations, pads, outputPadding):
            return "kernel_shape \(kernel), strides \(strides) and dilations \(dilations) must be positive, pads \(pads) and output_padding \(outputPadding) non-negative"
        case let .poolingKernel(input): return "kernel_shape does not fit input \(input)"
        case let .notMultipliable(a, b): return "shapes \(a) and \(b) do not multiply"
        case let .gemmOperands(a, b): return "Gemm needs 2-D operands, got \(a) and \(b)"
        case let .recurrentInput(input): return "the input of shape \(input) is not [steps, batch, features]"
        case let .indexOutside(index, count): return "index \(index) is outside \(count) values"
        case let .sliceLengths(starts, ends, axes, steps): return "starts \(starts), ends \(ends), axes \(axes) and steps \(steps) differ in length"
        case let .sliceStep(step): return "step \(step)"
        case let .splitOutputs(n, outputs): return "num_outputs \(n) with \(outputs) outputs"
        case let .reshapeCopy(target, input): return "target \(target) copies a dimension \(input) lacks"
        case let .reshape(input, target): return "cannot reshape \(input) to \(target)"
        case let .permutation(perm, input): return "perm \(perm) does not fit \(input)"
        case .missingAxes: return "no axes"
        case .missingInputs: return "no inputs"
        case let .notConcatenable(shapes, axis): return "inputs of shapes \(shapes) do not concatenate on axis \(axis)"
        case .scalesNotConstant: return "the scales or sizes are not constant"
        case let .scales(scales, input): return "scales \(scales) do not fit \(input)"
        case let .notConstantScalar(role): return "\(role) is not a constant scalar"
        case .zeroDelta: return "delta 0"
        case let .rangeLength(count): return "a range of \(count) values"
        case let .repeats(repeats, input): return "repeats \(repeats) do not fit \(input)"
        case let .pads(pads, input): return "pads \(pads) do not fit \(input)"
        case .blocksize: return "needs a 4-D input and a positive blocksize"
        }
    }
}
