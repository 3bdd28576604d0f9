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
/// Conforming types other than `Float` and `Double` are not supported: the raw kernels live in a
/// ``BLASKernels`` table that only this package can make, and take pointers, which are not API.
public protocol BLASScalar: BinaryFloatingPoint, Real, Sendable, Codable
where Self.RawSignificand: FixedWidthInteger {
    /// A short name of the type for reports: `"Float"` or `"Double"`.
    static var typeName: String { get }

    /// The type's BLAS and LAPACK kernels: an opaque table with no public members, which the
    /// package's generic algorithms call (see ``BLASKernels``).
    static var blasKernels: BLASKernels<Self> { get }
}

/// The BLAS and LAPACK kernels of one scalar type, behind ``BLASScalar/blasKernels``: a table of
/// functions over raw pointers that the package's generic algorithms call. It has no public
/// members: the pointer calls are not API, and only `Float` and `Double` make one.
public struct BLASKernels<Scalar>: Sendable {
    @usableFromInline package let maximumMagnitude: @Sendable (Int, UnsafePointer<Scalar>) -> Scalar
    @usableFromInline package let firstNonFiniteIndex: @Sendable (Int, UnsafePointer<Scalar>) -> Int?
    @usableFromInline package let gemm: @Sendable (Bool, Bool, Int, Int, Int, Scalar, UnsafePointer<Scalar>, Int, UnsafePointer<Scalar>, Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void
    @usableFromInline package let gemv: @Sendable (Bool, Int, Int, Scalar, UnsafePointer<Scalar>, Int, UnsafePointer<Scalar>, Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void
    @usableFromInline package let dot: @Sendable (Int, UnsafePointer<Scalar>, Int, UnsafePointer<Scalar>, Int) -> Scalar
    @usableFromInline package let nrm2: @Sendable (Int, UnsafePointer<Scalar>, Int) -> Scalar
    @usableFromInline package let axpy: @Sendable (Int, Scalar, UnsafePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, Int) -> Void
    @usableFromInline package let scal: @Sendable (Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void
    @usableFromInline package let syrk: @Sendable (Bool, Int, Int, Scalar, UnsafePointer<Scalar>, Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void
    @usableFromInline package let gesdd: @Sendable (UInt8, Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, UnsafeMutablePointer<Scalar>?, Int, UnsafeMutablePointer<Scalar>?, Int) -> Int32
    @usableFromInline package let gesvd: @Sendable (UInt8, UInt8, Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, UnsafeMutablePointer<Scalar>?, Int, UnsafeMutablePointer<Scalar>?, Int, UnsafeMutablePointer<Scalar>) -> Int32
    @usableFromInline package let syevd: @Sendable (UInt8, UInt8, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>) -> Int32
    @usableFromInline package let geqrf: @Sendable (Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>) -> Int32
    @usableFromInline package let orgqr: @Sendable (Int, Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafePointer<Scalar>) -> Int32
    @usableFromInline package let potrf: @Sendable (UInt8, Int, UnsafeMutablePointer<Scalar>, Int) -> Int32
    @usableFromInline package let potrs: @Sendable (UInt8, Int, Int, UnsafePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, Int) -> Int32
    @usableFromInline package let gesv: @Sendable (Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Scalar>, Int) -> Int32

    package init(
        maximumMagnitude: @escaping @Sendable (Int, UnsafePointer<Scalar>) -> Scalar,
        firstNonFiniteIndex: @escaping @Sendable (Int, UnsafePointer<Scalar>) -> Int?,
        gemm: @escaping @Sendable (Bool, Bool, Int, Int, Int, Scalar, UnsafePointer<Scalar>, Int, UnsafePointer<Scalar>, Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void,
        gemv: @escaping @Sendable (Bool, Int, Int, Scalar, UnsafePointer<Scalar>, Int, UnsafePointer<Scalar>, Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void,
        dot: @escaping @Sendable (Int, UnsafePointer<Scalar>, Int, UnsafePointer<Scalar>, Int) -> Scalar,
        nrm2: @escaping @Sendable (Int, UnsafePointer<Scalar>, Int) -> Scalar,
        axpy: @escaping @Sendable (Int, Scalar, UnsafePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, Int) -> Void,
        scal: @escaping @Sendable (Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void,
        syrk: @escaping @Sendable (Bool, Int, Int, Scalar, UnsafePointer<Scalar>, Int, Scalar, UnsafeMutablePointer<Scalar>, Int) -> Void,
        gesdd: @escaping @Sendable (UInt8, Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, UnsafeMutablePointer<Scalar>?, Int, UnsafeMutablePointer<Scalar>?, Int) -> Int32,
        gesvd: @escaping @Sendable (UInt8, UInt8, Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, UnsafeMutablePointer<Scalar>?, Int, UnsafeMutablePointer<Scalar>?, Int, UnsafeMutablePointer<Scalar>) -> Int32,
        syevd: @escaping @Sendable (UInt8, UInt8, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>) -> Int32,
        geqrf: @escaping @Sendable (Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>) -> Int32,
        orgqr: @escaping @Sendable (Int, Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafePointer<Scalar>) -> Int32,
        potrf: @escaping @Sendable (UInt8, Int, UnsafeMutablePointer<Scalar>, Int) -> Int32,
        potrs: @escaping @Sendable (UInt8, Int, Int, UnsafePointer<Scalar>, Int, UnsafeMutablePointer<Scalar>, Int) -> Int32,
        gesv: @escaping @Sendable (Int, Int, UnsafeMutablePointer<Scalar>, Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Scalar>, Int) -> Int32
    ) {
        self.maximumMagnitude = maximumMagnitude
        self.firstNonFiniteIndex = firstNonFiniteIndex
        self.gemm = gemm
        self.gemv = gemv
        self.dot = dot
        self.nrm2 = nrm2
        self.axpy = axpy
        self.scal = scal
        self.syrk = syrk
        self.gesdd = gesdd
        self.gesvd = gesvd
        self.syevd = syevd
        self.geqrf = geqrf
        self.orgqr = orgqr
        self.potrf = potrf
        self.potrs = potrs
        self.gesv = gesv
    }
}

/// The kernels as static calls on the scalar type, `Scalar.gemm(…)` in generic code, each one
/// call through the type's table. Pointers passed here come from `withUnsafe…BufferPointer`
/// closures of the caller.
extension BLASScalar {
    /// The largest `|x|` of `n` scalars (`0` for none); NaN is skipped.
    @inlinable @inline(__always)
    package static func maximumMagnitude(n: Int, x: UnsafePointer<Self>) -> Self { blasKernels.maximumMagnitude(n, x) }

    /// The index of the first NaN or infinity among `n` scalars.
    @inlinable @inline(__always)
    package static func firstNonFiniteIndex(n: Int, x: UnsafePointer<Self>) -> Int? { blasKernels.firstNonFiniteIndex(n, x) }

    /// `C ← α·op(A)·op(B) + β·C` with `op(A)` of shape `m × k` and `op(B)` of shape `k × n`.
    @inlinable @inline(__always)
    package static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int, beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int) { blasKernels.gemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) }

    /// `y ← α·op(A)·x + β·y` for `A` of shape `m × n`.
    @inlinable @inline(__always)
    package static func gemv(transpose: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int, x: UnsafePointer<Self>, incx: Int, beta: Self, y: UnsafeMutablePointer<Self>, incy: Int) { blasKernels.gemv(transpose, m, n, alpha, a, lda, x, incx, beta, y, incy) }

    /// `xᵀy`.
    @inlinable @inline(__always)
    package static func dot(n: Int, x: UnsafePointer<Self>, incx: Int, y: UnsafePointer<Self>, incy: Int) -> Self { blasKernels.dot(n, x, incx, y, incy) }

    /// `‖x‖₂`, computed without overflow.
    @inlinable @inline(__always)
    package static func nrm2(n: Int, x: UnsafePointer<Self>, incx: Int) -> Self { blasKernels.nrm2(n, x, incx) }

    /// `y ← α·x + y`.
    @inlinable @inline(__always)
    package static func axpy(n: Int, alpha: Self, x: UnsafePointer<Self>, incx: Int, y: UnsafeMutablePointer<Self>, incy: Int) { blasKernels.axpy(n, alpha, x, incx, y, incy) }

    /// `x ← α·x`.
    @inlinable @inline(__always)
    package static func scal(n: Int, alpha: Self, x: UnsafeMutablePointer<Self>, incx: Int) { blasKernels.scal(n, alpha, x, incx) }

    /// `C ← α·op(A)ᵀ·op(A) + β·C` on the upper triangle of the `n × n` matrix `C`
    /// (`transpose: true` means `C = α·AᵀA` for `A` of shape `k × n`).
    @inlinable @inline(__always)
    package static func syrk(transpose: Bool, n: Int, k: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int, beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int) { blasKernels.syrk(transpose, n, k, alpha, a, lda, beta, c, ldc) }

    /// Divide-and-conquer SVD `A = U Σ Vᵀ` of a column-major `m × n` matrix.
    /// `jobz` is `"S"` (thin factors), `"N"` (values only), `"A"` or `"O"`.
    @inlinable @inline(__always)
    package static func gesdd(jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>?, ldu: Int, vt: UnsafeMutablePointer<Self>?, ldvt: Int) -> Int32 { blasKernels.gesdd(jobz, m, n, a, lda, s, u, ldu, vt, ldvt) }

    /// QR-iteration SVD of a column-major `m × n` matrix; slower than ``gesdd(jobz:m:n:a:lda:s:u:ldu:vt:ldvt:)``
    /// but a fallback when divide-and-conquer fails to converge.
    @inlinable @inline(__always)
    package static func gesvd(jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>?, ldu: Int, vt: UnsafeMutablePointer<Self>?, ldvt: Int, superb: UnsafeMutablePointer<Self>) -> Int32 { blasKernels.gesvd(jobu, jobvt, m, n, a, lda, s, u, ldu, vt, ldvt, superb) }

    /// Eigenvalues (ascending) and, with `jobz == "V"`, eigenvectors of a symmetric matrix.
    @inlinable @inline(__always)
    package static func syevd(jobz: UInt8, uplo: UInt8, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, w: UnsafeMutablePointer<Self>) -> Int32 { blasKernels.syevd(jobz, uplo, n, a, lda, w) }

    /// Householder QR factorization of a column-major `m × n` matrix.
    @inlinable @inline(__always)
    package static func geqrf(m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, tau: UnsafeMutablePointer<Self>) -> Int32 { blasKernels.geqrf(m, n, a, lda, tau) }

    /// Forms the first `n` columns of `Q` from the output of ``geqrf(m:n:a:lda:tau:)``.
    @inlinable @inline(__always)
    package static func orgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Self>, lda: Int, tau: UnsafePointer<Self>) -> Int32 { blasKernels.orgqr(m, n, k, a, lda, tau) }

    /// Cholesky factorization of a symmetric positive definite matrix.
    @inlinable @inline(__always)
    package static func potrf(uplo: UInt8, n: Int, a: UnsafeMutablePointer<Self>, lda: Int) -> Int32 { blasKernels.potrf(uplo, n, a, lda) }

    /// Solves `A X = B` with the Cholesky factor from ``potrf(uplo:n:a:lda:)``.
    @inlinable @inline(__always)
    package static func potrs(uplo: UInt8, n: Int, nrhs: Int, a: UnsafePointer<Self>, lda: Int, b: UnsafeMutablePointer<Self>, ldb: Int) -> Int32 { blasKernels.potrs(uplo, n, nrhs, a, lda, b, ldb) }

    /// Solves `A X = B` by LU with partial pivoting.
    @inlinable @inline(__always)
    package static func gesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int, ipiv: UnsafeMutablePointer<Int32>, b: UnsafeMutablePointer<Self>, ldb: Int) -> Int32 { blasKernels.gesv(n, nrhs, a, lda, ipiv, b, ldb) }
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

    /// The scans of ``BLASKernels``, written once: each type's table holds this body specialized
    /// for its type, so generic callers pay one call through the table per tensor, not per scalar.
    ///
    /// Both keep eight running values over interleaved scalars, so that the loop is eight
    /// independent chains (which the compiler also vectorizes) rather than one chain of dependent
    /// operations; a maximum, and a sum of zeros, do not depend on the order.
    static func scanMaximumMagnitude(n: Int, x: UnsafePointer<Self>) -> Self {
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

    static func scanFirstNonFiniteIndex(n: Int, x: UnsafePointer<Self>) -> Int? {
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
