import RealModule
import TensorModule

/// How to choose decomposition ranks: one value used by every method, by the layer builders and
/// by the command line.
///
/// ```swift
/// let choice = try selectRanks(for: kernel, modes: [0, 1], selection: .vbmf)
/// choice.ranks      // e.g. [23, 17]
/// choice.reasons    // why, with the numbers
/// let t2 = try tuckerDecompose(kernel, ranks: choice.ranks, modes: [0, 1])
/// ```
public enum RankSelection: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// The ranks given, one per mode (or a single CP rank).
    case fixed([Int])
    /// EVBMF (``evbmf(_:forceAtLeastOne:)``) on each mode's unfolding, at least 1, as Kim et al. (2016) do for Tucker-2.
    case vbmf
    /// The smallest ranks keeping at least this fraction `0 < f ≤ 1` of each unfolding's energy `Σ σ²`.
    case energy(Double)
    /// The smallest ranks whose truncated-HOSVD bound guarantees this relative error `ε ≥ 0`:
    /// each of the `k` modes may discard `ε²‖X‖²/k` of energy. For a matrix this is the
    /// Eckart–Young error of the truncated SVD.
    case relativeError(Double)
    /// The largest ranks (proportional to the mode sizes) whose factors hold at most this fraction
    /// `0 < f ≤ 1` of the original parameter count.
    case parameterBudget(Double)
}

extension RankSelection {
    /// The command-line spelling: `fixed [r, …]`, `vbmf`, `energy:F`, `error:F` or `params:F`.
    public var description: String {
        switch self {
        case let .fixed(ranks): return "fixed \(ranks)"
        case .vbmf: return "vbmf"
        case let .energy(fraction): return "energy:\(fraction)"
        case let .relativeError(epsilon): return "error:\(epsilon)"
        case let .parameterBudget(fraction): return "params:\(fraction)"
        }
    }
}

/// Ranks chosen by ``selectRanks(for:modes:selection:)`` or ``selectCPRank(for:selection:)``.
public struct RankChoice: Sendable, Equatable, Codable {
    /// The ranks, one per mode asked for (one for CP).
    public var ranks: [Int]
    /// Why each rank was chosen, with the numbers.
    public var reasons: [String]

    /// Creates the value from its parts.
    public init(ranks: [Int], reasons: [String]) {
        self.ranks = ranks
        self.reasons = reasons
    }
}

/// Chooses Tucker (or SVD, for a matrix with `modes: [0]`) ranks for the given modes.
///
/// - Parameters:
///   - tensor: The tensor (an OIHW kernel, a weight matrix as a 2-D tensor, …).
///   - modes: The modes to choose ranks for, e.g. `[0, 1]` for Tucker-2 of a conv kernel.
///   - selection: The rule.
/// - Throws: ``DecompositionError`` for bad input, a fraction outside `(0, 1]`, a negative error
///   target, or fixed ranks that do not fit.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func selectRanks<Scalar: BLASScalar>(
    for tensor: Tensor<Scalar>, modes: [Int], selection: RankSelection
) throws -> RankChoice {
    try tensor.validateForDecomposition("selectRanks")
    if let exponent = tensor.rangeExponent {   // ranks do not depend on scale; keep sums of squares in range
        return try selectRanks(for: tensor.scaled(byPowerOfTwo: -exponent), modes: modes, selection: selection)
    }
    for mode in modes { precondition(mode >= 0 && mode < tensor.order, "selectRanks: mode \(mode) is out of range 0..<\(tensor.order)") }
    let shape = tensor.shape
    func limit(_ mode: Int) -> Int { Swift.min(shape[mode], tensor.scalarCount / shape[mode]) }
    switch selection {
    case let .fixed(ranks):
        guard ranks.count == modes.count else {
            throw DecompositionError.rankCount(operation: "selectRanks for modes \(modes)", expected: modes.count, actual: ranks.count)
        }
        for (rank, mode) in zip(ranks, modes) {
            try validateMatrixRank(rank, rows: shape[mode], columns: tensor.scalarCount / shape[mode], context: { .forMode(mode, $0) })
        }
        return RankChoice(ranks: ranks, reasons: zip(ranks, modes).map { "mode \($1): rank \($0) given" })
    case .vbmf:
        var choice = RankChoice(ranks: [], reasons: [])
        for mode in modes {
            let unfolding = tensor.unfolded(mode: mode)
            let result = try evbmf(unfolding, forceAtLeastOne: true)
            choice.ranks.append(result.rank)
            choice.reasons.append(
                "mode \(mode): EVBMF on the \(unfolding.rows) × \(unfolding.columns) unfolding estimates σ² = \(result.noiseVariance), "
                + "threshold \(result.threshold), rank \(result.rank)\(result.forced ? " (raised from 0)" : "")")
        }
        return choice
    case let .energy(fraction):
        guard fraction > 0, fraction <= 1 else {
            throw DecompositionError.invalidParameter(operation: "selectRanks", name: "energy fraction", value: fraction, requirement: .unitInterval)
        }
        var choice = RankChoice(ranks: [], reasons: [])
        for mode in modes {
            let s = try tensor.unfolded(mode: mode).singularValues().map { Double($0) * Double($0) }
            let total = s.reduce(0, +)
            var kept = 0.0, rank = 0
            while rank < s.count && (rank == 0 || kept < fraction * total) { kept += s[rank]; rank += 1 }
            choice.ranks.append(rank)
            choice.reasons.append("mode \(mode): rank \(rank) keeps \(total > 0 ? kept / total : 1) of the energy (target \(fraction))")
        }
        return choice
    case let .relativeError(epsilon):
        guard epsilon >= 0, epsilon.isFinite else {
            throw DecompositionError.invalidParameter(operation: "selectRanks", name: "relative error", value: epsilon, requirement: .finiteAndNonNegative)
        }
        let norm = Double(tensor.frobeniusNorm)
        let allowed = epsilon * epsilon * norm * norm / Double(Swift.max(modes.count, 1))
        var choice = RankChoice(ranks: [], reasons: [])
        for mode in modes {
            let s = try tensor.unfolded(mode: mode).singularValues()
            let rank = rankForTolerance(s, delta: allowed.squareRoot())
            choice.ranks.append(rank)
            choice.reasons.append("mode \(mode): rank \(rank) discards at most \(allowed) of energy (ε = \(epsilon) over \(modes.count) modes)")
        }
        return choice
    case let .parameterBudget(fraction):
        guard fraction > 0, fraction <= 1 else {
            throw DecompositionError.invalidParameter(operation: "selectRanks", name: "parameter fraction", value: fraction, requirement: .unitInterval)
        }
        let original = Double(tensor.scalarCount)
        func ranks(_ c: Double) -> [Int] { modes.map { Swift.max(1, Swift.min(limit($0), Int(c * Double(shape[$0])))) } }
        func parameters(_ ranks: [Int]) -> Double {
            var core = 1.0
            for (axis, size) in shape.enumerated() {
                if let k = modes.firstIndex(of: axis) { core *= Double(ranks[k]) } else { core *= Double(size) }
            }
            return core + zip(modes, ranks).reduce(0.0) { $0 + Double(shape[$1.0] * $1.1) }
        }
        var (low, high) = (0.0, 1.0)
        for _ in 0..<60 {
            let middle = (low + high) / 2
            if parameters(ranks(middle)) <= fraction * original { low = middle } else { high = middle }
        }
        let chosen = ranks(low)
        let used = parameters(chosen)
        return RankChoice(ranks: chosen, reasons: zip(modes, chosen).map {
            "mode \($0): rank \($1); the factors and core hold \(Int(used)) of \(Int(original)) parameters (budget \(fraction))"
        })
    }
}

/// Chooses a CP rank.
///
/// `.vbmf` and `.energy` take the largest of the per-mode ranks of ``selectRanks(for:modes:selection:)``
/// over all modes; `.parameterBudget(f)` takes the largest `R` with `R·(Σ I_n + 1) ≤ f·∏ I_n`;
/// `.relativeError` is not available for CP (no a-priori bound exists) and throws.
///
/// - Throws: ``DecompositionError`` as ``selectRanks(for:modes:selection:)`` does.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func selectCPRank<Scalar: BLASScalar>(for tensor: Tensor<Scalar>, selection: RankSelection) throws -> RankChoice {
    try tensor.validateForDecomposition("selectCPRank")
    switch selection {
    case let .fixed(ranks):
        guard ranks.count == 1 else {
            throw DecompositionError.rankCount(operation: "selectCPRank (one CP rank)", expected: 1, actual: ranks.count)
        }
        try validateCPRank(ranks[0], shape: tensor.shape)
        return RankChoice(ranks: ranks, reasons: ["CP rank \(ranks[0]) given"])
    case .vbmf, .energy:
        let perMode = try selectRanks(for: tensor, modes: Array(0..<tensor.order), selection: selection)
        let rank = perMode.ranks.max() ?? 1
        return RankChoice(ranks: [rank], reasons: ["CP rank \(rank): the largest of the per-mode ranks \(perMode.ranks)"] + perMode.reasons)
    case let .relativeError(epsilon):
        throw DecompositionError.cpRankForErrorTarget(epsilon)
    case let .parameterBudget(fraction):
        guard fraction > 0, fraction <= 1 else {
            throw DecompositionError.invalidParameter(operation: "selectCPRank", name: "parameter fraction", value: fraction, requirement: .unitInterval)
        }
        let perRank = tensor.shape.reduce(0, +) + 1
        let rank = Swift.max(1, Int(fraction * Double(tensor.scalarCount)) / perRank)
        return RankChoice(ranks: [rank], reasons: ["CP rank \(rank): \(rank * perRank) of \(tensor.scalarCount) parameters (budget \(fraction))"])
    }
}

/// The largest CP rank any tensor of `shape` can need: the product of every mode size but the
/// largest (a tensor is a sum of that many rank-one terms, one per fibre of its longest mode).
/// Saturates at `Int.max`.
public func maximumCPRank(shape: [Int]) -> Int {
    guard let largest = shape.indices.max(by: { shape[$0] < shape[$1] }) else { return 1 }
    var product = 1
    for (axis, size) in shape.enumerated() where axis != largest {
        let (next, overflow) = product.multipliedReportingOverflow(by: size)
        if overflow { return Int.max }
        product = next
    }
    return product
}

/// Checks `1 ≤ rank ≤ maximumCPRank(shape:)`.
///
/// A CP rank above that bound is legitimate in theory but never useful: the decomposition is exact
/// at the bound, and a larger rank only costs memory (rank × Σ I_n factors and rank² Gram matrices).
func validateCPRank(_ rank: Int, shape: [Int]) throws {
    if rank < 1 { throw DecompositionError.invalidRank(rank: rank, problem: .belowOne) }
    let bound = maximumCPRank(shape: shape)
    if rank > bound { throw DecompositionError.invalidRank(rank: rank, problem: .exceedsCP(bound: bound, shape: shape)) }
}
