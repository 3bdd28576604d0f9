/// Errors thrown when shapes, modes or permutations that come from data do not fit.
///
/// Every message carries the numbers involved, e.g.
/// `"scalar count 11 does not match shape [3, 4] (12 scalars)"`.
public enum TensorError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The number of scalars does not match the product of the shape.
    case scalarCountMismatch(shape: [Int], count: Int)
    /// A dimension is negative.
    case negativeDimension(shape: [Int])
    /// The product of a shape overflows `Int`.
    case shapeOverflow(shape: [Int])
    /// Two shapes that must agree do not.
    case shapeMismatch(operation: String, expected: [Int], actual: [Int])
    /// A permutation is not a permutation of `0..<order`.
    case invalidPermutation([Int], order: Int)
    /// A list of matrices or sizes has the wrong length.
    case countMismatch(operation: String, expected: Int, actual: Int)
    /// A reshape target with more than one inferred (`-1`) dimension.
    case ambiguousReshape(shape: [Int])
    /// The data contains NaN or infinity.
    case nonFinite(operation: String, index: Int)

    public var description: String {
        switch self {
        case let .scalarCountMismatch(shape, count):
            let expected = shape.reduce(1, *)
            return "scalar count \(count) does not match shape \(shape) (\(expected) scalars)"
        case let .negativeDimension(shape):
            return "shape \(shape) has a negative dimension"
        case let .shapeOverflow(shape):
            return "the scalar count of shape \(shape) overflows Int"
        case let .shapeMismatch(operation, expected, actual):
            return "\(operation): expected shape \(expected), got \(actual)"
        case let .invalidPermutation(permutation, order):
            return "\(permutation) is not a permutation of 0..<\(order)"
        case let .countMismatch(operation, expected, actual):
            return "\(operation): expected \(expected) items, got \(actual)"
        case let .ambiguousReshape(shape):
            return "reshape to \(shape): at most one dimension may be -1"
        case let .nonFinite(operation, index):
            return "\(operation): the data has a non-finite value (NaN or infinity) at flat index \(index)"
        }
    }
}

/// Errors thrown by LAPACK routines and by the solvers built on them.
public enum LinearAlgebraError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A LAPACK routine returned a nonzero `info`.
    case lapack(routine: String, info: Int)
    /// A Cholesky factorization found a non-positive pivot.
    case notPositiveDefinite(order: Int, pivot: Int)
    /// An LU factorization found an exactly singular matrix.
    case singular(order: Int, pivot: Int)

    public var description: String {
        switch self {
        case let .lapack(routine, info):
            if info < 0 { return "\(routine): argument \(-info) had an illegal value (info = \(info))" }
            return "\(routine) failed to converge (info = \(info))"
        case let .notPositiveDefinite(order, pivot):
            return "matrix of order \(order) is not positive definite (leading minor \(pivot) is not positive)"
        case let .singular(order, pivot):
            return "matrix of order \(order) is singular (U[\(pivot), \(pivot)] is exactly zero)"
        }
    }
}
