import Testing
import TensorModule
import Decompositions
import TestSupport

@Suite("Tucker: HOSVD, ST-HOSVD, HOOI, partial Tucker")
struct TuckerTests {
    func randomTucker<S: BLASScalar>(_: S.Type, shape: [Int], ranks: [Int], seed: UInt64) throws -> Tensor<S> {
        let core = Tensor<S>.randomNormal(shape: ranks, seed: seed)
        let factors = zip(shape, ranks).enumerated().map { Matrix<S>.randomNormal(rows: $0.element.0, columns: $0.element.1, seed: seed + 1 + UInt64($0.offset)) }
        return try core.multiModeProduct(factors, modes: Array(0..<shape.count))
    }

    func checkRecovery<S: BLASScalar>(_: S.Type, shape: [Int], ranks: [Int], bound: S) throws {
        let x = try randomTucker(S.self, shape: shape, ranks: ranks, seed: 20)
        for sequential in [false, true] {
            let t = try hosvd(x, ranks: ranks, sequential: sequential)
            #expect(try t.relativeError(to: x) < bound, "HOSVD (sequential: \(sequential)) recovers \(ranks) of \(shape)")
            #expect(t.core.shape == ranks)
        }
        let hooi = try tuckerDecompose(x, ranks: ranks)
        #expect(try hooi.tucker.relativeError(to: x) < bound)
        for factor in hooi.tucker.factors {
            #expect(Reference.relativeDifference(factor.gram(), .identity(factor.columns)) <= Reference.tolerance(S.self, ulps: 1000))
        }
    }

    @Test(arguments: [([6, 5, 4], [2, 3, 2]), ([5, 4, 6, 3], [2, 2, 3, 2]), ([4, 3, 3, 4, 3], [2, 2, 2, 2, 2])])
    func exactRecoveryOfLowRankTensors(case: ([Int], [Int])) throws {
        try checkRecovery(Double.self, shape: `case`.0, ranks: `case`.1, bound: 1e-6)
        try checkRecovery(Float.self, shape: `case`.0, ranks: `case`.1, bound: 1e-3)
    }

    func checkBound<S: BLASScalar>(_: S.Type) throws {
        let x = Tensor<S>.randomNormal(shape: [7, 6, 5, 4], seed: 3)
        let ranks = [4, 3, 3, 2]
        var bound = 0.0
        for (mode, rank) in ranks.enumerated() {
            let s = try x.unfolded(mode: mode).singularValues()
            bound += s[rank...].reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        let slack = 1 + 100 * Double(S.ulpOfOne)
        for sequential in [false, true] {
            let t = try hosvd(x, ranks: ranks, sequential: sequential)
            let error = Double((try Tensor(t) - x).frobeniusNorm)
            #expect(error * error <= bound * slack, "HOSVD bound, sequential: \(sequential)")
        }
        // HOOI improves on (or equals) its HOSVD start and its history is non-increasing.
        let hooi = try tuckerDecompose(x, ranks: ranks, options: TuckerOptions(maxIterations: 20))
        for (a, b) in zip(hooi.errorHistory, hooi.errorHistory.dropFirst()) { #expect(b <= a + 10 * Double(S.ulpOfOne).squareRoot()) }
        let rebuilt = Double(try hooi.tucker.relativeError(to: x))
        #expect(abs(rebuilt - hooi.relativeError) <= 100 * Double(S.ulpOfOne).squareRoot())
        // Errors are non-increasing in the ranks.
        var previous = Double.infinity
        for r in 1...4 {
            let e = Double(try hosvd(x, ranks: [r, min(r, 6), min(r, 5), min(r, 4)]).relativeError(to: x))
            #expect(e <= previous + 1e-6)
            previous = e
        }
    }

    @Test func hosvdErrorBoundAndMonotonicity() throws {
        try checkBound(Float.self)
        try checkBound(Double.self)
    }

    func checkTucker2<S: BLASScalar>(_: S.Type) throws {
        // An OIHW kernel of channel ranks (6, 4): Tucker-2 on modes 0 and 1 recovers it.
        let core = Tensor<S>.randomNormal(shape: [6, 4, 3, 3], seed: 1)
        let uT = Matrix<S>.randomNormal(rows: 16, columns: 6, seed: 2)
        let uS = Matrix<S>.randomNormal(rows: 12, columns: 4, seed: 3)
        let kernel = try core.multiModeProduct([uT, uS], modes: [0, 1])
        let result = try tuckerDecompose(kernel, ranks: [6, 4], modes: [0, 1])
        #expect(result.tucker.core.shape == [6, 4, 3, 3])
        #expect(result.tucker.modes == [0, 1])
        #expect(result.tucker.shape == [16, 12, 3, 3])
        #expect(result.tucker.parameterCount == 6 * 4 * 9 + 16 * 6 + 12 * 4)
        #expect(try result.tucker.relativeError(to: kernel) < (S.self == Float.self ? 1e-3 : 1e-6))
        // Modes given out of order are sorted with their ranks.
        let swapped = try hosvd(kernel, ranks: [4, 6], modes: [1, 0])
        #expect(swapped.modes == [0, 1] && swapped.ranks == [6, 4])
    }

    @Test func partialTuckerOnChannelModes() throws {
        try checkTucker2(Float.self)
        try checkTucker2(Double.self)
    }

    /// Modes are indices chosen by the programmer: out of range or repeated, they stop the process
    /// (ranks come from data and throw, below).
    @Test func badModesArePreconditions() async {
        await #expect(processExitsWith: .failure) {
            _ = try? hosvd(Tensor<Float>.randomNormal(shape: [8, 4, 3], seed: 1), ranks: [2, 2], modes: [0, 0])
        }
        await #expect(processExitsWith: .failure) {
            _ = try? selectRanks(for: Tensor<Float>.randomNormal(shape: [8, 4, 3], seed: 1), modes: [5], selection: .vbmf)
        }
        await #expect(processExitsWith: .failure) {
            _ = try? cpDecompose(Tensor<Float>.randomNormal(shape: [8, 4, 3], seed: 1), rank: 2, options: CPOptions(fixedModes: [3]))
        }
    }

    @Test func badInputThrows() throws {
        let kernel = Tensor<Double>.randomNormal(shape: [64, 64, 3, 3], seed: 1)
        #expect(throws: DecompositionError.invalidRank(rank: 70, problem: .forMode(0, .exceedsMatrix(rows: 64, columns: 576)))) {
            try tuckerDecompose(kernel, ranks: [70, 8], modes: [0, 1])
        }
        #expect(throws: DecompositionError.invalidRank(rank: 0, problem: .forMode(1, .belowOne))) {
            try hosvd(kernel, ranks: [8, 0], modes: [0, 1])
        }
        #expect(throws: DecompositionError.self) { try hosvd(kernel, ranks: [8], modes: [0, 1]) }
        // A rank above ∏ of the other modes is impossible: 2 × 3 × 4 has unfolding 4 × 6 in mode 2 but 2 × 12 in mode 0.
        #expect(throws: DecompositionError.invalidRank(rank: 3, problem: .forMode(0, .exceedsMatrix(rows: 2, columns: 12)))) {
            try hosvd(Tensor<Float>.randomNormal(shape: [2, 3, 4], seed: 1), ranks: [3, 3, 4])
        }
        #expect(throws: DecompositionError.self) {
            try TuckerTensor(core: Tensor<Float>.zeros(shape: [2, 2]), factors: [.zeros(rows: 3, columns: 3)], modes: [0])
        }
    }

    @Test func leadingVectorRoutes() {
        // Block Krylov only for the largest unfoldings at small ranks; the Gram route for wide Float ones.
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 2048, columns: 32768, rank: 128, scalar: Float.self) == .blockKrylov)
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 32768, columns: 2048, rank: 128, scalar: Double.self) == .blockKrylov)
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 2048, columns: 32768, rank: 129, scalar: Float.self) == .gram)
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 1024, columns: 9216, rank: 64, scalar: Float.self) == .gram)
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 1024, columns: 9216, rank: 64, scalar: Double.self) == .exact)
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 9216, columns: 1024, rank: 64, scalar: Float.self) == .exact)
        #expect(SVDMethod.exact.resolvedForLeadingVectors(rows: 4096, columns: 4096, rank: 8, scalar: Float.self) == .exact)
    }

    /// A 2048 × 64 × 32 tensor of multilinear rank (96, 12, 12) plus 30% noise: mode 0's unfolding
    /// (2048 × 2048) at rank 64 takes block Krylov; HOSVD, HOOI and TT-SVD at fixed ranks must
    /// stay within 1% of the LAPACK-route error (HOSVD, HOOI) or of TT-SVD's bound.
    func checkLargeUnfoldings<S: BLASScalar>(_: S.Type) throws {
        var x = try randomTucker(S.self, shape: [2048, 64, 32], ranks: [96, 12, 12], seed: 41)
        x = x + S(0.3 * Double(x.frobeniusNorm) / Double(x.scalarCount).squareRoot()) * Tensor<S>.randomNormal(shape: x.shape, seed: 42)
        let ranks = [64, 8, 8]
        #expect(SVDMethod.automatic.resolvedForLeadingVectors(rows: 2048, columns: 2048, rank: 64, scalar: S.self) == .blockKrylov)
        let reference = Double(try hosvd(x, ranks: ranks, svd: .gram).relativeError(to: x))
        let automatic = try hosvd(x, ranks: ranks)
        let automaticError = Double(try automatic.relativeError(to: x))
        #expect(automaticError <= reference * 1.01, "HOSVD: \(automaticError) against \(reference)")
        for factor in automatic.factors {
            #expect(Reference.relativeDifference(factor.gram(), .identity(factor.columns)) <= Reference.tolerance(S.self, ulps: 1000))
        }
        let hooi = try tuckerDecompose(x, ranks: ranks, options: TuckerOptions(maxIterations: 2))
        let hooiReference = try tuckerDecompose(x, ranks: ranks, options: TuckerOptions(maxIterations: 2, svd: .gram))
        #expect(hooi.relativeError <= hooiReference.relativeError * 1.01)
        // TT-SVD at ranks (64, 8) against Oseledets's bound ‖X − X̂‖² ≤ Σ_k ε_k², ε_k the best rank-r_k
        // error of the unfolding X(n_1⋯n_k × n_{k+1}⋯n_d).
        let tt = try ttDecompose(x, ranks: [64, 8])
        func tail(_ rows: Int, _ rank: Int) throws -> Double {
            try Matrix(reshaping: x, rows: rows, columns: x.scalarCount / rows).singularValues()[rank...].reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        let bound = (try tail(2048, 64) + tail(2048 * 64, 8)).squareRoot() / Double(x.frobeniusNorm)
        let ttError = Double(try tt.relativeError(to: x))
        #expect(ttError <= bound * 1.01, "TT-SVD: \(ttError) against the bound \(bound)")
    }

    @Test func largeUnfoldingsTakeBlockKrylovWithinOnePercent() throws {
        try checkLargeUnfoldings(Float.self)
        try checkLargeUnfoldings(Double.self)
    }
}
