import Testing
import TensorModule
import TestSupport

@Suite("Unfolding and folding (TensorLy's convention)")
struct UnfoldingTests {
    /// The worked example of the conventions article: X = arange(24).reshape(3, 4, 2).
    @Test func worked3x4x2Example() throws {
        let x = try Tensor<Double>(shape: [3, 4, 2], scalars: (0..<24).map(Double.init))
        let m0 = x.unfolded(mode: 0)
        #expect(m0.shape == [3, 8])
        #expect(m0.row(0) == (0..<8).map(Double.init))
        #expect(m0.row(1) == (8..<16).map(Double.init))
        #expect(m0.row(2) == (16..<24).map(Double.init))
        let m1 = x.unfolded(mode: 1)
        #expect(m1.shape == [4, 6])
        #expect(m1.row(0) == [0, 1, 8, 9, 16, 17])
        #expect(m1.row(3) == [6, 7, 14, 15, 22, 23])
        let m2 = x.unfolded(mode: 2)
        #expect(m2.shape == [2, 12])
        #expect(m2.row(0) == stride(from: 0, to: 24, by: 2).map(Double.init))
        #expect(m2.row(1) == stride(from: 1, to: 24, by: 2).map(Double.init))
    }

    func checkUnfold<S: BLASScalar>(_: S.Type, shape: [Int]) throws {
        let x = Tensor<S>.randomNormal(shape: shape, seed: 11)
        for mode in 0..<shape.count {
            let m = x.unfolded(mode: mode)
            let naive = Reference.unfold(x, mode: mode)
            #expect(m.rows == naive.count)
            for i in 0..<m.rows { #expect(m.row(i) == naive[i], "mode \(mode) row \(i) of \(shape)") }
            let folded = try Tensor(folding: m, mode: mode, shape: shape)
            #expect(folded == x, "fold ∘ unfold = identity, mode \(mode) of \(shape)")
        }
    }

    @Test(arguments: TestShapes.all + [[2, 0, 3], [40, 33, 3]])
    func unfoldMatchesLoopsAndFoldInverts(shape: [Int]) throws {
        try checkUnfold(Float.self, shape: shape)
        try checkUnfold(Double.self, shape: shape)
    }

    @Test func foldRejectsBadInput() async throws {
        let m = Matrix<Float>.zeros(rows: 4, columns: 5)
        #expect(throws: TensorError.shapeMismatch(operation: "fold mode 1 into [3, 4, 2]", expected: [4, 6], actual: [4, 5])) {
            try Tensor(folding: m, mode: 1, shape: [3, 4, 2])
        }
        // A mode is an index chosen by the programmer: out of range, it is a precondition failure.
        await #expect(processExitsWith: .failure) {
            _ = try? Tensor(folding: Matrix<Float>.zeros(rows: 4, columns: 5), mode: 3, shape: [3, 4, 2])
        }
    }
}

@Suite("Permutation of axes")
struct TransposeTests {
    static func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
    }

    func checkTranspose<S: BLASScalar>(_: S.Type, shape: [Int]) throws {
        let x = Tensor<S>.randomNormal(shape: shape, seed: 5)
        let all = Self.permutations(shape.count)
        let chosen = shape.count <= 4 ? all : stride(from: 0, to: all.count, by: 7).map { all[$0] }
        for permutation in chosen {
            let y = try x.transposed(permutation: permutation)
            #expect(y == Reference.transpose(x, permutation), "\(permutation) of \(shape)")
        }
    }

    @Test(arguments: TestShapes.all + [[70, 45], [33, 5, 37], [3, 40, 1, 35]])
    func transposeMatchesLoops(shape: [Int]) throws {
        try checkTranspose(Float.self, shape: shape)
        try checkTranspose(Double.self, shape: shape)
    }

    @Test func invalidPermutationThrows() {
        let x = Tensor<Float>.zeros(shape: [2, 3, 4])
        #expect(throws: TensorError.invalidPermutation([0, 0, 1], order: 3)) { try x.transposed(permutation: [0, 0, 1]) }
        #expect(throws: TensorError.invalidPermutation([1, 0], order: 3)) { try x.transposed(permutation: [1, 0]) }
        #expect("\(TensorError.invalidPermutation([1, 0], order: 3))" == "[1, 0] is not a permutation of 0..<3")
    }
}
