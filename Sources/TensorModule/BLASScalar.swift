import RealModule

/// A scalar type with BLAS and LAPACK kernels: `Float` or `Double`.
///
/// Every algorithm of the package is written once, generically over `BLASScalar`;
/// the two conformances (`Float+BLASScalar.swift`, `Double+BLASScalar.swift`) are thin
/// calls into `cblas_s*`/`LAPACKE_s*` and `cblas_d*`/`LAPACKE_d*`.
///
/// Conventions of the raw kernels:
/// - BLAS level-1/2/3 calls take **row-major** operands, as the rest of the package stores them.
/// - LAPACK calls take **column-major** operands (`LAPACK_COL_MAJOR`) so that LAPACKE never
///   copies. A row-major `m × n` buffer is a column-major `n × m` buffer of the transpose;
///   the generic wrappers in ``Matrix`` use that identity and never transpose data.
/// - LAPACK workspaces are sized by LAPACK's own workspace query (the LAPACKE high-level
///   interface), never guessed. A nonzero `info` is returned to the caller, which turns it
///   into a ``LinearAlgebraError``.
///
/// Conforming types other than `Float` and `Double` are not supported. The raw kernels live in the
/// underscored ``_BLASKernels`` protocol: they take pointers and are not part of the API.
public protocol BLASScalar: _BLASKernels, BinaryFloatingPoint, Real, Sendable, Codable
where Self.RawSignificand: FixedWidthInteger {
    /// A short name of the type for reports: `"Float"` or `"Double"`.
    static var typeName: String { get }
}

/// The BLAS and LAPACK kernels behind ``BLASScalar``: an implementation detail that generic code
/// of this package calls, not API. Pointers passed here come from `withUnsafe…BufferPointer`
/// closures of the caller.
public protocol _BLASKernels {
    // MARK: Scans (concrete loops: one dynamic call per tensor from unspecialized generic code)

    /// The largest `|x|` of `n` scalars (`0` for none); NaN is skipped.
    static func maximumMagnitude(n: Int, x: UnsafePointer<Self>) -> Self
    /// The index of the first NaN or infinity among `n` scalars.
    static func firstNonFiniteIndex(n: Int, x: UnsafePointer<Self>) -> Int?

    // MARK: BLAS (row-major)

    /// `C ← α·op(A)·op(B) + β·C` with `op(A)` of shape `m × k` and `op(B)` of shape `k × n`.
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// `y ← α·op(A)·x + β·y` for `A` of shape `m × n`.
    static func gemv(
        transpose: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, incx: Int, beta: Self, y: UnsafeMutablePointer<Self>, incy: Int)

    /// `xᵀy`.
    static func dot(n: Int, x: UnsafePointer<Self>, incx: Int, y: UnsafePointer<Self>, incy: Int) -> Self

    /// `‖x‖₂`, computed without overflow.
    static func nrm2(n: Int, x: UnsafePointer<Self>, incx: Int) -> Self

    /// `y ← α·x + y`.
    static func axpy(n: Int, alpha: Self, x: UnsafePointer<Self>, incx: Int, y: UnsafeMutablePointer<Self>, incy: Int)

    /// `x ← α·x`.
    static func scal(n: Int, alpha: Self, x: UnsafeMutablePointer<Self>, incx: Int)

    /// `C ← α·op(A)ᵀ·op(A) + β·C` on the upper triangle of the `n × n` matrix `C`
    /// (`transpose: true` means `C = α·AᵀA` for `A` of shape `k × n`).
    static func syrk(
        transpose: Bool, n: Int, k: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    // MARK: LAPACK (column-major); each returns LAPACK's `info`

    /// Divide-and-conquer SVD `A = U Σ Vᵀ` of a column-major `m × n` matrix.
    /// `jobz` is `"S"` (thin factors), `"N"` (values only), `"A"` or `"O"`.
    static func gesdd(
        jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>?, ldu: Int,
        vt: UnsafeMutablePointer<Self>?, ldvt: Int) -> Int32

    /// QR-iteration SVD of a column-major `m × n` matrix; slower than ``gesdd(jobz:m:n:a:lda:s:u:ldu:vt:ldvt:)``
    /// but a fallback when divide-and-conquer fails to converge.
    static func gesvd(
        jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>?, ldu: Int,
        vt: UnsafeMutablePointer<Self>?, ldvt: Int, superb: UnsafeMutablePointer<Self>) -> Int32

    /// Eigenvalues (ascending) and, with `jobz == "V"`, eigenvectors of a symmetric matrix.
    static func syevd(jobz: UInt8, uplo: UInt8, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, w: UnsafeMutablePointer<Self>) -> Int32

    /// Householder QR factorization of a column-major `m × n` matrix.
    static func geqrf(m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, tau: UnsafeMutablePointer<Self>) -> Int32

    /// Forms the first `n` columns of `Q` from the output of ``geqrf(m:n:a:lda:tau:)``.
    static func orgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Self>, lda: Int, tau: UnsafePointer<Self>) -> Int32

    /// Cholesky factorization of a symmetric positive definite matrix.
    static func potrf(uplo: UInt8, n: Int, a: UnsafeMutablePointer<Self>, lda: Int) -> Int32

    /// Solves `A X = B` with the Cholesky factor from ``potrf(uplo:n:a:lda:)``.
    static func potrs(uplo: UInt8, n: Int, nrhs: Int, a: UnsafePointer<Self>, lda: Int, b: UnsafeMutablePointer<Self>, ldb: Int) -> Int32

    /// Solves `A X = B` by LU with partial pivoting.
    static func gesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int, ipiv: UnsafeMutablePointer<Int32>, b: UnsafeMutablePointer<Self>, ldb: Int) -> Int32
}

extension UInt8 {
    /// The ASCII code of a one-character LAPACK option such as `"S"` or `"V"`.
    @inlinable
    static func lapackOption(_ character: Unicode.Scalar) -> UInt8 { UInt8(ascii: character) }
}

extension BLASScalar {
    /// Whether a Gram matrix formed and eigendecomposed in Double is as accurate as this type's
    /// own SVD: the Gram route squares the condition number, which Double absorbs for a type of
    /// at most half its precision (Float), not for Double itself.
    @inlinable
    package static var gramRouteIsAccurate: Bool { Double(ulpOfOne) >= Double.ulpOfOne.squareRoot() }

    /// The scans of ``_BLASKernels``, written once: each conformance's witness is this body
    /// specialized for its type, so generic callers pay one dynamic call per tensor, not per scalar.
    ///
    /// Both keep eight running values over interleaved scalars, so that the loop is eight
    /// independent chains (which the compiler also vectorizes) rather than one chain of dependent
    /// operations; a maximum, and a sum of zeros, do not depend on the order.
    @inlinable
    public static func maximumMagnitude(n: Int, x: UnsafePointer<Self>) -> Self {
        // `Swift.max(m, NaN)` is `m`: NaNs are skipped, as a single running maximum skips them.
        var m = (Self.zero, Self.zero, Self.zero, Self.zero, Self.zero, Self.zero, Self.zero, Self.zero)
        var i = 0
        while i + 8 <= n {
            m.0 = Swift.max(m.0, Swift.abs(x[i])); m.1 = Swift.max(m.1, Swift.abs(x[i + 1]))
            m.2 = Swift.max(m.2, Swift.abs(x[i + 2])); m.3 = Swift.max(m.3, Swift.abs(x[i + 3]))
            m.4 = Swift.max(m.4, Swift.abs(x[i + 4])); m.5 = Swift.max(m.5, Swift.abs(x[i + 5]))
            m.6 = Swift.max(m.6, Swift.abs(x[i + 6])); m.7 = Swift.max(m.7, Swift.abs(x[i + 7]))
            i += 8
        }
        var largest = Swift.max(Swift.max(Swift.max(m.0, m.1), Swift.max(m.2, m.3)), Swift.max(Swift.max(m.4, m.5), Swift.max(m.6, m.7)))
        while i < n {
            largest = Swift.max(largest, Swift.abs(x[i]))
            i += 1
        }
        return largest
    }

    @inlinable
    public static func firstNonFiniteIndex(n: Int, x: UnsafePointer<Self>) -> Int? {
        // x·0 is NaN exactly for NaN and ±∞ (and ±0 otherwise): a branch-free pass first, the
        // search only when it fails.
        var p = (Self.zero, Self.zero, Self.zero, Self.zero, Self.zero, Self.zero, Self.zero, Self.zero)
        var i = 0
        while i + 8 <= n {
            p.0 += x[i] * 0; p.1 += x[i + 1] * 0; p.2 += x[i + 2] * 0; p.3 += x[i + 3] * 0
            p.4 += x[i + 4] * 0; p.5 += x[i + 5] * 0; p.6 += x[i + 6] * 0; p.7 += x[i + 7] * 0
            i += 8
        }
        var probe = ((p.0 + p.1) + (p.2 + p.3)) + ((p.4 + p.5) + (p.6 + p.7))
        while i < n {
            probe += x[i] * 0
            i += 1
        }
        if probe == 0 { return nil }
        return (0..<n).first { !x[$0].isFinite }
    }
}
