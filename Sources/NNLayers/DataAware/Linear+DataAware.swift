import Decompositions
import TensorModule

extension Linear {
    /// This layer replaced by a stack whose factors minimise the output error on calibration
    /// inputs: the whitened SVD (`WhitenedSVD`) or a TT-matrix of the weight whitened
    /// per input mode, with the mean shift corrected in the bias.
    ///
    /// The TT-matrix route approximates the input metric by a Kronecker product of per-mode
    /// metrics (each the partial trace of `C` over the other input modes), `C ≈ C_1 ⊗ ⋯ ⊗ C_d`,
    /// decomposes `W (L_1 ⊗ ⋯ ⊗ L_d)` and multiplies each core's input mode by `L_k⁻¹`, which
    /// keeps the TT format.
    ///
    /// ```swift
    /// var stats = InputStatistics(dimension: fc.inFeatures)
    /// try stats.accumulate(rows: calibrationInputs)
    /// let svd = try fc.compressed(by: .svd(.fixed([64])), statistics: stats)
    /// svd.outputRelativeError          // on the calibration inputs
    /// ```
    ///
    /// - Parameters:
    ///   - method: The decomposition and its rank.
    ///   - statistics: The calibration statistics of this layer's input.
    ///   - outputMetric: For the SVD route, an `outFeatures × outFeatures` metric `M` of the output
    ///     error, `E[eᵀ M e]` minimised instead of `E‖e‖²` (`WhitenedSVD`'s two-sided
    ///     whitening): what the layers after this one do with its error, such as a LayerNorm's
    ///     `P diag(γ²) P`. The reported ``CompressedLayer/outputRelativeError`` stays the plain one.
    ///     The TT route does not use it, and its reasons say so.
    ///   - options: Bias correction, damping.
    /// - Throws: ``NNLayersError/statistics(_:)`` for statistics of another size, and the
    ///   decompositions' errors (a metric of the wrong size among them).
    public func compressed(by method: LinearDecomposition, statistics: InputStatistics, outputMetric: Matrix<Double>? = nil,
                           options: DataAwareOptions = DataAwareOptions()) throws -> CompressedLayer<Scalar> {
        var expanded = try expanded(statistics, corrected: options.biasCorrection)
        expanded.outputMetric = outputMetric.map { ($0, "the given output metric") }
        return try compressed(by: method, expanded: expanded, options: options)
    }

    /// The statistics of this layer's input vectors with their metric: the covariance when
    /// `corrected`, else the second moment.
    ///
    /// - Throws: ``NNLayersError/statistics(_:)`` for statistics of another size.
    package func expanded(_ statistics: InputStatistics, corrected: Bool) throws -> ExpandedStatistics {
        ExpandedStatistics(groups: [try statistics.group(0, dimension: inFeatures, kernelArea: 1, corrected: corrected, layer: summary)],
                           corrected: corrected, countDescription: statistics.countDescription)
    }

    /// ``compressed(by:statistics:outputMetric:options:)`` on statistics already expanded with
    /// `options.biasCorrection` (``expanded(_:corrected:)``).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    package func compressed(by method: LinearDecomposition, expanded statistics: ExpandedStatistics, options: DataAwareOptions = DataAwareOptions()) throws -> CompressedLayer<Scalar> {
        precondition(statistics.corrected == options.biasCorrection && statistics.groups.count == 1, "statistics expanded for another setting")
        let stats = statistics.groups[0]
        let w = doubleMatrix(weight)
        var accumulator = OutputErrorAccumulator()
        switch method {
        case let .svd(selection):
            let whitened = try WhitenedSVD(weight, metric: stats.metric, outputMetric: statistics.outputMetric?.matrix, damping: options.decomposition.damping)
            let choice: RankChoice
            switch selection {
            case let .flopBudget(fraction):
                let (rank, reason) = try svdRank(flopBudget: fraction)
                choice = RankChoice(ranks: [rank], reasons: [reason])
            case let .kernel(rule):
                choice = try whitenedRank(whitened, rows: outFeatures, columns: inFeatures, rule: rule, weight: weight)
            }
            let f = try whitened.factors(rank: choice.ranks[0])
            let replacement = doubleMatrix(f.u.scalingColumns(by: f.singularValues).matmul(f.vt))
            accumulator.add(original: w, replacement: replacement, stats)
            let bias = correctedBias(bias, w, replacement, stats, options)
            var (first, second) = (f.vt.scalingRows(by: f.singularValues), f.u)
            // With an output metric `U_k` becomes `R⁻ᵀU_k`: a metric of small scale (an end-to-end
            // one is of the order of the outputs' squared gradient) makes the second factor large
            // and the first small, by orders of magnitude, which a fine-tuning's steps of one size
            // per entry (Adam) then tear apart. Each component is balanced; the product is the same.
            if statistics.outputMetric != nil { (first, second) = balancedFactors(first, second) }
            let stack = LayerStack([
                .linear(try Linear(weight: first)),
                .linear(try Linear(weight: second, bias: bias)),
            ])
            var result = CompressedLayer(original: .linear(self), stack: stack, method: .svd, ranks: choice.ranks,
                                         kernelRelativeError: Double(try f.relativeError(to: Tensor(weight))),
                                         reasons: choice.reasons + ["whitened SVD on \(statistics.countDescription) calibration inputs"
                                                                    + (statistics.outputMetric.map { ", output error weighted by \($0.source)" } ?? "")])
            result.outputRelativeError = accumulator.relative
            return result
        case let .tensorTrain(outputModes, inputModes, maxRank, tolerance):
            let outModes = outputModes ?? balancedFactorization(outFeatures, count: 3)
            let inModes = inputModes ?? balancedFactorization(inFeatures, count: outModes.count)
            let (whitening, inverses) = try kroneckerWhitening(stats.metric, modes: inModes, damping: options.decomposition.damping)
            let whitenedWeight = w.matmul(whitening)
            let tt = try ttMatrixDecompose(Matrix<Scalar>(uncheckedRows: outFeatures, columns: inFeatures,
                                                          scalars: ContiguousArray(whitenedWeight.scalars.lazy.map { Scalar($0) })),
                                           rowModes: outModes, columnModes: inModes, maxRank: maxRank, tolerance: tolerance)
            // Each core's input mode times L_k⁻¹: G_k[a, i, j, b] = Σ_j' G̃_k[a, i, j', b] L_k⁻¹[j', j].
            let cores = try zip(tt.cores, inverses).map { core, inverse -> Tensor<Scalar> in
                let (ra, m, n, rb) = (core.shape[0], core.shape[1], core.shape[2], core.shape[3])
                let moved = try core.transposed(permutation: [0, 1, 3, 2]).reshaped(to: [ra * m * rb, n])
                let product = doubleMatrix(Matrix(uncheckedRows: ra * m * rb, columns: n, scalars: moved.scalars)).matmul(inverse)
                let back = Tensor<Scalar>(uncheckedShape: [ra, m, rb, n], scalars: ContiguousArray(product.scalars.lazy.map { Scalar($0) }))
                return try back.transposed(permutation: [0, 1, 3, 2])
            }
            let matrix = try TTMatrix(cores: cores)
            let full = try matrix.reconstructed()
            let replacement = doubleMatrix(Matrix(uncheckedRows: outFeatures, columns: inFeatures, scalars: full.scalars))
            accumulator.add(original: w, replacement: replacement, stats)
            let layer = try TTLinear(weight: matrix, bias: correctedBias(bias, w, replacement, stats, options))
            var result = CompressedLayer(original: .linear(self), stack: LayerStack([.ttLinear(layer)]), method: .tensorTrain, ranks: matrix.ranks,
                                         kernelRelativeError: Double(try matrix.relativeError(to: Tensor(weight))),
                                         reasons: ["TT-matrix of the weight whitened per input mode \(inModes) (Kronecker-factored metric), output modes \(outModes)"
                                                   + (tolerance.map { ", tolerance \($0)" } ?? "") + (maxRank.map { ", max rank \($0)" } ?? "")]
                                                   + (statistics.outputMetric.map { ["the output error is not weighted by \($0.source): the TT route does not use an output metric"] } ?? []))
            result.outputRelativeError = accumulator.relative
            return result
        }
    }
}

/// `first` (`k × n`) and `second` (`m × k`) with each component `i` scaled so that row `i` of
/// `first` and column `i` of `second` have the same norm, `second · first` unchanged up to
/// rounding (a component with a zero side is left as it is).
func balancedFactors<Scalar: BLASScalar>(_ first: Matrix<Scalar>, _ second: Matrix<Scalar>) -> (Matrix<Scalar>, Matrix<Scalar>) {
    let (rows, columns) = (first.transposed().columnNorms(), second.columnNorms())
    let scales = zip(rows, columns).map { r, c -> Scalar in r > 0 && c > 0 ? (c / r).squareRoot() : 1 }
    return (first.scalingRows(by: scales), second.scalingColumns(by: scales.map { 1 / $0 }))
}
