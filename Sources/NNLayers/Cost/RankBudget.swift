import Decompositions
import TensorModule

// The layer's own FLOP budget rule (`RankSelection.flopBudget`): the largest ranks whose stack
// keeps at most a fraction of the layer's cost, from the costs of `FactorizedCost.swift`.
// Fractions are of MACs, which are FLOPs halved: the ratios are the same.

extension Conv2D {
    /// The spatial size at which FLOP budgets are evaluated: 64×64, or larger when the dilated kernel needs it.
    var referenceInput: Size2D {
        let h = Swift.max(64, dilation.height * (kernelSize.height - 1) + 1)
        let w = Swift.max(64, dilation.width * (kernelSize.width - 1) + 1)
        return Size2D(h, w)
    }

    /// The largest CP rank whose layers (``LayerStack/init(cp:replacing:)``) need at most
    /// `fraction` of this convolution's FLOPs.
    func cpRank(flopBudget fraction: Double) throws -> (Int, String) {
        guard fraction > 0, fraction <= 1 else {
            throw NNLayersError.invalidBudget(fraction)
        }
        let input = referenceInput
        let original = try formCost(input: input).macs
        // The stack's MACs grow by the same amount with each unit of rank.
        let perRank = try cpCost(rank: 1, input: input).macs
        // Counts are in Double (a huge dilation makes them exceed Int); the rank is capped where CP is exact.
        let bound = maximumCPRank(shape: [outChannels / groups, weight.shape[1], kernelSize.height, kernelSize.width])
        let rank = Swift.max(1, Int(Swift.min(fraction * original / perRank, Double(bound))))
        return (rank, "CP rank \(rank): \(2 * Double(rank) * perRank) of \(2 * original) FLOPs at a \(input.height)×\(input.width) input (budget \(fraction))")
    }

    /// The largest Tucker-2 ranks, proportional to the channel counts, whose layers need at most
    /// `fraction` of this convolution's FLOPs (full ranks folded as the stack folds them).
    func tucker2Ranks(flopBudget fraction: Double) throws -> ([Int], String) {
        guard fraction > 0, fraction <= 1 else {
            throw NNLayersError.invalidBudget(fraction)
        }
        let input = referenceInput
        let (tg, sg, area) = (outChannels / groups, weight.shape[1], kernelSize.height * kernelSize.width)
        let original = try formCost(input: input).macs
        // Proportional to the channel counts, then within what a Tucker-2 core can hold: each
        // mode's rank at most the other's times the kernel area (a 1×3 kernel of 16 outputs and
        // 256 inputs cannot keep 8 times as many input ranks as output ranks).
        func ranks(_ c: Double) -> [Int] {
            var rOut = Swift.max(1, Swift.min(Swift.min(tg, sg * area), Int(c * Double(tg))))
            var rIn = Swift.max(1, Swift.min(Swift.min(sg, tg * area), Int(c * Double(sg))))
            rIn = Swift.min(rIn, rOut * area)
            rOut = Swift.min(rOut, rIn * area)
            return [rOut, rIn]
        }
        var (low, high) = (0.0, 1.0)
        for _ in 0..<60 {
            let middle = (low + high) / 2
            if try tucker2Cost(ranks: ranks(middle), input: input).macs <= fraction * original { low = middle } else { high = middle }
        }
        let chosen = ranks(low)
        let macs = try tucker2Cost(ranks: chosen, input: input).macs
        return (chosen, "Tucker-2 ranks \(chosen): \(2 * macs) of \(2 * original) FLOPs at a \(input.height)×\(input.width) input (budget \(fraction))")
    }

    /// The largest SVD rank t (per group) whose two pointwise layers need at most `fraction` of
    /// this 1×1 convolution's FLOPs at the reference input (both layers run at the output's size).
    func pointwiseSVDRank(flopBudget fraction: Double) throws -> (Int, String) {
        guard fraction > 0, fraction <= 1 else { throw NNLayersError.invalidBudget(fraction) }
        let input = referenceInput
        let original = try formCost(input: input).macs
        let perRank = try svdCost(rank: 1, input: input).macs
        let bound = Swift.min(outChannels / groups, weight.shape[1])
        let rank = Swift.max(1, Swift.min(bound, Int(fraction * original / perRank)))
        return (rank, "SVD rank \(rank): \(2 * Double(rank) * perRank) of \(2 * original) FLOPs (budget \(fraction))")
    }
}

extension Linear {
    /// The largest SVD rank whose two layers need at most `fraction` of this layer's FLOPs:
    /// `t·(in + out) ≤ f · in·out` per input vector.
    func svdRank(flopBudget fraction: Double) throws -> (Int, String) {
        guard fraction > 0, fraction <= 1 else { throw NNLayersError.invalidBudget(fraction) }
        let (m, n) = (Double(outFeatures), Double(inFeatures))
        let perRank = svdCost(rank: 1, rows: 1).macs
        let rank = Swift.max(1, Swift.min(Swift.min(inFeatures, outFeatures), Int(fraction * m * n / perRank)))
        return (rank, "SVD rank \(rank): \(2 * Double(rank) * perRank) of \(2 * m * n) FLOPs (budget \(fraction))")
    }
}
