import Testing
import TensorModule
import Decompositions
import TestSupport
import Foundation

@Suite("SVD: exact, truncated, randomized")
struct SVDTests {
    func checkEckartYoung<S: BLASScalar>(_: S.Type, rows: Int, columns: Int) throws {
        let a = Matrix<S>.randomNormal(rows: rows, columns: columns, seed: UInt64(rows * 7 + columns))
        let full = try svd(a)
        let s = full.singularValues.map(Double.init)
        #expect(full.rank == min(rows, columns))
        #expect(Reference.relativeDifference(Matrix(full.reconstructed()), a) <= Reference.tolerance(S.self, ulps: 500))
        // Orthonormal factors and the sign convention.
        #expect(Reference.relativeDifference(full.u.gram(), .identity(full.rank)) <= Reference.tolerance(S.self, ulps: 500))
        for k in 0..<full.rank {
            let column = full.u.column(k)
            #expect((column.max { abs($0) < abs($1) } ?? 0) > 0, "largest entry of U column \(k) is positive")
        }
        var previous = Double.infinity
        for rank in 1...min(rows, columns) {
            let t = try svd(a, rank: rank, method: .exact)
            let error = Double((t.reconstructed() - Tensor(a)).frobeniusNorm)
            let expected = s[rank...].reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(error - expected) <= 1e3 * Double(S.ulpOfOne) * s[0], "Eckart–Young at rank \(rank)")
            #expect(error <= previous + 1e3 * Double(S.ulpOfOne) * s[0], "error non-increasing in the rank")
            previous = error
        }
    }

    @Test(arguments: [(6, 4), (4, 9), (7, 7), (1, 5)])
    func eckartYoung(shape: (Int, Int)) throws {
        try checkEckartYoung(Float.self, rows: shape.0, columns: shape.1)
        try checkEckartYoung(Double.self, rows: shape.0, columns: shape.1)
    }

    @Test func veryWideMatrixUsesEconomySVD() throws {
        let a = Matrix<Float>.randomNormal(rows: 3, columns: 300_000, seed: 1)
        let f = try svd(a)
        #expect(f.u.shape == [3, 3] && f.vt.shape == [3, 300_000])
        #expect(Reference.relativeDifference(Matrix(f.reconstructed()), a) <= 1e-5)
    }

    func checkRandomized<S: BLASScalar>(_: S.Type) throws {
        // A 300 × 200 matrix with singular values 0.8^i.
        let q1 = try Matrix<S>.randomNormal(rows: 300, columns: 200, seed: 1).qr().q
        let q2 = try Matrix<S>.randomNormal(rows: 200, columns: 200, seed: 2).qr().q
        let values = (0..<200).map { S(Double.pow(0.8, Double($0))) }
        let a = q1.scalingColumns(by: values).matmul(q2, transposeOther: true)
        let exact = try svd(a, rank: 10, method: .exact)
        let randomized = try svd(a, rank: 10, method: .randomized(oversampling: 10, powerIterations: 2, seed: 3))
        for k in 0..<10 {
            #expect(abs(Double(randomized.singularValues[k] - exact.singularValues[k])) <= 1e-3 * Double(exact.singularValues[k]))
        }
        let exactError = Double((exact.reconstructed() - Tensor(a)).frobeniusNorm)
        let randomizedError = Double((randomized.reconstructed() - Tensor(a)).frobeniusNorm)
        #expect(abs(randomizedError - exactError) <= 1e-3 * exactError)
        #expect(try randomizedSVD(a, rank: 10, seed: 3) == randomized, "same seed, same result")
    }

    @Test func randomizedMatchesExactOnDecayingSpectrum() throws {
        try checkRandomized(Float.self)
        try checkRandomized(Double.self)
    }

    @Test func badInputThrows() throws {
        let a = Matrix<Double>.randomNormal(rows: 64, columns: 576, seed: 1)
        #expect(throws: DecompositionError.invalidRank(rank: 70, problem: .exceedsMatrix(rows: 64, columns: 576))) { try svd(a, rank: 70) }
        #expect("\(DecompositionError.invalidRank(rank: 70, problem: .exceedsMatrix(rows: 64, columns: 576)))" == "rank 70 exceeds min(64, 576) = 64")
        #expect(throws: DecompositionError.invalidRank(rank: 0, problem: .belowOne)) { try svd(a, rank: 0) }
        var b = a
        b[3, 4] = .nan
        #expect(throws: DecompositionError.nonFinite(operation: "svd", index: 3 * 576 + 4)) { try svd(b) }
        #expect(throws: DecompositionError.self) { try svd(Matrix<Double>.zeros(rows: 0, columns: 3)) }
        #expect(throws: DecompositionError.self) { try randomizedSVD(a, rank: 5, oversampling: -1) }
    }

    @Test func degenerateMatricesStayFinite() throws {
        for a in [Matrix<Float>.zeros(rows: 4, columns: 3), Matrix(repeating: 2, rows: 4, columns: 3),
                  Matrix(repeating: 1e-30, rows: 5, columns: 5), Matrix(repeating: 1e30, rows: 5, columns: 5)] {
            let f = try svd(a, rank: 2)
            #expect(f.u.scalars.allSatisfy { $0.isFinite } && f.vt.scalars.allSatisfy { $0.isFinite })
            #expect(f.singularValues.allSatisfy { $0.isFinite })
        }
    }

    /// `relativeError(to:)` takes the `Matrix` that was decomposed and agrees with loops over its entries.
    func checkRelativeErrorToMatrix<S: BLASScalar>(_: S.Type) throws {
        let a = Matrix<S>.randomNormal(rows: 9, columns: 6, seed: 21)
        let f = try svd(a, rank: 3, method: .exact)
        var difference = 0.0, norm = 0.0
        for i in 0..<a.rows {
            for j in 0..<a.columns {
                var approximation = 0.0
                for r in 0..<f.rank { approximation += Double(f.u[i, r]) * Double(f.singularValues[r]) * Double(f.vt[r, j]) }
                difference += (Double(a[i, j]) - approximation) * (Double(a[i, j]) - approximation)
                norm += Double(a[i, j]) * Double(a[i, j])
            }
        }
        let naive = (difference / norm).squareRoot()
        let error = try f.relativeError(to: a)
        #expect(abs(Double(error) - naive) <= 64 * Double(S.ulpOfOne) * naive, "\(error) against \(naive)")
        #expect(try error == f.relativeError(to: Tensor(a)))
        #expect(throws: TensorError.self) { try f.relativeError(to: Matrix<S>.randomNormal(rows: 6, columns: 9, seed: 1)) }
    }

    @Test func relativeErrorAgainstTheDecomposedMatrix() throws {
        try checkRelativeErrorToMatrix(Float.self)
        try checkRelativeErrorToMatrix(Double.self)
    }
}

@Suite("Block Krylov SVD")
struct BlockKrylovTests {
    /// `G1 · diag(i^(−decay)) · G2 + noise`: a decaying spectrum over a noise bulk, like trained weights.
    func weight<S: BLASScalar>(_: S.Type, rows m: Int, columns n: Int, decay: Double, noise: Double, seed: UInt64) -> Matrix<S> {
        let r = min(m, n)
        let left = Matrix<S>.randomNormal(rows: m, columns: r, seed: seed).scalingColumns(by: (0..<r).map { S(pow(Double($0 + 1), -decay)) })
        return left.matmul(Matrix<S>.randomNormal(rows: r, columns: n, seed: seed + 1))
            + S(noise) * Matrix<S>.randomNormal(rows: m, columns: n, seed: seed + 2)
    }

    func check<S: BLASScalar>(_: S.Type, rows: Int, columns: Int, rank: Int, decay: Double) throws {
        let a = weight(S.self, rows: rows, columns: columns, decay: decay, noise: 0.3, seed: UInt64(rows + rank))
        let exact = try svd(a, rank: rank, method: .exact)
        let krylov = try blockKrylovSVD(a, rank: rank)
        let norm = Double(a.frobeniusNorm)
        let exactError = Double((try Tensor(exact) - Tensor(a)).frobeniusNorm) / norm
        let krylovError = Double((try Tensor(krylov) - Tensor(a)).frobeniusNorm) / norm
        #expect(krylovError <= exactError * 1.01, "\(rows)×\(columns) rank \(rank) decay \(decay): \(krylovError) vs exact \(exactError)")
        #expect(krylovError >= exactError * (1 - 1e-4), "no approximation beats Eckart–Young")
        // Orthonormal factors, descending values, and the automatic route takes it at these sizes.
        #expect(Reference.relativeDifference(krylov.u.gram(), .identity(rank)) <= 1e-4)
        #expect(zip(krylov.singularValues, krylov.singularValues.dropFirst()).allSatisfy { $0 >= $1 })
        if min(rows, columns) >= 512 && 4 * rank <= min(rows, columns) {
            #expect(SVDMethod.automatic.resolved(rows: rows, columns: columns, rank: rank, scalar: S.self) == .blockKrylov)
        }
    }

    @Test(arguments: [(520, 1300, 64, 0.8), (1300, 520, 100, 0.5), (600, 600, 40, 1.2)])
    func withinOnePercentOfTheExactTruncatedSVD(setting: (Int, Int, Int, Double)) throws {
        try check(Float.self, rows: setting.0, columns: setting.1, rank: setting.2, decay: setting.3)
        try check(Double.self, rows: setting.0, columns: setting.1, rank: setting.2, decay: setting.3)
    }
}

/// The Gram/eigen route: the exact truncated SVD's error, orthonormal factors, and the automatic
/// route for Float matrices of at least 512 on each side at ranks above a quarter of it.
@Suite("Truncated SVD: Gram route")
struct GramSVDTests {
    func check<S: BLASScalar>(_: S.Type, rows: Int, columns: Int, rank: Int, decay: Double) throws {
        let a = BlockKrylovTests().weight(S.self, rows: rows, columns: columns, decay: decay, noise: 0.3, seed: UInt64(rows * 3 + rank))
        let exact = try svd(a, rank: rank, method: .exact)
        let gram = try gramSVD(a, rank: rank)
        let norm = Double(a.frobeniusNorm)
        let exactError = Double((try Tensor(exact) - Tensor(a)).frobeniusNorm) / norm
        let gramError = Double((try Tensor(gram) - Tensor(a)).frobeniusNorm) / norm
        #expect(abs(gramError - exactError) <= 1e-5 * exactError + 1e-5, "\(rows)×\(columns) rank \(rank): \(gramError) vs exact \(exactError)")
        #expect(Reference.relativeDifference(gram.u.gram(), .identity(rank)) <= 1e-4)
        #expect(Reference.relativeDifference(gram.vt.transposed().gram(), .identity(rank)) <= 1e-4)
        #expect(zip(gram.singularValues, gram.singularValues.dropFirst()).allSatisfy { $0 >= $1 })
        for (s, e) in zip(gram.singularValues, exact.singularValues) {
            #expect(abs(Double(s - e)) <= 1e-4 * Double(exact.singularValues[0]), "σ \(s) vs \(e)")
        }
        // The automatic route: Gram for Float at these sizes and ranks, gesdd for Double.
        let route = SVDMethod.automatic.resolved(rows: rows, columns: columns, rank: rank, scalar: S.self)
        if min(rows, columns) >= 512 && 4 * rank > min(rows, columns) { #expect(route == (S.self == Float.self ? .gram : .exact)) }
        if min(rows, columns) < 512 { #expect(route == .exact) }
    }

    @Test(arguments: [(520, 1300, 200, 0.8), (1300, 520, 300, 0.5), (600, 600, 600, 1.2), (64, 40, 7, 0.3)])
    func equalsTheExactTruncatedSVD(setting: (Int, Int, Int, Double)) throws {
        try check(Float.self, rows: setting.0, columns: setting.1, rank: setting.2, decay: setting.3)
        try check(Double.self, rows: setting.0, columns: setting.1, rank: setting.2, decay: setting.3)
    }

    /// A rank-deficient matrix: the zero singular values give zero rows of `Vᵀ`, never NaN.
    @Test func rankDeficientMatricesGiveFiniteFactors() throws {
        let a = Matrix<Float>.randomNormal(rows: 30, columns: 5, seed: 1).matmul(.randomNormal(rows: 5, columns: 50, seed: 2))
        let f = try gramSVD(a, rank: 10)
        #expect(f.u.scalars.allSatisfy(\.isFinite) && f.vt.scalars.allSatisfy(\.isFinite))
        #expect(Double((try Tensor(f) - Tensor(a)).frobeniusNorm) <= 1e-4 * Double(a.frobeniusNorm))
    }
}
