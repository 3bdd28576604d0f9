import Decompositions
import TensorModule

extension Conv2D {
    /// This convolution replaced by a stack whose factors minimise the output error on
    /// calibration patches (``InputStatistics`` of its im2col patches, per group): the whitened
    /// SVD of 1×1 kernels, output-aware Tucker-2 (`tucker2Decompose(_:ranks:metric:options:)`)
    /// or CP (`cpDecompose(_:rank:metric:options:start:)`), with the mean shift
    /// corrected in the bias. Tensor-train ignores the statistics (data-free TT-SVD).
    ///
    /// Rank rules read the output side: `.energy`, `.relativeError` and `.vbmf` on the whitened
    /// mode-0 spectrum for the output rank (and the SVD rank), the kernel's mode-1 unfolding for
    /// Tucker-2's input rank; budgets as without data.
    ///
    /// - Throws: ``NNLayersError/statistics(_:)`` for statistics of another size or group
    ///   count, and the errors of ``compressed(by:svdMethod:)``.
    public func compressed(by method: ConvDecomposition, statistics: InputStatistics, options: DataAwareOptions = DataAwareOptions()) throws -> CompressedLayer<Scalar> {
        if case .tensorTrain = method { return try compressed(by: method) }
        if weight.shape[1] == 1 && groups > 1 { throw NNLayersError.depthwiseNotFactorable(groups: groups) }
        return try compressed(by: method, expanded: try expanded(statistics, corrected: options.biasCorrection), options: options)
    }

    /// The statistics of this convolution's inputs expanded to its im2col patches, per group
    /// (per-channel statistics as `C_channels ⊗ I_{kh·kw}`): covariances when `corrected`.
    ///
    /// - Throws: ``NNLayersError/statistics(_:)`` for statistics of another size or group count.
    package func expanded(_ statistics: InputStatistics, corrected: Bool) throws -> ExpandedStatistics {
        guard statistics.groups == groups else {
            throw NNLayersError.statistics(.groupCount(layer: summary, layerGroups: groups, statisticsGroups: statistics.groups))
        }
        let area = kernelSize.height * kernelSize.width
        let d = weight.shape[1] * area
        return ExpandedStatistics(groups: try (0..<groups).map { try statistics.group($0, dimension: d, kernelArea: area, corrected: corrected, layer: summary) },
                                  corrected: corrected, countDescription: statistics.countDescription)
    }

    /// ``compressed(by:statistics:options:)`` on statistics already expanded with
    /// `options.biasCorrection` (``expanded(_:corrected:)``).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    package func compressed(by method: ConvDecomposition, expanded statistics: ExpandedStatistics, options: DataAwareOptions = DataAwareOptions()) throws -> CompressedLayer<Scalar> {
        if case .tensorTrain = method { return try compressed(by: method) }
        if weight.shape[1] == 1 && groups > 1 { throw NNLayersError.depthwiseNotFactorable(groups: groups) }
        precondition(statistics.corrected == options.biasCorrection && statistics.groups.count == groups, "statistics expanded for another setting")
        let area = kernelSize.height * kernelSize.width
        let (tg, sg) = (outChannels / groups, weight.shape[1])
        let d = sg * area
        let stats = statistics.groups
        let kernels = try (0..<groups).map { try groupKernel($0) }
        let originals = kernels.map { doubleMatrix(Matrix(uncheckedRows: tg, columns: d, scalars: $0.scalars)) }
        var accumulator = OutputErrorAccumulator()
        var shifts: [Double] = []
        func finish(_ replacements: [Matrix<Double>]) {
            for g in 0..<groups {
                accumulator.add(original: originals[g], replacement: replacements[g], stats[g])
                shifts += meanShift(originals[g], replacements[g], stats[g].mean)
            }
        }
        var newBias: [Scalar]? { options.biasCorrection ? shifts.enumerated().map { Scalar(Double(bias?[$0.offset] ?? 0) + $0.element) } : bias }
        /// The output rank from the whitened mode-0 spectrum (the largest over groups).
        func outputRank(_ rule: RankSelection) throws -> (Int, [String]) {
            let choices = try (0..<groups).map { g in
                try whitenedRank(try WhitenedSVD(Matrix<Scalar>(uncheckedRows: tg, columns: d, scalars: kernels[g].scalars), metric: stats[g].metric,
                                                 damping: options.decomposition.damping),
                                 rows: tg, columns: d, rule: rule, weight: Matrix<Scalar>(uncheckedRows: tg, columns: d, scalars: kernels[g].scalars))
            }
            return (choices.map { $0.ranks[0] }.max()!, choices.flatMap(\.reasons))
        }
        var result: CompressedLayer<Scalar>
        switch method {
        case let .svd(selection):
            guard kernelSize == Size2D(1) else { throw NNLayersError.svdNeedsPointwise(kernel: kernelSize.array) }
            let rank: Int, reasons: [String]
            switch selection {
            case let .flopBudget(fraction):
                let (r, reason) = try pointwiseSVDRank(flopBudget: fraction)
                (rank, reasons) = (r, [reason])
            case let .kernel(rule): (rank, reasons) = try outputRank(rule)
            }
            let factors = try (0..<groups).map { g in
                try WhitenedSVD(Matrix<Scalar>(uncheckedRows: tg, columns: d, scalars: kernels[g].scalars), metric: stats[g].metric,
                                damping: options.decomposition.damping).factors(rank: rank)
            }
            finish(factors.map { doubleMatrix($0.u.scalingColumns(by: $0.singularValues).matmul($0.vt)) })
            let stack = try LayerStack(svd: factors, replacing: self).replacingLastBias(newBias)
            result = CompressedLayer(original: .conv2d(self), stack: stack, method: .svd, ranks: [rank],
                                     kernelRelativeError: try groupedError(kernels.map { try $0.reshaped(to: [tg, d]) }, factors),
                                     reasons: reasons + ["whitened SVD on \(statistics.countDescription) calibration patches"])
        case let .tucker2(selection):
            var ranks: [Int], reasons: [String]
            switch selection {
            case let .flopBudget(fraction):
                let (r, reason) = try tucker2Ranks(flopBudget: fraction)
                (ranks, reasons) = (r, [reason])
            case let .kernel(.fixed(given)):
                ranks = given
                reasons = ["ranks \(given) given"]
            case let .kernel(rule):
                let (rOut, outReasons) = try outputRank(rule)
                let inputs = try kernels.map { try selectRanks(for: $0, modes: [1], selection: rule) }
                ranks = [rOut, inputs.map { $0.ranks[0] }.max()!]
                reasons = outReasons + inputs.flatMap(\.reasons)
            }
            let runs = try (0..<groups).map { g in
                try tucker2Decompose(kernels[g], ranks: ranks, metric: stats[g].metric, options: options.decomposition)
            }
            let factors = runs.map(\.result)
            finish(try factors.map { doubleMatrix(Matrix(uncheckedRows: tg, columns: d, scalars: try Tensor($0).scalars)) })
            let stack = try LayerStack(tucker2: factors, replacing: self).replacingLastBias(newBias)
            result = CompressedLayer(original: .conv2d(self), stack: stack, method: .tucker2, ranks: ranks,
                                     kernelRelativeError: try groupedError(kernels, factors),
                                     reasons: reasons + ["output-aware Tucker-2 on \(statistics.countDescription) calibration patches, "
                                                         + "\(runs.map(\.iterations).max() ?? 0) alternations"],
                                     converged: true, iterations: runs.map(\.iterations).max() ?? 0)
        case let .cp(selection, maxIterations, seed):
            let rank: Int, reasons: [String]
            switch selection {
            case let .flopBudget(fraction):
                let (r, reason) = try cpRank(flopBudget: fraction)
                (rank, reasons) = (r, [reason])
            case let .kernel(rule):
                let choices = try kernels.map { try selectCPRank(for: $0, selection: rule) }
                (rank, reasons) = (choices.map { $0.ranks[0] }.max()!, choices.flatMap(\.reasons))
            }
            let start = CPOptions<Scalar>(maxIterations: maxIterations, initialization: .svd(seed: seed))
            let runs = try (0..<groups).map { g in
                try cpDecompose(kernels[g], rank: rank, metric: stats[g].metric, options: options.decomposition, start: start)
            }
            let factors = runs.map(\.result)
            finish(try factors.map { doubleMatrix(Matrix(uncheckedRows: tg, columns: d, scalars: try Tensor($0).scalars)) })
            let stack = try LayerStack(cp: factors, replacing: self).replacingLastBias(newBias)
            result = CompressedLayer(original: .conv2d(self), stack: stack, method: .cp, ranks: [rank],
                                     kernelRelativeError: try groupedError(kernels, factors),
                                     reasons: reasons + ["output-aware CP on \(statistics.countDescription) calibration patches"],
                                     converged: true, iterations: runs.map(\.iterations).max() ?? 0)
        case .tensorTrain:
            preconditionFailure("handled above")
        }
        result.outputRelativeError = accumulator.relative
        return result
    }
}
