import Decompositions
import TensorModule

/// Options of data-aware compression (``Linear/compressed(by:statistics:options:)``,
/// ``Conv2D/compressed(by:statistics:options:)``).
public struct DataAwareOptions: Sendable, Equatable {
    /// Correct the mean shift in the bias: `b' = b + (W − Ŵ) μ`, so that the replacement's
    /// outputs have the original's mean on the calibration inputs. The factors then minimise
    /// the error on the centred inputs (covariance `G − μμᵀ`), which with the corrected bias is
    /// the whole output error. A layer without a bias gets one. Default `true`.
    public var biasCorrection = true
    /// Damping, iterations and limits of the output-aware decompositions.
    public var decomposition = OutputAwareOptions()

    /// The defaults.
    public init() {}
}

/// The metric and mean of one group's inputs, in a convolution's patch order.
package struct GroupStatistics {
    /// The covariance with bias correction, else the second moment.
    package var metric: Matrix<Double>
    /// The second moment.
    package var gram: Matrix<Double>
    /// The mean input vector.
    package var mean: [Double]
}

extension InputStatistics {
    /// Group `g`'s metric (covariance with bias correction, else the second moment), second
    /// moment and mean, for vectors of `dimension` entries; per-channel statistics of a k×k
    /// convolution (`d = C/g`) are expanded to patches as `C_channels ⊗ I_{kh·kw}`.
    package func group(_ g: Int, dimension: Int, kernelArea: Int, corrected: Bool, layer: String) throws -> GroupStatistics {
        let gram: Matrix<Double>, mean: [Double]
        if self.dimension == dimension {
            (gram, mean) = (grams[g], means[g])
        } else if self.dimension * kernelArea == dimension {
            let c = self.dimension
            var expanded = Matrix<Double>.zeros(rows: dimension, columns: dimension)
            for s in 0..<c { for s2 in 0..<c { for k in 0..<kernelArea { expanded[s * kernelArea + k, s2 * kernelArea + k] = grams[g][s, s2] } } }
            (gram, mean) = (expanded, means[g].flatMap { [Double](repeating: $0, count: kernelArea) })
        } else {
            throw NNLayersError.statistics(reason: "\(layer) needs \(dimension) entries per input vector (or \(dimension / Swift.max(kernelArea, 1)) per channel), "
                                           + "the statistics have \(self.dimension)")
        }
        guard corrected else { return GroupStatistics(metric: gram, gram: gram, mean: mean) }
        var covariance = gram
        let d = dimension
        covariance.withUnsafeMutableBufferPointer { p in
            for i in 0..<d { for j in 0..<d { p[i * d + j] -= mean[i] * mean[j] } }
        }
        return GroupStatistics(metric: covariance, gram: gram, mean: mean)
    }
}

/// Sums over groups for the relative output error `√(Σ tr(ΔCΔᵀ) / Σ tr(WGWᵀ))`.
struct OutputErrorAccumulator {
    var error = 0.0, energy = 0.0

    mutating func add(original w: Matrix<Double>, replacement: Matrix<Double>, _ statistics: GroupStatistics) {
        let delta = w - replacement
        error += quadraticError(delta, statistics.metric)
        energy += quadraticError(w, statistics.gram)
    }

    var relative: Double { energy > 0 ? (Swift.max(error, 0) / energy).squareRoot() : 0 }
}

/// `(W − Ŵ) μ`: the mean shift that bias correction adds.
func meanShift(_ w: Matrix<Double>, _ replacement: Matrix<Double>, _ mean: [Double]) -> [Double] {
    (w - replacement).matvec(mean)
}

/// The rank of a whitened SVD by a rule: energy and error targets and EVBMF on the output-space
/// spectrum `σ(W L)`, parameter and FLOP budgets as without data.
func whitenedRank<Scalar: BLASScalar>(
    _ whitened: WhitenedSVD<Scalar>, rows: Int, columns: Int, rule: RankSelection, weight: Matrix<Scalar>
) throws -> RankChoice {
    let s = whitened.singularValues
    let total = s.reduce(0) { $0 + $1 * $1 }
    switch rule {
    case let .energy(fraction):
        guard fraction > 0, fraction <= 1 else { return try selectRanks(for: Tensor(weight), modes: [0], selection: rule) }
        var kept = 0.0, rank = 0
        while rank < s.count && (rank == 0 || kept < fraction * total) { kept += s[rank] * s[rank]; rank += 1 }
        return RankChoice(ranks: [rank], reasons: ["rank \(rank) keeps \(total > 0 ? kept / total : 1) of the output energy on the calibration inputs (target \(fraction))"])
    case let .relativeError(epsilon):
        guard epsilon >= 0, epsilon.isFinite else { return try selectRanks(for: Tensor(weight), modes: [0], selection: rule) }
        var rank = 1
        while rank < s.count && whitened.outputRelativeError(rank: rank) > epsilon { rank += 1 }
        return RankChoice(ranks: [rank], reasons: ["rank \(rank): output error \(whitened.outputRelativeError(rank: rank)) ≤ \(epsilon) on the calibration inputs"])
    case .vbmf:
        var diagonal = Matrix<Double>.zeros(rows: rows, columns: columns)
        for (i, value) in s.enumerated() { diagonal[i, i] = value }
        let result = try evbmf(diagonal, forceAtLeastOne: true)
        return RankChoice(ranks: [result.rank], reasons: ["EVBMF on the whitened \(rows) × \(columns) weight W·L: σ² = \(result.noiseVariance), rank \(result.rank)"])
    case .fixed, .parameterBudget:
        return try selectRanks(for: Tensor(weight), modes: [0], selection: rule)
    }
}

extension Linear {
    /// This layer replaced by a stack whose factors minimise the output error on calibration
    /// inputs: the whitened SVD (``Decompositions/WhitenedSVD``) or a TT-matrix of the weight whitened
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
    /// - Throws: ``NNLayersError/statistics(reason:)`` for statistics of another size, and the
    ///   decompositions' errors.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func compressed(by method: LinearDecomposition, statistics: InputStatistics, options: DataAwareOptions = DataAwareOptions()) throws -> CompressedLayer<Scalar> {
        let stats = try statistics.group(0, dimension: inFeatures, kernelArea: 1, corrected: options.biasCorrection, layer: summary)
        let w = doubleMatrix(weight)
        var accumulator = OutputErrorAccumulator()
        switch method {
        case let .svd(selection):
            let whitened = try WhitenedSVD(weight, metric: stats.metric, damping: options.decomposition.damping)
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
            let stack = LayerStack([
                .linear(try Linear(weight: f.vt.scalingRows(by: f.singularValues))),
                .linear(try Linear(weight: f.u, bias: bias)),
            ])
            var result = CompressedLayer(original: .linear(self), stack: stack, method: .svd, ranks: choice.ranks,
                                         kernelRelativeError: Double(try f.relativeError(to: Tensor(weight))),
                                         reasons: choice.reasons + ["whitened SVD on \(statistics.countDescription) calibration inputs"])
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
                                                   + (tolerance.map { ", tolerance \($0)" } ?? "") + (maxRank.map { ", max rank \($0)" } ?? "")])
            result.outputRelativeError = accumulator.relative
            return result
        }
    }
}

/// `b + (W − Ŵ) μ` with bias correction on (a missing bias becomes the shift alone), else `b`.
func correctedBias<Scalar: BLASScalar>(_ bias: [Scalar]?, _ w: Matrix<Double>, _ replacement: Matrix<Double>, _ stats: GroupStatistics,
                                       _ options: DataAwareOptions) -> [Scalar]? {
    guard options.biasCorrection else { return bias }
    let shift = meanShift(w, replacement, stats.mean)
    return shift.enumerated().map { Scalar(Double(bias?[$0.offset] ?? 0) + $0.element) }
}

/// The Kronecker-factored whitening `L = L_1 ⊗ ⋯ ⊗ L_d` of a metric over `∏ n_k` entries (each
/// `C_k` the partial trace of `C` over the other modes, normalised), and the inverses `L_k⁻¹`.
func kroneckerWhitening(_ metric: Matrix<Double>, modes: [Int], damping: Double) throws -> (Matrix<Double>, [Matrix<Double>]) {
    let n = modes.reduce(1, *)
    precondition(metric.rows == n, "kroneckerWhitening: a \(metric.rows)-square metric for modes \(modes)")
    var factors: [Matrix<Double>] = [], inverses: [Matrix<Double>] = []
    let tensor = try Tensor(metric).reshaped(to: modes + modes)
    for (k, size) in modes.enumerated() {
        let others = (0..<modes.count).filter { $0 != k }
        // C_k[j, j'] = Σ_rest C[(…j…), (…j'…)] / (N / n_k).
        let permuted = try tensor.transposed(permutation: [k] + others + [k + modes.count] + others.map { $0 + modes.count })
        let rest = n / size
        var ck = Matrix<Double>.zeros(rows: size, columns: size)
        permuted.withUnsafeBufferPointer { p in
            for j in 0..<size { for j2 in 0..<size {
                var sum = 0.0
                for o in 0..<rest { sum += p[((j * rest + o) * size + j2) * rest + o] }
                ck[j, j2] = sum / Double(rest)
            } }
        }
        let trace = (0..<size).reduce(0.0) { $0 + ck[$1, $1] }
        for j in 0..<size { ck[j, j] += trace > 0 ? damping * trace / Double(size) : 1 }
        let (values, vectors) = try ck.symmetricEigen()
        try checkSemidefinite(values, operation: "TT metric")
        let roots = values.map { Swift.max($0, 0).squareRoot() }
        let floor = (roots.max() ?? 1) * 1e-12
        factors.append(vectors.scalingColumns(by: roots).matmul(vectors, transposeOther: true))                               // C_k^{1/2}
        inverses.append(vectors.scalingColumns(by: roots.map { 1 / Swift.max($0, floor) }).matmul(vectors, transposeOther: true))
    }
    // ⊗ L_k with the first mode slowest, as the TT-matrix columns are ordered.
    var kron = factors[0]
    for f in factors.dropFirst() {
        var next = Matrix<Double>.zeros(rows: kron.rows * f.rows, columns: kron.columns * f.columns)
        for i in 0..<kron.rows { for j in 0..<kron.columns {
            let a = kron[i, j]
            if a == 0 { continue }
            for p in 0..<f.rows { for q in 0..<f.columns { next[i * f.rows + p, j * f.columns + q] = a * f[p, q] } }
        } }
        kron = next
    }
    return (kron, inverses)
}

extension Conv2D {
    /// This convolution replaced by a stack whose factors minimise the output error on
    /// calibration patches (``InputStatistics`` of its im2col patches, per group): the whitened
    /// SVD of 1×1 kernels, output-aware Tucker-2 (``Decompositions/tucker2Decompose(_:ranks:metric:options:)``)
    /// or CP (``Decompositions/cpDecompose(_:rank:metric:options:start:)``), with the mean shift
    /// corrected in the bias. Tensor-train ignores the statistics (data-free TT-SVD).
    ///
    /// Rank rules read the output side: `.energy`, `.relativeError` and `.vbmf` on the whitened
    /// mode-0 spectrum for the output rank (and the SVD rank), the kernel's mode-1 unfolding for
    /// Tucker-2's input rank; budgets as without data.
    ///
    /// - Throws: ``NNLayersError/statistics(reason:)`` for statistics of another size or group
    ///   count, and the errors of ``compressed(by:)``.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func compressed(by method: ConvDecomposition, statistics: InputStatistics, options: DataAwareOptions = DataAwareOptions()) throws -> CompressedLayer<Scalar> {
        if case .tensorTrain = method { return try compressed(by: method) }
        if weight.shape[1] == 1 && groups > 1 { throw NNLayersError.depthwiseNotFactorable(groups: groups) }
        guard statistics.groups == groups else {
            throw NNLayersError.statistics(reason: "\(summary) has \(groups) groups, the statistics \(statistics.groups)")
        }
        let area = kernelSize.height * kernelSize.width
        let (tg, sg) = (outChannels / groups, weight.shape[1])
        let d = sg * area
        let stats = try (0..<groups).map { try statistics.group($0, dimension: d, kernelArea: area, corrected: options.biasCorrection, layer: summary) }
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
