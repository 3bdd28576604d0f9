
/// The leading eigenpairs of a symmetric Double matrix: all eigenvalues, and eigenvectors only
/// for the `k` largest, where `k` is chosen from the eigenvalues.
///
/// When `k` is below half the order, LAPACK's pieces are called one by one, as `dsyevx` does but
/// without its bisection: `dsytrd` (tridiagonal reduction), `dsterf` on every split-off block (all
/// eigenvalues, `O(n²)`), `dstein` (inverse iteration, only `k` vectors) and `dormtr` (back to the
/// original basis, only `k` columns): `O(n²k)` work for the vectors where `dsyevd` spends `O(n³)`
/// on all of them (timings in `Documentation/Performance.md`). From `k ≥ n/2` on, and whenever `dstein` reports a vector
/// that did not converge, the tridiagonal matrix is solved by divide and conquer (`dstedc`, the
/// core of `dsyevd`) and only `k` vectors are transformed back.
///
/// - Parameters:
///   - matrix: `n × n`, its lower triangle in column-major order (the upper triangle of a
///     row-major buffer); overwritten.
///   - order: `n ≥ 1`.
///   - count: Picks `k` (clamped to `0...n`) from the eigenvalues, descending.
/// - Returns: The eigenvalues, descending, and `k` eigenvectors of length `n`, one after another,
///   in the order of the eigenvalues.
/// - Throws: ``LinearAlgebraError/lapack(routine:info:)`` when LAPACK fails.
@usableFromInline
func leadingSymmetricEigenpairs(
    _ matrix: inout ContiguousArray<Double>, order n: Int, count: ([Double]) -> Int
) throws -> (values: [Double], vectors: ContiguousArray<Double>) {
    precondition(n >= 1 && matrix.count == n * n, "leadingSymmetricEigenpairs: \(matrix.count) scalars for order \(n)")
    var d = [Double](repeating: 0, count: n)
    var e = [Double](repeating: 0, count: n)
    var tau = [Double](repeating: 0, count: n)
    var info = matrix.withUnsafeMutableBufferPointer { a in
        Double.sytrdLower(n: n, a: a.baseAddress!, d: &d, e: &e, tau: &tau)
    }
    if info != 0 { throw LinearAlgebraError.lapack(routine: "dsytrd", info: Int(info)) }

    // Split-off blocks, by the criterion of LAPACK's dstebz: e_j² ≤ |d_j·d_{j+1}|·ulp² + safe minimum.
    let ulp = Double.ulpOfOne
    var blockEnds: [Int] = []  // exclusive ends
    for j in 0..<(n - 1) where e[j] * e[j] <= Swift.abs(d[j] * d[j + 1]) * ulp * ulp + Double.leastNormalMagnitude {
        blockEnds.append(j + 1)
    }
    blockEnds.append(n)
    var eigenvalues: [(value: Double, block: Int)] = []
    var start = 0
    for (block, end) in blockEnds.enumerated() {
        var blockD = Array(d[start..<end])
        var blockE = Array(e[start..<end])
        info = Double.sterf(n: end - start, d: &blockD, e: &blockE)
        if info != 0 { throw LinearAlgebraError.lapack(routine: "dsterf", info: Int(info)) }
        eigenvalues += blockD.map { ($0, block) }
        start = end
    }
    eigenvalues.sort { $0.value > $1.value }
    let values = eigenvalues.map(\.value)
    let k = Swift.max(0, Swift.min(count(values), n))
    if k == 0 { return (values, []) }

    // Eigenvectors of T as the columns of z (column-major n × k); rankOfColumn[c] is the position
    // of column c's eigenvalue in `values`.
    var z: ContiguousArray<Double>
    var rankOfColumn: [Int]
    if 2 * k < n, let found = try inverseIteration(d: d, e: e, blockEnds: blockEnds, chosen: eigenvalues.prefix(k)) {
        (z, rankOfColumn) = found
    } else {
        // All eigenvectors of T by divide and conquer (dstedc, the core of dsyevd); the last k
        // columns belong to the k largest eigenvalues, ascending.
        var diagonal = d
        var offDiagonal = e
        var full = ContiguousArray<Double>(repeating: 0, count: n * n)
        info = full.withUnsafeMutableBufferPointer { t in
            Double.stedcTridiagonal(n: n, d: &diagonal, e: &offDiagonal, z: t.baseAddress!)
        }
        if info != 0 { throw LinearAlgebraError.lapack(routine: "dstedc", info: Int(info)) }
        z = ContiguousArray(full[(n - k) * n..<(n * n)])
        rankOfColumn = (0..<k).map { k - 1 - $0 }
    }
    // Back to the basis of the original matrix, then into the order of the eigenvalues.
    info = matrix.withUnsafeBufferPointer { a in
        z.withUnsafeMutableBufferPointer { zp in
            Double.ormtrLower(n: n, columns: k, a: a.baseAddress!, tau: tau, c: zp.baseAddress!)
        }
    }
    if info != 0 { throw LinearAlgebraError.lapack(routine: "dormtr", info: Int(info)) }
    var vectors = ContiguousArray<Double>(repeating: 0, count: n * k)
    for (column, rank) in rankOfColumn.enumerated() {
        for i in 0..<n { vectors[rank * n + i] = z[column * n + i] }
    }
    return (values, vectors)
}

/// Eigenvectors of the tridiagonal `T = (d, e)` for the `chosen` eigenvalues (the largest, in
/// descending order, each with its split-off block) by inverse iteration (`dstein`); `nil` when a
/// vector does not converge.
@usableFromInline
func inverseIteration(
    d: [Double], e: [Double], blockEnds: [Int], chosen: ArraySlice<(value: Double, block: Int)>
) throws -> (z: ContiguousArray<Double>, rankOfColumn: [Int])? {
    let n = d.count, k = chosen.count
    // dstein wants the eigenvalues grouped by block, ascending within each block.
    let ordered = chosen.enumerated().sorted {
        ($0.element.block, $0.element.value) < ($1.element.block, $1.element.value)
    }
    // W, IBLOCK and ISPLIT have length n in LAPACK's interface (LAPACKE checks all n of W for NaNs).
    var w = ordered.map(\.element.value) + [Double](repeating: 0, count: n - k)
    var blockNumbers = ordered.map { Int32($0.element.block + 1) } + [Int32](repeating: 0, count: n - k)
    var splits = blockEnds.map { Int32($0) } + [Int32](repeating: 0, count: n - blockEnds.count)
    var failures = [Int32](repeating: 0, count: k)
    var z = ContiguousArray<Double>(repeating: 0, count: n * k)
    let info = z.withUnsafeMutableBufferPointer { zp in
        Double.stein(n: n, d: d, e: e, count: k, w: &w, blocks: &blockNumbers, splits: &splits, z: zp.baseAddress!, failures: &failures)
    }
    if info < 0 { throw LinearAlgebraError.lapack(routine: "dstein", info: Int(info)) }
    return info == 0 ? (z, ordered.map(\.offset)) : nil
}
