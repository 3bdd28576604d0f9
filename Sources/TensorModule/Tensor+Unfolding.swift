extension Tensor {
    /// The mode-`n` unfolding in TensorLy's convention: move axis `n` to the front, then reshape
    /// row-major to `(I_n, ∏_{m≠n} I_m)`.
    ///
    /// Column `j` of the result enumerates the remaining indices in their original order with the
    /// **last varying fastest**. Kolda & Bader's matricization orders the columns with the *first*
    /// remaining index fastest instead; the two differ by a column permutation.
    ///
    /// ```swift
    /// let x = try Tensor<Double>(shape: [3, 4, 2], scalars: (0..<24).map(Double.init))
    /// x.unfolded(mode: 1).row(0)   // [0, 1, 8, 9, 16, 17]
    /// x.unfolded(mode: 2).row(0)   // [0, 2, 4, …, 22]
    /// ```
    ///
    /// Mode 0 is a view (no copy); other modes are one cache-blocked permutation.
    ///
    /// - Precondition: `0 <= mode < order`.
    /// - Complexity: O(scalarCount).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func unfolded(mode: Int) -> Matrix<Scalar> {
        precondition(mode >= 0 && mode < order, "mode \(mode) is out of range 0..<\(order) for shape \(shape)")
        let rest = shape.enumerated().filter { $0.offset != mode }.reduce(1) { $0 * $1.element }
        let permutation = [mode] + (0..<order).filter { $0 != mode }
        let moved = permutedUnchecked(permutation)
        return Matrix(uncheckedRows: shape[mode], columns: rest, scalars: moved.storage)
    }

    /// Folds a mode-`n` unfolding back into a tensor of the given shape: the inverse of
    /// ``unfolded(mode:)``.
    ///
    /// ```swift
    /// let m = x.unfolded(mode: 2)
    /// try Tensor(folding: m, mode: 2, shape: x.shape) == x   // true
    /// ```
    ///
    /// - Precondition: `0 <= mode < shape.count`.
    /// - Throws: ``TensorError/shapeMismatch(operation:expected:actual:)`` when the matrix does not have
    ///   `shape[mode]` rows and `∏_{m≠mode} shape[m]` columns.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public init(folding matrix: Matrix<Scalar>, mode: Int, shape: [Int]) throws {
        precondition(mode >= 0 && mode < shape.count, "mode \(mode) is out of range 0..<\(shape.count) for shape \(shape)")
        _ = try Self.validatedCount(of: shape)
        let rest = shape.enumerated().filter { $0.offset != mode }.reduce(1) { $0 * $1.element }
        guard matrix.rows == shape[mode], matrix.columns == rest else {
            throw TensorError.shapeMismatch(
                operation: "fold mode \(mode) into \(shape)", expected: [shape[mode], rest], actual: [matrix.rows, matrix.columns])
        }
        let others = (0..<shape.count).filter { $0 != mode }
        let moved = Tensor(uncheckedShape: [shape[mode]] + others.map { shape[$0] }, scalars: matrix.storage)
        // Axis `mode` of the result is axis 0 of `moved`; axis m ≠ mode is axis (m < mode ? m + 1 : m).
        let inverse = (0..<shape.count).map { $0 == mode ? 0 : ($0 < mode ? $0 + 1 : $0) }
        self = moved.permutedUnchecked(inverse)
    }
}
