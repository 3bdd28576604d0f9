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
///    read in place as a `(S/P) × P` or `P × (S/P)` row-major matrix, `P` the block's size;
/// 2. a multi-vector contraction sums the remaining modes against their (small) Khatri–Rao
///    product, `R` columns at a time.
///
/// The block minimizes `P·R + (S/P)·R`, the scalars of the block's Khatri–Rao product plus those of
/// the intermediate, which keeps both well below the tensor for the shapes of conv kernels. On a tie
/// the block leaves out the mode next to `n`, except for the last mode when `R ≤ I_n`: there the
/// Khatri–Rao product of all other modes is no larger than the tensor, and one GEMM over all of
/// them is faster than the transposed GEMM of the split (measured: 128³, R = 32, 5.8 → 2.5 ms).
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
/// - Throws: ``TensorError/countMismatch(operation:expected:actual:)``,
///   ``TensorError/modeOutOfRange(mode:order:)`` or
///   ``TensorError/shapeMismatch(operation:expected:actual:)`` for factors that do not fit.
/// - Complexity: `2·S·R` flops in the GEMM plus `2·(S/P)·R` in the contraction, `S` the scalar count.
@inlinable
public func mttkrp<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>, factors: [Matrix<Scalar>], mode: Int) throws -> Matrix<Scalar> {
    let shape = tensor.shape
    let order = shape.count
    guard factors.count == order else {
        throw TensorError.countMismatch(operation: "mttkrp: factors for a tensor of shape \(shape)", expected: order, actual: factors.count)
    }
    guard mode >= 0 && mode < order else { throw TensorError.modeOutOfRange(mode: mode, order: order) }
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
    let blockFactors = plan.block.map { factors[$0] }
    let blockKR = try khatriRao(blockFactors)
    let blockSize = blockKR.rows
    let outer = size / blockSize
    // Step 1: T = X·KR (trailing block) or Xᵀ·KR (leading block), an (S/P) × R matrix.
    // β = 0: the GEMM writes every scalar, so the buffer needs no zero fill.
    let intermediate = ContiguousArray<Scalar>(unsafeUninitializedCapacity: outer * rank) { t, count in
        tensor.storage.withUnsafeBufferPointer { x in
            blockKR.storage.withUnsafeBufferPointer { kr in
                Scalar.gemm(transposeA: plan.leading, transposeB: false, m: outer, n: rank, k: blockSize, alpha: 1,
                            a: x.baseAddress!, lda: plan.leading ? outer : blockSize, b: kr.baseAddress!, ldb: rank,
                            beta: 0, c: t.baseAddress!, ldc: rank)
            }
        }
        count = outer * rank
    }
    // T is laid out (A, I_n, B, R), where A and B are the remaining modes before and after n.
    let rest = plan.remaining
    if rest.isEmpty {
        result.storage = intermediate
        return result
    }
    let weights = try khatriRao(rest.map { factors[$0] })
    let before = rest.filter { $0 < mode }.reduce(1) { $0 * shape[$1] }
    let after = rest.filter { $0 > mode }.reduce(1) { $0 * shape[$1] }
    let modeSize = shape[mode]
    intermediate.withUnsafeBufferPointer { t in
        weights.storage.withUnsafeBufferPointer { w in
            result.storage.withUnsafeMutableBufferPointer { out in
                for a in 0..<before {
                    for i in 0..<modeSize {
                        let target = out.baseAddress! + i * rank
                        for b in 0..<after {
                            let source = t.baseAddress! + ((a * modeSize + i) * after + b) * rank
                            let weight = w.baseAddress! + (a * after + b) * rank
                            for r in 0..<rank { target[r] += source[r] * weight[r] }
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

    @inlinable
    init(shape: [Int], mode: Int, rank: Int) {
        let order = shape.count
        let size = shape.reduce(1, *)
        var best: (cost: Double, full: Bool, block: [Int], leading: Bool)? = nil
        func consider(_ block: [Int], leading: Bool) {
            let p = Double(block.reduce(1) { $0 * shape[$1] })
            let cost = p * Double(rank) + Double(size) / p * Double(rank)
            let full = block.count == order - 1
            if let current = best {
                // On a tie prefer a block that is not all the other modes, except for the last mode when
                // that block's Khatri–Rao product is no larger than the tensor (R ≤ I_n): then one
                // GEMM with a long inner dimension beats the transposed GEMM of the two-step split.
                let preferFull = mode == order - 1 && rank <= shape[mode]
                if cost > current.cost || (cost == current.cost && (preferFull ? (!full || current.full) : (full || !current.full))) { return }
            }
            best = (cost, full, block, leading)
        }
        if mode + 1 < order {
            for start in (mode + 1)..<order { consider(Array(start..<order), leading: false) }
        }
        if mode > 0 {
            for end in 1...mode { consider(Array(0..<end), leading: true) }
        }
        let chosen = best!
        block = chosen.block
        leading = chosen.leading
        remaining = (0..<order).filter { $0 != mode && !chosen.block.contains($0) }
    }
}
