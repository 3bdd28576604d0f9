import Decompositions
import TensorModule

extension Conv2D {
    /// The kernel of group `g`: `(T/groups, S/groups, kh, kw)`.
    ///
    /// - Precondition: `0 <= g < groups`.
    public func groupKernel(_ g: Int) throws -> Tensor<Scalar> {
        precondition(g >= 0 && g < groups, "group \(g) outside 0..<\(groups)")
        let per = outChannels / groups
        let size = per * weight.shape[1] * kernelSize.height * kernelSize.width
        return try Tensor(shape: [per, weight.shape[1], kernelSize.height, kernelSize.width],
                          scalars: weight.scalars[(g * size)..<((g + 1) * size)])
    }

    /// This convolution replaced by a stack of smaller standard layers (or a TT layer).
    ///
    /// Every setting carries over per axis: stride, padding (each side) and dilation go to the
    /// layers that act spatially, the bias to the last layer. Grouped convolutions are decomposed
    /// group by group into grouped layers (ranks: the largest chosen for any group, so that every
    /// group has the same width). Depthwise convolutions (one input channel per group) have no
    /// channel modes to factor and throw.
    ///
    /// ```swift
    /// let cp = try conv.compressed(by: .cp(.fixed([16])))
    /// let y = try cp.stack(x)            // ≈ conv(x)
    /// let t2 = try conv.compressed(by: .tucker2(.vbmf))
    /// ```
    ///
    /// - Throws: ``NNLayersError/depthwiseNotFactorable(groups:)``, ``NNLayersError/groupedTensorTrain(groups:)``,
    ///   ``NNLayersError/channelModes(outputModes:inputModes:outChannels:inChannels:)``, and the
    ///   decompositions' errors for impossible ranks.
    ///
    /// `svdMethod` is the route of the truncated SVD of 1×1 kernels (default automatic).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func compressed(by method: ConvDecomposition, svdMethod: SVDMethod = .automatic) throws -> CompressedLayer<Scalar> {
        if weight.shape[1] == 1 && groups > 1 { throw NNLayersError.depthwiseNotFactorable(groups: groups) }
        let kernels = try (0..<groups).map { try groupKernel($0) }
        switch method {
        case let .cp(.flopBudget(fraction), maxIterations, seed):
            let (rank, reason) = try cpRank(flopBudget: fraction)
            var result = try compressed(by: .cp(.fixed([rank]), maxIterations: maxIterations, seed: seed))
            result.reasons = [reason]
            return result
        case let .tucker2(.flopBudget(fraction)):
            let (ranks, reason) = try tucker2Ranks(flopBudget: fraction)
            var result = try compressed(by: .tucker2(.fixed(ranks)))
            result.reasons = [reason]
            return result
        case let .cp(.kernel(selection), maxIterations, seed):
            let rank = try kernels.map { try selectCPRank(for: $0, selection: selection) }
            let chosen = rank.map { $0.ranks[0] }.max()!
            let options = CPOptions<Scalar>(maxIterations: maxIterations, initialization: .svd(seed: seed))
            let runs = try kernels.map { try cpDecompose($0, rank: chosen, options: options) }
            let factors = runs.map(\.cp)
            let stack = try LayerStack(cp: factors, replacing: self)
            return CompressedLayer(original: .conv2d(self), stack: stack, method: .cp, ranks: [chosen],
                                   kernelRelativeError: try groupedError(kernels, factors),
                                   reasons: rank.flatMap(\.reasons) + (groups > 1 ? ["rank \(chosen): the largest over \(groups) groups"] : []),
                                   converged: runs.allSatisfy(\.converged), iterations: runs.map(\.iterations).max() ?? 0)
        case let .tucker2(.kernel(selection)):
            let choices = try kernels.map { try selectRanks(for: $0, modes: [0, 1], selection: selection) }
            let ranks = [choices.map { $0.ranks[0] }.max()!, choices.map { $0.ranks[1] }.max()!]
            let factors = try kernels.map { try tuckerDecompose($0, ranks: ranks, modes: [0, 1]).tucker }
            let stack = try LayerStack(tucker2: factors, replacing: self)
            return CompressedLayer(original: .conv2d(self), stack: stack, method: .tucker2, ranks: ranks,
                                   kernelRelativeError: try groupedError(kernels, factors),
                                   reasons: choices.flatMap(\.reasons) + (groups > 1 ? ["ranks \(ranks): the largest over \(groups) groups"] : []))
        case let .svd(selection):
            guard kernelSize == Size2D(1) else { throw NNLayersError.svdNeedsPointwise(kernel: kernelSize.array) }
            let matrices = kernels.map { Matrix(uncheckedRows: $0.shape[0], columns: $0.shape[1], scalars: $0.scalars) }
            let choices: [RankChoice]
            switch selection {
            case let .flopBudget(fraction):
                let (rank, reason) = try pointwiseSVDRank(flopBudget: fraction)
                choices = [RankChoice(ranks: [rank], reasons: [reason])]
            case let .kernel(rule):
                choices = try matrices.map { try selectRanks(for: Tensor($0), modes: [0], selection: rule) }
            }
            let rank = choices.map { $0.ranks[0] }.max()!
            let factors = try matrices.map { try svd($0, rank: rank, method: svdMethod) }
            let stack = try LayerStack(svd: factors, replacing: self)
            return CompressedLayer(original: .conv2d(self), stack: stack, method: .svd, ranks: [rank],
                                   kernelRelativeError: try groupedError(matrices.map { Tensor($0) }, factors),
                                   reasons: choices.flatMap(\.reasons) + (groups > 1 ? ["rank \(rank): the largest over \(groups) groups"] : []))
        case let .tensorTrain(outputModes, inputModes, maxRank, tolerance):
            guard groups == 1 else { throw NNLayersError.groupedTensorTrain(groups: groups) }
            let outModes = outputModes ?? balancedFactorization(outChannels, count: 3)
            let inModes = inputModes ?? balancedFactorization(inChannels, count: outModes.count)
            guard outModes.count == inModes.count, outModes.reduce(1, *) == outChannels, inModes.reduce(1, *) == inChannels,
                  (outModes + inModes).allSatisfy({ $0 >= 1 }) else {
                throw NNLayersError.channelModes(outputModes: outModes, inputModes: inModes, outChannels: outChannels, inChannels: inChannels)
            }
            let d = outModes.count
            let spatialSize = kernelSize.height * kernelSize.width
            let reshaped = try weight.reshaped(to: outModes + inModes + [spatialSize])
                .transposed(permutation: [2 * d] + (0..<d).flatMap { [$0, d + $0] })
                .reshaped(to: [spatialSize] + zip(outModes, inModes).map { $0 * $1 })
            let tt: TTTensor<Scalar>
            if let tolerance { tt = try ttDecompose(reshaped, tolerance: tolerance, maxRank: maxRank) }
            else { tt = try ttDecompose(reshaped, maxRank: maxRank ?? Int.max) }
            let layer = try TTConv2D(cores: tt.cores, kernelSize: kernelSize, outputModes: outModes, inputModes: inModes,
                                     stride: stride, padding: padding, dilation: dilation, bias: bias)
            return CompressedLayer(original: .conv2d(self), stack: LayerStack([.ttConv2d(layer)]), method: .tensorTrain,
                                   ranks: tt.ranks, kernelRelativeError: Double(try tt.relativeError(to: reshaped)),
                                   reasons: ["TT-SVD of the kernel reshaped to \(reshaped.shape), output modes \(outModes), input modes \(inModes)"
                                             + (tolerance.map { ", tolerance \($0)" } ?? "") + (maxRank.map { ", max rank \($0)" } ?? "")])
        }
    }

    /// `‖W − Ŵ‖ / ‖W‖` over all groups.
    func groupedError<F: FactorizedTensor>(_ kernels: [Tensor<Scalar>], _ factors: [F]) throws -> Double where F.Scalar == Scalar {
        // One power of two for all groups keeps the sums of squares in range for any finite kernel.
        let exponent = kernels.compactMap(\.rangeExponent).max() ?? 0
        var difference = 0.0, norm = 0.0
        for (kernel, factor) in zip(kernels, factors) {
            let x = kernel.scaled(byPowerOfTwo: -exponent)
            let d = Double((try Tensor(factor).scaled(byPowerOfTwo: -exponent) - x).frobeniusNorm)
            let n = Double(x.frobeniusNorm)
            difference += d * d
            norm += n * n
        }
        return norm == 0 ? 0 : (difference / norm).squareRoot()
    }
}
