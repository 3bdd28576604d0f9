/// Why a rank cannot be used: the payload of ``DecompositionError/invalidRank(rank:problem:)``,
/// with the bounds that rule it out.
public indirect enum RankProblem: Sendable, Equatable, CustomStringConvertible {
    /// A rank below 1.
    case belowOne
    /// A rank above `min(rows, columns)` of a matrix (or an unfolding).
    case exceedsMatrix(rows: Int, columns: Int)
    /// A CP rank above `bound` (``maximumCPRank(shape:)``), which every tensor of `shape` attains.
    case exceedsCP(bound: Int, shape: [Int])
    /// Tucker-2 ranks `[R_out, R_in]` of a `kernelHeight × kernelWidth` kernel with
    /// `R_out > R_in·kh·kw` or `R_in > R_out·kh·kw`: no Tucker-2 core has them.
    case tucker2(ranks: [Int], kernelHeight: Int, kernelWidth: Int)
    /// A problem of the rank of mode `mode`.
    case forMode(Int, RankProblem)
    /// A problem of the rank of TT core `core` (1-based) of `count`.
    case forTTCore(Int, of: Int, RankProblem)
    /// A problem of the `maxRank` argument.
    case maxRank(RankProblem)

    /// The problem in one line, after "rank R".
    public var description: String {
        switch self {
        case .belowOne: return "must be at least 1"
        case let .exceedsMatrix(rows, columns): return "exceeds min(\(rows), \(columns)) = \(Swift.min(rows, columns))"
        case let .exceedsCP(bound, shape):
            return "exceeds \(bound), the product of the mode sizes of \(shape) other than the largest (\(shape.max() ?? 1)); "
                + "every tensor of this shape has CP rank at most \(bound)"
        case let .tucker2(ranks, kh, kw):
            return "Tucker-2 ranks \(ranks) of a \(kh)×\(kw) kernel need R_out ≤ R_in·\(kh * kw) and R_in ≤ R_out·\(kh * kw)"
        case let .forMode(mode, problem): return "\(problem) for mode \(mode)"
        case let .forTTCore(core, count, problem): return "\(problem) for TT core \(core) of \(count)"
        case let .maxRank(problem): return "\(problem) (maxRank)"
        }
    }
}
