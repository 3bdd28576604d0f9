extension Tensor {
    /// The mode-`n` product `Y = X ×_n M`: every mode-`n` fibre of `X` is multiplied by `M`.
    ///
    /// ```text
    /// Y[i_0, …, j, …, i_{N−1}] = Σ_i M[j, i] · X[i_0, …, i, …, i_{N−1}]      (j replaces i_n)
    /// unfold(Y, n) = M · unfold(X, n)
    /// ```
    ///
    /// `M` has shape `(J, I_n)`; with `transposed: true` it has shape `(I_n, J)` and `Mᵀ` is used
    /// (the projection onto an orthonormal basis in Tucker algorithms).
    ///
    /// The product runs on reshaped views without forming an unfolding: one GEMM for the first and
    /// the last mode, and for a middle mode `n` a GEMM per leading index (the tensor as
    /// `P × I_n × Q`); when `Q` is small those GEMMs would be tiny, so the tensor is permuted to
    /// `P × Q × I_n` for one large GEMM and permuted back.
    ///
    /// - Throws: ``TensorError/shapeMismatch(operation:expected:actual:)`` when `M` does not have
    ///   `I_n` columns (rows, when transposed).
    /// - Precondition: `0 <= mode < order`.
    /// - Complexity: `2 · J · scalarCount` flops.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func modeProduct(_ matrix: Matrix<Scalar>, mode: Int, transposed: Bool = false) throws -> Tensor {
        precondition(mode >= 0 && mode < order, "mode \(mode) is out of range 0..<\(order) for shape \(shape)")
        let inner = transposed ? matrix.rows : matrix.columns
        let j = transposed ? matrix.columns : matrix.rows
        guard inner == shape[mode] else {
            let expected = transposed ? [shape[mode], j] : [j, shape[mode]]
            throw TensorError.shapeMismatch(
                operation: "mode-\(mode) product with a tensor of shape \(shape)", expected: expected,
                actual: [matrix.rows, matrix.columns])
        }
        let p = shape[..<mode].reduce(1, *)
        let i = shape[mode]
        let q = shape[(mode + 1)...].reduce(1, *)
        var newShape = shape
        newShape[mode] = j
        var result = Tensor.zeros(shape: newShape)
        if result.scalarCount == 0 || i == 0 { return result }
        let ldm = matrix.columns

        if q == 1 {
            // Y (P × J) = X (P × I) · op(M)ᵀ
            storage.withUnsafeBufferPointer { x in
                matrix.storage.withUnsafeBufferPointer { m in
                    result.storage.withUnsafeMutableBufferPointer { y in
                        Scalar.gemm(transposeA: false, transposeB: !transposed, m: p, n: j, k: i, alpha: 1,
                                    a: x.baseAddress!, lda: i, b: m.baseAddress!, ldb: ldm, beta: 0, c: y.baseAddress!, ldc: j)
                    }
                }
            }
            return result
        }
        if p > 1 && q < Self.smallTrailingSize {
            // Few trailing scalars: permute to (P, Q, I), one GEMM, permute back.
            let moved = Tensor(uncheckedShape: [p, i, q], scalars: scalars).permutedUnchecked([0, 2, 1])
            let product = try moved.modeProduct(matrix, mode: 2, transposed: transposed)
            return Tensor(uncheckedShape: newShape, scalars: product.permutedUnchecked([0, 2, 1]).storage)
        }
        // Y_p (J × Q) = op(M) (J × I) · X_p (I × Q) for every leading index p.
        storage.withUnsafeBufferPointer { x in
            matrix.storage.withUnsafeBufferPointer { m in
                result.storage.withUnsafeMutableBufferPointer { y in
                    for index in 0..<p {
                        Scalar.gemm(transposeA: transposed, transposeB: false, m: j, n: q, k: i, alpha: 1,
                                    a: m.baseAddress!, lda: ldm, b: x.baseAddress! + index * i * q, ldb: q,
                                    beta: 0, c: y.baseAddress! + index * j * q, ldc: q)
                    }
                }
            }
        }
        return result
    }

    /// Below this many trailing scalars, a middle-mode product permutes instead of batching GEMMs.
    @inlinable static var smallTrailingSize: Int { 16 }

    /// Mode products in several modes: `X ×_{modes[0]} M_0 ×_{modes[1]} M_1 ⋯`.
    ///
    /// Products in different modes commute; they are applied in the order that shrinks the
    /// tensor fastest (the smallest ratio `J / I_n` first), which minimizes the work.
    ///
    /// ```swift
    /// // Tucker reconstruction: core ×_0 U_0 ×_1 U_1 ×_2 U_2
    /// let x = try core.multiModeProduct([u0, u1, u2], modes: [0, 1, 2])
    /// // Projection onto the factors: X ×_n U_nᵀ for all n
    /// let g = try x.multiModeProduct([u0, u1, u2], modes: [0, 1, 2], transposed: true)
    /// ```
    ///
    /// - Precondition: every mode in `0..<order`, none given twice.
    /// - Throws: ``TensorError/countMismatch(operation:expected:actual:)`` when the counts differ,
    ///   and the errors of ``modeProduct(_:mode:transposed:)``.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func multiModeProduct(_ matrices: [Matrix<Scalar>], modes: [Int], transposed: Bool = false) throws -> Tensor {
        guard matrices.count == modes.count else {
            throw TensorError.countMismatch(operation: "multiModeProduct: matrices for modes \(modes)", expected: modes.count, actual: matrices.count)
        }
        for mode in modes { precondition(mode >= 0 && mode < order, "mode \(mode) is out of range 0..<\(order) for shape \(shape)") }
        precondition(Set(modes).count == modes.count, "multiModeProduct: modes \(modes) repeat a mode")
        for (matrix, mode) in zip(matrices, modes) {
            let inner = transposed ? matrix.rows : matrix.columns
            guard inner == shape[mode] else {
                throw TensorError.shapeMismatch(
                    operation: "mode-\(mode) product with a tensor of shape \(shape)",
                    expected: transposed ? [shape[mode], -1] : [-1, shape[mode]], actual: [matrix.rows, matrix.columns])
            }
        }
        let order = matrices.indices.sorted { a, b in
            let outA = transposed ? matrices[a].columns : matrices[a].rows
            let outB = transposed ? matrices[b].columns : matrices[b].rows
            // Compare outA / I_a with outB / I_b without division.
            return outA * shape[modes[b]] < outB * shape[modes[a]]
        }
        var result = self
        for index in order {
            result = try result.modeProduct(matrices[index], mode: modes[index], transposed: transposed)
        }
        return result
    }

    /// Mode products in every mode except `skipping` (if given): `matrices[n]` multiplies mode `n`.
    ///
    /// - Throws: ``TensorError/countMismatch(operation:expected:actual:)`` unless there is one
    ///   matrix per mode, and the errors of ``multiModeProduct(_:modes:transposed:)``.
    @inlinable
    public func multiModeProduct(_ matrices: [Matrix<Scalar>], skipping: Int?, transposed: Bool = false) throws -> Tensor {
        guard matrices.count == order else {
            throw TensorError.countMismatch(operation: "multiModeProduct: one matrix per mode of \(shape)", expected: order, actual: matrices.count)
        }
        let modes = (0..<order).filter { $0 != skipping }
        return try multiModeProduct(modes.map { matrices[$0] }, modes: modes, transposed: transposed)
    }
}
