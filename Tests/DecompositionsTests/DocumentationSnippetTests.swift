import Testing
import TensorModule
import Decompositions

/// The code of the DocC landing pages, run as written so that the examples cannot rot.
/// Keep these bodies identical to the snippets in `TensorModule.docc/TensorModule.md` and
/// `Decompositions.docc/Decompositions.md`.
@Suite("Documentation snippets")
struct DocumentationSnippetTests {
    @Test func tensorModuleLandingPage() throws {
        let x = try Tensor<Double>(shape: [3, 4, 2], scalars: (0..<24).map(Double.init))
        let m1 = x.unfolded(mode: 1)                 // 4 × 6: rows [0, 1, 8, 9, 16, 17], …
        let back = try Tensor(folding: m1, mode: 1, shape: x.shape)
        precondition(back == x)

        let u = Matrix<Double>.randomNormal(rows: 2, columns: 4, seed: 7)
        let y = try x.modeProduct(u, mode: 1)        // shape [3, 2, 2]

        let a = Matrix<Double>.randomNormal(rows: 3, columns: 5, seed: 1)
        let b = Matrix<Double>.randomNormal(rows: 4, columns: 5, seed: 2)
        let c = Matrix<Double>.randomNormal(rows: 2, columns: 5, seed: 3)
        let m = try mttkrp(x, factors: [a, b, c], mode: 1)   // == x.unfolded(mode: 1) · khatriRao([a, c])

        #expect(m1.row(0) == [0, 1, 8, 9, 16, 17])
        #expect(y.shape == [3, 2, 2])
        let explicit = x.unfolded(mode: 1).matmul(try khatriRao([a, c]))
        #expect((Tensor(m) - Tensor(explicit)).frobeniusNorm <= 1e-12 * Tensor(explicit).frobeniusNorm)
    }

    @Test func decompositionsLandingPage() throws {
        let kernel = Tensor<Float>.randomNormal(shape: [64, 32, 3, 3], seed: 1)

        let cp = try cpDecompose(kernel, rank: 16)              // CP-ALS from the SVD start
        print(cp.cp.weights.count, cp.iterations, cp.converged, cp.relativeError)

        let ranks = try selectRanks(for: kernel, modes: [0, 1], selection: .energy(0.9)).ranks
        let tucker2 = try tuckerDecompose(kernel, ranks: ranks, modes: [0, 1]).tucker
        print(tucker2.core.shape, tucker2.compressionRatio)

        let tt = try ttDecompose(kernel, tolerance: 0.3)       // ‖X − X̂‖ ≤ 0.3‖X‖
        print(tt.ranks, try tt.relativeError(to: kernel))

        #expect(cp.cp.rank == 16 && cp.relativeError.isFinite)
        #expect(tucker2.core.shape[2...] == [3, 3])
        #expect(try tt.relativeError(to: kernel) <= 0.3 * 1.0001)
    }
}

/// The snippets print their results for the reader; under test they stay quiet, so that the
/// test command's output holds only the test results.
private func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {}
