import TensorModule

/// A 2-D convolution with PyTorch's semantics: OIHW weight, optional bias, per-axis stride and
/// dilation, per-side zero padding, and groups.
///
/// ```text
/// y[n, t, i, j] = b[t] + Σ_{s ∈ group(t)} Σ_p Σ_q W[t, s, p, q] · x[n, s, i·s_h + p·d_h − pad_top, j·s_w + q·d_w − pad_left]
/// ```
///
/// with `x` zero outside the input. The output has `H_out = ⌊(H + top + bottom − d_h(k_h − 1) − 1)/s_h⌋ + 1`
/// rows (likewise for columns).
///
/// ```swift
/// let conv = try Conv2D(weight: .randomNormal(shape: [64, 32, 3, 3], seed: 1), bias: nil,
///                       stride: Size2D(2), padding: .symmetric(1))
/// let y = try conv(x)          // x: (N, 32, H, W) → y: (N, 64, ⌈H/2⌉, ⌈W/2⌉)
/// ```
public struct Conv2D<Scalar: BLASScalar>: Sendable, Equatable, Codable {
    /// The kernel, `(out channels, in channels / groups, kh, kw)`.
    public let weight: Tensor<Scalar>
    /// One bias per output channel, or `nil`.
    public let bias: [Scalar]?
    /// The stride per axis.
    public let stride: Size2D
    /// The zero padding per side.
    public let padding: Padding
    /// The dilation per axis.
    public let dilation: Size2D
    /// The number of groups: input and output channels split into `groups` independent blocks.
    public let groups: Int

    /// Creates a convolution, checking every setting.
    ///
    /// - Throws: ``NNLayersError/invalidConfiguration(_:)`` for a weight that is not 4-D or has an
    ///   empty axis, a bias of the wrong length, a stride or dilation below 1, negative padding,
    ///   groups that do not divide the output channels, or non-finite weights.
    public init(
        weight: Tensor<Scalar>, bias: [Scalar]? = nil, stride: Size2D = Size2D(1), padding: Padding = .zero,
        dilation: Size2D = Size2D(1), groups: Int = 1
    ) throws {
        try Self.validate(weightShape: weight.shape, biasCount: bias?.count, stride: stride, padding: padding, dilation: dilation, groups: groups)
        if let index = weight.firstNonFiniteIndex {
            throw NNLayersError.invalidConfiguration("Conv2D: the weight has a non-finite value at flat index \(index)")
        }
        if let bias, let index = bias.firstIndex(where: { !$0.isFinite }) {
            throw NNLayersError.invalidConfiguration("Conv2D: bias \(index) is not finite")
        }
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
    }

    /// Checks convolution settings against a kernel shape, without the weights: the checks of
    /// ``init(weight:bias:stride:padding:dilation:groups:)`` that do not look at values.
    ///
    /// - Throws: ``NNLayersError/invalidConfiguration(_:)`` as the initializer does.
    public static func validate(
        weightShape: [Int], biasCount: Int? = nil, stride: Size2D = Size2D(1), padding: Padding = .zero,
        dilation: Size2D = Size2D(1), groups: Int = 1
    ) throws {
        guard weightShape.count == 4, weightShape.allSatisfy({ $0 > 0 }) else {
            throw NNLayersError.invalidConfiguration("Conv2D: weight shape \(weightShape) must be (out, in/groups, kh, kw) with positive sizes")
        }
        guard groups >= 1, weightShape[0] % groups == 0 else {
            throw NNLayersError.invalidConfiguration("Conv2D: groups \(groups) must be at least 1 and divide the \(weightShape[0]) output channels")
        }
        if let biasCount, biasCount != weightShape[0] {
            throw NNLayersError.invalidConfiguration("Conv2D: \(biasCount) biases for \(weightShape[0]) output channels")
        }
        guard stride.height >= 1, stride.width >= 1, dilation.height >= 1, dilation.width >= 1 else {
            throw NNLayersError.invalidConfiguration("Conv2D: stride \(stride) and dilation \(dilation) must be at least 1")
        }
        guard padding.array.allSatisfy({ $0 >= 0 }) else {
            throw NNLayersError.invalidConfiguration("Conv2D: padding \(padding) must be non-negative")
        }
        // The dilated kernel and the padding must have sizes that an Int holds.
        for (d, k, axis) in [(dilation.height, weightShape[2], "vertical"), (dilation.width, weightShape[3], "horizontal")] {
            let (extent, overflow) = d.multipliedReportingOverflow(by: k - 1)
            guard !overflow, extent < Int.max else {
                throw NNLayersError.invalidConfiguration("Conv2D: the \(axis) dilation \(d) × (kernel \(k) − 1) does not fit in a 64-bit integer")
            }
        }
        for (a, b, axis) in [(padding.top, padding.bottom, "top + bottom"), (padding.left, padding.right, "left + right")]
        where a.addingReportingOverflow(b).overflow {
            throw NNLayersError.invalidConfiguration("Conv2D: the padding \(axis) = \(a) + \(b) does not fit in a 64-bit integer")
        }
    }

    /// A 1×1 convolution from a `(out, in/groups)` matrix.
    public static func pointwise(weight: Matrix<Scalar>, bias: [Scalar]? = nil, stride: Size2D = Size2D(1), groups: Int = 1) throws -> Conv2D {
        try Conv2D(weight: Tensor(weight).reshaped(to: [weight.rows, weight.columns, 1, 1]), bias: bias, stride: stride, groups: groups)
    }

    /// A depthwise convolution (groups = channels) from a `(channels·multiplier, 1, kh, kw)` weight.
    public static func depthwise(
        weight: Tensor<Scalar>, channels: Int, bias: [Scalar]? = nil, stride: Size2D = Size2D(1), padding: Padding = .zero,
        dilation: Size2D = Size2D(1)
    ) throws -> Conv2D {
        guard weight.order == 4, weight.shape[1] == 1 else {
            throw NNLayersError.invalidConfiguration("Conv2D.depthwise: weight shape \(weight.shape) must be (channels·multiplier, 1, kh, kw)")
        }
        return try Conv2D(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: channels)
    }

    /// Output channels `T`.
    public var outChannels: Int { weight.shape[0] }
    /// Input channels `S`.
    public var inChannels: Int { weight.shape[1] * groups }
    /// `(kh, kw)`.
    public var kernelSize: Size2D { Size2D(weight.shape[2], weight.shape[3]) }
    /// Whether every input channel has its own filters (groups = input channels, one input channel per group).
    public var isDepthwise: Bool { groups > 1 && weight.shape[1] == 1 }
    /// Whether the kernel is 1×1 with stride 1 and no padding: one GEMM per group.
    public var isPointwise: Bool { kernelSize == Size2D(1) && stride == Size2D(1) && padding == .zero }

    /// The output size for an input of `height × width`.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the input is smaller than
    ///   the dilated kernel, ``NNLayersError/countOverflow(quantity:factors:)`` when the padded size
    ///   does not fit in `Int`.
    public func outputSize(height: Int, width: Int) throws -> Size2D {
        // The initializer checked that d·(k − 1) and each pair of paddings fit.
        let extentH = dilation.height * (kernelSize.height - 1) + 1
        let extentW = dilation.width * (kernelSize.width - 1) + 1
        let paddedH = try checkedSum(height, padding.top + padding.bottom, "Conv2D: the padded input height")
        let paddedW = try checkedSum(width, padding.left + padding.right, "Conv2D: the padded input width")
        guard height >= 1, width >= 1, paddedH >= extentH, paddedW >= extentW else {
            throw NNLayersError.inputShape(
                layer: "Conv2D", expected: "a spatial size whose padded extent \(paddedH)×\(paddedW) covers the dilated kernel \(extentH)×\(extentW)",
                actual: [height, width])
        }
        return Size2D((paddedH - extentH) / stride.height + 1, (paddedW - extentW) / stride.width + 1)
    }

    /// A one-line description in PyTorch's terms.
    public var summary: String {
        let kind = isDepthwise ? "depthwise" : (kernelSize == Size2D(1) ? "pointwise" : "conv")
        var parts = ["\(kind) \(inChannels)→\(outChannels) \(kernelSize.height)×\(kernelSize.width)"]
        if stride != Size2D(1) { parts.append("stride \(stride)") }
        if padding != .zero { parts.append("pad \(padding)") }
        if dilation != Size2D(1) { parts.append("dilation \(dilation)") }
        if groups > 1 && !isDepthwise { parts.append("groups \(groups)") }
        if bias != nil { parts.append("bias") }
        return parts.joined(separator: " ")
    }
}
