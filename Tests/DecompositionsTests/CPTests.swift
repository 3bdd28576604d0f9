import Testing
import TensorModule
import Decompositions
import TestSupport

@Suite("CP-ALS")
struct CPTests {
    func randomCP<S: BLASScalar>(_: S.Type, shape: [Int], rank: Int, seed: UInt64) -> Tensor<S> {
        let factors = shape.enumerated().map { Matrix<S>.randomNormal(rows: $0.element, columns: rank, seed: seed + UInt64($0.offset)) }
        return Reference.cpTensor(factors: factors)
    }

    func checkRecovery<S: BLASScalar>(_: S.Type, shape: [Int], rank: Int, bound: S) throws {
        let x = randomCP(S.self, shape: shape, rank: rank, seed: 100)
        let options = CPOptions<S>(maxIterations: 2000, tolerance: 1e-15)
        let result = try cpDecompose(x, rank: rank, options: options)
        let error = try result.cp.relativeError(to: x)
        #expect(error < bound, "CP recovery of rank \(rank) \(shape): error \(error) after \(result.iterations) iterations")
        // Normalized form: weights descending and non-negative, unit-norm columns.
        #expect(zip(result.cp.weights, result.cp.weights.dropFirst()).allSatisfy { $0 >= $1 })
        #expect(result.cp.weights.allSatisfy { $0 >= 0 })
        for factor in result.cp.factors {
            for norm in factor.columnNorms() { #expect(abs(norm - 1) <= Reference.tolerance(S.self, ulps: 100)) }
        }
        // The history is non-increasing within the tolerance of the error formula.
        let slack = 10 * Double(S.ulpOfOne).squareRoot()
        for (a, b) in zip(result.errorHistory, result.errorHistory.dropFirst()) { #expect(b <= a + slack) }
    }

    @Test(arguments: [([6, 5, 4], 3), ([5, 4, 3, 4], 2), ([4, 3, 3, 2, 3], 2), ([8, 7, 6], 5)])
    func exactRecoveryOfLowRankTensors(case: ([Int], Int)) throws {
        try checkRecovery(Double.self, shape: `case`.0, rank: `case`.1, bound: 1e-6)
        try checkRecovery(Float.self, shape: `case`.0, rank: `case`.1, bound: 1e-3)
    }

    func checkFormulaError<S: BLASScalar>(_: S.Type) throws {
        // The MTTKRP/Gram error matches the error of the rebuilt tensor.
        let x = Tensor<S>.randomNormal(shape: [6, 5, 4], seed: 3)
        let result = try cpDecompose(x, rank: 3, options: CPOptions(maxIterations: 25))
        let rebuilt = Double(try result.cp.relativeError(to: x))
        #expect(abs(result.relativeError - rebuilt) <= 100 * Double(S.ulpOfOne).squareRoot())
        #expect(result.iterations <= 25)
    }

    @Test func errorFromGramsMatchesReconstruction() throws {
        try checkFormulaError(Float.self)
        try checkFormulaError(Double.self)
    }

    func checkDegenerate<S: BLASScalar>(_: S.Type) throws {
        let inputs: [Tensor<S>] = [
            .zeros(shape: [3, 4, 2]),
            Tensor(repeating: 1, shape: [3, 4, 2]),
            Tensor(repeating: 1e-30, shape: [3, 4, 2]),
            Tensor(repeating: 1e30, shape: [3, 4, 2]),
            1e30 * Tensor<S>.randomNormal(shape: [3, 4, 2], seed: 1),
            randomCP(S.self, shape: [5, 4, 3], rank: 1, seed: 7),  // rank-deficient for rank 4
        ]
        for x in inputs {
            for rank in [1, 4, 6] {  // 6 exceeds every mode size
                let result = try cpDecompose(x, rank: rank, options: CPOptions(maxIterations: 30))
                for factor in result.cp.factors { #expect(factor.scalars.allSatisfy { $0.isFinite }) }
                #expect(result.cp.weights.allSatisfy { $0.isFinite })
                #expect(result.errorHistory.allSatisfy { $0.isFinite })
                let rebuilt = try Tensor(result.cp)
                #expect(rebuilt.firstNonFiniteIndex == nil)
            }
        }
        // The constant tensor is rank 1: recovered exactly.
        let constant = Tensor<S>(repeating: 2, shape: [3, 4, 2])
        let one = try cpDecompose(constant, rank: 1)
        #expect(try one.cp.relativeError(to: constant) <= Reference.tolerance(S.self, ulps: 1000))
    }

    @Test func degenerateInputsNeverGiveNaN() throws {
        try checkDegenerate(Float.self)
        try checkDegenerate(Double.self)
    }

    @Test func optionsAreHonoured() throws {
        let x = randomCP(Double.self, shape: [6, 5, 4], rank: 3, seed: 9) + 0.01 * Tensor.randomNormal(shape: [6, 5, 4], seed: 10)
        // Observer stops the run.
        let stopped = try cpDecompose(x, rank: 3, options: CPOptions(maxIterations: 100, tolerance: 0, observer: { $0.iteration < 4 }))
        #expect(stopped.iterations == 4 && !stopped.converged)
        // Fixed modes keep their initial factor.
        let start = try cpDecompose(x, rank: 3, options: CPOptions(maxIterations: 3)).cp
        let fixed = try cpDecompose(x, rank: 3, options: CPOptions(maxIterations: 10, initialization: .given(start), fixedModes: [1]))
        let column = { (m: Matrix<Double>, r: Int) in m.column(r).map { abs($0) } }
        for r in 0..<3 {
            let before = column(start.factors[1], r), after = fixed.cp.factors[1].columnNorms()
            #expect(after.allSatisfy { abs($0 - 1) < 1e-9 })
            #expect((0..<3).contains { s in zip(before, column(fixed.cp.factors[1], s)).allSatisfy { abs($0 - $1) < 1e-9 } })
        }
        // Random initialization is reproducible; line search and ridge give finite, good fits.
        let a = try cpDecompose(x, rank: 3, options: CPOptions(initialization: .random(seed: 5)))
        let b = try cpDecompose(x, rank: 3, options: CPOptions(initialization: .random(seed: 5)))
        #expect(a.cp == b.cp)
        let searched = try cpDecompose(x, rank: 3, options: CPOptions(initialization: .random(seed: 5), lineSearch: true))
        #expect(searched.relativeError < 0.05)
        let ridged = try cpDecompose(x, rank: 3, options: CPOptions(ridge: 1e-3))
        #expect(ridged.relativeError < 0.05)
        let unnormalized = try cpDecompose(x, rank: 3, options: CPOptions(normalizeFactors: false))
        #expect(unnormalized.relativeError < 0.05)
    }

    @Test func badInputThrows() throws {
        let x = Tensor<Float>.randomNormal(shape: [3, 4, 2], seed: 1)
        #expect(throws: DecompositionError.invalidRank(rank: 0, problem: .belowOne)) { try cpDecompose(x, rank: 0) }
        let wrong = try CPTensor<Float>(factors: [.zeros(rows: 3, columns: 2), .zeros(rows: 4, columns: 2), .zeros(rows: 3, columns: 2)])
        #expect(throws: DecompositionError.self) { try cpDecompose(x, rank: 2, options: CPOptions(initialization: .given(wrong))) }
        var y = x
        y[1, 1, 1] = .infinity
        #expect(throws: DecompositionError.nonFinite(operation: "cpDecompose", index: 11)) { try cpDecompose(y, rank: 2) }
        #expect(throws: DecompositionError.self) { try cpDecompose(Tensor<Float>.zeros(shape: [0, 3]), rank: 1) }
        #expect(throws: DecompositionError.self) { try CPTensor<Float>(weights: [1, 2], factors: [.zeros(rows: 3, columns: 3)]) }
    }
}
