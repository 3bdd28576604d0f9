import Testing
import TensorModule
import TestSupport

@Suite("Khatri-Rao, Kronecker, Hadamard and MTTKRP")
struct KhatriRaoTests {
    func checkKhatriRao<S: BLASScalar>(_: S.Type) throws {
        let a = Matrix<S>.randomNormal(rows: 4, columns: 3, seed: 1)
        let b = Matrix<S>.randomNormal(rows: 1, columns: 3, seed: 2)
        let c = Matrix<S>.randomNormal(rows: 5, columns: 3, seed: 3)
        let kr = try khatriRao([a, b, c])
        #expect(kr == Reference.khatriRao([a, b, c]))
        #expect(try khatriRao([a, b, c], skipping: 1) == Reference.khatriRao([a, c]))
        // (A ⊙ C)ᵀ(A ⊙ C) = AᵀA ∗ CᵀC
        let ac = try khatriRao([a, c])
        let lhs = ac.gram()
        let rhs = try hadamardProduct([a.gram(), c.gram()])
        #expect(Reference.relativeDifference(lhs, rhs) <= Reference.tolerance(S.self, ulps: 100))
        #expect(throws: TensorError.self) { try khatriRao([a, Matrix<S>.zeros(rows: 2, columns: 4)]) }
        #expect(throws: TensorError.self) { try hadamardProduct([a, c]) }
    }

    @Test func khatriRaoMatchesLoopsAndGramIdentity() throws {
        try checkKhatriRao(Float.self)
        try checkKhatriRao(Double.self)
    }

    func checkCPUnfolding<S: BLASScalar>(_: S.Type, shape: [Int], rank: Int) throws {
        let factors = shape.enumerated().map { Matrix<S>.randomNormal(rows: $0.element, columns: rank, seed: UInt64($0.offset + 1)) }
        let x = Reference.cpTensor(factors: factors)
        for mode in 0..<shape.count where shape.count > 1 {
            let rebuilt = factors[mode].matmul(try khatriRao(factors, skipping: mode), transposeOther: true)
            #expect(Reference.relativeDifference(x.unfolded(mode: mode), rebuilt) <= Reference.tolerance(S.self, ulps: 200),
                    "unfold(cp, \(mode)) = A_n · KR(others)ᵀ for \(shape)")
        }
    }

    @Test(arguments: [[3, 4, 2], [2, 3, 4, 5], [2, 1, 3, 2, 2]])
    func cpUnfoldingIdentity(shape: [Int]) throws {
        try checkCPUnfolding(Float.self, shape: shape, rank: 3)
        try checkCPUnfolding(Double.self, shape: shape, rank: 3)
    }

    func checkKronecker<S: BLASScalar>(_: S.Type) {
        let a = Matrix<S>.randomNormal(rows: 2, columns: 3, seed: 4)
        let b = Matrix<S>.randomNormal(rows: 4, columns: 1, seed: 5)
        #expect(kronecker(a, b) == Reference.kronecker(a, b))
        #expect(kronecker(b, a) == Reference.kronecker(b, a))
    }

    @Test func kroneckerMatchesLoops() {
        checkKronecker(Float.self)
        checkKronecker(Double.self)
    }

    func checkMTTKRP<S: BLASScalar>(_: S.Type, shape: [Int], rank: Int) throws {
        let x = Tensor<S>.randomNormal(shape: shape, seed: 9)
        let factors = shape.enumerated().map { Matrix<S>.randomNormal(rows: $0.element, columns: rank, seed: UInt64(20 + $0.offset)) }
        for mode in 0..<shape.count {
            let result = try mttkrp(x, factors: factors, mode: mode)
            if shape.count == 1 {
                for i in 0..<shape[0] { for r in 0..<rank { #expect(result[i, r] == x[i]) } }
                continue
            }
            let expected = Reference.matmul(Reference.unfold(x, mode: mode), Reference.khatriRao(
                factors.enumerated().filter { $0.offset != mode }.map(\.element)))
            #expect(Reference.relativeDifference(result, expected) <= Reference.tolerance(S.self, ulps: 200),
                    "mttkrp mode \(mode), rank \(rank), \(shape)")
        }
    }

    // Cubes make the plan's costs tie (leading vs trailing, partial vs full blocks, R ≤ I_0 or not).
    @Test(arguments: TestShapes.all + [[6, 7, 8], [10, 3, 3, 4], [5, 40, 3], [5, 5, 5], [3, 3, 3, 3], [2, 2, 2, 2, 2]], [1, 4, 9])
    func mttkrpMatchesExplicitFormula(shape: [Int], rank: Int) throws {
        try checkMTTKRP(Float.self, shape: shape, rank: rank)
        try checkMTTKRP(Double.self, shape: shape, rank: rank)
    }

    /// An empty operand list is the programmer's mistake, not the data's: a precondition.
    @Test func emptyOperandListsArePreconditions() async {
        await #expect(processExitsWith: .failure) { _ = try? khatriRao([Matrix<Float>.zeros(rows: 2, columns: 2)], skipping: 0) }
        await #expect(processExitsWith: .failure) { _ = try? hadamardProduct([Matrix<Float>]()) }
    }

    @Test func mttkrpRejectsBadFactors() async {
        let x = Tensor<Double>.zeros(shape: [3, 4, 2])
        let good = [Matrix<Double>.zeros(rows: 3, columns: 2), .zeros(rows: 4, columns: 2), .zeros(rows: 2, columns: 2)]
        #expect(throws: TensorError.countMismatch(operation: "mttkrp: factors for a tensor of shape [3, 4, 2]", expected: 3, actual: 2)) {
            try mttkrp(x, factors: Array(good.prefix(2)), mode: 0)
        }
        #expect(throws: TensorError.shapeMismatch(operation: "mttkrp: factor 2 for a tensor of shape [3, 4, 2]", expected: [2, 2], actual: [5, 2])) {
            try mttkrp(x, factors: [good[0], good[1], .zeros(rows: 5, columns: 2)], mode: 0)
        }
        await #expect(processExitsWith: .failure) {
            let x = Tensor<Double>.zeros(shape: [3, 4, 2])
            _ = try? mttkrp(x, factors: [.zeros(rows: 3, columns: 2), .zeros(rows: 4, columns: 2), .zeros(rows: 2, columns: 2)], mode: 3)
        }
    }
}
