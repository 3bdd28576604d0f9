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
    /// - Throws: ``DecompositionError/invalidArgument(_:)`` for inconsistent cores.
    public init(cores: [Tensor<Scalar>]) throws {
        guard !cores.isEmpty else { throw DecompositionError.invalidArgument("TTTensor: no cores") }
        for (k, core) in cores.enumerated() where core.order != 3 {
            throw DecompositionError.invalidArgument("TTTensor: core \(k) has shape \(core.shape), expected (r, n, r')")
        }
        guard cores.first!.shape[0] == 1, cores.last!.shape[2] == 1 else {
            throw DecompositionError.invalidArgument(
                "TTTensor: boundary ranks are \(cores.first!.shape[0]) and \(cores.last!.shape[2]), expected 1 and 1")
        }
        for k in 1..<cores.count where cores[k].shape[0] != cores[k - 1].shape[2] {
            throw DecompositionError.invalidArgument(
                "TTTensor: core \(k - 1) ends with rank \(cores[k - 1].shape[2]) but core \(k) starts with \(cores[k].shape[0])")
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
    @inlinable
    public func reconstructed() throws -> Tensor<Scalar> {
        var left = Matrix(try cores[0].reshaped(to: [cores[0].shape[1], cores[0].shape[2]]))
        for core in cores.dropFirst() {
            let right = Matrix(try core.reshaped(to: [core.shape[0], core.shape[1] * core.shape[2]]))
            let product = left.matmul(right)
            left = Matrix(try Tensor(product).reshaped(to: [product.rows * core.shape[1], core.shape[2]]))
        }
        return try Tensor(left).reshaped(to: shape)
    }

    /// The Frobenius norm, without forming the tensor.
    @inlinable
    public var norm: Scalar {
        // Left-to-right Gram contraction: W_k = Σ_i G_k[:, i, :]ᵀ W_{k−1} G_k[:, i, :].
        var w = Matrix<Scalar>.identity(1)
        for core in cores {
            let (r0, n, r1) = (core.shape[0], core.shape[1], core.shape[2])
            let flat = Matrix(try! core.reshaped(to: [r0, n * r1]))
            let wg = w.matmul(flat)                                      // r0 × (n r1)
            let a = Matrix(try! Tensor(wg).reshaped(to: [r0 * n, r1]))
            let b = Matrix(try! core.reshaped(to: [r0 * n, r1]))
            w = b.matmul(a, transposeSelf: true)                         // r1 × r1
        }
        return Swift.max(w[0, 0], 0).squareRoot()
    }
}
