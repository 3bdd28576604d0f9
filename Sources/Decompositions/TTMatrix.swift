import RealModule
import TensorModule

/// A matrix in the tensor-train format (Novikov, Podoprikhin, Osokin, Vetrov 2015, "Tensorizing
/// Neural Networks", arXiv:1509.06569):
///
/// ```text
/// W[(i_1, …, i_d), (j_1, …, j_d)] = G_1[:, i_1, j_1, :] ⋯ G_d[:, i_d, j_d, :]
/// ```
///
/// `W` is `M × N` with `M = ∏ m_k` (rows, the layer's outputs) and `N = ∏ n_k` (columns, its
/// inputs); row and column indices are row-major over the factorizations. Core `k` has shape
/// `(r_{k−1}, m_k, n_k, r_k)`. Products are computed core by core, never forming `W`.
public struct TTMatrix<Scalar: BLASScalar>: FactorizedTensor, Equatable {
    /// The cores, `(r_{k−1}, m_k, n_k, r_k)` each.
    public var cores: [Tensor<Scalar>]

    /// Creates a TT-matrix, checking the core shapes and ranks.
    ///
    /// - Throws: ``DecompositionError/inconsistentParts(type:shapes:requirement:)`` for inconsistent cores.
    public init(cores: [Tensor<Scalar>]) throws {
        guard !cores.isEmpty, cores.allSatisfy({ $0.order == 4 }) else {
            throw DecompositionError.inconsistentParts(type: "TTMatrix", shapes: cores.map(\.shape),
                                                       requirement: .ttMatrixCores)
        }
        _ = try TTTensor(cores: cores.map { try $0.reshaped(to: [$0.shape[0], $0.shape[1] * $0.shape[2], $0.shape[3]]) })
        self.cores = cores
    }

    /// `[m_1, …, m_d]`, the factorization of the rows.
    public var rowModes: [Int] { cores.map { $0.shape[1] } }
    /// `[n_1, …, n_d]`, the factorization of the columns.
    public var columnModes: [Int] { cores.map { $0.shape[2] } }
    /// `[1, r_1, …, 1]`.
    public var ranks: [Int] { [1] + cores.map { $0.shape[3] } }
    /// `[M, N]`.
    public var shape: [Int] { [rowModes.reduce(1, *), columnModes.reduce(1, *)] }
    /// `Σ r_{k−1} m_k n_k r_k`.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }

    /// The full `M × N` matrix as an order-2 tensor.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func reconstructed() throws -> Tensor<Scalar> {
        let n = shape[1]
        return try Tensor(applied(to: Matrix<Scalar>.identity(n))).transposed()
    }

    /// `X · Wᵀ` for a batch `X` of shape `B × N` (one input per row): a linear layer's forward
    /// pass, core by core. It transposes `X`, runs ``applied(toColumns:)`` and transposes back.
    ///
    /// - Throws: `TensorError.shapeMismatch` (from `TensorModule`) unless `X` has `N` columns.
    /// - Complexity: ``flops(batch:)`` flops.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func applied(to x: Matrix<Scalar>) throws -> Matrix<Scalar> {
        guard x.columns == shape[1] else {
            throw TensorError.shapeMismatch(operation: "TTMatrix.applied(to:)", expected: [x.rows, shape[1]], actual: x.shape)
        }
        return try applied(toColumns: x.transposed()).transposed()
    }

    /// `W · X` for `X` of shape `N × B` (one input per column), core by core, never forming `W`
    /// and, for inputs of 32 columns or more, never permuting the running tensor.
    ///
    /// Before core `k` the running tensor is laid out `(m_1⋯m_{k−1}, r_{k−1}·n_k, n_{k+1}⋯n_d·B)`.
    /// For each index of the leading block one GEMM multiplies the core, arranged as the
    /// `(m_k·r_k) × (r_{k−1}·n_k)` matrix, by that `(r_{k−1}·n_k) × (n_{k+1}⋯n_d·B)` slice; the
    /// products, stacked, are the layout core `k + 1` needs. Every GEMM is at least `B` columns wide.
    /// When the slices are narrower than 32 columns (a few inputs, the last cores), one GEMM with the
    /// slices' columns as rows replaces the `prefix` calls (two permutations of the small running
    /// tensor); with one column it needs no permutation at all.
    ///
    /// ```swift
    /// let y = try tt.applied(toColumns: x)    // x: N × B → y: M × B
    /// ```
    ///
    /// - Throws: `TensorError.shapeMismatch` (from `TensorModule`) unless `X` has `N` rows.
    /// - Complexity: ``flops(batch:)`` flops with `batch = B`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func applied(toColumns x: Matrix<Scalar>) throws -> Matrix<Scalar> {
        let (m, n) = (shape[0], shape[1])
        guard x.rows == n else {
            throw TensorError.shapeMismatch(operation: "TTMatrix.applied(toColumns:)", expected: [n, x.columns], actual: x.shape)
        }
        let batch = x.columns
        if batch == 0 { return Matrix.zeros(rows: m, columns: 0) }
        var state = x.scalars
        var prefix = 1          // m_1⋯m_{k−1}
        var rest = n * batch    // n_k⋯n_d·B
        for core in cores {
            let (r0, mk, nk, r1) = (core.shape[0], core.shape[1], core.shape[2], core.shape[3])
            rest /= nk
            // (r0, m_k, n_k, r1) → (r0, n_k, m_k, r1): the (r0·n_k) × (m_k·r1) matrix, used transposed as
            // the left factor (this permutation moves whole rows of r1 scalars; the direct one did not).
            let kernel = try core.transposed(permutation: [0, 2, 1, 3])
            let (rowsOut, inner) = (mk * r1, r0 * nk)
            if rest == 1 {
                // One input and the last core: the running tensor is the (prefix × r0·n_k) matrix.
                let product = try Matrix(rows: prefix, columns: inner, scalars: state)
                    .matmul(Matrix(reshaping: kernel, rows: inner, columns: rowsOut))
                state = product.scalars
                prefix *= mk
                continue
            }
            if rest < 32 && prefix > 1 {
                // Narrow slices (a few inputs, the last cores): one GEMM over all of them beats `prefix`
                // small calls. (prefix, r0·n_k, rest) → (prefix·rest, r0·n_k), times the kernel, and the
                // (prefix, rest, m_k·r1) product back to (prefix, m_k·r1, rest).
                let rows = try Tensor(shape: [prefix, inner, rest], scalars: state).transposed(permutation: [0, 2, 1])
                let product = try Matrix(reshaping: rows, rows: prefix * rest, columns: inner)
                    .matmul(Matrix(reshaping: kernel, rows: inner, columns: rowsOut))
                state = try Tensor(product).reshaped(to: [prefix, rest, rowsOut]).transposed(permutation: [0, 2, 1]).scalars
                prefix *= mk
                continue
            }
            let next = ContiguousArray<Scalar>(unsafeUninitializedCapacity: prefix * rowsOut * rest) { out, count in
                kernel.withUnsafeBufferPointer { k in
                    state.withUnsafeBufferPointer { s in
                        for p in 0..<prefix {
                            Scalar.gemm(transposeA: true, transposeB: false, m: rowsOut, n: rest, k: inner, alpha: 1,
                                        a: k.baseAddress!, lda: rowsOut, b: s.baseAddress! + p * inner * rest, ldb: rest,
                                        beta: 0, c: out.baseAddress! + p * rowsOut * rest, ldc: rest)
                        }
                    }
                }
                count = prefix * rowsOut * rest
            }
            state = next
            prefix *= mk
        }
        return try Matrix(rows: m, columns: batch, scalars: state)
    }

    /// `W · x` for a vector of length `N`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func matvec(_ x: [Scalar]) throws -> [Scalar] {
        Array(try applied(to: Matrix(rows: 1, columns: x.count, scalars: x)).scalars)
    }

    /// Floating-point operations (2 × multiply-adds) of ``applied(to:)`` for `batch` inputs.
    ///
    /// - Throws: ``DecompositionError/countOverflow(operation:batch:)`` when the count does not fit in `Int`.
    public func flops(batch: Int) throws -> Int {
        var leading = batch, trailing = shape[1], total = 0
        for core in cores {
            let (r0, mk, nk, r1) = (core.shape[0], core.shape[1], core.shape[2], core.shape[3])
            trailing /= nk
            var term = 2, overflow = false
            for factor in [leading, trailing, r0, nk, mk, r1] where !overflow {
                (term, overflow) = term.multipliedReportingOverflow(by: factor)
            }
            var sum = 0
            if !overflow { (sum, overflow) = total.addingReportingOverflow(term) }
            if !overflow { (leading, overflow) = leading.multipliedReportingOverflow(by: mk) }
            guard !overflow else {
                throw DecompositionError.countOverflow(operation: "TTMatrix.flops", batch: batch)
            }
            total = sum
        }
        return total
    }
}

/// The TT-matrix decomposition of a weight matrix by TT-SVD of its reshaped form.
///
/// `W` (`M × N`) is reshaped to `(m_1, …, m_d, n_1, …, n_d)`, its axes interleaved to
/// `(m_1, n_1, …, m_d, n_d)`, merged pairwise to `(m_1 n_1, …, m_d n_d)` and decomposed by
/// TT-SVD; each core is then split into `(r_{k−1}, m_k, n_k, r_k)`.
///
/// ```swift
/// // A 384 × 1536 linear weight with 1536 = 8·8·24 inputs and 384 = 8·6·8 outputs.
/// let tt = try ttMatrixDecompose(w, rowModes: [8, 6, 8], columnModes: [8, 8, 24], maxRank: 16)
/// let y = try tt.applied(to: x)      // x: B × 1536 → B × 384
/// ```
///
/// - Parameters:
///   - matrix: The `M × N` matrix.
///   - rowModes: `[m_1, …, m_d]` with `∏ m_k = M`.
///   - columnModes: `[n_1, …, n_d]` with `∏ n_k = N`.
///   - maxRank: A cap on every TT rank (nil: no cap).
///   - tolerance: A relative accuracy `ε` (nil: exact up to `maxRank`).
/// - Throws: ``DecompositionError/modeFactorization(rowModes:columnModes:shape:)`` when the factorizations do not multiply
///   to the matrix's dimensions or have different lengths, and the errors of ``ttDecompose(_:maxRank:)``.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func ttMatrixDecompose<Scalar: BLASScalar>(
    _ matrix: Matrix<Scalar>, rowModes: [Int], columnModes: [Int], maxRank: Int? = nil, tolerance: Double? = nil
) throws -> TTMatrix<Scalar> {
    let d = rowModes.count
    guard d >= 1, columnModes.count == d, rowModes.allSatisfy({ $0 >= 1 }), columnModes.allSatisfy({ $0 >= 1 }),
          rowModes.reduce(1, *) == matrix.rows, columnModes.reduce(1, *) == matrix.columns else {
        throw DecompositionError.modeFactorization(rowModes: rowModes, columnModes: columnModes, shape: matrix.shape)
    }
    let interleave = (0..<d).flatMap { [$0, d + $0] }
    let merged = try Tensor(matrix).reshaped(to: rowModes + columnModes)
        .transposed(permutation: interleave)
        .reshaped(to: zip(rowModes, columnModes).map { $0 * $1 })
    let tt: TTTensor<Scalar>
    if let tolerance {
        tt = try ttDecompose(merged, tolerance: tolerance, maxRank: maxRank)
    } else {
        tt = try ttDecompose(merged, maxRank: maxRank ?? Int.max)
    }
    return try TTMatrix(cores: tt.cores.enumerated().map { k, core in
        try core.reshaped(to: [core.shape[0], rowModes[k], columnModes[k], core.shape[2]])
    })
}
