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
    /// - Throws: ``NNLayersError/invalidWeightShape(layer:shape:expected:)`` for a weight that is not
    ///   4-D or has an empty axis, ``NNLayersError/biasCount(layer:count:expected:)``,
    ///   ``NNLayersError/invalidSetting(layer:setting:value:requirement:)`` for a stride or dilation
    ///   below 1, negative padding or groups that do not divide the output channels, and
    ///   ``NNLayersError/nonFinite(layer:tensor:index:)``.
    public init(
        weight: Tensor<Scalar>, bias: [Scalar]? = nil, stride: Size2D = Size2D(1), padding: Padding = .zero,
        dilation: Size2D = Size2D(1), groups: Int = 1
    ) throws {
        try Self.validate(weightShape: weight.shape, biasCount: bias?.count, stride: stride, padding: padding, dilation: dilation, groups: groups)
        if let index = weight.firstNonFiniteIndex {
            throw NNLayersError.nonFinite(layer: "Conv2D", tensor: "weight", index: index)
        }
        if let bias, let index = bias.firstIndex(where: { !$0.isFinite }) {
            throw NNLayersError.nonFinite(layer: "Conv2D", tensor: "bias", index: index)
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
    /// - Throws: the errors of the initializer that do not depend on values.
    public static func validate(
        weightShape: [Int], biasCount: Int? = nil, stride: Size2D = Size2D(1), padding: Padding = .zero,
        dilation: Size2D = Size2D(1), groups: Int = 1
    ) throws {
        guard weightShape.count == 4, weightShape.allSatisfy({ $0 > 0 }) else {
            throw NNLayersError.invalidWeightShape(layer: "Conv2D", shape: weightShape, expected: "(out, in/groups, kh, kw) with positive sizes")
        }
        guard groups >= 1, weightShape[0] % groups == 0 else {
            throw NNLayersError.invalidSetting(layer: "Conv2D", setting: "groups", value: [groups], requirement: .dividesOutputChannels(weightShape[0]))
        }
        if let biasCount, biasCount != weightShape[0] {
            throw NNLayersError.biasCount(layer: "Conv2D", count: biasCount, expected: weightShape[0])
        }
        for (name, value) in [("stride", stride), ("dilation", dilation)] where value.height < 1 || value.width < 1 {
            throw NNLayersError.invalidSetting(layer: "Conv2D", setting: name, value: value.array, requirement: .atLeastOne)
        }
        guard padding.array.allSatisfy({ $0 >= 0 }) else {
            throw NNLayersError.invalidSetting(layer: "Conv2D", setting: "padding", value: padding.array, requirement: .nonNegative)
        }
        // The dilated kernel and the padding must have sizes that an Int holds.
        for (d, k, axis) in [(dilation.height, weightShape[2], "vertical"), (dilation.width, weightShape[3], "horizontal")] {
            let (extent, overflow) = d.multipliedReportingOverflow(by: k - 1)
            guard !overflow, extent < Int.max else {
                throw NNLayersError.countOverflow(quantity: "Conv2D: the \(axis) extent of the dilated kernel", factors: [d, k - 1])
            }
        }
        for (a, b, axis) in [(padding.top, padding.bottom, "top + bottom"), (padding.left, padding.right, "left + right")]
        where a.addingReportingOverflow(b).overflow {
            throw NNLayersError.countOverflow(quantity: "Conv2D: the padding \(axis) (a sum)", factors: [a, b])
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
            throw NNLayersError.invalidWeightShape(layer: "Conv2D.depthwise", shape: weight.shape, expected: "(channels·multiplier, 1, kh, kw)")
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

    /// Parameters: the kernel and the bias.
    public var parameterCount: Int { weight.scalarCount + (bias?.count ?? 0) }

    /// Parameters, FLOPs (2 × multiply-adds, bias additions not counted) and output shape for one
    /// sample of shape `[C, H, W]`.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the shape does not fit,
    ///   ``NNLayersError/countOverflow(quantity:factors:)`` for counts beyond `Int`.
    public func cost(input shape: [Int]) throws -> LayerCost {
        guard shape.count == 3, shape[0] == inChannels else {
            throw NNLayersError.inputShape(layer: "Conv2D \(summary)", expected: "[\(inChannels), H, W]", actual: shape)
        }
        let out = try outputSize(height: shape[1], width: shape[2])
        let flops = try checkedProduct([2, outChannels, weight.shape[1], kernelSize.height, kernelSize.width, out.height, out.width],
                                       "the FLOP count of \(summary) for input \(shape)")
        return LayerCost(parameters: parameterCount, flops: flops, outputShape: [outChannels, out.height, out.width])
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
