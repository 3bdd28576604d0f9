/// The Khatri–Rao (column-wise Kronecker) product `A_0 ⊙ A_1 ⊙ ⋯`, optionally skipping one matrix.
///
/// All matrices have the same number of columns `R`. The row index of the **first** matrix
/// varies slowest, matching the row-major unfolding of ``Tensor/unfolded(mode:)``:
///
/// ```text
/// (A ⊙ B)[i · I_B + j, r] = A[i, r] · B[j, r]
/// unfold(X, n) = A_n · khatriRao(A, skipping: n)ᵀ    for X = ⟦A_0, …, A_{N−1}⟧
/// ```
///
/// ```swift
/// let kr = try khatriRao([a, b, c], skipping: 1)   // a ⊙ c
/// ```
///
/// - Parameters:
///   - matrices: The factors, in order.
///   - skipping: An index of `matrices` to leave out (the mode being solved for in CP-ALS).
/// - Returns: A `(∏ rows) × R` matrix.
/// - Throws: ``TensorError/shapeMismatch(operation:expected:actual:)`` when the column counts
///   differ.
/// - Precondition: at least one matrix is left after `skipping`.
/// - Complexity: `R · ∏ rows` multiplications (plus the smaller intermediate products).
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func khatriRao<Scalar: BLASScalar>(_ matrices: [Matrix<Scalar>], skipping: Int? = nil) throws -> Matrix<Scalar> {
    let used = matrices.indices.filter { $0 != skipping }.map { matrices[$0] }
    guard let first = used.first else {
        preconditionFailure("khatriRao: no matrices left (\(matrices.count) given, skipping \(skipping.map(String.init) ?? "none"))")
    }
    let r = first.columns
    for (index, matrix) in used.enumerated() where matrix.columns != r {
        throw TensorError.shapeMismatch(operation: "khatriRao: columns of matrix \(index)", expected: [matrix.rows, r], actual: matrix.shape)
    }
    var result = first
    for next in used.dropFirst() {
        result = khatriRaoPair(result, next)
    }
    return result
}

/// `A ⊙ B` for matrices with equal column counts.
func khatriRaoPair<Scalar: BLASScalar>(_ a: Matrix<Scalar>, _ b: Matrix<Scalar>) -> Matrix<Scalar> {
    let r = a.columns
    let count = a.rows * b.rows * r
    // Every element is written once, so the buffer needs no zero fill.
    let scalars = ContiguousArray<Scalar>(unsafeUninitializedCapacity: count) { out, initialized in
        a.storage.withUnsafeBufferPointer { ap in
            b.storage.withUnsafeBufferPointer { bp in
                var target = out.baseAddress!
                for i in 0..<a.rows {
                    let aRow = ap.baseAddress! + i * r
                    for j in 0..<b.rows {
                        let bRow = bp.baseAddress! + j * r
                        for column in 0..<r { (target + column).initialize(to: aRow[column] * bRow[column]) }
                        target += r
                    }
                }
            }
        }
        initialized = count
    }
    return Matrix(uncheckedRows: a.rows * b.rows, columns: r, scalars: scalars)
}

/// The Kronecker product `A ⊗ B`: `(A ⊗ B)[i · m_B + k, j · n_B + l] = A[i, j] · B[k, l]`.
///
/// ```swift
/// let k = kronecker(a, b)   // (a.rows · b.rows) × (a.columns · b.columns)
/// ```
///
/// - Complexity: one multiplication per element of the result.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func kronecker<Scalar: BLASScalar>(_ a: Matrix<Scalar>, _ b: Matrix<Scalar>) -> Matrix<Scalar> {
    let rows = a.rows * b.rows, columns = a.columns * b.columns
    var result = Matrix<Scalar>.zeros(rows: rows, columns: columns)
    a.storage.withUnsafeBufferPointer { ap in
        b.storage.withUnsafeBufferPointer { bp in
            result.storage.withUnsafeMutableBufferPointer { out in
                for i in 0..<a.rows {
                    for k in 0..<b.rows {
                        let target = out.baseAddress! + (i * b.rows + k) * columns
                        for j in 0..<a.columns {
                            let factor = ap[i * a.columns + j]
                            let block = target + j * b.columns
                            let bRow = bp.baseAddress! + k * b.columns
                            for l in 0..<b.columns { block[l] = factor * bRow[l] }
                        }
                    }
                }
            }
        }
    }
    return result
}

/// The elementwise (Hadamard) product `A_0 ∗ A_1 ∗ ⋯` of equally shaped matrices, optionally
/// skipping one: the CP-ALS normal-equation matrix `∗_{m≠n} A_mᵀA_m` from the Gram matrices.
///
/// - Throws: ``TensorError/shapeMismatch(operation:expected:actual:)`` when shapes differ,
/// - Precondition: at least one matrix is left after `skipping`.
@inlinable
public func hadamardProduct<Scalar: BLASScalar>(_ matrices: [Matrix<Scalar>], skipping: Int? = nil) throws -> Matrix<Scalar> {
    let used = matrices.indices.filter { $0 != skipping }.map { matrices[$0] }
    guard var result = used.first else {
        preconditionFailure("hadamardProduct: no matrices left (\(matrices.count) given, skipping \(skipping.map(String.init) ?? "none"))")
    }
    for (index, matrix) in used.enumerated().dropFirst() {
        guard matrix.shape == result.shape else {
            throw TensorError.shapeMismatch(operation: "hadamardProduct: matrix \(index)", expected: result.shape, actual: matrix.shape)
        }
        result = result.hadamard(matrix)
    }
    return result
}
