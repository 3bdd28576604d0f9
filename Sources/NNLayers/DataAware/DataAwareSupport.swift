import Decompositions
import TensorModule

// What the data-aware compressions of linear layers and convolutions share: their options, the
// statistics of one group, output errors, whitened ranks, bias correction and Kronecker whitening.

/// Options of data-aware compression (``Linear/compressed(by:statistics:outputMetric:options:)``,
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
package struct GroupStatistics: Sendable {
    /// The covariance with bias correction, else the second moment.
    package var metric: Matrix<Double>
    /// The second moment.
    package var gram: Matrix<Double>
    /// The mean input vector.
    package var mean: [Double]
}

/// A layer's calibration statistics expanded to its input vectors, group by group: what its
/// data-aware compressions read. Expanded once (``Linear/expanded(_:corrected:)``,
/// ``Conv2D/expanded(_:corrected:)``), they serve every compression of the layer (a budget's rank
/// options, then the decomposition).
package struct ExpandedStatistics: Sendable {
    /// Each group's metric, second moment and mean.
    package var groups: [GroupStatistics]
    /// Whether the metrics are covariances (bias correction on), not second moments.
    package var corrected: Bool
    /// The calibration count, as reasons print it (``InputStatistics/countDescription``).
    package var countDescription: String
    /// The metric of the output error (`m × m`) that a linear layer's SVD route weights it by, and
    /// where it comes from (for the reasons); `nil`: the plain output error.
    package var outputMetric: (matrix: Matrix<Double>, source: String)? = nil
    /// The output metric of a budget's rank options when it is not ``outputMetric``'s matrix
    /// (`.some(nil)`: the plain output error); `nil`: ``outputMetric``'s.
    package var allocationMetric: Matrix<Double>?? = nil

    /// The storage the expanded matrices hold, in bytes (a metric without correction shares the
    /// second moment's).
    package var byteCount: Int {
        groups.reduce(0) { $0 + ($1.gram.rows * $1.gram.columns * (corrected ? 2 : 1) + $1.mean.count) * MemoryLayout<Double>.size }
            + (outputMetric.map { $0.matrix.rows * $0.matrix.columns } ?? 0) * MemoryLayout<Double>.size
            + ((allocationMetric ?? nil).map { $0.rows * $0.columns } ?? 0) * MemoryLayout<Double>.size
    }
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
            throw NNLayersError.statistics(.dimension(layer: layer, needed: dimension, perChannel: dimension / Swift.max(kernelArea, 1), found: self.dimension))
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
/// spectrum `σ(W L)` (`σ(Rᵀ W L)` with an output metric: the energy and error it weights),
/// parameter and FLOP budgets as without data.
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
        return RankChoice(ranks: [rank], reasons: ["rank \(rank): output error \(whitened.outputRelativeError(rank: rank)) ≤ \(epsilon) on the calibration inputs (weighted by the output metric when there is one)"])
    case .vbmf:
        var diagonal = Matrix<Double>.zeros(rows: rows, columns: columns)
        for (i, value) in s.enumerated() { diagonal[i, i] = value }
        let result = try evbmf(diagonal, forceAtLeastOne: true)
        return RankChoice(ranks: [result.rank], reasons: ["EVBMF on the whitened \(rows) × \(columns) weight W·L: σ² = \(result.noiseVariance), rank \(result.rank)"])
    case .fixed, .parameterBudget:
        return try selectRanks(for: Tensor(weight), modes: [0], selection: rule)
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
