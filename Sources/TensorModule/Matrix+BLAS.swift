extension Matrix {
    /// The matrix product `op(self) · op(other)` by one GEMM.
    ///
    /// ```swift
    /// let c = a.matmul(b)                          // A·B
    /// let g = a.matmul(a, transposeSelf: true)     // AᵀA (prefer gram())
    /// ```
    ///
    /// - Parameters:
    ///   - other: The right factor.
    ///   - transposeSelf: Use `selfᵀ` instead of `self`.
    ///   - transposeOther: Use `otherᵀ` instead of `other`.
    /// - Precondition: The inner dimensions agree.
    /// - Complexity: `2·m·n·k` flops.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func matmul(_ other: Matrix, transposeSelf: Bool = false, transposeOther: Bool = false) -> Matrix {
        let (m, k) = transposeSelf ? (columns, rows) : (rows, columns)
        let (k2, n) = transposeOther ? (other.columns, other.rows) : (other.rows, other.columns)
        precondition(k == k2, """
            matmul: inner dimensions differ: \(transposeSelf ? "Aᵀ" : "A") is \(m) × \(k), \
            \(transposeOther ? "Bᵀ" : "B") is \(k2) × \(n)
            """)
        var result = Matrix.zeros(rows: m, columns: n)
        if m == 0 || n == 0 || k == 0 { return result }
        storage.withUnsafeBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                result.storage.withUnsafeMutableBufferPointer { c in
                    Scalar.gemm(
                        transposeA: transposeSelf, transposeB: transposeOther, m: m, n: n, k: k,
                        alpha: 1, a: a.baseAddress!, lda: columns, b: b.baseAddress!, ldb: other.columns,
                        beta: 0, c: c.baseAddress!, ldc: n)
                }
            }
        }
        return result
    }

    /// The matrix-vector product `op(self) · x` by one GEMV.
    @inlinable
    public func matvec(_ x: [Scalar], transposeSelf: Bool = false) -> [Scalar] {
        let (m, n) = transposeSelf ? (columns, rows) : (rows, columns)
        precondition(x.count == n, "matvec: vector of length \(x.count) for a matrix with \(n) \(transposeSelf ? "rows" : "columns")")
        var y = [Scalar](repeating: 0, count: m)
        if m == 0 || n == 0 { return y }
        storage.withUnsafeBufferPointer { a in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    Scalar.gemv(transpose: transposeSelf, m: rows, n: columns, alpha: 1, a: a.baseAddress!, lda: columns,
                                x: xp.baseAddress!, incx: 1, beta: 0, y: yp.baseAddress!, incy: 1)
                }
            }
        }
        return y
    }

    /// The Gram matrix `AᵀA` (`columns × columns`) by one SYRK, symmetrized.
    ///
    /// - Complexity: `rows · columns²` flops.
    @inlinable
    public func gram() -> Matrix {
        var result = Matrix.zeros(rows: columns, columns: columns)
        if rows == 0 || columns == 0 { return result }
        storage.withUnsafeBufferPointer { a in
            result.storage.withUnsafeMutableBufferPointer { c in
                Scalar.syrk(transpose: true, n: columns, k: rows, alpha: 1, a: a.baseAddress!, lda: columns,
                            beta: 0, c: c.baseAddress!, ldc: columns)
                for i in 0..<columns {
                    for j in 0..<i { c[i * columns + j] = c[j * columns + i] }
                }
            }
        }
        return result
    }

    /// The Euclidean norm of every column.
    @inlinable
    public func columnNorms() -> [Scalar] {
        storage.withUnsafeBufferPointer { a in
            (0..<columns).map { j in rows == 0 ? 0 : Scalar.nrm2(n: rows, x: a.baseAddress! + j, incx: columns) }
        }
    }

    /// The matrix with column `j` multiplied by `factors[j]`.
    @inlinable
    public func scalingColumns(by factors: [Scalar]) -> Matrix {
        precondition(factors.count == columns, "scalingColumns: \(factors.count) factors for \(columns) columns")
        var result = self
        result.storage.withUnsafeMutableBufferPointer { r in
            for i in 0..<rows {
                for j in 0..<columns { r[i * columns + j] *= factors[j] }
            }
        }
        return result
    }

    /// The matrix with row `i` multiplied by `factors[i]`: `diag(factors) · A`.
    @inlinable
    public func scalingRows(by factors: [Scalar]) -> Matrix {
        precondition(factors.count == rows, "scalingRows: \(factors.count) factors for \(rows) rows")
        var result = self
        result.storage.withUnsafeMutableBufferPointer { r in
            for i in 0..<rows {
                for j in 0..<columns { r[i * columns + j] *= factors[i] }
            }
        }
        return result
    }
}
