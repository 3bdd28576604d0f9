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

    public var description: String {
        switch self {
        case let .invalidRank(rank, reason): return "rank \(rank) \(reason)"
        case let .invalidArgument(message): return message
        case let .nonFinite(operation, index):
            return "\(operation): the input has a non-finite value (NaN or infinity) at flat index \(index)"
        case let .emptyInput(operation, shape): return "\(operation): the input of shape \(shape) is empty"
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
