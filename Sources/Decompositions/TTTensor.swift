import RealModule
import TensorModule

/// A tensor-train (matrix product state) tensor (Oseledets 2011, SIAM J. Sci. Comput. 33(5),
/// doi:10.1137/090752286):
///
/// ```text
/// X̂[i_1, …, i_d] = G_1[:, i_1, :] · G_2[:, i_2, :] ⋯ G_d[:, i_d, :]
/// ```
///
/// Core `k` has shape `(r_{k−1}, n_k, r_k)` with `r_0 = r_d = 1`.
public struct TTTensor<Scalar: BLASScalar>: FactorizedTensor, Equatable {
    /// The cores, `(r_{k−1}, n_k, r_k)` each.
    public var cores: [Tensor<Scalar>]

    /// Creates a TT tensor, checking that neighbouring ranks agree and the boundary ranks are 1.
    ///
    /// - Throws: ``DecompositionError/inconsistentParts(type:shapes:requirement:)`` for inconsistent cores.
    public init(cores: [Tensor<Scalar>]) throws {
        let shapes = cores.map(\.shape)
        guard !cores.isEmpty, cores.allSatisfy({ $0.order == 3 }) else {
            throw DecompositionError.inconsistentParts(type: "TTTensor", shapes: shapes, requirement: .ttCores)
        }
        guard cores.first!.shape[0] == 1, cores.last!.shape[2] == 1 else {
            throw DecompositionError.inconsistentParts(type: "TTTensor", shapes: shapes, requirement: .boundaryRanks)
        }
        for k in 1..<cores.count where cores[k].shape[0] != cores[k - 1].shape[2] {
            throw DecompositionError.inconsistentParts(
                type: "TTTensor", shapes: shapes,
                requirement: .neighbouringRanks(core: k - 1, endRank: cores[k - 1].shape[2], nextStartRank: cores[k].shape[0]))
        }
        self.cores = cores
    }

    /// `[r_0 = 1, r_1, …, r_{d−1}, r_d = 1]`.
    public var ranks: [Int] { [1] + cores.map { $0.shape[2] } }

    /// `[n_1, …, n_d]`.
    public var shape: [Int] { cores.map { $0.shape[1] } }

    /// `Σ r_{k−1} n_k r_k`.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }

    /// The full tensor, contracting the cores left to right with one GEMM each.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func reconstructed() throws -> Tensor<Scalar> {
        var left = cores[0].leftUnfolding
        for core in cores.dropFirst() {
            left = try left.matmul(core.rightUnfolding).reshaped(rows: left.rows * core.shape[1], columns: core.shape[2])
        }
        return try Tensor(left).reshaped(to: shape)
    }

    /// The Frobenius norm, without forming the tensor.
    public var norm: Scalar {
        // Left-to-right Gram contraction: W_k = Σ_i G_k[:, i, :]ᵀ W_{k−1} G_k[:, i, :].
        var w = Matrix<Scalar>.identity(1)
        for core in cores {
            // W·G_k as an r0 × (n r1) product, regrouped (r0 n) × r1 like the core's left unfolding.
            let wg = Tensor(w.matmul(core.rightUnfolding)).leftUnfolding(like: core)
            w = core.leftUnfolding.matmul(wg, transposeSelf: true)       // r1 × r1
        }
        return Swift.max(w[0, 0], 0).squareRoot()
    }
}

extension Tensor {
    /// The left unfolding `(r₀·n) × r₁` of an order-3 TT core (no copy).
    var leftUnfolding: Matrix<Scalar> {
        precondition(order == 3, "a TT core has order 3, got shape \(shape)")
        return Matrix(uncheckedRows: shape[0] * shape[1], columns: shape[2], scalars: scalars)
    }

    /// The right unfolding `r₀ × (n·r₁)` of an order-3 TT core (no copy).
    var rightUnfolding: Matrix<Scalar> {
        precondition(order == 3, "a TT core has order 3, got shape \(shape)")
        return Matrix(uncheckedRows: shape[0], columns: shape[1] * shape[2], scalars: scalars)
    }

    /// An order-2 tensor with the scalars of `core`'s left unfolding, regrouped the same way.
    func leftUnfolding(like core: Tensor) -> Matrix<Scalar> {
        precondition(scalarCount == core.scalarCount, "\(shape) and the core \(core.shape) have different sizes")
        return Matrix(uncheckedRows: core.shape[0] * core.shape[1], columns: core.shape[2], scalars: scalars)
    }
}
