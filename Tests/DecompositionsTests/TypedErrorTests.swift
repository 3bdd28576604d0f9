import Testing
import TensorModule
import Decompositions

/// Issue 24, item 3: ranks, parameters and parts are refused with typed payloads that carry the
/// numbers; their descriptions are the one-line messages.
@Suite("Typed errors: decompositions")
struct TypedDecompositionErrorTests {
    func checkRanks<S: BLASScalar>(_: S.Type) throws {
        let kernel = Tensor<S>.randomNormal(shape: [64, 64, 3, 3], seed: 1)
        #expect(throws: DecompositionError.invalidRank(rank: 70, problem: .forMode(0, .exceedsMatrix(rows: 64, columns: 576)))) {
            try tuckerDecompose(kernel, ranks: [70, 8], modes: [0, 1])
        }
        let small = Tensor<S>.randomNormal(shape: [2, 3, 4], seed: 2)
        #expect(throws: DecompositionError.invalidRank(rank: 7, problem: .exceedsCP(bound: 6, shape: [2, 3, 4]))) { try cpDecompose(small, rank: 7) }
        #expect(throws: DecompositionError.invalidRank(rank: 0, problem: .maxRank(.belowOne))) { try ttDecompose(small, maxRank: 0) }
        #expect(throws: DecompositionError.invalidRank(rank: 3, problem: .forTTCore(1, of: 3, .exceedsMatrix(rows: 2, columns: 12)))) {
            try ttDecompose(small, ranks: [3, 2])
        }
        // Tucker-2 ranks [4, 1] of a 1×1 kernel: R_out = 4 > R_in·1.
        var identity = Matrix<Double>(repeating: 0, rows: 2, columns: 2)
        (identity[0, 0], identity[1, 1]) = (1, 1)
        #expect(throws: DecompositionError.invalidRank(rank: 4, problem: .tucker2(ranks: [4, 1], kernelHeight: 1, kernelWidth: 1))) {
            try tucker2Decompose(Tensor<S>.randomNormal(shape: [8, 2, 1, 1], seed: 3), ranks: [4, 1], metric: identity)
        }
        let a = Matrix(Tensor<S>.randomNormal(shape: [6, 5], seed: 4))
        #expect(throws: DecompositionError.invalidRank(rank: 6, problem: .exceedsMatrix(rows: 6, columns: 5))) { try svd(a, rank: 6) }
    }

    func checkParameters<S: BLASScalar>(_: S.Type) throws {
        let kernel = Tensor<S>.randomNormal(shape: [8, 4, 3, 3], seed: 1)
        #expect(throws: DecompositionError.invalidParameter(operation: "selectRanks", name: "energy fraction", value: 1.5, requirement: .unitInterval)) {
            try selectRanks(for: kernel, modes: [0, 1], selection: .energy(1.5))
        }
        let a = Matrix(Tensor<S>.randomNormal(shape: [6, 5], seed: 4))
        #expect(throws: DecompositionError.invalidParameter(operation: "blockKrylovSVD", name: "blockSize", value: 0, requirement: .positive)) {
            try blockKrylovSVD(a, rank: 2, blockSize: 0)
        }
        #expect(throws: DecompositionError.invalidParameter(operation: "blockKrylovSVD", name: "depth", value: -1, requirement: .nonNegative)) {
            try blockKrylovSVD(a, rank: 2, depth: -1)
        }
        #expect(throws: DecompositionError.invalidParameter(operation: "ttDecompose", name: "tolerance", value: -1, requirement: .finiteAndNonNegative)) {
            try ttDecompose(kernel, tolerance: -1)
        }
    }

    func checkParts<S: BLASScalar>(_: S.Type) throws {
        let cores = [Tensor<S>.zeros(shape: [1, 3, 2]), Tensor<S>.zeros(shape: [3, 4, 1])]
        #expect(throws: DecompositionError.inconsistentParts(type: "TTTensor", shapes: [[1, 3, 2], [3, 4, 1]],
                                                             requirement: .neighbouringRanks(core: 0, endRank: 2, nextStartRank: 3))) {
            try TTTensor(cores: cores)
        }
        let core = Tensor<S>.zeros(shape: [2, 3])
        let factors = [Matrix<S>(repeating: 0, rows: 4, columns: 2), Matrix<S>(repeating: 0, rows: 5, columns: 4)]
        #expect(throws: DecompositionError.inconsistentParts(type: "TuckerTensor", shapes: [[2, 3], [4, 2], [5, 4]],
                                                             requirement: .factorColumns(mode: 1, columns: 4, coreSize: 3))) {
            try TuckerTensor(core: core, factors: factors)
        }
        #expect(throws: DecompositionError.inconsistentParts(type: "CPTensor", shapes: [[2], [4, 3]], requirement: .cpFactors(weights: 2))) {
            try CPTensor(weights: [S](repeating: 1, count: 2), factors: [Matrix<S>(repeating: 0, rows: 4, columns: 3)])
        }
    }

    @Test func ranksParametersAndPartsCarryTheirValues() throws {
        try checkRanks(Float.self)
        try checkRanks(Double.self)
        try checkParameters(Float.self)
        try checkParameters(Double.self)
        try checkParts(Float.self)
        try checkParts(Double.self)
    }

    @Test func descriptionsAreTheOneLineMessages() {
        #expect("\(DecompositionError.invalidRank(rank: 70, problem: .forMode(0, .exceedsMatrix(rows: 64, columns: 576))))"
                == "rank 70 exceeds min(64, 576) = 64 for mode 0")
        #expect("\(DecompositionError.invalidRank(rank: 0, problem: .maxRank(.belowOne)))" == "rank 0 must be at least 1 (maxRank)")
        #expect("\(DecompositionError.invalidRank(rank: 7, problem: .exceedsCP(bound: 6, shape: [2, 3, 4])))"
                == "rank 7 exceeds 6, the product of the mode sizes of [2, 3, 4] other than the largest (4); every tensor of this shape has CP rank at most 6")
        #expect("\(DecompositionError.invalidParameter(operation: "selectRanks", name: "energy fraction", value: 1.5, requirement: .unitInterval))"
                == "selectRanks: energy fraction 1.5 must be in (0, 1]")
        #expect("\(DecompositionError.inconsistentParts(type: "TTTensor", shapes: [[1, 3, 2], [3, 4, 1]], requirement: .neighbouringRanks(core: 0, endRank: 2, nextStartRank: 3)))"
                == "TTTensor: parts of shapes [[1, 3, 2], [3, 4, 1]] do not fit: core 0 ends with rank 2 but core 1 starts with 3")
    }
}
