import Decompositions
import NNLayers
import TensorModule

/// A budget over the compressible layers of a model: the fraction of their MACs (or parameters)
/// that the compressed layers may keep, `0 < F ≤ 1`; `macs(0.5)` halves the multiply-adds.
public enum CompressionBudget: Sendable, Equatable, CustomStringConvertible {
    /// Keep at most this fraction of the layers' multiply-adds.
    case macs(Double)
    /// Keep at most this fraction of the layers' parameters.
    case parameters(Double)

    /// The fraction.
    public var fraction: Double {
        switch self {
        case let .macs(f), let .parameters(f): return f
        }
    }

    /// `macs:F` or `params:F`, as the command line writes it.
    public var description: String {
        switch self {
        case let .macs(f): return "macs:\(f)"
        case let .parameters(f): return "params:\(f)"
        }
    }
}

/// How a ``CompressionBudget`` is shared across layers.
public enum BudgetAllocation: String, Sendable, Equatable, CaseIterable {
    /// Every layer keeps the same fraction of its own cost: the highest ranks within it.
    case uniform
    /// Starting from the uncompressed model, repeatedly take the rank reduction of any layer
    /// that adds the least normalised output error (relative to the layer's output energy, times
    /// its ``CompressionOptions/layerWeights`` weight) per MAC (or parameter) saved, until the
    /// budget is met. Layers whose curves make compression a bad trade stay uncompressed.
    case greedy
}

/// One rank choice of a layer: its ranks, cost and squared relative output (or kernel) error.
struct RankOption: Sendable, Equatable {
    var ranks: [Int]
    var cost: FormCost
    var error: Double
    var macs: Double { cost.macs }
    var parameters: Double { cost.parameters }
}

/// A compressible layer's choices for budgeting.
struct BudgetCandidate: Sendable {
    var name: String
    var macs: Double
    var parameters: Double
    var options: [RankOption]
}

/// Rank values to try for a mode of size `limit`: every value below `multiple`, then multiples of
/// it (at most about `count` of them, evenly spaced), and `limit`.
func rankGrid(_ limit: Int, multiple: Int, count: Int = 24) -> [Int] {
    let m = Swift.max(1, multiple)
    guard limit > m else { return Array(1...Swift.max(limit, 1)) }
    let step = Swift.max(m, ((limit / count) + m - 1) / m * m)
    return Array(Set(Array(1..<m) + Array(stride(from: m, to: limit, by: step)) + [limit])).sorted()
}

extension ModelCompressor {
    /// The rank options of a prepared layer at its input (one sample) × its batch, with their
    /// errors: the output error on its expanded statistics when it has them, else the kernel error.
    func rankOptions<Scalar: BLASScalar>(_ prepared: PreparedLayer<Scalar>) throws -> [RankOption] {
        var result: [RankOption] = []
        let (input, batch) = (prepared.input, prepared.batch)
        switch prepared.layer {
        case let .linear(linear):
            guard options.linear == .svd else { throw ModelCompressionError.budgetWithTensorTrain(.linear) }
            let rows = input.dropLast().reduce(1, *)
            let spectrum: [Double]
            if let statistics = prepared.statistics {
                spectrum = try WhitenedSVD(linear.weight, metric: statistics.groups[0].metric, outputMetric: statistics.allocationMetric ?? statistics.outputMetric?.matrix,
                                           damping: options.dataAware.decomposition.damping).singularValues
            } else {
                spectrum = try linear.weight.singularValues().map { Double($0) }
            }
            let total = spectrum.reduce(0) { $0 + $1 * $1 }
            let grid = Set(rankGrid(spectrum.count, multiple: options.rankMultiple, count: Int.max))
            var tail = total
            for k in 1...spectrum.count {
                tail -= spectrum[k - 1] * spectrum[k - 1]
                guard grid.contains(k) else { continue }
                result.append(RankOption(ranks: [k], cost: linear.svdCost(rank: k, rows: rows).times(batch),
                                         error: total > 0 ? Swift.max(tail, 0) / total : 0))
            }
        case let .conv2d(conv):
            let decomposition = convDecomposition(for: conv)
            let (tg, sg, area) = (conv.outChannels / conv.groups, conv.weight.shape[1], conv.kernelSize.height * conv.kernelSize.width)
            let kernels = try (0..<conv.groups).map { try conv.groupKernel($0) }
            // The metrics that the data-aware layer compression uses.
            let metrics = prepared.statistics?.groups.map(\.metric)
            /// Σ_g tr(W_g C_g W_gᵀ) for normalising.
            let energies = (0..<conv.groups).map { g -> Double in
                let w = doubleMatrix(Matrix<Scalar>(uncheckedRows: tg, columns: sg * area, scalars: kernels[g].scalars))
                guard let metrics else { return w.scalars.reduce(0) { $0 + $1 * $1 } }
                return quadraticError(w, metrics[g])
            }
            let energy = energies.reduce(0, +)
            let size = Size2D(input[1], input[2])
            let positions = try prepared.positions(conv)
            switch decomposition {
            case .svd:
                // Per group spectra; the error of rank k is the sum of the groups' tails.
                let spectra = try (0..<conv.groups).map { g -> [Double] in
                    let w = Matrix<Scalar>(uncheckedRows: tg, columns: sg, scalars: kernels[g].scalars)
                    if let metrics { return try WhitenedSVD(w, metric: metrics[g], damping: options.dataAware.decomposition.damping).singularValues }
                    return try w.singularValues().map { Double($0) }
                }
                for k in rankGrid(Swift.min(tg, sg), multiple: options.rankMultiple, count: Int.max) {
                    let tail = spectra.reduce(0.0) { $0 + $1.dropFirst(k).reduce(0) { $0 + $1 * $1 } }
                    result.append(RankOption(ranks: [k], cost: conv.svdCost(rank: k, positions: positions).times(batch), error: energy > 0 ? tail / energy : 0))
                }
            case .tucker2:
                let outputRanks = rankGrid(Swift.min(tg, sg * area), multiple: options.rankMultiple, count: 16)
                let inputRanks = rankGrid(Swift.min(sg, tg * area), multiple: options.rankMultiple, count: 16)
                var errors = [[Double]](repeating: [Double](repeating: 0, count: outputRanks.count), count: inputRanks.count)
                for g in 0..<conv.groups {
                    let grid = try tucker2OutputErrors(kernels[g], metric: metrics?[g], outputRanks: outputRanks, inputRanks: inputRanks,
                                                       damping: options.dataAware.decomposition.damping)
                    for i in inputRanks.indices { for j in outputRanks.indices { errors[i][j] += grid[i][j] * energies[g] } }
                }
                for (i, rIn) in inputRanks.enumerated() {
                    for (j, rOut) in outputRanks.enumerated() where errors[i][j].isFinite {
                        result.append(RankOption(ranks: [rOut, rIn], cost: conv.tucker2Cost(ranks: [rOut, rIn], positions: positions).times(batch),
                                                 error: energy > 0 ? errors[i][j] / energy : 0))
                    }
                }
            case .cp:
                // A 3-D convolution's stand-in: the CP of its kernel with the depth and height apart.
                let axes = prepared.proxy?.axes
                let shape = [tg, sg] + (axes?.kernel ?? [conv.kernelSize.height, conv.kernelSize.width])
                let split = try kernels.map { try $0.reshaped(to: shape) }
                let bound = maximumCPRank(shape: shape)
                for rank in rankGrid(Swift.min(bound, Swift.max(tg, sg) * 2), multiple: options.rankMultiple) {
                    var error = 0.0
                    for g in 0..<conv.groups {
                        let start = CPOptions<Scalar>(maxIterations: 25)
                        if let metrics {
                            var o = options.dataAware.decomposition
                            o.maxIterations = 0
                            let run = try cpDecompose(split[g], rank: rank, metric: metrics[g], options: o, start: start)
                            error += pow2(run.outputRelativeError) * energies[g]
                        } else {
                            let cp = try cpDecompose(split[g], rank: rank, options: start).cp
                            error += pow2(Double(try cp.relativeError(to: split[g]))) * energies[g]
                        }
                    }
                    let cost = try prepared.proxy.map { $0.cpCost(rank: rank, conv) } ?? conv.cpCost(rank: rank, input: size)
                    result.append(RankOption(ranks: [rank], cost: cost.times(batch), error: energy > 0 ? error / energy : 0))
                }
            case .tensorTrain:
                throw ModelCompressionError.budgetWithTensorTrain(.convolution)
            }
        case .ttLinear, .ttConv2d:
            preconditionFailure("TT layers are not compressed again")
        }
        return result
    }

    /// The chosen option of each candidate (`nil`: keep the layer), meeting the budget.
    func allocate(_ candidates: [BudgetCandidate], budget: CompressionBudget, allocation: BudgetAllocation) -> [RankOption?] {
        let byMACs: Bool
        if case .macs = budget { byMACs = true } else { byMACs = false }
        func cost(_ o: RankOption) -> Double { byMACs ? o.macs : o.parameters }
        func original(_ c: BudgetCandidate) -> Double { byMACs ? c.macs : c.parameters }
        let fraction = budget.fraction
        let total = candidates.reduce(0) { $0 + original($1) }
        let small = candidates.map { original($0) < options.minimumBudgetShare * total }
        switch allocation {
        case .uniform:
            return candidates.enumerated().map { l, c in
                small[l] ? nil : c.options.filter { cost($0) <= fraction * original(c) }.min { $0.error < $1.error || ($0.error == $1.error && cost($0) < cost($1)) }
            }
        case .greedy:
            // Pareto fronts, cheapest first; index `front.count` stands for the uncompressed layer.
            let fronts = candidates.map { c -> [RankOption] in
                var front: [RankOption] = []
                for o in c.options.filter({ cost($0) < original(c) }).sorted(by: { cost($0) < cost($1) || (cost($0) == cost($1) && $0.error < $1.error) }) {
                    if let last = front.last, o.error >= last.error { continue }
                    front.append(o)
                }
                return front
            }
            var chosen = fronts.map { $0.count }             // uncompressed
            var current = total
            let target = fraction * total
            let weights = candidates.map { options.layerWeights[$0.name] ?? 1 }
            func state(_ l: Int) -> (cost: Double, error: Double) {
                chosen[l] == fronts[l].count ? (original(candidates[l]), 0) : (cost(fronts[l][chosen[l]]), fronts[l][chosen[l]].error)
            }
            while current > target {
                var best: (layer: Int, option: Int, ratio: Double)? = nil
                for l in candidates.indices where !small[l] {
                    let current = state(l)
                    for k in 0..<chosen[l] {
                        let saved = current.cost - cost(fronts[l][k])
                        guard saved > 0 else { continue }
                        let ratio = weights[l] * (fronts[l][k].error - current.error) / saved
                        if best == nil || ratio < best!.ratio { best = (l, k, ratio) }
                    }
                }
                guard let move = best else { break }
                current -= state(move.layer).cost - cost(fronts[move.layer][move.option])
                chosen[move.layer] = move.option
            }
            return chosen.enumerated().map { l, k in k == fronts[l].count ? nil : fronts[l][k] }
        }
    }
}

func pow2(_ x: Double) -> Double { x * x }
