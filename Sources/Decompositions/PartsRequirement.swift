/// How the parts of a factorized value must fit together: the payload of
/// ``DecompositionError/inconsistentParts(type:shapes:requirement:)``, with the numbers that do not.
public enum PartsRequirement: Sendable, Equatable, CustomStringConvertible {
    /// A TT tensor needs at least one core, each of order 3 `(r, n, r')`.
    case ttCores
    /// A TT-matrix needs at least one core, each of order 4 `(r, m, n, r')`.
    case ttMatrixCores
    /// The first TT core starts and the last ends with rank 1.
    case boundaryRanks
    /// TT core `core` ends with rank `endRank`, but core `core + 1` starts with `nextStartRank`.
    case neighbouringRanks(core: Int, endRank: Int, nextStartRank: Int)
    /// A convolution kernel must have order 4 `(out, in, kh, kw)`.
    case orderFourKernel
    /// A kernel of order `minimum` or more `(out, in, spatial…)`.
    case kernelOrder(minimum: Int)
    /// An order-4 kernel and two ranks `[R_out, R_in]`.
    case kernelAndTwoRanks
    /// A metric of `dimension × dimension`.
    case metric(dimension: Int)
    /// One Tucker factor for each of `modes`, which must be distinct modes of the core.
    case tuckerModes([Int])
    /// The Tucker factor of mode `mode` has `columns` columns where the core has `coreSize`.
    case factorColumns(mode: Int, columns: Int, coreSize: Int)
    /// A given CP initialization must have factors `[I_n, rank]` for a tensor of `shape`.
    case cpInitialization(shape: [Int], rank: Int)
    /// At least one CP factor, each with one column per weight (`weights`).
    case cpFactors(weights: Int)
    /// `U` with one column and `Vᵀ` with one row per singular value.
    case svdFactors

    /// The requirement in one line.
    public var description: String {
        switch self {
        case .ttCores: return "at least one core, each of order 3 (r, n, r')"
        case .ttMatrixCores: return "at least one core, each of order 4 (r, m, n, r')"
        case .boundaryRanks: return "boundary ranks 1 and 1"
        case let .neighbouringRanks(core, endRank, nextStartRank):
            return "core \(core) ends with rank \(endRank) but core \(core + 1) starts with \(nextStartRank)"
        case .orderFourKernel: return "an order-4 kernel"
        case let .kernelOrder(minimum): return "a kernel of order \(minimum) or more (out, in, spatial…)"
        case .kernelAndTwoRanks: return "an order-4 kernel and ranks [R_out, R_in]"
        case let .metric(dimension): return "a \(dimension) × \(dimension) input metric"
        case let .tuckerModes(modes): return "one factor for each of the modes \(modes) of the core, distinct and in range"
        case let .factorColumns(mode, columns, coreSize): return "the factor of mode \(mode) has \(columns) columns, the core has \(coreSize)"
        case let .cpInitialization(shape, rank):
            return "factors of shapes \(shape.map { [$0, rank] }) for a tensor of shape \(shape) at rank \(rank)"
        case let .cpFactors(weights): return "at least one factor, each with one column per weight (\(weights))"
        case .svdFactors: return "U with one column and Vᵀ with one row per singular value"
        }
    }
}
