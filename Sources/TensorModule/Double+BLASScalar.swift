internal import CLinearAlgebra
import RealModule

extension Double: BLASScalar {
    public static var typeName: String { "Double" }

    public static let blasKernels = BLASKernels<Double>(
        maximumMagnitude: scanMaximumMagnitude,
        firstNonFiniteIndex: scanFirstNonFiniteIndex,
        gemm: nativeGemm,
        gemv: nativeGemv,
        dot: nativeDot,
        nrm2: nativeNrm2,
        axpy: nativeAxpy,
        scal: nativeScal,
        syrk: nativeSyrk,
        gesdd: nativeGesdd,
        gesvd: nativeGesvd,
        syevd: nativeSyevd,
        geqrf: nativeGeqrf,
        orgqr: nativeOrgqr,
        potrf: nativePotrf,
        potrs: nativePotrs,
        gesv: nativeGesv)
}

// The calls into OpenBLAS and LAPACKE that fill the table.
extension Double {
    static func nativeGemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    static func nativeGemv(
        transpose: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incx: Int, beta: Double, y: UnsafeMutablePointer<Double>, incy: Int
    ) {
        cblas_dgemv(
            CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, blasint(m), blasint(n),
            alpha, a, blasint(lda), x, blasint(incx), beta, y, blasint(incy))
    }

    static func nativeDot(n: Int, x: UnsafePointer<Double>, incx: Int, y: UnsafePointer<Double>, incy: Int) -> Double {
        cblas_ddot(blasint(n), x, blasint(incx), y, blasint(incy))
    }

    static func nativeNrm2(n: Int, x: UnsafePointer<Double>, incx: Int) -> Double {
        cblas_dnrm2(blasint(n), x, blasint(incx))
    }

    static func nativeAxpy(n: Int, alpha: Double, x: UnsafePointer<Double>, incx: Int, y: UnsafeMutablePointer<Double>, incy: Int) {
        cblas_daxpy(blasint(n), alpha, x, blasint(incx), y, blasint(incy))
    }

    static func nativeScal(n: Int, alpha: Double, x: UnsafeMutablePointer<Double>, incx: Int) {
        cblas_dscal(blasint(n), alpha, x, blasint(incx))
    }

    static func nativeSyrk(
        transpose: Bool, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dsyrk(
            CblasRowMajor, CblasUpper, transpose ? CblasTrans : CblasNoTrans,
            blasint(n), blasint(k), alpha, a, blasint(lda), beta, c, blasint(ldc))
    }

    static func nativeGesdd(
        jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
        s: UnsafeMutablePointer<Double>, u: UnsafeMutablePointer<Double>?, ldu: Int,
        vt: UnsafeMutablePointer<Double>?, ldvt: Int
    ) -> Int32 {
        LAPACKE_dgesdd(
            LAPACK_COL_MAJOR, CChar(bitPattern: jobz), Int32(m), Int32(n), a, Int32(lda),
            s, u, Int32(ldu), vt, Int32(ldvt))
    }

    static func nativeGesvd(
        jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
        s: UnsafeMutablePointer<Double>, u: UnsafeMutablePointer<Double>?, ldu: Int,
        vt: UnsafeMutablePointer<Double>?, ldvt: Int, superb: UnsafeMutablePointer<Double>
    ) -> Int32 {
        LAPACKE_dgesvd(
            LAPACK_COL_MAJOR, CChar(bitPattern: jobu), CChar(bitPattern: jobvt), Int32(m), Int32(n),
            a, Int32(lda), s, u, Int32(ldu), vt, Int32(ldvt), superb)
    }

    static func nativeSyevd(jobz: UInt8, uplo: UInt8, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, w: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(bitPattern: jobz), CChar(bitPattern: uplo), Int32(n), a, Int32(lda), w)
    }

    static func nativeGeqrf(m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, tau: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dgeqrf(LAPACK_COL_MAJOR, Int32(m), Int32(n), a, Int32(lda), tau)
    }

    static func nativeOrgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Double>, lda: Int, tau: UnsafePointer<Double>) -> Int32 {
        LAPACKE_dorgqr(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(k), a, Int32(lda), tau)
    }

    static func nativePotrf(uplo: UInt8, n: Int, a: UnsafeMutablePointer<Double>, lda: Int) -> Int32 {
        LAPACKE_dpotrf(LAPACK_COL_MAJOR, CChar(bitPattern: uplo), Int32(n), a, Int32(lda))
    }

    static func nativePotrs(uplo: UInt8, n: Int, nrhs: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafeMutablePointer<Double>, ldb: Int) -> Int32 {
        LAPACKE_dpotrs(LAPACK_COL_MAJOR, CChar(bitPattern: uplo), Int32(n), Int32(nrhs), a, Int32(lda), b, Int32(ldb))
    }

    static func nativeGesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int, ipiv: UnsafeMutablePointer<Int32>, b: UnsafeMutablePointer<Double>, ldb: Int) -> Int32 {
        LAPACKE_dgesv(LAPACK_COL_MAJOR, Int32(n), Int32(nrhs), a, Int32(lda), ipiv, b, Int32(ldb))
    }
}

// MARK: Tridiagonal eigensolvers (Double only, for `leadingSymmetricEigenpairs`)

extension Double {
    /// `dsytrd` on the lower triangle of a column-major `n × n` matrix: `A = Q T Qᵀ`.
    static func sytrdLower(n: Int, a: UnsafeMutablePointer<Double>, d: inout [Double], e: inout [Double], tau: inout [Double]) -> Int32 {
        LAPACKE_dsytrd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "L")), Int32(n), a, Int32(n), &d, &e, &tau)
    }

    /// `dsterf`: all eigenvalues of the tridiagonal `(d, e)`, ascending, into `d`.
    static func sterf(n: Int, d: inout [Double], e: inout [Double]) -> Int32 {
        LAPACKE_dsterf(Int32(n), &d, &e)
    }

    /// `dstedc` with `compz = "I"`: all eigenpairs of the tridiagonal `(d, e)`, vectors column-major in `z`.
    static func stedcTridiagonal(n: Int, d: inout [Double], e: inout [Double], z: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dstedc(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "I")), Int32(n), &d, &e, z, Int32(n))
    }

    /// `dormtr` (left, lower, no transpose): `C ← Q C` with `Q` from ``sytrdLower(n:a:d:e:tau:)``.
    static func ormtrLower(n: Int, columns: Int, a: UnsafePointer<Double>, tau: [Double], c: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dormtr(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "L")), CChar(UInt8(ascii: "L")), CChar(UInt8(ascii: "N")),
                       Int32(n), Int32(columns), a, Int32(n), tau, c, Int32(n))
    }

    /// `dstein`: eigenvectors of the tridiagonal `(d, e)` for `count` eigenvalues by inverse iteration.
    static func stein(
        n: Int, d: [Double], e: [Double], count: Int, w: inout [Double], blocks: inout [Int32], splits: inout [Int32],
        z: UnsafeMutablePointer<Double>, failures: inout [Int32]
    ) -> Int32 {
        LAPACKE_dstein(LAPACK_COL_MAJOR, Int32(n), d, e, Int32(count), &w, &blocks, &splits, z, Int32(n), &failures)
    }
}
