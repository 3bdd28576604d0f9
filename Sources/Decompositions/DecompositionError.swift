import RealModule
import TensorModule

/// Errors thrown by the decompositions for input they cannot work with.
///
/// Messages carry the numbers, e.g. `"rank 70 exceeds min(64, 576) = 64 for mode 0"`.
public enum DecompositionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A rank is below 1 or above what the shape allows; `reason` says which bound and why.
    case invalidRank(rank: Int, reason: String)
    /// A list of ranks, modes or factors does not fit the tensor.
    case invalidArgument(String)
    /// The input has a NaN or an infinity.
    case nonFinite(operation: String, index: Int)
    /// The input has no scalars, or a mode of size zero.
    case emptyInput(operation: String, shape: [Int])
    /// A result (a singular value, a CP weight, a core entry) is finite in the scaled computation but
    /// beyond the scalar type's range once scaled back: decompose in `Double`.
    case resultOutOfRange(operation: String, magnitude: Double, limit: Double)

    public var description: String {
        switch self {
        case let .invalidRank(rank, reason): return "rank \(rank) \(reason)"
        case let .invalidArgument(message): return message
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
    @inlinable
    func validateForDecomposition(_ operation: String) throws {
        if scalarCount == 0 || order == 0 { throw DecompositionError.emptyInput(operation: operation, shape: shape) }
        if let index = firstNonFiniteIndex { throw DecompositionError.nonFinite(operation: operation, index: index) }
    }
}

/// Checks `1 <= rank <= min(rows, columns)` for a matrix (or an unfolding).
@inlinable
func validateMatrixRank(_ rank: Int, rows: Int, columns: Int, context: String = "") throws {
    let limit = Swift.min(rows, columns)
    let suffix = context.isEmpty ? "" : " " + context
    if rank < 1 { throw DecompositionError.invalidRank(rank: rank, reason: "must be at least 1\(suffix)") }
    if rank > limit {
        throw DecompositionError.invalidRank(rank: rank, reason: "exceeds min(\(rows), \(columns)) = \(limit)\(suffix)")
    }
}

/// Scales `values` by `2ᵉ` and checks that they stay finite.
///
/// Decompositions of a tensor whose magnitudes are far from 1 run on `X·2⁻ᵉ` (exact, see
/// `Tensor.rangeExponent`) and scale the one factor that carries the magnitude back.
@inlinable
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
    @inlinable
    func scaledBack(byPowerOfTwo exponent: Int, operation: String) throws -> Tensor {
        try Tensor(shape: shape, scalars: Decompositions.scaledBack(Array(scalars), byPowerOfTwo: exponent, operation: operation))
    }
}
