import TensorModule

/// Multiply-adds and parameters of one form of a layer (the layer itself or one of its
/// factorized stacks) for one input sample: the one cost model that rank rules, budget
/// allocations and reports share.
///
/// Counts are `Double` so that rank grids over large layers never overflow; every count of a
/// real network is an integer below 2⁵³ and therefore exact. ``macs`` counts multiply-adds
/// (``LayerCost/flops`` is twice that); bias additions are not counted. Each form's count is
/// the cost of the stack its `LayerStack` initializer builds, full ranks folded where the
/// initializer folds them (the tests compare both).
///
/// ```swift
/// let cost = try conv.tucker2Cost(ranks: [32, 16], input: Size2D(56, 56))
/// print(cost.macs / (try conv.formCost(input: Size2D(56, 56))).macs)   // the fraction of the MACs kept
/// ```
public struct FormCost: Sendable, Equatable {
    /// Multiply-adds for one sample.
    public var macs: Double
    /// Scalars in the weights and biases.
    public var parameters: Double

    /// A cost from its parts.
    public init(macs: Double, parameters: Double) {
        self.macs = macs
        self.parameters = parameters
    }

    /// The cost of `samples` samples: MACs scaled, parameters unchanged.
    public func times(_ samples: Int) -> FormCost { FormCost(macs: macs * Double(samples), parameters: parameters) }
}

extension Linear {
    /// The layer's own cost for `rows` input vectors: `rows · in · out` MACs.
    public func formCost(rows: Int) -> FormCost {
        FormCost(macs: Double(rows) * Double(inFeatures) * Double(outFeatures), parameters: Double(parameterCount))
    }

    /// The SVD stack's cost at rank `k` for `rows` input vectors (`LayerStack(svd:replacing:)`):
    /// `in → k` then `k → out` with the bias, `rows · k · (in + out)` MACs.
    public func svdCost(rank k: Int, rows: Int) -> FormCost {
        let width = Double(inFeatures + outFeatures)
        return FormCost(macs: Double(rows) * Double(k) * width, parameters: Double(k) * width + Double(bias?.count ?? 0))
    }
}

/// Where the layers of a convolution's factorized stacks run, in positions per sample (pixels of
/// a 2-D convolution, voxels of a 3-D one): the first pointwise layer at ``input``, the spatial
/// layer's kernel taps at ``core``, the last pointwise layer at ``output``.
///
/// A convolution's spatial layer runs at its output's positions (`Conv2D.positions(input:)`); a
/// transposed convolution's scatters its kernel from each of its input's positions, so its
/// `core` is its input's count.
public struct ConvPositions: Sendable, Equatable, Hashable {
    /// Positions of the input, where the first pointwise layer runs.
    public var input: Double
    /// Positions at which each output channel's kernel taps are counted.
    public var core: Double
    /// Positions of the output, where the last pointwise layer runs.
    public var output: Double

    /// Positions from their counts.
    public init(input: Double, core: Double, output: Double) {
        (self.input, self.core, self.output) = (input, core, output)
    }
}

extension Conv2D {
    /// The output's pixel count at an input of `input` pixels (height × width).
    func outputPixels(_ input: Size2D) throws -> Double {
        let out = try outputSize(height: input.height, width: input.width)
        return Double(out.height) * Double(out.width)
    }

    /// The positions of this convolution's stacks at an input of `input` pixels: the input's
    /// pixels, then the output's for the spatial and the last layer.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the padded input does not cover the dilated kernel.
    public func positions(input: Size2D) throws -> ConvPositions {
        let out = try outputPixels(input)
        return ConvPositions(input: Double(input.height) * Double(input.width), core: out, output: out)
    }

    /// The convolution's own cost at an input of `input` pixels: `T · (S/g) · kh · kw` MACs per output pixel.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the padded input does not cover the dilated kernel.
    public func formCost(input: Size2D) throws -> FormCost { formCost(positions: try positions(input: input)) }

    /// The convolution's own cost at `positions`: `T · (S/g) · kh · kw` MACs per core position.
    public func formCost(positions: ConvPositions) -> FormCost {
        let perPosition = Double(outChannels) * Double(weight.shape[1]) * Double(kernelSize.height * kernelSize.width)
        return FormCost(macs: perPosition * positions.core, parameters: Double(parameterCount))
    }

    /// The SVD stack's cost of a 1×1 convolution at rank `k` per group
    /// (`LayerStack(svd:replacing:)`): pointwise `S → g·k` (groups g, the
    /// stride and padding on it) and `g·k → T` (groups g), both at the output's pixels.
    public func svdCost(rank k: Int, input: Size2D) throws -> FormCost { svdCost(rank: k, positions: try positions(input: input)) }

    /// The SVD stack's cost of a 1×1 convolution at rank `k` per group at `positions`: both
    /// layers at the core positions (a convolution's stride is on the first layer; a transposed
    /// one's on the second, which scatters from the input's positions).
    public func svdCost(rank k: Int, positions: ConvPositions) -> FormCost {
        let width = Double(inChannels + outChannels)
        return FormCost(macs: positions.core * Double(k) * width, parameters: Double(k) * width + Double(bias?.count ?? 0))
    }

    /// The Tucker-2 stack's cost at ranks `[R_out, R_in]` per group
    /// (`LayerStack(tucker2:replacing:)`): pointwise `S → g·R_in` at the input's pixels, the
    /// `kh×kw` core `g·R_in → g·R_out` and pointwise `g·R_out → T` at the output's; a full output
    /// rank folds the last layer into the core, else a full input rank folds the first.
    public func tucker2Cost(ranks: [Int], input: Size2D) throws -> FormCost { tucker2Cost(ranks: ranks, positions: try positions(input: input)) }

    /// The Tucker-2 stack's cost at ranks `[R_out, R_in]` per group at `positions`: the first
    /// pointwise layer at the input's, the core at the core's, the last at the output's.
    public func tucker2Cost(ranks: [Int], positions: ConvPositions) -> FormCost {
        precondition(ranks.count == 2, "Tucker-2 has two ranks, [R_out, R_in]")
        let (tg, sg, area) = (outChannels / groups, weight.shape[1], Double(kernelSize.height * kernelSize.width))
        let (rOut, rIn) = (ranks[0], ranks[1])
        let foldOutput = rOut == tg, foldInput = rIn == sg && !foldOutput
        let first = foldInput ? 0 : Double(rIn) * Double(inChannels)
        let core = Double(groups) * Double(rOut) * Double(foldInput ? sg : rIn) * area
        let last = foldOutput ? 0 : Double(outChannels) * Double(rOut)
        return FormCost(macs: positions.input * first + positions.core * core + positions.output * last,
                        parameters: first + core + last + Double(bias?.count ?? 0))
    }

    /// The CP stack's cost at rank `R` per group (`LayerStack(cp:replacing:)`): pointwise
    /// `S → g·R` at the input's pixels, depthwise `kh×1` at the output's height and the input's
    /// width, depthwise `1×kw` and pointwise `g·R → T` at the output's pixels; a depthwise layer
    /// that does not act (``cpActsVertically``, ``cpActsHorizontally``) is left out.
    public func cpCost(rank: Int, input: Size2D) throws -> FormCost {
        let out = try outputSize(height: input.height, width: input.width)
        let width = Double(groups * rank)
        let (kh, kw) = (cpActsVertically ? Double(kernelSize.height) : 0, cpActsHorizontally ? Double(kernelSize.width) : 0)
        let pIn = Double(input.height) * Double(input.width), pOut = Double(out.height) * Double(out.width)
        let macs = Double(rank) * Double(inChannels) * pIn + width * kh * Double(out.height) * Double(input.width)
            + width * kw * pOut + Double(outChannels) * Double(rank) * pOut
        let parameters = Double(rank) * Double(inChannels) + width * (kh + kw) + Double(outChannels) * Double(rank) + Double(bias?.count ?? 0)
        return FormCost(macs: macs, parameters: parameters)
    }

    /// Whether the CP stack has a depthwise `kh×1` layer: not when the kernel height is 1 with
    /// vertical stride 1 and no top or bottom padding (a per-channel scale, folded).
    public var cpActsVertically: Bool { kernelSize.height != 1 || stride.height != 1 || padding.top != 0 || padding.bottom != 0 }

    /// Whether the CP stack has a depthwise `1×kw` layer: not when the kernel width is 1 with
    /// horizontal stride 1 and no left or right padding (a per-channel scale, folded).
    public var cpActsHorizontally: Bool { kernelSize.width != 1 || stride.width != 1 || padding.left != 0 || padding.right != 0 }
}
