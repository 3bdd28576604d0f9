/// Which side of the unknown a coefficient matrix stands on in a solve.
public enum SolveSide: Sendable {
    /// Solve `A · X = B`.
    case left
    /// Solve `X · A = B`.
    case right
}

extension Matrix {
    /// Solves `self · X = rhs` (or `X · self = rhs`) for a symmetric positive definite `self` by Cholesky.
    ///
    /// The right-side solve touches no transposes: a row-major `B` is the column-major `Bᵀ`
    /// that LAPACK's `potrs` solves for, since `X·A = B ⇔ A·Xᵀ = Bᵀ` for symmetric `A`.
    ///
    /// - Throws: ``LinearAlgebraError/notPositiveDefinite(order:pivot:)`` when the factorization fails.
    /// - Complexity: `n³/3 + 2·n²·k` flops for `k` right-hand sides.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func choleskySolve(_ rhs: Matrix, side: SolveSide = .left) throws -> Matrix {
        precondition(rows == columns, "choleskySolve needs a square matrix, got \(rows) × \(columns)")
        let n = rows
        let (bRows, bColumns) = side == .left ? (rhs.rows, rhs.columns) : (rhs.columns, rhs.rows)
        precondition(bRows == n, "choleskySolve: right-hand side is \(rhs.rows) × \(rhs.columns) for a matrix of order \(n) on the \(side) side")
        if n == 0 || bColumns == 0 { return rhs }
        var factor = scalars
        // Column-major B with n rows: for the right side this is rhs's own buffer.
        var b = side == .left ? rhs.transposed().storage : rhs.storage
        let info = factor.withUnsafeMutableBufferPointer { a in
            Scalar.potrf(uplo: .lapackOption("U"), n: n, a: a.baseAddress!, lda: n)
        }
        if info > 0 { throw LinearAlgebraError.notPositiveDefinite(order: n, pivot: Int(info)) }
        if info < 0 { throw LinearAlgebraError.lapack(routine: "potrf", info: Int(info)) }
        let solveInfo = factor.withUnsafeBufferPointer { a in
            b.withUnsafeMutableBufferPointer { bp in
                Scalar.potrs(uplo: .lapackOption("U"), n: n, nrhs: bColumns, a: a.baseAddress!, lda: n,
                             b: bp.baseAddress!, ldb: n)
            }
        }
        if solveInfo != 0 { throw LinearAlgebraError.lapack(routine: "potrs", info: Int(solveInfo)) }
        if side == .right { return Matrix(uncheckedRows: rhs.rows, columns: rhs.columns, scalars: b) }
        return Matrix(uncheckedRows: rhs.columns, columns: rhs.rows, scalars: b).transposed()
    }

    /// Solves `self · X = rhs` (or `X · self = rhs`) for a square `self` by LU with partial pivoting.
    ///
    /// - Throws: ``LinearAlgebraError/singular(order:pivot:)`` for an exactly singular matrix.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func luSolve(_ rhs: Matrix, side: SolveSide = .left) throws -> Matrix {
        precondition(rows == columns, "luSolve needs a square matrix, got \(rows) × \(columns)")
        let n = rows
        let (bRows, bColumns) = side == .left ? (rhs.rows, rhs.columns) : (rhs.columns, rhs.rows)
        precondition(bRows == n, "luSolve: right-hand side is \(rhs.rows) × \(rhs.columns) for a matrix of order \(n) on the \(side) side")
        if n == 0 || bColumns == 0 { return rhs }
        // X·A = B ⇔ Aᵀ·Xᵀ = Bᵀ: row-major A and B are column-major Aᵀ and Bᵀ.
        var a = side == .left ? transposed().storage : scalars
        var b = side == .left ? rhs.transposed().storage : rhs.storage
        var pivots = [Int32](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                pivots.withUnsafeMutableBufferPointer { ip in
                    Scalar.gesv(n: n, nrhs: bColumns, a: ap.baseAddress!, lda: n, ipiv: ip.baseAddress!, b: bp.baseAddress!, ldb: n)
                }
            }
        }
        if info > 0 { throw LinearAlgebraError.singular(order: n, pivot: Int(info) - 1) }
        if info < 0 { throw LinearAlgebraError.lapack(routine: "gesv", info: Int(info)) }
        if side == .right { return Matrix(uncheckedRows: rhs.rows, columns: rhs.columns, scalars: b) }
        return Matrix(uncheckedRows: rhs.columns, columns: rhs.rows, scalars: b).transposed()
    }

    /// LAPACK's thin SVD `A = U Σ Vᵀ` with `k = min(rows, columns)`: `U` is `rows × k`,
    /// `Vᵀ` is `k × columns`, singular values descending. No sign convention is applied;
    /// `svd(_:)` in `Decompositions` adds it.
    ///
    /// LAPACK sees the row-major buffer as the column-major transpose. It is given the orientation
    /// in which it is fastest, a tall column-major matrix (for a tall `A` the input is transposed
    /// first, and the factors swap roles back). It runs divide-and-conquer `gesdd` and falls back to
    /// `gesvd` if that does not converge. Factors not asked for are returned empty (`0 × 0`).
    ///
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` when LAPACK fails.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    package func lapackThinSVD(computeU: Bool = true, computeVT: Bool = true) throws -> (u: Matrix, s: [Scalar], vt: Matrix) {
        if rows > columns && (computeU || computeVT) {
            // Aᵀ = V Σ Uᵀ: the SVD of the (wide) transpose, whose buffer LAPACK reads as tall.
            let t = try transposed().lapackThinSVD(computeU: computeVT, computeVT: computeU)
            return (computeU ? t.vt.transposed() : .zeros(rows: 0, columns: 0), t.s,
                    computeVT ? t.u.transposed() : .zeros(rows: 0, columns: 0))
        }
        let (m, n) = (rows, columns)
        let k = Swift.min(m, n)
        if k == 0 {
            return (Matrix.zeros(rows: m, columns: 0), [], Matrix.zeros(rows: 0, columns: n))
        }
        var s = [Scalar](repeating: 0, count: k)
        // Column-major problem: M = n, N = m (the transpose). Its U is our Vᵀ, its Vᵀ our U.
        let vectors = computeU || computeVT
        var vtBuffer = ContiguousArray<Scalar>(repeating: 0, count: vectors ? k * n : 0)
        var uBuffer = ContiguousArray<Scalar>(repeating: 0, count: vectors ? m * k : 0)
        func run(_ routine: String) -> Int32 {
            var a = storage
            return a.withUnsafeMutableBufferPointer { ap in
                s.withUnsafeMutableBufferPointer { sp in
                    vtBuffer.withUnsafeMutableBufferPointer { vtp in
                        uBuffer.withUnsafeMutableBufferPointer { up in
                            if routine == "gesdd" {
                                let job = UInt8.lapackOption(computeU || computeVT ? "S" : "N")
                                return Scalar.gesdd(
                                    jobz: job, m: n, n: m, a: ap.baseAddress!, lda: n, s: sp.baseAddress!,
                                    u: vtp.baseAddress, ldu: n, vt: up.baseAddress, ldvt: k)
                            }
                            var superb = [Scalar](repeating: 0, count: k)
                            return superb.withUnsafeMutableBufferPointer { wp in
                                Scalar.gesvd(
                                    jobu: .lapackOption(vectors ? "S" : "N"), jobvt: .lapackOption(vectors ? "S" : "N"),
                                    m: n, n: m, a: ap.baseAddress!, lda: n, s: sp.baseAddress!,
                                    u: vtp.baseAddress, ldu: n, vt: up.baseAddress, ldvt: k, superb: wp.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
        var info = run("gesdd")
        if info > 0 { info = run("gesvd") }
        if info != 0 { throw LinearAlgebraError.lapack(routine: info > 0 ? "gesvd" : "gesdd", info: Int(info)) }
        return (computeU ? Matrix(uncheckedRows: m, columns: k, scalars: uBuffer) : .zeros(rows: 0, columns: 0), s,
                computeVT ? Matrix(uncheckedRows: k, columns: n, scalars: vtBuffer) : .zeros(rows: 0, columns: 0))
    }

    /// The leading left singular vectors and all singular values of a matrix, without `Vᵀ`.
    ///
    /// Three routes, by shape and precision:
    /// - A matrix with `rows ≤ columns` in a precision of at most half Double's (Float) goes
    ///   through its Gram matrix `A Aᵀ` accumulated in Double (``gramLeftSingularVectors(rank:)``),
    ///   which computes only the vectors asked for.
    /// - Other wide matrices (`2·rows ≤ columns`): the row-major buffer is the column-major tall
    ///   `Aᵀ`; its QR factorization `Aᵀ = Q R` (LAPACK `geqrf`, no copy) reduces the problem to the
    ///   small square `R`: `A = Rᵀ Qᵀ`, so the left singular vectors of `A` are the right singular
    ///   vectors of `R`, and `Q` is never formed.
    /// - The rest use ``lapackThinSVD(computeU:computeVT:)``.
    ///
    /// - Parameter rank: Picks the number of vectors from the singular values (descending); the
    ///   result is clamped to `0...min(rows, columns)`. All by default.
    /// - Returns: `U` with the chosen number of columns, and all `min(rows, columns)` singular values.
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` when LAPACK fails.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    package func lapackLeftSingularVectors(rank: ([Scalar]) -> Int = { $0.count }) throws -> (u: Matrix, s: [Scalar]) {
        let (m, n) = (rows, columns)
        if m > 0 && m <= n && Scalar.gramRouteIsAccurate {
            return try gramLeftSingularVectors(rank: rank)
        }
        let (u, s) = try allLeftSingularVectors()
        return (u.leadingColumns(Swift.max(0, Swift.min(rank(s), u.columns))), s)
    }

    /// All left singular vectors by QR and SVD (wide) or the thin SVD (other shapes).
    func allLeftSingularVectors() throws -> (u: Matrix, s: [Scalar]) {
        let (m, n) = (rows, columns)
        guard m > 0, 2 * m <= n else {
            let f = try lapackThinSVD(computeU: true, computeVT: false)
            return (f.u, f.s)
        }
        var a = storage  // column-major Aᵀ: n × m, leading dimension n
        var tau = [Scalar](repeating: 0, count: m)
        let info = a.withUnsafeMutableBufferPointer { ap in
            tau.withUnsafeMutableBufferPointer { tp in
                Scalar.geqrf(m: n, n: m, a: ap.baseAddress!, lda: n, tau: tp.baseAddress!)
            }
        }
        if info != 0 { throw LinearAlgebraError.lapack(routine: "geqrf", info: Int(info)) }
        // R (m × m, upper) column-major → row-major Rᵀ; the left singular vectors of Rᵀ are ours.
        var rT = Matrix.zeros(rows: m, columns: m)
        for j in 0..<m {
            for i in 0...j { rT.storage[j * m + i] = a[j * n + i] }
        }
        let f = try rT.lapackThinSVD(computeU: true, computeVT: false)
        return (f.u, f.s)
    }

    /// The leading left singular vectors and all singular values of a wide matrix
    /// (`rows ≤ columns`) from the eigen-decomposition of its Gram matrix `A Aᵀ`, formed and
    /// decomposed in Double (BLAS `dsyrk`, then only the eigenvectors asked for, see
    /// `leadingSymmetricEigenpairs`): `A Aᵀ = U Σ² Uᵀ`.
    ///
    /// The Gram matrix squares the condition number, so in Double it is as accurate as an SVD in a
    /// precision of `√ε_Double ≈ 1.5e-8` or coarser: for Float data the singular vectors of every
    /// `σ_i > 1e-9·σ_max` are as accurate as Float's own SVD, and the singular values carry an
    /// absolute error of order `1e-8·σ_max`, below Float's resolution of the data. Double squares
    /// of Float values neither overflow nor underflow. It took HOSVD, HOOI and TT-SVD of Float
    /// conv kernels to 0.5–0.8 of their time on the QR-and-SVD route
    /// (`Documentation/Performance.md`).
    ///
    /// - Parameter rank: Picks the number of vectors from the singular values (descending).
    /// - Returns: `U` (`rows × k`, orthonormal columns) and all singular values, descending.
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` when LAPACK fails.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    package func gramLeftSingularVectors(rank: ([Scalar]) -> Int = { $0.count }) throws -> (u: Matrix, s: [Scalar]) {
        let (m, n) = (rows, columns)
        precondition(m <= n, "gramLeftSingularVectors needs rows ≤ columns, got \(m) × \(n)")
        if m == 0 { return (self, []) }
        let wide = ContiguousArray<Double>(unsafeUninitializedCapacity: m * n) { buffer, count in
            storage.withUnsafeBufferPointer { source in
                for i in 0..<(m * n) { buffer[i] = Double(source[i]) }
            }
            count = m * n
        }
        // Row-major upper triangle of A Aᵀ = column-major lower triangle.
        var gram = ContiguousArray<Double>(repeating: 0, count: m * m)
        wide.withUnsafeBufferPointer { a in
            gram.withUnsafeMutableBufferPointer { g in
                Double.syrk(transpose: false, n: m, k: n, alpha: 1, a: a.baseAddress!, lda: n, beta: 0, c: g.baseAddress!, ldc: m)
            }
        }
        var singularValues: [Scalar] = []
        let (_, vectors) = try leadingSymmetricEigenpairs(&gram, order: m) { eigenvalues in
            singularValues = eigenvalues.map { Scalar(Swift.max($0, 0).squareRoot()) }
            return rank(singularValues)
        }
        let k = vectors.count / m
        var u = Matrix.zeros(rows: m, columns: k)
        u.storage.withUnsafeMutableBufferPointer { out in
            for column in 0..<k {
                for row in 0..<m { out[row * k + column] = Scalar(vectors[column * m + row]) }
            }
        }
        return (u, singularValues)
    }

    /// The singular values, descending (LAPACK `gesdd` without vectors).
    ///
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` if LAPACK does not converge.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func singularValues() throws -> [Scalar] {
        try lapackThinSVD(computeU: false, computeVT: false).s
    }

    /// The Moore–Penrose pseudo-inverse `A⁺ = V Σ⁺ Uᵀ`, computed from the SVD.
    ///
    /// Singular values at or below `relativeTolerance · σ_max` are treated as zero.
    ///
    /// - Parameter relativeTolerance: Cut-off relative to the largest singular value;
    ///   `max(rows, columns) · ε` by default (as LAPACK and NumPy).
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` if the SVD does not converge.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func pseudoInverse(relativeTolerance: Scalar? = nil) throws -> Matrix {
        let (u, s, vt) = try lapackThinSVD()
        let tolerance = (relativeTolerance ?? Scalar(Swift.max(rows, columns)) * Scalar.ulpOfOne) * (s.first ?? 0)
        let inverse = s.map { $0 > tolerance ? 1 / $0 : 0 }
        // A⁺ = (Σ⁺ Vᵀ)ᵀ Uᵀ
        let scaled = vt.transposed().scalingColumns(by: inverse)
        return scaled.matmul(u, transposeOther: true)
    }

    /// A thin QR factorization `A = Q R` with `k = min(rows, columns)`: `Q` is `rows × k`
    /// with orthonormal columns and `R` is `k × columns` upper triangular.
    ///
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` on an illegal argument.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func qr() throws -> (q: Matrix, r: Matrix) {
        let (m, n) = (rows, columns)
        let k = Swift.min(m, n)
        if k == 0 { return (Matrix.zeros(rows: m, columns: 0), Matrix.zeros(rows: 0, columns: n)) }
        var a = transposed().storage  // column-major A, leading dimension m
        var tau = [Scalar](repeating: 0, count: k)
        let info = a.withUnsafeMutableBufferPointer { ap in
            tau.withUnsafeMutableBufferPointer { tp in
                Scalar.geqrf(m: m, n: n, a: ap.baseAddress!, lda: m, tau: tp.baseAddress!)
            }
        }
        if info != 0 { throw LinearAlgebraError.lapack(routine: "geqrf", info: Int(info)) }
        var r = Matrix.zeros(rows: k, columns: n)
        for j in 0..<n {
            for i in 0...Swift.min(j, k - 1) { r.storage[i * n + j] = a[j * m + i] }
        }
        let qInfo = a.withUnsafeMutableBufferPointer { ap in
            tau.withUnsafeBufferPointer { tp in
                Scalar.orgqr(m: m, n: k, k: k, a: ap.baseAddress!, lda: m, tau: tp.baseAddress!)
            }
        }
        if qInfo != 0 { throw LinearAlgebraError.lapack(routine: "orgqr", info: Int(qInfo)) }
        // Column-major m × k with leading dimension m is row-major Qᵀ (k × m).
        let qT = Matrix(uncheckedRows: k, columns: m, scalars: ContiguousArray(a.prefix(m * k)))
        return (qT.transposed(), r)
    }

    /// Eigenvalues (ascending) and orthonormal eigenvectors (the columns of `vectors`) of a
    /// symmetric matrix, by LAPACK `syevd`. Only the upper triangle is read.
    ///
    /// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` if LAPACK does not converge.
    @inlinable
    public func symmetricEigen() throws -> (values: [Scalar], vectors: Matrix) {
        precondition(rows == columns, "symmetricEigen needs a square matrix, got \(rows) × \(columns)")
        let n = rows
        if n == 0 { return ([], self) }
        var a = scalars  // row-major upper = column-major lower; read as lower ("L")
        var w = [Scalar](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { ap in
            w.withUnsafeMutableBufferPointer { wp in
                Scalar.syevd(jobz: .lapackOption("V"), uplo: .lapackOption("L"), n: n, a: ap.baseAddress!, lda: n, w: wp.baseAddress!)
            }
        }
        if info != 0 { throw LinearAlgebraError.lapack(routine: "syevd", info: Int(info)) }
        // Column-major eigenvector columns are the rows of the row-major buffer.
        return (w, Matrix(uncheckedRows: n, columns: n, scalars: a).transposed())
    }
}
