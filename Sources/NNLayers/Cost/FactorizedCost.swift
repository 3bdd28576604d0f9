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

extension Conv2D {
    /// The output's pixel count at an input of `input` pixels (height × width).
    func outputPixels(_ input: Size2D) throws -> Double {
        let out = try outputSize(height: input.height, width: input.width)
        return Double(out.height) * Double(out.width)
    }

    /// The convolution's own cost at an input of `input` pixels: `T · (S/g) · kh · kw` MACs per output pixel.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the padded input does not cover the dilated kernel.
    public func formCost(input: Size2D) throws -> FormCost {
        let perPixel = Double(outChannels) * Double(weight.shape[1]) * Double(kernelSize.height * kernelSize.width)
        return FormCost(macs: perPixel * (try outputPixels(input)), parameters: Double(parameterCount))
    }

    /// The SVD stack's cost of a 1×1 convolution at rank `k` per group
    /// (`LayerStack(svd:replacing:)`): pointwise `S → g·k` (groups g, the
    /// stride and padding on it) and `g·k → T` (groups g), both at the output's pixels.
    public func svdCost(rank k: Int, input: Size2D) throws -> FormCost {
        let width = Double(inChannels + outChannels)
        return FormCost(macs: (try outputPixels(input)) * Double(k) * width,
                        parameters: Double(k) * width + Double(bias?.count ?? 0))
    }

    /// The Tucker-2 stack's cost at ranks `[R_out, R_in]` per group
    /// (`LayerStack(tucker2:replacing:)`): pointwise `S → g·R_in` at the input's pixels, the
    /// `kh×kw` core `g·R_in → g·R_out` and pointwise `g·R_out → T` at the output's; a full output
    /// rank folds the last layer into the core, else a full input rank folds the first.
    public func tucker2Cost(ranks: [Int], input: Size2D) throws -> FormCost {
        precondition(ranks.count == 2, "Tucker-2 has two ranks, [R_out, R_in]")
        let (tg, sg, area) = (outChannels / groups, weight.shape[1], Double(kernelSize.height * kernelSize.width))
        let (rOut, rIn) = (ranks[0], ranks[1])
        let foldOutput = rOut == tg, foldInput = rIn == sg && !foldOutput
        let first = foldInput ? 0 : Double(rIn) * Double(inChannels)
        let core = Double(groups) * Double(rOut) * Double(foldInput ? sg : rIn) * area
        let last = foldOutput ? 0 : Double(outChannels) * Double(rOut)
        let (pIn, pOut) = (Double(input.height) * Double(input.width), try outputPixels(input))
        return FormCost(macs: pIn * first + pOut * (core + last), parameters: first + core + last + Double(bias?.count ?? 0))
    }

    /// The CP stack's cost at rank `R` per group (`LayerStack(cp:replacing:)`): pointwise
    /// `S → g·R` at the input's pixels, depthwise `kh×1` at the output's height and the input's
    /// width, depthwise `1×kw` and pointwise `g·R → T` at the output's pixels.
    public func cpCost(rank: Int, input: Size2D) throws -> FormCost {
        let out = try outputSize(height: input.height, width: input.width)
        let width = Double(groups * rank)
        let (kh, kw) = (Double(kernelSize.height), Double(kernelSize.width))
        let pIn = Double(input.height) * Double(input.width), pOut = Double(out.height) * Double(out.width)
        let macs = Double(rank) * Double(inChannels) * pIn + width * kh * Double(out.height) * Double(input.width)
            + width * kw * pOut + Double(outChannels) * Double(rank) * pOut
        let parameters = Double(rank) * Double(inChannels) + width * (kh + kw) + Double(outChannels) * Double(rank) + Double(bias?.count ?? 0)
        return FormCost(macs: macs, parameters: parameters)
    }
}
