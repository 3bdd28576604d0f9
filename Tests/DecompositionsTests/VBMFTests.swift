import Testing
import TensorModule
import Decompositions
import TestSupport

@Suite("VBMF and rank selection")
struct VBMFTests {
    struct Setting: Sendable, CustomStringConvertible {
        var rows: Int, columns: Int, rank: Int, sigma: Double
        var description: String { "\(rows)×\(columns) rank \(rank) σ \(sigma)" }
    }

    static let settings = [
        Setting(rows: 50, columns: 100, rank: 5, sigma: 0.1),
        Setting(rows: 100, columns: 50, rank: 5, sigma: 0.1),      // L > M: transposed
        Setting(rows: 30, columns: 200, rank: 3, sigma: 0.5),
        Setting(rows: 200, columns: 80, rank: 10, sigma: 0.2),     // L > M
        Setting(rows: 64, columns: 576, rank: 8, sigma: 0.05),
        Setting(rows: 120, columns: 120, rank: 12, sigma: 1.0),
    ]

    func checkRecovery<S: BLASScalar>(_: S.Type, _ setting: Setting) throws {
        let a = Matrix<S>.randomNormal(rows: setting.rows, columns: setting.rank, seed: 1)
        let b = Matrix<S>.randomNormal(rows: setting.rank, columns: setting.columns, seed: 2)
        let noise = Matrix<S>.randomNormal(rows: setting.rows, columns: setting.columns, seed: 3)
        let y = a.matmul(b) + S(setting.sigma) * noise
        let result = try evbmf(y)
        #expect(result.rank == setting.rank, "\(setting): rank \(result.rank)")
        let variance = setting.sigma * setting.sigma
        #expect(abs(result.noiseVariance - variance) <= 0.1 * variance, "\(setting): σ² \(result.noiseVariance)")
        #expect(result.transposed == (setting.rows > setting.columns))
        #expect(result.shrunkSingularValues.count == result.rank)
        for (shrunk, value) in zip(result.shrunkSingularValues, result.singularValues) { #expect(shrunk <= value && shrunk > 0) }
        // With the true σ² the known-variance solution keeps the same rank.
        #expect(try vbmf(y, noiseVariance: variance).rank == setting.rank)
    }

    @Test(arguments: settings)
    func evbmfRecoversRankAndNoise(setting: Setting) throws {
        try checkRecovery(Double.self, setting)
        try checkRecovery(Float.self, setting)
    }

    @Test func degenerateMatrices() throws {
        let zero = try evbmf(Matrix<Double>.zeros(rows: 5, columns: 8))
        #expect(zero.rank == 0 && zero.noiseVariance == 0)
        let forced = try evbmf(Matrix<Double>.zeros(rows: 5, columns: 8), forceAtLeastOne: true)
        #expect(forced.rank == 1 && forced.forced)
        let pureNoise = try evbmf(Matrix<Float>.randomNormal(rows: 40, columns: 60, seed: 4))
        #expect(pureNoise.rank == 0)
        #expect(try evbmf(Matrix<Float>.randomNormal(rows: 40, columns: 60, seed: 4), forceAtLeastOne: true).rank == 1)
        let exactLowRank = Matrix<Double>.randomNormal(rows: 20, columns: 2, seed: 5).matmul(.randomNormal(rows: 2, columns: 30, seed: 6))
        let exact = try evbmf(exactLowRank)
        #expect(exact.rank == 2 && exact.noiseVariance.isFinite)
        #expect(throws: DecompositionError.self) { try vbmf(exactLowRank, noiseVariance: 0) }
        var bad = exactLowRank
        bad[0, 0] = .nan
        #expect(throws: DecompositionError.self) { try evbmf(bad) }
    }

    @Test func rankSelectionRules() throws {
        // A noisy kernel of channel ranks (6, 5).
        let core = Tensor<Double>.randomNormal(shape: [6, 5, 3, 3], seed: 1)
        let clean = try core.multiModeProduct([.randomNormal(rows: 32, columns: 6, seed: 2), .randomNormal(rows: 24, columns: 5, seed: 3)], modes: [0, 1])
        let kernel = clean + 0.01 * Tensor.randomNormal(shape: clean.shape, seed: 4)
        let byVBMF = try selectRanks(for: kernel, modes: [0, 1], selection: .vbmf)
        #expect(byVBMF.ranks == [6, 5])
        #expect(byVBMF.reasons.count == 2 && byVBMF.reasons[0].contains("EVBMF"))
        let byEnergy = try selectRanks(for: kernel, modes: [0, 1], selection: .energy(0.999))
        #expect(byEnergy.ranks[0] <= 8 && byEnergy.ranks[0] >= 6)
        for epsilon in [0.05, 0.2, 0.5] {
            let choice = try selectRanks(for: kernel, modes: [0, 1], selection: .relativeError(epsilon))
            let t = try hosvd(kernel, ranks: choice.ranks, modes: [0, 1])
            #expect(Double(try t.relativeError(to: kernel)) <= epsilon * (1 + 1e-9))
        }
        for fraction in [0.05, 0.2, 0.5] {
            let choice = try selectRanks(for: kernel, modes: [0, 1], selection: .parameterBudget(fraction))
            let t = try hosvd(kernel, ranks: choice.ranks, modes: [0, 1])
            #expect(Double(t.parameterCount) <= fraction * Double(kernel.scalarCount))
        }
        let fixed = try selectRanks(for: kernel, modes: [0, 1], selection: .fixed([4, 3]))
        #expect(fixed.ranks == [4, 3])
        #expect(throws: DecompositionError.self) { try selectRanks(for: kernel, modes: [0, 1], selection: .fixed([40, 3])) }
        #expect(throws: DecompositionError.self) { try selectRanks(for: kernel, modes: [0, 1], selection: .energy(1.5)) }
        // CP ranks.
        #expect(try selectCPRank(for: kernel, selection: .fixed([7])).ranks == [7])
        let budget = try selectCPRank(for: kernel, selection: .parameterBudget(0.1))
        #expect(budget.ranks[0] * (32 + 24 + 3 + 3 + 1) <= kernel.scalarCount / 10)
        #expect(try selectCPRank(for: kernel, selection: .vbmf).ranks[0] >= 6)
        #expect(throws: DecompositionError.self) { try selectCPRank(for: kernel, selection: .relativeError(0.1)) }
        // A matrix: SVD ranks.
        let w = Matrix<Double>.randomNormal(rows: 40, columns: 3, seed: 5).matmul(.randomNormal(rows: 3, columns: 60, seed: 6))
            + 0.01 * Matrix.randomNormal(rows: 40, columns: 60, seed: 7)
        #expect(try selectRanks(for: Tensor(w), modes: [0], selection: .vbmf).ranks == [3])
    }
}
