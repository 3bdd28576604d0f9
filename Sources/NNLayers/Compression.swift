import Decompositions
import TensorModule

/// How to decompose a convolution.
public enum ConvDecomposition: Sendable, Equatable {
    /// CP of the kernel (Lebedev et al. 2015, arXiv:1412.6553) → pointwise S→R, depthwise kh×1,
    /// depthwise 1×kw, pointwise R→T. The rank comes from `selectCPRank(for:selection:)`.
    case cp(RankSelection, maxIterations: Int = 100, seed: UInt64 = 0)
    /// Tucker-2 of the channel modes (Kim et al. 2016, arXiv:1511.06530) → pointwise S→R_in,
    /// kh×kw conv R_in→R_out, pointwise R_out→T. Ranks `[R_out, R_in]` come from
    /// `selectRanks(for:modes:selection:)` on modes 0 and 1.
    case tucker2(RankSelection)
    /// TT-SVD of the kernel reshaped to `(kh·kw, t_1 s_1, …, t_d s_d)` (Garipov et al. 2016,
    /// arXiv:1611.03214) → a ``TTConv2D``. Channel factorizations default to three balanced factors;
    /// with neither `maxRank` nor `tolerance` the decomposition is exact.
    case tensorTrain(outputModes: [Int]? = nil, inputModes: [Int]? = nil, maxRank: Int? = nil, tolerance: Double? = nil)
}

/// How to decompose a fully connected layer.
public enum LinearDecomposition: Sendable, Equatable {
    /// Truncated SVD `W ≈ U_t Σ_t V_tᵀ` → Linear(in → t, `Σ_t V_tᵀ`, no bias), Linear(t → out, `U_t`, bias).
    /// The rank comes from `selectRanks(for:modes:selection:)` on the matrix.
    case svd(RankSelection)
    /// A TT-matrix weight (Novikov et al. 2015, arXiv:1509.06569) → a ``TTLinear``.
    case tensorTrain(outputModes: [Int]? = nil, inputModes: [Int]? = nil, maxRank: Int? = nil, tolerance: Double? = nil)
}

/// Parameters and FLOPs of a layer and of the stack that replaces it, for one input sample.
public struct CompressionReport: Sendable, Equatable, Codable {
    /// Parameters of the original layer.
    public var originalParameters: Int
    /// Parameters of the replacement stack.
    public var parameters: Int
    /// FLOPs of the original layer for one sample.
    public var originalFLOPs: Int
    /// FLOPs of the replacement stack for one sample.
    public var flops: Int

    /// A report from its counts.
    public init(originalParameters: Int, parameters: Int, originalFLOPs: Int, flops: Int) {
        (self.originalParameters, self.parameters, self.originalFLOPs, self.flops) = (originalParameters, parameters, originalFLOPs, flops)
    }

    /// `originalParameters / parameters`.
    public var compression: Double { Double(originalParameters) / Double(Swift.max(parameters, 1)) }
    /// `originalFLOPs / flops`: the speed-up the FLOP counts predict.
    public var predictedSpeedup: Double { Double(originalFLOPs) / Double(Swift.max(flops, 1)) }
}

/// A layer replaced by a stack of smaller layers, with how it was chosen.
public struct CompressedLayer<Scalar: BLASScalar>: Sendable {
    /// The layer that was decomposed.
    public var original: Layer<Scalar>
    /// The layers that replace it.
    public var stack: LayerStack<Scalar>
    /// `"svd"`, `"cp"`, `"tucker2"` or `"tt"`.
    public var method: String
    /// The ranks used.
    public var ranks: [Int]
    /// `‖W − Ŵ‖_F / ‖W‖_F` of the kernel.
    public var kernelRelativeError: Double
    /// Why the ranks were chosen.
    public var reasons: [String]

    /// A compressed layer from its parts.
    public init(original: Layer<Scalar>, stack: LayerStack<Scalar>, method: String, ranks: [Int], kernelRelativeError: Double, reasons: [String]) {
        self.original = original
        self.stack = stack
        self.method = method
        self.ranks = ranks
        self.kernelRelativeError = kernelRelativeError
        self.reasons = reasons
    }

    /// Parameters and FLOPs before and after, for one sample of the given shape.
    public func report(input shape: [Int]) throws -> CompressionReport {
        let before = try original.cost(input: shape)
        let after = try stack.cost(input: shape)
        return CompressionReport(originalParameters: before.parameters, parameters: after.parameters,
                                 originalFLOPs: before.flops, flops: after.flops)
    }

    /// A one-line description: method, ranks, error and the stack.
    public var summary: String {
        "\(method) ranks \(ranks): \(stack.summary) "
            + "(\(stack.parameterCount) parameters vs \(original.parameterCount), kernel error \(kernelRelativeError))"
    }
}

/// `n` split into `count` factors as equal as possible (prime factors, largest first, each to the
/// smallest bucket); factors of 1 pad when `n` has fewer prime factors. Sorted ascending.
public func balancedFactorization(_ n: Int, count: Int) -> [Int] {
    precondition(n >= 1 && count >= 1, "balancedFactorization(\(n), count: \(count)) needs positive arguments")
    var primes: [Int] = []
    var rest = n, p = 2
    while p * p <= rest {
        while rest % p == 0 { primes.append(p); rest /= p }
        p += 1
    }
    if rest > 1 { primes.append(rest) }
    var buckets = [Int](repeating: 1, count: count)
    for prime in primes.sorted(by: >) {
        let smallest = buckets.indices.min { buckets[$0] < buckets[$1] }!
        buckets[smallest] *= prime
    }
    return buckets.sorted()
}

extension Conv2D {
    /// The kernel of group `g`: `(T/groups, S/groups, kh, kw)`.
    func groupKernel(_ g: Int) throws -> Tensor<Scalar> {
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
    /// - Throws: ``NNLayersError/unsupported(_:)`` for depthwise sources and grouped TT, and the
    ///   decompositions' errors for impossible ranks.
    public func compressed(by method: ConvDecomposition) throws -> CompressedLayer<Scalar> {
        if weight.shape[1] == 1 && groups > 1 {
            throw NNLayersError.unsupported(
                "Conv2D: a depthwise convolution (groups = \(groups), one input channel per group) has no channel modes to factor; "
                + "CP, Tucker-2 and TT need at least two input channels per group")
        }
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
        case let .cp(selection, maxIterations, seed):
            let rank = try kernels.map { try selectCPRank(for: $0, selection: selection) }
            let chosen = rank.map { $0.ranks[0] }.max()!
            let options = CPOptions<Scalar>(maxIterations: maxIterations, initialization: .svd(seed: seed))
            let factors = try kernels.map { try cpDecompose($0, rank: chosen, options: options).cp }
            let stack = try LayerStack(cp: factors, replacing: self)
            return CompressedLayer(original: .conv2d(self), stack: stack, method: "cp", ranks: [chosen],
                                   kernelRelativeError: try groupedError(kernels, factors),
                                   reasons: rank.flatMap(\.reasons) + (groups > 1 ? ["rank \(chosen): the largest over \(groups) groups"] : []))
        case let .tucker2(selection):
            let choices = try kernels.map { try selectRanks(for: $0, modes: [0, 1], selection: selection) }
            let ranks = [choices.map { $0.ranks[0] }.max()!, choices.map { $0.ranks[1] }.max()!]
            let factors = try kernels.map { try tuckerDecompose($0, ranks: ranks, modes: [0, 1]).tucker }
            let stack = try LayerStack(tucker2: factors, replacing: self)
            return CompressedLayer(original: .conv2d(self), stack: stack, method: "tucker2", ranks: ranks,
                                   kernelRelativeError: try groupedError(kernels, factors),
                                   reasons: choices.flatMap(\.reasons) + (groups > 1 ? ["ranks \(ranks): the largest over \(groups) groups"] : []))
        case let .tensorTrain(outputModes, inputModes, maxRank, tolerance):
            guard groups == 1 else {
                throw NNLayersError.unsupported("Conv2D: TT decomposition of grouped convolutions (groups = \(groups)) is not supported; use CP or Tucker-2")
            }
            let outModes = outputModes ?? balancedFactorization(outChannels, count: 3)
            let inModes = inputModes ?? balancedFactorization(inChannels, count: outModes.count)
            guard outModes.count == inModes.count, outModes.reduce(1, *) == outChannels, inModes.reduce(1, *) == inChannels,
                  (outModes + inModes).allSatisfy({ $0 >= 1 }) else {
                throw NNLayersError.invalidConfiguration(
                    "Conv2D TT: output modes \(outModes) must multiply to \(outChannels) and input modes \(inModes) to \(inChannels), with equal counts")
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
            return CompressedLayer(original: .conv2d(self), stack: LayerStack([.ttConv2d(layer)]), method: "tt",
                                   ranks: tt.ranks, kernelRelativeError: Double(try tt.relativeError(to: reshaped)),
                                   reasons: ["TT-SVD of the kernel reshaped to \(reshaped.shape), output modes \(outModes), input modes \(inModes)"
                                             + (tolerance.map { ", tolerance \($0)" } ?? "") + (maxRank.map { ", max rank \($0)" } ?? "")])
        }
    }

    /// The spatial size at which FLOP budgets are evaluated: 64×64, or larger when the dilated kernel needs it.
    var referenceInput: Size2D {
        let h = Swift.max(64, dilation.height * (kernelSize.height - 1) + 1)
        let w = Swift.max(64, dilation.width * (kernelSize.width - 1) + 1)
        return Size2D(h, w)
    }

    /// The largest CP rank whose four layers need at most `fraction` of this convolution's FLOPs.
    func cpRank(flopBudget fraction: Double) throws -> (Int, String) {
        guard fraction > 0, fraction <= 1 else {
            throw NNLayersError.invalidConfiguration("FLOP budget \(fraction) must be in (0, 1]")
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
            throw NNLayersError.invalidConfiguration("FLOP budget \(fraction) must be in (0, 1]")
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

extension Linear {
    /// This layer replaced by two smaller linear layers (SVD) or a TT layer.
    ///
    /// ```swift
    /// let svd = try fc.compressed(by: .svd(.fixed([64])))
    /// let y = try svd.stack(x)          // ≈ fc(x)
    /// ```
    ///
    /// - Throws: the decompositions' errors for impossible ranks or modes.
    public func compressed(by method: LinearDecomposition) throws -> CompressedLayer<Scalar> {
        switch method {
        case let .svd(selection):
            var choice: RankChoice
            if case let .flopBudget(fraction) = selection {
                guard fraction > 0, fraction <= 1 else { throw NNLayersError.invalidConfiguration("FLOP budget \(fraction) must be in (0, 1]") }
                // FLOPs of the two layers: 2·t·(in + out) against 2·in·out.
                let rank = Swift.max(1, Swift.min(Swift.min(inFeatures, outFeatures), Int(fraction * Double(inFeatures * outFeatures) / Double(inFeatures + outFeatures))))
                choice = RankChoice(ranks: [rank], reasons: ["SVD rank \(rank): \(2 * rank * (inFeatures + outFeatures)) of \(2 * inFeatures * outFeatures) FLOPs (budget \(fraction))"])
            } else {
                choice = try selectRanks(for: Tensor(weight), modes: [0], selection: selection)
            }
            let f = try svd(weight, rank: choice.ranks[0])
            let stack = try LayerStack(svd: f, replacing: self)
            return CompressedLayer(original: .linear(self), stack: stack, method: "svd", ranks: choice.ranks,
                                   kernelRelativeError: Double(try f.relativeError(to: Tensor(weight))), reasons: choice.reasons)
        case let .tensorTrain(outputModes, inputModes, maxRank, tolerance):
            let outModes = outputModes ?? balancedFactorization(outFeatures, count: 3)
            let inModes = inputModes ?? balancedFactorization(inFeatures, count: outModes.count)
            let tt = try ttMatrixDecompose(weight, rowModes: outModes, columnModes: inModes, maxRank: maxRank, tolerance: tolerance)
            let layer = try TTLinear(weight: tt, bias: bias)
            return CompressedLayer(original: .linear(self), stack: LayerStack([.ttLinear(layer)]), method: "tt", ranks: tt.ranks,
                                   kernelRelativeError: Double(try tt.relativeError(to: Tensor(weight))),
                                   reasons: ["TT-matrix with output modes \(outModes), input modes \(inModes)"
                                             + (tolerance.map { ", tolerance \($0)" } ?? "") + (maxRank.map { ", max rank \($0)" } ?? "")])
        }
    }
}

extension LayerStack {
    /// The CP stack of Lebedev et al. for `conv`, from one CP tensor per group (each `(T/g, S/g, kh, kw)`, same rank):
    /// pointwise `S → g·R` (groups g), depthwise `kh×1` with the vertical stride, top/bottom padding
    /// and dilation, depthwise `1×kw` with the horizontal ones, pointwise `g·R → T` (groups g) with
    /// the weights `λ` folded in and the original bias.
    ///
    /// - Throws: ``NNLayersError/invalidConfiguration(_:)`` when the factors do not fit the convolution.
    public init(cp factors: [CPTensor<Scalar>], replacing conv: Conv2D<Scalar>) throws {
        let g = conv.groups
        let (tg, sg, kh, kw) = (conv.outChannels / g, conv.weight.shape[1], conv.kernelSize.height, conv.kernelSize.width)
        guard factors.count == g, let rank = factors.first?.rank, factors.allSatisfy({ $0.rank == rank && $0.shape == [tg, sg, kh, kw] }) else {
            throw NNLayersError.invalidConfiguration("LayerStack(cp:): \(factors.count) CP tensors of shapes \(factors.map(\.shape)) do not fit \(g) groups of [\(tg), \(sg), \(kh), \(kw)]")
        }
        var first = [Scalar](), vertical = [Scalar](), horizontal = [Scalar](), last = [Scalar](repeating: 0, count: conv.outChannels * rank)
        for (group, cp) in factors.enumerated() {
            let (aT, aS, aH, aW) = (cp.factors[0], cp.factors[1], cp.factors[2], cp.factors[3])
            for r in 0..<rank {
                first += (0..<sg).map { aS[$0, r] }
                vertical += (0..<kh).map { aH[$0, r] }
                horizontal += (0..<kw).map { aW[$0, r] }
            }
            for t in 0..<tg { for r in 0..<rank { last[(group * tg + t) * rank + r] = cp.weights[r] * aT[t, r] } }
        }
        let width = g * rank
        layers = [
            .conv2d(try Conv2D(weight: Tensor(shape: [width, sg, 1, 1], scalars: first), groups: g)),
            .conv2d(try Conv2D.depthwise(
                weight: Tensor(shape: [width, 1, kh, 1], scalars: vertical), channels: width, stride: Size2D(conv.stride.height, 1),
                padding: Padding(top: conv.padding.top, bottom: conv.padding.bottom, left: 0, right: 0), dilation: Size2D(conv.dilation.height, 1))),
            .conv2d(try Conv2D.depthwise(
                weight: Tensor(shape: [width, 1, 1, kw], scalars: horizontal), channels: width, stride: Size2D(1, conv.stride.width),
                padding: Padding(top: 0, bottom: 0, left: conv.padding.left, right: conv.padding.right), dilation: Size2D(1, conv.dilation.width))),
            .conv2d(try Conv2D(weight: Tensor(shape: [conv.outChannels, rank, 1, 1], scalars: last), bias: conv.bias, groups: g)),
        ]
    }

    /// The Tucker-2 stack of Kim et al. for `conv`, from one Tucker tensor per group over modes
    /// `[0, 1]` (core `(R_out, R_in, kh, kw)`, factors `U_T`, `U_S`): pointwise `S → g·R_in`
    /// (groups g), a `kh×kw` conv `g·R_in → g·R_out` (groups g) with the original stride, padding and
    /// dilation, pointwise `g·R_out → T` (groups g) with the bias.
    ///
    /// - Throws: ``NNLayersError/invalidConfiguration(_:)`` when the factors do not fit the convolution.
    public init(tucker2 factors: [TuckerTensor<Scalar>], replacing conv: Conv2D<Scalar>) throws {
        let g = conv.groups
        let (tg, sg, kh, kw) = (conv.outChannels / g, conv.weight.shape[1], conv.kernelSize.height, conv.kernelSize.width)
        guard factors.count == g, let ranks = factors.first?.ranks,
              factors.allSatisfy({ $0.modes == [0, 1] && $0.ranks == ranks && $0.shape == [tg, sg, kh, kw] }) else {
            throw NNLayersError.invalidConfiguration("LayerStack(tucker2:): the Tucker tensors do not fit \(g) groups of [\(tg), \(sg), \(kh), \(kw)] over modes [0, 1]")
        }
        let (rOut, rIn) = (ranks[0], ranks[1])
        var first = [Scalar](), core = [Scalar](), last = [Scalar](repeating: 0, count: conv.outChannels * rOut)
        for (group, t) in factors.enumerated() {
            let (uT, uS) = (t.factors[0], t.factors[1])
            for b in 0..<rIn { first += (0..<sg).map { uS[$0, b] } }
            core += t.core.scalars
            for row in 0..<tg { for a in 0..<rOut { last[(group * tg + row) * rOut + a] = uT[row, a] } }
        }
        layers = [
            .conv2d(try Conv2D(weight: Tensor(shape: [g * rIn, sg, 1, 1], scalars: first), groups: g)),
            .conv2d(try Conv2D(weight: Tensor(shape: [g * rOut, rIn, kh, kw], scalars: core), stride: conv.stride,
                               padding: conv.padding, dilation: conv.dilation, groups: g)),
            .conv2d(try Conv2D(weight: Tensor(shape: [conv.outChannels, rOut, 1, 1], scalars: last), bias: conv.bias, groups: g)),
        ]
    }

    /// The SVD stack for a linear layer: Linear(in → t, `Σ_t V_tᵀ`, no bias), then Linear(t → out, `U_t`, original bias).
    public init(svd f: SVDFactors<Scalar>, replacing linear: Linear<Scalar>) throws {
        guard f.shape == linear.weight.shape else {
            throw NNLayersError.invalidConfiguration("LayerStack(svd:): factors of shape \(f.shape) for a weight of shape \(linear.weight.shape)")
        }
        layers = [
            .linear(try Linear(weight: f.vt.scalingRows(by: f.singularValues))),
            .linear(try Linear(weight: f.u, bias: linear.bias)),
        ]
    }
}
