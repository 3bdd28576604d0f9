import RealModule
import TensorModule

/// Errors thrown by the decompositions for input they cannot work with.
///
/// Messages carry the numbers, e.g. `"rank 70 exceeds min(64, 576) = 64 for mode 0"`.
public enum DecompositionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A rank is below 1 or above what the shape allows; the problem says which bound and why.
    case invalidRank(rank: Int, problem: RankProblem)
    /// A list of ranks has the wrong length.
    case rankCount(operation: String, expected: Int, actual: Int)
    /// A numeric option (a tolerance, a fraction, a variance, an iteration count) is outside its range.
    case invalidParameter(operation: String, name: String, value: Double, requirement: ParameterRequirement)
    /// The parts of a factorized value (cores, factors, weights) have shapes that do not fit together.
    case inconsistentParts(type: String, shapes: [[Int]], requirement: PartsRequirement)
    /// The tensor has too few modes for the decomposition.
    case orderTooLow(operation: String, shape: [Int], minimum: Int)
    /// Mode factorizations of a TT-matrix do not multiply to the matrix's dimensions.
    case modeFactorization(rowModes: [Int], columnModes: [Int], shape: [Int])
    /// A relative-error target was asked for a CP rank, which has no a-priori bound.
    case cpRankForErrorTarget(Double)
    /// A count (FLOPs of a batch) does not fit in a 64-bit integer.
    case countOverflow(operation: String, batch: Int)
    /// The input has a NaN or an infinity.
    case nonFinite(operation: String, index: Int)
    /// The input has no scalars, or a mode of size zero.
    case emptyInput(operation: String, shape: [Int])
    /// A result (a singular value, a CP weight, a core entry) is finite in the scaled computation but
    /// beyond the scalar type's range once scaled back: decompose in `Double`.
    case resultOutOfRange(operation: String, magnitude: Double, limit: Double)

    public var description: String {
        switch self {
        case let .invalidRank(rank, problem): return "rank \(rank) \(problem)"
        case let .rankCount(operation, expected, actual):
            return "\(operation): \(actual) ranks given, expected \(expected)"
        case let .invalidParameter(operation, name, value, requirement):
            return "\(operation): \(name) \(value) must be \(requirement)"
        case let .inconsistentParts(type, shapes, requirement):
            return "\(type): parts of shapes \(shapes) do not fit: \(requirement)"
        case let .orderTooLow(operation, shape, minimum):
            return "\(operation): the tensor of shape \(shape) must have order at least \(minimum)"
        case let .modeFactorization(rowModes, columnModes, shape):
            return "row modes \(rowModes) (product \(rowModes.reduce(1, *))) and column modes \(columnModes) "
                + "(product \(columnModes.reduce(1, *))) must have the same, nonzero length and factor the \(shape[0]) × \(shape[1]) matrix"
        case let .cpRankForErrorTarget(epsilon):
            return "selectCPRank: a relative-error target (\(epsilon)) has no a-priori CP rank; use a fixed rank, vbmf, energy or a parameter budget"
        case let .countOverflow(operation, batch):
            return "\(operation): the FLOP count for a batch of \(batch) does not fit in a 64-bit integer"
        case let .nonFinite(operation, index):
            return "\(operation): the input has a non-finite value (NaN or infinity) at flat index \(index)"
        case let .emptyInput(operation, shape): return "\(operation): the input of shape \(shape) is empty"
        case let .resultOutOfRange(operation, magnitude, limit):
            return "\(operation): a result of magnitude \(magnitude) exceeds the largest finite value \(limit) of the scalar type; decompose in Double"
        }
    }
}

extension Tensor {
    /// Throws when the tensor is empty or has a non-finite scalar.
    func validateForDecomposition(_ operation: String) throws {
        if scalarCount == 0 || order == 0 { throw DecompositionError.emptyInput(operation: operation, shape: shape) }
        if let index = firstNonFiniteIndex { throw DecompositionError.nonFinite(operation: operation, index: index) }
    }
}

/// Checks `1 <= rank <= min(rows, columns)` for a matrix (or an unfolding); `context` says
/// whose rank it is (``RankProblem/forMode(_:_:)``).
func validateMatrixRank(_ rank: Int, rows: Int, columns: Int, context: (RankProblem) -> RankProblem = { $0 }) throws {
    if rank < 1 { throw DecompositionError.invalidRank(rank: rank, problem: context(.belowOne)) }
    if rank > Swift.min(rows, columns) {
        throw DecompositionError.invalidRank(rank: rank, problem: context(.exceedsMatrix(rows: rows, columns: columns)))
    }
}

/// Scales `values` by `2ᵉ` and checks that they stay finite.
///
/// Decompositions of a tensor whose magnitudes are far from 1 run on `X·2⁻ᵉ` (exact, see
/// `Tensor.rangeExponent`) and scale the one factor that carries the magnitude back.
func scaledBack<Scalar: BLASScalar>(_ values: [Scalar], byPowerOfTwo exponent: Int, operation: String) throws -> [Scalar] {
    let scaled = values.map { Scalar(sign: .plus, exponent: Scalar.Exponent(exponent), significand: $0) }
    if let index = scaled.firstIndex(where: { !$0.isFinite }) {
        throw DecompositionError.resultOutOfRange(
            operation: operation, magnitude: Double(Swift.abs(values[index])) * Double.pow(2, Double(exponent)),
            limit: Double(Scalar.greatestFiniteMagnitude))
    }
    return scaled
}

extension Tensor {
    /// The tensor scaled by `2ᵉ`, checked to stay finite.
    func scaledBack(byPowerOfTwo exponent: Int, operation: String) throws -> Tensor {
        try Tensor(shape: shape, scalars: Decompositions.scaledBack(Array(scalars), byPowerOfTwo: exponent, operation: operation))
    }
}
