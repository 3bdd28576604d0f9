/// The window attributes of a `Conv`, `ConvTranspose` or pooling node, read once with ONNX's
/// defaults for `n` spatial axes: what shape inference, the layer reader and simplification use.
///
/// Values are as written (a list of the wrong length stays so, for the caller to refuse); absent
/// ones take the defaults: strides and dilations 1, pads and output padding 0, `auto_pad`
/// `NOTSET`, one group.
///
/// ```swift
/// let window = ONNXConvAttributes(node, spatialAxes: 2)
/// let kernel = window.kernelShape ?? Array(weightShape.dropFirst(2))
/// print(window.strides, window.pads, window.autoPad)
/// ```
public struct ONNXConvAttributes: Sendable, Equatable {
    /// `kernel_shape`, `nil` when the node does not state it (a convolution's is its weight's).
    public var kernelShape: [Int]?
    /// `strides`, one per spatial axis.
    public var strides: [Int]
    /// `dilations`, one per spatial axis.
    public var dilations: [Int]
    /// `pads` in ONNX's order: the beginnings of every axis, then their ends.
    public var pads: [Int]
    /// `auto_pad`: `NOTSET`, `VALID`, `SAME_UPPER` or `SAME_LOWER`.
    public var autoPad: String
    /// `group`.
    public var group: Int
    /// `output_padding` of a `ConvTranspose`, one per spatial axis.
    public var outputPadding: [Int]
    /// `output_shape` of a `ConvTranspose`, when stated.
    public var outputShape: [Int]?

    /// The attributes of `node` over `n` spatial axes.
    public init(_ node: ONNXNode, spatialAxes n: Int) {
        let n = Swift.max(n, 0)
        kernelShape = node.ints("kernel_shape")
        strides = node.ints("strides") ?? [Int](repeating: 1, count: n)
        dilations = node.ints("dilations") ?? [Int](repeating: 1, count: n)
        pads = node.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
        autoPad = node.string("auto_pad") ?? "NOTSET"
        group = node.int("group") ?? 1
        outputPadding = node.ints("output_padding") ?? [Int](repeating: 0, count: n)
        outputShape = node.ints("output_shape")
    }
}
