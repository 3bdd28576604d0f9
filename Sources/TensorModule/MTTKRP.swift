/// The matricized-tensor times Khatri–Rao product of CP-ALS:
///
/// ```text
/// MTTKRP_n(X; A_0, …, A_{N−1}) = unfold(X, n) · khatriRao(A, skipping: n)      (I_n × R)
/// M[i, r] = Σ_{i_m, m≠n} X[i_0, …, i, …, i_{N−1}] · ∏_{m≠n} A_m[i_m, r]
/// ```
///
/// It neither copies the unfolding nor, unless that is the cheapest plan, forms the Khatri–Rao
/// product of all other modes. The two-step method (Phan, Tichavský, Cichocki 2013,
/// doi:10.1109/TSP.2013.2269903) splits the other modes into a *block* of modes at one end of
/// the tensor and the rest:
/// 1. one GEMM contracts the block with the Khatri–Rao product of its factors — the tensor is
///    read in place as a `(S/P) × P` or `P × (S/P)` row-major matrix, `P` the block's size — and
///    writes the intermediate transposed, `R × (S/P)`;
/// 2. one matrix–vector product per column `r` (BLAS `gemv`) sums the remaining modes against
///    their (small) Khatri–Rao product.
///
/// The block minimizes `P·R + (S/P)·R`, the scalars of the block's Khatri–Rao product plus those of
/// the intermediate, which keeps both well below the tensor for the shapes of conv kernels. Writing
/// the intermediate transposed makes its long side the GEMM's row dimension in OpenBLAS's
/// column-major terms, the dimension OpenBLAS splits across threads. Costs tie on cubes; there a
/// leading block beats a trailing one and a partial block the full one, except for the first mode
/// with `R ≤ I_0`, where one GEMM over all other modes (their Khatri–Rao product is then no larger
/// than the tensor) wins (ratios to a same-run GEMM in `Documentation/Performance.md`).
///
/// ```swift
/// let m = try mttkrp(x, factors: [a, b, c], mode: 1)   // == x.unfolded(mode: 1).matmul(khatriRao([a, b, c], skipping: 1))
/// ```
///
/// - Parameters:
///   - tensor: The tensor `X` of order `N ≥ 1`.
///   - factors: `N` matrices; `factors[m]` is `I_m × R` for `m ≠ mode` (`factors[mode]` only
///     gives `R` when `N == 1`).
///   - mode: The mode `n` left out.
/// - Returns: The `I_n × R` matrix.
/// - Throws: ``TensorError/countMismatch(operation:expected:actual:)`` or
///   ``TensorError/shapeMismatch(operation:expected:actual:)`` for factors that do not fit. A
///   `mode` outside `0..<N` is a precondition failure.
/// - Complexity: `2·S·R` flops in the GEMM plus `2·(S/P)·R` in the contraction, `S` the scalar count.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func mttkrp<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>, factors: [Matrix<Scalar>], mode: Int) throws -> Matrix<Scalar> {
    let shape = tensor.shape
    let order = shape.count
    guard factors.count == order else {
        throw TensorError.countMismatch(operation: "mttkrp: factors for a tensor of shape \(shape)", expected: order, actual: factors.count)
    }
    precondition(mode >= 0 && mode < order, "mttkrp: mode \(mode) is out of range 0..<\(order) for shape \(shape)")
    let others = (0..<order).filter { $0 != mode }
    let rank = others.first.map { factors[$0].columns } ?? factors[mode].columns
    for m in others where factors[m].rows != shape[m] || factors[m].columns != rank {
        throw TensorError.shapeMismatch(operation: "mttkrp: factor \(m) for a tensor of shape \(shape)",
                                        expected: [shape[m], rank], actual: factors[m].shape)
    }
    let size = tensor.scalarCount
    var result = Matrix<Scalar>.zeros(rows: shape[mode], columns: rank)
    if size == 0 || rank == 0 { return result }
    if order == 1 {
        for i in 0..<shape[0] {
            for r in 0..<rank { result.storage[i * rank + r] = tensor.storage[i] }
        }
        return result
    }

    let plan = MTTKRPPlan(shape: shape, mode: mode, rank: rank)
    let blockKR = try khatriRao(plan.block.map { factors[$0] })
    let blockSize = blockKR.rows
    let outer = size / blockSize
    // Step 1: Tᵀ = KRᵀ·Xᵀ (trailing block, X read as (S/P) × P) or KRᵀ·X (leading block, X read as
    // P × (S/P)), an R × (S/P) matrix. β = 0: the GEMM writes every scalar, so no zero fill.
    let intermediate = ContiguousArray<Scalar>(unsafeUninitializedCapacity: rank * outer) { t, count in
        tensor.storage.withUnsafeBufferPointer { x in
            blockKR.storage.withUnsafeBufferPointer { kr in
                Scalar.gemm(transposeA: true, transposeB: !plan.leading, m: rank, n: outer, k: blockSize, alpha: 1,
                            a: kr.baseAddress!, lda: rank, b: x.baseAddress!, ldb: plan.leading ? outer : blockSize,
                            beta: 0, c: t.baseAddress!, ldc: outer)
            }
        }
        count = rank * outer
    }
    let modeSize = shape[mode]
    let rest = plan.remaining
    if rest.isEmpty {
        // Tᵀ is Mᵀ (R × I_n).
        intermediate.withUnsafeBufferPointer { t in
            result.storage.withUnsafeMutableBufferPointer { out in
                for r in 0..<rank {
                    for i in 0..<modeSize { out[i * rank + r] = t[r * modeSize + i] }
                }
            }
        }
        return result
    }
    // Step 2: Tᵀ is laid out (R, A, I_n, B), where A and B are the remaining modes before and after n;
    // M[:, r] = Σ_a Tᵀ[r, a] · W[(a, :), r] with W = khatriRao(remaining factors), (A·B) × R, read
    // with stride R (no transposed copies: each temporary is an allocation the allocator may fault in).
    let weights = try khatriRao(rest.map { factors[$0] })
    let before = rest.filter { $0 < mode }.reduce(1) { $0 * shape[$1] }
    let after = rest.filter { $0 > mode }.reduce(1) { $0 * shape[$1] }
    intermediate.withUnsafeBufferPointer { t in
        weights.storage.withUnsafeBufferPointer { w in
            result.storage.withUnsafeMutableBufferPointer { out in
                for r in 0..<rank {
                    let target = out.baseAddress! + r  // column r of M, stride R
                    let slice = t.baseAddress! + r * outer
                    let weight = w.baseAddress! + r
                    if after == 1 {
                        // Tᵀ[r] is A × I_n: one transposed product sums over a.
                        Scalar.gemv(transpose: true, m: before, n: modeSize, alpha: 1, a: slice, lda: modeSize,
                                    x: weight, incx: rank, beta: 0, y: target, incy: rank)
                    } else if after >= 16 {
                        for a in 0..<before {
                            Scalar.gemv(transpose: false, m: modeSize, n: after, alpha: 1, a: slice + a * modeSize * after,
                                        lda: after, x: weight + a * after * rank, incx: rank, beta: 1, y: target, incy: rank)
                        }
                    } else {
                        // Short rows (a 3×3 kernel's trailing modes): one gemv per (r, a) would cost more in calls than in work.
                        for a in 0..<before {
                            let rows = slice + a * modeSize * after
                            let w = weight + a * after * rank
                            for i in 0..<modeSize {
                                let row = rows + i * after
                                var sum: Scalar = 0
                                for b in 0..<after { sum += row[b] * w[b * rank] }
                                target[i * rank] += sum
                            }
                        }
                    }
                }
            }
        }
    }
    return result
}

/// Which modes the GEMM of ``mttkrp(_:factors:mode:)`` contracts.
@usableFromInline
struct MTTKRPPlan {
    /// The contiguous block of modes at one end of the tensor contracted by the GEMM.
    @usableFromInline var block: [Int]
    /// Whether the block is at the front (modes `0..<t`) rather than the back.
    @usableFromInline var leading: Bool
    /// The other modes except `mode`, contracted in the second step.
    @usableFromInline var remaining: [Int]

    init(shape: [Int], mode: Int, rank: Int) {
        let order = shape.count
        let size = Double(shape.reduce(1, *))
        // Candidates in order of preference; the first of the cheapest wins. Measured on cubes, where
        // costs tie: leading blocks beat trailing ones and partial blocks beat the full one, except for
        // the first mode with R ≤ I_0, where one GEMM over all other modes wins.
        let leadingBlocks = (0..<mode).map { Array(0...$0) }                 // 0..<1, 0..<2, …
        let trailingBlocks = ((mode + 1)..<order).reversed().map { Array($0..<order) }  // shortest first
        var candidates = leadingBlocks.map { ($0, true) } + trailingBlocks.map { ($0, false) }
        if mode == 0 && rank <= shape[0] { candidates.reverse() }  // the full trailing block first
        var best: (cost: Double, block: [Int], leading: Bool)? = nil
        for (block, leading) in candidates {
            let p = Double(block.reduce(1) { $0 * shape[$1] })
            let cost = (p + size / p) * Double(rank)
            if best == nil || cost < best!.cost { best = (cost, block, leading) }
        }
        let chosen = best!
        block = chosen.block
        leading = chosen.leading
        remaining = (0..<order).filter { $0 != mode && !chosen.block.contains($0) }
    }
}
