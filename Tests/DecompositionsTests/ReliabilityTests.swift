import Testing
import TensorModule
import TestSupport
@testable import Decompositions

/// Issue 9, items 2 and 3: CP ranks are bounded before anything is allocated, and every method gives
/// the right factors and error for finite input of any magnitude (never NaN, never a wrong error).
@Suite("Reliability: ranks and magnitudes")
struct DecompositionReliabilityTests {
    @Test func cpRanksAboveTheExactBoundAreRefused() throws {
        #expect(maximumCPRank(shape: [64, 32]) == 32)
        #expect(maximumCPRank(shape: [2, 3, 4]) == 6)
        #expect(maximumCPRank(shape: [16, 8, 3, 3]) == 72)
        #expect(maximumCPRank(shape: [1 << 40, 1 << 40, 1 << 40]) == Int.max)
        let x = Tensor<Float>.randomNormal(shape: [64, 32], seed: 3)
        for rank in [33, 5000, 100_000, Int.max] {
            #expect {
                _ = try cpDecompose(x, rank: rank)
            } throws: { error in
                "\(error)" == "rank \(rank) exceeds 32, the product of the mode sizes of [64, 32] other than the largest (64); every tensor of this shape has CP rank at most 32"
            }
            #expect(throws: DecompositionError.self) { try selectCPRank(for: x, selection: .fixed([rank])) }
        }
        #expect(try cpDecompose(x, rank: 32, options: CPOptions(maxIterations: 2)).cp.rank == 32)
    }

    /// A scale near the top of the type's range, at which ‖X‖² (and for 2048 scalars ‖X‖ itself) overflows.
    static func hugeScale<S: BLASScalar>(_: S.Type, order: Int) -> S {
        S.self == Float.self ? (order == 2 ? 1e37 : 1e36) : (order == 2 ? 1e307 : 1e306)
    }

    static func tinyScale<S: BLASScalar>(_: S.Type) -> S { S.self == Float.self ? 1e-30 : 1e-300 }

    func checkEveryMethodAtExtremeMagnitudes<S: BLASScalar>(_: S.Type) throws {
        let matrix = Tensor<S>.randomNormal(shape: [64, 32], seed: 11)
        let kernel = Tensor<S>.randomNormal(shape: [16, 8, 3, 3], seed: 12)
        let tolerance = S.self == Float.self ? 1e-3 : 1e-9
        for scale in [Self.hugeScale(S.self, order: 2), Self.tinyScale(S.self)] {
            let x = matrix * scale
            #expect(x.firstNonFiniteIndex == nil)
            let reference = try svd(Matrix(matrix), rank: 8)
            let f = try svd(Matrix(x), rank: 8)
            let finite = f.singularValues.allSatisfy { $0.isFinite }
            #expect(finite)
            for (a, b) in zip(f.singularValues, reference.singularValues) { #expect(abs(Double(a / scale) / Double(b) - 1) < tolerance) }
            let error = Double(try f.relativeError(to: x)), expected = Double(try reference.relativeError(to: matrix))
            #expect(error > 0.1 && abs(error / expected - 1) < tolerance, "svd error \(error) against \(expected) at scale \(scale)")
            let randomized = try randomizedSVD(Matrix(x), rank: 8, seed: 1)
            #expect(try abs(Double(randomized.relativeError(to: x)) / Double(randomizedSVD(Matrix(matrix), rank: 8, seed: 1).relativeError(to: matrix)) - 1) < tolerance)
            let ranks = try selectRanks(for: x, modes: [0], selection: .relativeError(0.5)).ranks
            let referenceRanks = try selectRanks(for: matrix, modes: [0], selection: .relativeError(0.5)).ranks
            #expect(ranks == referenceRanks)
        }
        let scale = Self.hugeScale(S.self, order: 4)
        let x = kernel * scale
        let cpOptions = CPOptions<S>(maxIterations: 20)
        let cp = try cpDecompose(x, rank: 6, options: cpOptions)
        let cpReference = try cpDecompose(kernel, rank: 6, options: cpOptions)
        let finite = cp.cp.weights.allSatisfy { $0.isFinite } && cp.errorHistory.allSatisfy { $0.isFinite }
        #expect(finite)
        #expect(try abs(Double(cp.cp.relativeError(to: x)) / Double(cpReference.cp.relativeError(to: kernel)) - 1) < tolerance)
        let tucker = try tuckerDecompose(x, ranks: [6, 4], modes: [0, 1]).tucker
        let tuckerReference = try tuckerDecompose(kernel, ranks: [6, 4], modes: [0, 1]).tucker
        #expect(tucker.core.firstNonFiniteIndex == nil)
        #expect(try abs(Double(tucker.relativeError(to: x)) / Double(tuckerReference.relativeError(to: kernel)) - 1) < tolerance)
        let hosvdError = Double(try hosvd(x, ranks: [6, 4, 3, 3]).relativeError(to: x))
        #expect(try abs(hosvdError / Double(hosvd(kernel, ranks: [6, 4, 3, 3]).relativeError(to: kernel)) - 1) < tolerance)
        for tt in [try ttDecompose(x, maxRank: 5), try ttDecompose(x, tolerance: 0.5)] {
            #expect(tt.cores.allSatisfy { $0.firstNonFiniteIndex == nil })
            #expect(try Double(tt.relativeError(to: x)).isFinite)
        }
        #expect(try abs(Double(ttDecompose(x, maxRank: 5).relativeError(to: x)) / Double(ttDecompose(kernel, maxRank: 5).relativeError(to: kernel)) - 1) < tolerance)
    }

    @Test func everyMethodWorksAtExtremeMagnitudesInFloat() throws { try checkEveryMethodAtExtremeMagnitudes(Float.self) }
    @Test func everyMethodWorksAtExtremeMagnitudesInDouble() throws { try checkEveryMethodAtExtremeMagnitudes(Double.self) }

    func checkUnrepresentableResultsThrow<S: BLASScalar>(_: S.Type) throws {
        // Every entry at half the largest finite value: σ₁ = ½·max·√2048 exceeds the type's range.
        let x = try Tensor<S>(shape: [64, 32], scalars: [S](repeating: S.greatestFiniteMagnitude / 2, count: 2048))
        #expect(throws: DecompositionError.self) { try svd(Matrix(x)) }
        #expect(throws: DecompositionError.self) { try cpDecompose(x, rank: 1) }
        #expect {
            _ = try svd(Matrix(x), rank: 1)
        } throws: { error in
            "\(error)".contains("exceeds the largest finite value") && "\(error)".contains("decompose in Double")
        }
        // The relative error of two huge tensors is still right.
        let y = x.map { $0 * 0.5 }
        #expect(try abs(Double(y.relativeError(to: x)) - 0.5) < 1e-6)
    }

    @Test func unrepresentableResultsThrowInFloat() throws { try checkUnrepresentableResultsThrow(Float.self) }
    @Test func unrepresentableResultsThrowInDouble() throws { try checkUnrepresentableResultsThrow(Double.self) }
}
