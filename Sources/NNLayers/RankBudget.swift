import Decompositions
import TensorModule

extension Conv2D {
    /// The spatial size at which FLOP budgets are evaluated: 64×64, or larger when the dilated kernel needs it.
    var referenceInput: Size2D {
        let h = Swift.max(64, dilation.height * (kernelSize.height - 1) + 1)
        let w = Swift.max(64, dilation.width * (kernelSize.width - 1) + 1)
        return Size2D(h, w)
    }

    /// The largest CP rank whose four layers need at most `fraction` of this convolution's FLOPs.
    func cpRank(flopBudget fraction: Double) throws -> (Int, String) {
        guard fraction > 0, fraction <= 1 else {
            throw NNLayersError.invalidBudget(fraction)
        }
        let input = referenceInput
        let out = try outputSize(height: input.height, width: input.width)
        let (inPixels, outPixels) = (Double(input.height * input.width), Double(out.height * out.width))
        let original = 2 * Double(outChannels * weight.shape[1] * kernelSize.height * kernelSize.width) * outPixels
        // Per unit of rank (R per group, g groups): pointwise S→gR at input size, depthwise kh×1 on
        // H_out × W_in, depthwise 1×kw and pointwise gR→T at output size.
        let g = Double(groups)
        let perRank = 2 * (Double(inChannels) * inPixels + g * Double(kernelSize.height) * Double(out.height * input.width)
                           + g * Double(kernelSize.width) * outPixels + Double(outChannels) * outPixels)
        // Counts are in Double (a huge dilation makes them exceed Int); the rank is capped where CP is exact.
        let bound = maximumCPRank(shape: [outChannels / groups, weight.shape[1], kernelSize.height, kernelSize.width])
        let rank = Swift.max(1, Int(Swift.min(fraction * original / perRank, Double(bound))))
        return (rank, "CP rank \(rank): \(Double(rank) * perRank) of \(original) FLOPs at a \(input.height)×\(input.width) input (budget \(fraction))")
    }

    /// The largest Tucker-2 ranks, proportional to the channel counts, whose three layers need at most
    /// `fraction` of this convolution's FLOPs.
    func tucker2Ranks(flopBudget fraction: Double) throws -> ([Int], String) {
        guard fraction > 0, fraction <= 1 else {
            throw NNLayersError.invalidBudget(fraction)
        }
        let input = referenceInput
        let out = try outputSize(height: input.height, width: input.width)
        let (inPixels, outPixels) = (Double(input.height * input.width), Double(out.height * out.width))
        let (tg, sg, area) = (outChannels / groups, weight.shape[1], kernelSize.height * kernelSize.width)
        let original = 2 * Double(outChannels * sg * area) * outPixels
        func ranks(_ c: Double) -> [Int] {
            [Swift.max(1, Swift.min(Swift.min(tg, sg * area), Int(c * Double(tg)))), Swift.max(1, Swift.min(Swift.min(sg, tg * area), Int(c * Double(sg))))]
        }
        func flops(_ r: [Int]) -> Double {
            let g = Double(groups), (a, b) = (Double(r[0]), Double(r[1]))
            return 2 * (b * Double(inChannels) * inPixels + g * a * b * Double(area) * outPixels + Double(outChannels) * a * outPixels)
        }
        var (low, high) = (0.0, 1.0)
        for _ in 0..<60 {
            let middle = (low + high) / 2
            if flops(ranks(middle)) <= fraction * original { low = middle } else { high = middle }
        }
        let chosen = ranks(low)
        return (chosen, "Tucker-2 ranks \(chosen): \(flops(chosen)) of \(original) FLOPs at a \(input.height)×\(input.width) input (budget \(fraction))")
    }
}

extension Linear {
    /// The largest SVD rank whose two layers need at most `fraction` of this layer's FLOPs:
    /// `2·t·(in + out) ≤ f · 2·in·out`.
    func svdRank(flopBudget fraction: Double) throws -> (Int, String) {
        guard fraction > 0, fraction <= 1 else { throw NNLayersError.invalidBudget(fraction) }
        let (m, n) = (Double(outFeatures), Double(inFeatures))
        let rank = Swift.max(1, Swift.min(Swift.min(inFeatures, outFeatures), Int(fraction * m * n / (m + n))))
        return (rank, "SVD rank \(rank): \(2 * Double(rank) * (m + n)) of \(2 * m * n) FLOPs (budget \(fraction))")
    }
}
