internal import CLinearAlgebra
import RealModule

extension Float: BLASScalar {
    public static var typeName: String { "Float" }

    public static let blasKernels = BLASKernels<Float>(
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
extension Float {
    static func nativeGemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    static func nativeGemv(
        transpose: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incx: Int, beta: Float, y: UnsafeMutablePointer<Float>, incy: Int
    ) {
        cblas_sgemv(
            CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, blasint(m), blasint(n),
            alpha, a, blasint(lda), x, blasint(incx), beta, y, blasint(incy))
    }

    static func nativeDot(n: Int, x: UnsafePointer<Float>, incx: Int, y: UnsafePointer<Float>, incy: Int) -> Float {
        cblas_sdot(blasint(n), x, blasint(incx), y, blasint(incy))
    }

    static func nativeNrm2(n: Int, x: UnsafePointer<Float>, incx: Int) -> Float {
        cblas_snrm2(blasint(n), x, blasint(incx))
    }

    static func nativeAxpy(n: Int, alpha: Float, x: UnsafePointer<Float>, incx: Int, y: UnsafeMutablePointer<Float>, incy: Int) {
        cblas_saxpy(blasint(n), alpha, x, blasint(incx), y, blasint(incy))
    }

    static func nativeScal(n: Int, alpha: Float, x: UnsafeMutablePointer<Float>, incx: Int) {
        cblas_sscal(blasint(n), alpha, x, blasint(incx))
    }

    static func nativeSyrk(
        transpose: Bool, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_ssyrk(
            CblasRowMajor, CblasUpper, transpose ? CblasTrans : CblasNoTrans,
            blasint(n), blasint(k), alpha, a, blasint(lda), beta, c, blasint(ldc))
    }

    static func nativeGesdd(
        jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
        s: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>?, ldu: Int,
        vt: UnsafeMutablePointer<Float>?, ldvt: Int
    ) -> Int32 {
        LAPACKE_sgesdd(
            LAPACK_COL_MAJOR, CChar(bitPattern: jobz), Int32(m), Int32(n), a, Int32(lda),
            s, u, Int32(ldu), vt, Int32(ldvt))
    }

    static func nativeGesvd(
        jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
        s: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>?, ldu: Int,
        vt: UnsafeMutablePointer<Float>?, ldvt: Int, superb: UnsafeMutablePointer<Float>
    ) -> Int32 {
        LAPACKE_sgesvd(
            LAPACK_COL_MAJOR, CChar(bitPattern: jobu), CChar(bitPattern: jobvt), Int32(m), Int32(n),
            a, Int32(lda), s, u, Int32(ldu), vt, Int32(ldvt), superb)
    }

    static func nativeSyevd(jobz: UInt8, uplo: UInt8, n: Int, a: UnsafeMutablePointer<Float>, lda: Int, w: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_ssyevd(LAPACK_COL_MAJOR, CChar(bitPattern: jobz), CChar(bitPattern: uplo), Int32(n), a, Int32(lda), w)
    }

    static func nativeGeqrf(m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int, tau: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sgeqrf(LAPACK_COL_MAJOR, Int32(m), Int32(n), a, Int32(lda), tau)
    }

    static func nativeOrgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Float>, lda: Int, tau: UnsafePointer<Float>) -> Int32 {
        LAPACKE_sorgqr(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(k), a, Int32(lda), tau)
    }

    static func nativePotrf(uplo: UInt8, n: Int, a: UnsafeMutablePointer<Float>, lda: Int) -> Int32 {
        LAPACKE_spotrf(LAPACK_COL_MAJOR, CChar(bitPattern: uplo), Int32(n), a, Int32(lda))
    }

    static func nativePotrs(uplo: UInt8, n: Int, nrhs: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafeMutablePointer<Float>, ldb: Int) -> Int32 {
        LAPACKE_spotrs(LAPACK_COL_MAJOR, CChar(bitPattern: uplo), Int32(n), Int32(nrhs), a, Int32(lda), b, Int32(ldb))
    }

    static func nativeGesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int, ipiv: UnsafeMutablePointer<Int32>, b: UnsafeMutablePointer<Float>, ldb: Int) -> Int32 {
        LAPACKE_sgesv(LAPACK_COL_MAJOR, Int32(n), Int32(nrhs), a, Int32(lda), ipiv, b, Int32(ldb))
    }
}
