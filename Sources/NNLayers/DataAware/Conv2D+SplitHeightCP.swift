import Decompositions
import TensorModule

extension Conv2D {
    /// CP of a convolution that stands in for one of higher spatial rank: its kernel height holds
    /// the axes `heights` of the original kernel (a 3-D kernel `[T, S/g, kd, kh, kw]` viewed as
    /// `[T, S/g, kd·kh, kw]`), and the CP is of the kernel with those axes apart, one factor each
    /// (`[T, S/g, kd, kh, kw]`: Lebedev et al.'s stack with one depthwise layer per spatial axis).
    ///
    /// The result is this convolution's CP stack (``LayerStack/init(cp:replacing:)``): its
    /// height factor is the Khatri-Rao product of the axes' factors (the first axis slowest),
    /// so each of its channels is a rank-one `kd × kh` kernel that a writer splits back into one
    /// depthwise layer per axis. With `statistics` (expanded to this convolution's patches, whose
    /// order the split keeps) the factors minimise the output error
    /// (`cpDecompose(_:rank:metric:options:start:)`) and the mean shift is corrected in the bias
    /// when `options.biasCorrection`; without, CP-ALS of the kernel.
    ///
    /// - Parameters:
    ///   - heights: The axes held by the kernel height; their product is the height.
    ///   - selection: A kernel rule on the split kernel (`selectCPRank(for:selection:)`; the
    ///     largest over groups), such as `.fixed([R])`.
    ///   - rankReasons: Why the caller chose the rank (a FLOP budget), reported in place of the
    ///     rule's own reasons.
    ///   - maxIterations: CP-ALS iterations of the data-free decomposition (the data-aware start).
    ///   - seed: CP-ALS's initialization seed.
    /// - Throws: ``NNLayersError/depthwiseNotFactorable(groups:)``, the decompositions' errors for
    ///   impossible ranks.
    package func compressedCP(
        splittingHeight heights: [Int], selection: RankSelection, rankReasons: [String]? = nil, maxIterations: Int, seed: UInt64,
        statistics: ExpandedStatistics?, options: DataAwareOptions
    ) throws -> CompressedLayer<Scalar> {
        precondition(!heights.isEmpty && heights.reduce(1, *) == kernelSize.height, "the split axes \(heights) make up the height \(kernelSize.height)")
        if weight.shape[1] == 1 && groups > 1 { throw NNLayersError.depthwiseNotFactorable(groups: groups) }
        if let statistics {
            precondition(statistics.corrected == options.biasCorrection && statistics.groups.count == groups, "statistics expanded for another setting")
        }
        let (tg, sg) = (outChannels / groups, weight.shape[1])
        let d = sg * kernelSize.height * kernelSize.width
        let kernels = try (0..<groups).map { try groupKernel($0) }
        let split = try kernels.map { try $0.reshaped(to: [tg, sg] + heights + [kernelSize.width]) }
        let choices = try split.map { try selectCPRank(for: $0, selection: selection) }
        let rank = choices.map { $0.ranks[0] }.max()!
        let start = CPOptions<Scalar>(maxIterations: maxIterations, initialization: .svd(seed: seed))
        var (converged, iterations) = (true, 0)
        let factors = try (0..<groups).map { g -> CPTensor<Scalar> in
            let cp: CPTensor<Scalar>
            if let statistics {
                let run = try cpDecompose(split[g], rank: rank, metric: statistics.groups[g].metric, options: options.decomposition, start: start)
                (cp, iterations) = (run.result, Swift.max(iterations, run.iterations))
            } else {
                let run = try cpDecompose(split[g], rank: rank, options: start)
                (cp, converged, iterations) = (run.cp, converged && run.converged, Swift.max(iterations, run.iterations))
            }
            let f = cp.factors
            let height = try khatriRao(Array(f[2..<(2 + heights.count)]))
            return try CPTensor(weights: cp.weights, factors: [f[0], f[1], height, f[f.count - 1]])
        }
        var stack = try LayerStack(cp: factors, replacing: self)
        let how = statistics.map { "output-aware CP on \($0.countDescription) calibration patches" } ?? "CP-ALS"
        var reasons = (rankReasons ?? choices.flatMap(\.reasons)) + ["\(how) of the kernel with its height split into \(heights)"]
        if groups > 1 { reasons.append("rank \(rank): the largest over \(groups) groups") }
        var outputError: Double?
        if let statistics {
            var accumulator = OutputErrorAccumulator()
            var shifts: [Double] = []
            for g in 0..<groups {
                let original = doubleMatrix(Matrix(uncheckedRows: tg, columns: d, scalars: kernels[g].scalars))
                let replacement = doubleMatrix(Matrix(uncheckedRows: tg, columns: d, scalars: try Tensor(factors[g]).scalars))
                accumulator.add(original: original, replacement: replacement, statistics.groups[g])
                shifts += meanShift(original, replacement, statistics.groups[g].mean)
            }
            if options.biasCorrection {
                stack = try stack.replacingLastBias(shifts.enumerated().map { Scalar(Double(bias?[$0.offset] ?? 0) + $0.element) })
            }
            outputError = accumulator.relative
        }
        var result = CompressedLayer(original: .conv2d(self), stack: stack, method: .cp, ranks: [rank],
                                     kernelRelativeError: try groupedError(kernels, factors), reasons: reasons,
                                     converged: converged, iterations: iterations)
        result.outputRelativeError = outputError
        return result
    }
}
