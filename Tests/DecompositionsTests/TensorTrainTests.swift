import Testing
import TensorModule
import Decompositions
import TestSupport

@Suite("Tensor-train: TT-SVD, rounding, TT-matrix")
struct TensorTrainTests {
    func randomTT<S: BLASScalar>(_: S.Type, shape: [Int], ranks: [Int], seed: UInt64) throws -> TTTensor<S> {
        let full = [1] + ranks + [1]
        return try TTTensor(cores: shape.enumerated().map { k, n in
            Tensor<S>.randomNormal(shape: [full[k], n, full[k + 1]], seed: seed + UInt64(k))
        })
    }

    func checkRecovery<S: BLASScalar>(_: S.Type, shape: [Int], ranks: [Int], bound: S) throws {
        let x = try Tensor(randomTT(S.self, shape: shape, ranks: ranks, seed: 30))
        let tt = try ttDecompose(x, ranks: ranks)
        #expect(tt.ranks == [1] + ranks + [1])
        #expect(try tt.relativeError(to: x) < bound)
        let byTolerance = try ttDecompose(x, tolerance: Double(bound) / 10)
        #expect(byTolerance.ranks == [1] + ranks + [1], "ε-truncation finds the true ranks")
        #expect(try byTolerance.relativeError(to: x) < bound)
        #expect(abs(Double(tt.norm) - Double(x.frobeniusNorm)) <= 1e2 * Double(S.ulpOfOne).squareRoot() * Double(x.frobeniusNorm))
    }

    @Test(arguments: [([4, 5, 6], [2, 3]), ([3, 4, 3, 5], [2, 3, 2]), ([3, 3, 4, 3, 3], [2, 3, 3, 2])])
    func exactRecoveryOfLowRankTensors(case: ([Int], [Int])) throws {
        try checkRecovery(Double.self, shape: `case`.0, ranks: `case`.1, bound: 1e-6)
        try checkRecovery(Float.self, shape: `case`.0, ranks: `case`.1, bound: 1e-3)
    }

    func checkTolerance<S: BLASScalar>(_: S.Type) throws {
        let x = Tensor<S>.randomNormal(shape: [5, 6, 4, 5], seed: 4)
        var previous = Int.max
        for epsilon in [0.01, 0.1, 0.3, 0.6] {
            let tt = try ttDecompose(x, tolerance: epsilon)
            let error = Double(try tt.relativeError(to: x))
            #expect(error <= epsilon * (1 + 1e-4), "TT-SVD error \(error) at ε = \(epsilon)")
            #expect(tt.parameterCount <= previous)
            previous = tt.parameterCount
        }
        // Max-rank: errors non-increasing in the rank.
        var last = Double.infinity
        for r in 1...6 {
            let tt = try ttDecompose(x, maxRank: r)
            #expect(tt.ranks.allSatisfy { $0 <= r })
            let error = Double(try tt.relativeError(to: x))
            #expect(error <= last + 1e-6)
            last = error
        }
    }

    @Test func ttSVDMeetsTolerance() throws {
        try checkTolerance(Float.self)
        try checkTolerance(Double.self)
    }

    func checkRounding<S: BLASScalar>(_: S.Type) throws {
        // X/2 + X/2 in TT form (concatenated end cores, block-diagonal middle cores): the same tensor with twice the ranks.
        let tt = try randomTT(S.self, shape: [4, 5, 3, 4], ranks: [2, 3, 2], seed: 40)
        var cores: [Tensor<S>] = []
        for (k, core) in tt.cores.enumerated() {
            let (r0, n, r1) = (core.shape[0], core.shape[1], core.shape[2])
            let (q0, q1) = (k == 0 ? 1 : 2 * r0, k == tt.cores.count - 1 ? 1 : 2 * r1)
            var big = Tensor<S>.zeros(shape: [q0, n, q1])
            for a in 0..<r0 { for i in 0..<n { for b in 0..<r1 {
                let value = k == 0 ? core[a, i, b] / 2 : core[a, i, b]
                big[a, i, b] = value
                big[q0 == 1 ? a : r0 + a, i, q1 == 1 ? b : r1 + b] += value
            } } }
            cores.append(big)
        }
        let redundant = try TTTensor(cores: cores)
        #expect(redundant.ranks == [1, 4, 6, 4, 1])
        let x = try Tensor(tt)
        #expect(try redundant.relativeError(to: x) < (S.self == Float.self ? 1e-5 : 1e-12))
        let rounded = try redundant.rounded(tolerance: 1e-6)
        #expect(rounded.ranks == [1, 2, 3, 2, 1])
        #expect(try rounded.relativeError(to: x) < (S.self == Float.self ? 1e-4 : 1e-6))
        let capped = try redundant.rounded(tolerance: 0, maxRank: 1)
        #expect(capped.ranks == [1, 1, 1, 1, 1])
    }

    @Test func roundingRemovesRedundantRanks() throws {
        try checkRounding(Float.self)
        try checkRounding(Double.self)
    }

    func checkTTMatrix<S: BLASScalar>(_: S.Type) throws {
        let w = Matrix<S>.randomNormal(rows: 24, columns: 30, seed: 5)   // 24 = 2·3·4 outputs, 30 = 5·3·2 inputs
        let tt = try ttMatrixDecompose(w, rowModes: [2, 3, 4], columnModes: [5, 3, 2])
        #expect(tt.shape == [24, 30])
        #expect(Reference.relativeDifference(Matrix(try tt.reconstructed()), w) <= Reference.tolerance(S.self, ulps: 2000))
        let x = Matrix<S>.randomNormal(rows: 3, columns: 30, seed: 6)
        let y = try tt.applied(to: x)
        #expect(Reference.relativeDifference(y, x.matmul(w, transposeOther: true)) <= Reference.tolerance(S.self, ulps: 2000))
        let columns = try tt.applied(toColumns: x.transposed())   // W · Xᵀ, one input per column
        #expect(Reference.relativeDifference(columns, w.matmul(x, transposeOther: true)) <= Reference.tolerance(S.self, ulps: 2000))
        #expect(try tt.applied(toColumns: Matrix<S>.zeros(rows: 30, columns: 0)).shape == [24, 0])
        #expect(throws: TensorError.self) { try tt.applied(toColumns: Matrix<S>.zeros(rows: 29, columns: 2)) }
        let v = try tt.matvec(x.row(1))
        let direct = w.matvec(x.row(1))
        for i in 0..<24 { #expect(abs(v[i] - direct[i]) <= Reference.tolerance(S.self, ulps: 5000) * 10) }
        // A low-rank TT-matrix is recovered exactly and its product skips W.
        let low = try ttMatrixDecompose(Matrix(try tt.reconstructed()), rowModes: [2, 3, 4], columnModes: [5, 3, 2], maxRank: 4)
        #expect(low.ranks.allSatisfy { $0 <= 4 })
        #expect(try low.flops(batch: 1) > 0)
        #expect(throws: DecompositionError.self) { try ttMatrixDecompose(w, rowModes: [2, 3, 5], columnModes: [5, 3, 2]) }
        #expect(throws: DecompositionError.self) { try ttMatrixDecompose(w, rowModes: [6, 4], columnModes: [5, 3, 2]) }
        #expect(throws: TensorError.self) { try tt.applied(to: Matrix<S>.zeros(rows: 1, columns: 29)) }
    }

    @Test func ttMatrixProductsMatchDense() throws {
        try checkTTMatrix(Float.self)
        try checkTTMatrix(Double.self)
    }

    @Test func ttMatrixOfALinearLayer() throws {
        // 384 × 1536 with 1536 = 8·8·24 inputs and 384 = 8·6·8 outputs, as in the issue.
        let w = Matrix<Float>.randomNormal(rows: 384, columns: 1536, seed: 7)
        let tt = try ttMatrixDecompose(w, rowModes: [8, 6, 8], columnModes: [8, 8, 24], maxRank: 16)
        #expect(tt.ranks.allSatisfy { $0 <= 16 })
        #expect(tt.parameterCount < 384 * 1536 / 10)
        let x = Matrix<Float>.randomNormal(rows: 2, columns: 1536, seed: 8)
        let dense = x.matmul(Matrix(try tt.reconstructed()), transposeOther: true)
        #expect(Reference.relativeDifference(try tt.applied(to: x), dense) <= 1e-4)
    }

    @Test func badInputThrows() throws {
        let x = Tensor<Double>.randomNormal(shape: [3, 4, 5], seed: 1)
        #expect(throws: DecompositionError.invalidRank(rank: 5, problem: .forTTCore(1, of: 3, .exceedsMatrix(rows: 3, columns: 20)))) {
            try ttDecompose(x, ranks: [5, 2])
        }
        #expect(throws: DecompositionError.self) { try ttDecompose(x, ranks: [2]) }
        #expect(throws: DecompositionError.self) { try ttDecompose(x, maxRank: 0) }
        #expect(throws: DecompositionError.self) { try ttDecompose(x, tolerance: -1) }
        #expect(throws: DecompositionError.self) { try TTTensor<Double>(cores: [.zeros(shape: [1, 3, 2]), .zeros(shape: [3, 4, 1])]) }
    }
}
