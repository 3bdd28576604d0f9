import Decompositions
import Testing
import TensorModule
import TestSupport

/// Calibration-like statistics: the second moment of `n` correlated samples (a random mixing of
/// decaying scales), so that whitening matters.
func correlatedMetric(dimension d: Int, samples n: Int = 400, seed: UInt64) -> Matrix<Double> {
    let mixing = Matrix<Double>.randomNormal(rows: d, columns: d, seed: seed)
    let scales = (0..<d).map { 1 / Double($0 + 1) }
    let z = Matrix<Double>.randomNormal(rows: n, columns: d, seed: seed + 1).scalingColumns(by: scales)
    let x = z.matmul(mixing)
    return (1 / Double(n)) * x.gram()
}

/// `tr((W − Ŵ) C (W − Ŵ)ᵀ)` in Double.
func outputError<S: BLASScalar>(_ w: Matrix<S>, _ approximation: Matrix<S>, _ c: Matrix<Double>) -> Double {
    let delta = Matrix<Double>(uncheckedRows: w.rows, columns: w.columns, scalars: ContiguousArray(zip(w.scalars, approximation.scalars).map { Double($0) - Double($1) }))
    return zip(delta.matmul(c).scalars, delta.scalars).reduce(0) { $0 + $1.0 * $1.1 }
}

@Suite("Output-aware decompositions")
struct OutputAwareTests {
    /// The weighted low-rank problem by alternating least squares from many random starts: a
    /// brute-force search that knows nothing of whitening.
    func bruteForce(_ w: Matrix<Double>, _ c: Matrix<Double>, rank k: Int, starts: Int = 30) throws -> Double {
        var best = Double.infinity
        for start in 0..<starts {
            var b = Matrix<Double>.randomNormal(rows: k, columns: w.columns, seed: UInt64(1000 + start))
            var a = Matrix<Double>.zeros(rows: w.rows, columns: k)
            for _ in 0..<300 {
                a = try b.matmul(c).matmul(b, transposeOther: true).choleskySolve(w.matmul(c).matmul(b, transposeOther: true), side: .right)
                b = try a.gram().choleskySolve(a.matmul(w, transposeSelf: true))
            }
            best = min(best, outputError(w, a.matmul(b), c))
        }
        return best
    }

    func checkWhitenedSVD<S: BLASScalar>(_: S.Type) throws {
        let (m, d) = (5, 6)
        let w = Matrix<S>.randomNormal(rows: m, columns: d, seed: 3)
        let c = correlatedMetric(dimension: d, seed: 4)
        let whitened = try WhitenedSVD(w, metric: c, damping: 0)
        let wd = Matrix<Double>(uncheckedRows: m, columns: d, scalars: ContiguousArray(w.scalars.lazy.map { Double($0) }))
        let energy = outputError(wd, .zeros(rows: m, columns: d), c)
        let tolerance = S.self == Float.self ? 1e-5 : 1e-10
        for k in 1...4 {
            let f = try whitened.factors(rank: k)
            let approximation = f.u.scalingColumns(by: f.singularValues).matmul(f.vt)
            let error = outputError(w, approximation, c)
            // The closed form: the discarded whitened energy.
            let tail = whitened.singularValues.dropFirst(k).reduce(0) { $0 + $1 * $1 }
            #expect(abs(error - tail) <= tolerance * energy, "rank \(k): \(error) vs Σ_{i>k} σ_i² = \(tail)")
            #expect(abs(whitened.outputRelativeError(rank: k) - (tail / energy).squareRoot()) <= 1e-9)
            // Brute force finds nothing better (and finds the same optimum).
            let brute = try bruteForce(wd, c, rank: k)
            #expect(error <= brute + tolerance * energy, "rank \(k): whitened \(error) vs brute force \(brute)")
            #expect(abs(error - brute) <= 1e-6 * energy + tolerance * energy)
            // Never worse on the statistics than the plain truncated SVD.
            let plain = try svd(w, rank: k)
            #expect(error <= outputError(w, Matrix(plain.reconstructed()), c) + tolerance * energy)
        }
    }

    @Test func whitenedSVDIsTheExactMinimiser() throws {
        try checkWhitenedSVD(Float.self)
        try checkWhitenedSVD(Double.self)
    }

    /// `tr(M Δ C Δᵀ)`: the output error weighted by `M`, on inputs of metric `C`.
    func twoSidedError<S: BLASScalar>(_ w: Matrix<S>, _ approximation: Matrix<S>, _ c: Matrix<Double>, _ m: Matrix<Double>) -> Double {
        let delta = Matrix<Double>(uncheckedRows: w.rows, columns: w.columns, scalars: ContiguousArray(zip(w.scalars, approximation.scalars).map { Double($0) - Double($1) }))
        return zip(m.matmul(delta).matmul(c).scalars, delta.scalars).reduce(0) { $0 + $1.0 * $1.1 }
    }

    func checkTwoSided<S: BLASScalar>(_: S.Type) throws {
        let (m, d) = (6, 7)
        let w = Matrix<S>.randomNormal(rows: m, columns: d, seed: 41)
        let c = correlatedMetric(dimension: d, seed: 42), output = correlatedMetric(dimension: m, seed: 43)
        let twoSided = try WhitenedSVD(w, metric: c, outputMetric: output, damping: 0)
        let oneSided = try WhitenedSVD(w, metric: c, damping: 0)
        let energy = twoSidedError(w, .zeros(rows: m, columns: d), c, output)
        let tolerance = S.self == Float.self ? 1e-5 : 1e-10
        for k in 1...5 {
            let f = try twoSided.factors(rank: k)
            let error = twoSidedError(w, f.u.scalingColumns(by: f.singularValues).matmul(f.vt), c, output)
            // The closed form: the discarded energy of Rᵀ W L.
            let tail = twoSided.singularValues.dropFirst(k).reduce(0) { $0 + $1 * $1 }
            #expect(abs(error - tail) <= tolerance * energy, "rank \(k): \(error) vs Σ_{i>k} σ_i² = \(tail)")
            #expect(abs(twoSided.outputRelativeError(rank: k) - (tail / energy).squareRoot()) <= 1e-9)
            // The one-sided factors, optimal for the identity, are no better in the output metric,
            // and strictly worse for a metric this far from the identity.
            let g = try oneSided.factors(rank: k)
            let oneSidedError = twoSidedError(w, g.u.scalingColumns(by: g.singularValues).matmul(g.vt), c, output)
            #expect(error <= oneSidedError + tolerance * energy)
            if k < 5 { #expect(error < oneSidedError * (1 - 1e-3), "rank \(k): \(error) against one-sided \(oneSidedError)") }
        }
        // The identity as output metric is the one-sided decomposition.
        let identity = try WhitenedSVD(w, metric: c, outputMetric: .identity(m), damping: 0)
        for (a, b) in zip(identity.singularValues, oneSided.singularValues) { #expect(abs(a - b) <= 1e-9 * oneSided.singularValues[0]) }
        #expect(throws: DecompositionError.self) { try WhitenedSVD(w, metric: c, outputMetric: .identity(m + 1)) }
        var infinite = Matrix<Double>.identity(m)
        infinite[0, 1] = .infinity
        #expect(throws: DecompositionError.self) { try WhitenedSVD(w, metric: c, outputMetric: infinite) }
    }

    @Test func twoSidedWhiteningMinimisesTheWeightedError() throws {
        try checkTwoSided(Float.self)
        try checkTwoSided(Double.self)
    }

    /// A LayerNorm's centred metric `P diag(γ²) P` is singular (the mean over features is
    /// removed): the default damping gives finite factors whose error, seen through the norm, is
    /// the closed form's, while the error's mean over features is free.
    func checkCentredOutputMetric<S: BLASScalar>(_: S.Type) throws {
        let (m, d) = (8, 9)
        let w = Matrix<S>.randomNormal(rows: m, columns: d, seed: 51)
        let c = correlatedMetric(dimension: d, seed: 52)
        let gamma = (0..<m).map { 0.2 + Double($0 % 3) }
        var p = Matrix<Double>.identity(m)
        for i in 0..<m { for j in 0..<m { p[i, j] -= 1 / Double(m) } }
        let norm = p.scalingColumns(by: gamma.map { $0 * $0 }).matmul(p)
        let whitened = try WhitenedSVD(w, metric: c, outputMetric: norm)
        let energy = twoSidedError(w, .zeros(rows: m, columns: d), c, norm)
        for k in [1, 3, 6] {
            let f = try whitened.factors(rank: k)
            #expect(f.u.scalars.allSatisfy(\.isFinite) && f.vt.scalars.allSatisfy(\.isFinite))
            let error = twoSidedError(w, f.u.scalingColumns(by: f.singularValues).matmul(f.vt), c, norm)
            let tail = whitened.singularValues.dropFirst(k).reduce(0) { $0 + $1 * $1 }
            #expect(abs(error - tail) <= 1e-4 * energy, "rank \(k): \(error) vs \(tail)")
            let plain = try WhitenedSVD(w, metric: c).factors(rank: k)
            #expect(error <= twoSidedError(w, plain.u.scalingColumns(by: plain.singularValues).matmul(plain.vt), c, norm) + 1e-4 * energy)
        }
    }

    @Test func centredOutputMetricGivesFiniteOptimalFactors() throws {
        try checkCentredOutputMetric(Float.self)
        try checkCentredOutputMetric(Double.self)
    }

    @Test func singularMetricsGiveFiniteFactors() throws {
        // Inputs confined to a 2-dimensional subspace of 6 (plus an all-zero metric).
        let basis = Matrix<Double>.randomNormal(rows: 2, columns: 6, seed: 8)
        let singular = basis.gram()
        let w = Matrix<Float>.randomNormal(rows: 4, columns: 6, seed: 9)
        for metric in [singular, Matrix<Double>.zeros(rows: 6, columns: 6)] {
            let f = try WhitenedSVD(w, metric: metric).factors(rank: 2)
            #expect(f.u.scalars.allSatisfy(\.isFinite) && f.vt.scalars.allSatisfy(\.isFinite))
        }
        // On the subspace the rank-2 output error vanishes.
        let f = try WhitenedSVD(w, metric: singular).factors(rank: 2)
        let error = outputError(w, f.u.scalingColumns(by: f.singularValues).matmul(f.vt), singular)
        #expect(error <= 1e-5 * outputError(w, .zeros(rows: 4, columns: 6), singular))
        #expect(throws: DecompositionError.self) { try WhitenedSVD(w, metric: .zeros(rows: 5, columns: 5)) }
    }

    func checkTucker2<S: BLASScalar>(_: S.Type) throws {
        let kernel = Tensor<S>.randomNormal(shape: [8, 6, 3, 3], seed: 21)
        let c = correlatedMetric(dimension: 6 * 9, seed: 22)
        let w0 = Matrix<S>(uncheckedRows: 8, columns: 54, scalars: kernel.scalars)
        for ranks in [[3, 2], [5, 4], [8, 6]] {
            var options = OutputAwareOptions()
            options.maxIterations = 6
            options.tolerance = 0
            let run = try tucker2Decompose(kernel, ranks: ranks, metric: c, options: options)
            let slack = S.self == Float.self ? 1e-5 : 1e-10
            for (a, b) in zip(run.errorHistory, run.errorHistory.dropFirst()) {
                #expect(b <= a + slack, "ranks \(ranks): output error rose from \(a) to \(b) in \(run.errorHistory)")
            }
            // The reported error is the error of the returned factors.
            let approximation = Matrix<S>(uncheckedRows: 8, columns: 54, scalars: try Tensor(run.result).scalars)
            let energy = outputError(w0, .zeros(rows: 8, columns: 54), c)
            #expect(abs((outputError(w0, approximation, c) / energy).squareRoot() - run.outputRelativeError) <= 1e-4)
            // At least as good as the data-free HOSVD on the statistics; exact at full ranks.
            let hosvdError = outputError(w0, Matrix<S>(uncheckedRows: 8, columns: 54, scalars: try hosvd(kernel, ranks: ranks, modes: [0, 1]).reconstructed().scalars), c)
            #expect(outputError(w0, approximation, c) <= hosvdError * (1 + 1e-6) + slack * energy)
            if ranks == [8, 6] { #expect(run.outputRelativeError <= (S.self == Float.self ? 1e-3 : 1e-7)) }
        }
    }

    @Test func tucker2OutputErrorIsNonIncreasingAndBeatsHOSVD() throws {
        try checkTucker2(Float.self)
        try checkTucker2(Double.self)
    }

    func checkCP<S: BLASScalar>(_: S.Type, shape: [Int]) throws {
        let kernel = Tensor<S>.randomNormal(shape: shape, seed: 31)
        let (t, d) = (shape[0], shape.dropFirst().reduce(1, *))
        let c = correlatedMetric(dimension: d, seed: 32)
        let w0 = Matrix<S>(uncheckedRows: t, columns: d, scalars: kernel.scalars)
        let energy = outputError(w0, .zeros(rows: t, columns: d), c)
        var options = OutputAwareOptions()
        options.tolerance = 0
        options.maxIterations = 5
        for rank in [2, 5] {
            let start = CPOptions<S>(maxIterations: 50)
            let run = try cpDecompose(kernel, rank: rank, metric: c, options: options, start: start)
            let slack = S.self == Float.self ? 1e-5 : 1e-10
            for (a, b) in zip(run.errorHistory, run.errorHistory.dropFirst()) {
                #expect(b <= a + slack, "shape \(shape), rank \(rank): output error rose from \(a) to \(b)")
            }
            #expect(run.result.shape == shape)
            let approximation = Matrix<S>(uncheckedRows: t, columns: d, scalars: try Tensor(run.result).scalars)
            let dataFree = try cpDecompose(kernel, rank: rank, options: start).cp
            let freeError = outputError(w0, Matrix<S>(uncheckedRows: t, columns: d, scalars: try Tensor(dataFree).scalars), c)
            #expect(outputError(w0, approximation, c) <= freeError + slack * energy)
            #expect(abs((outputError(w0, approximation, c) / energy).squareRoot() - run.outputRelativeError) <= 1e-4)
        }
    }

    /// 2-D kernels, and 1-D and 3-D ones (orders 3 and 5: the same alternation over more modes).
    @Test(arguments: [[6, 5, 3, 3], [6, 5, 4], [5, 4, 3, 2, 3]])
    func cpOutputErrorIsNonIncreasingAndBeatsDataFreeCP(shape: [Int]) throws {
        try checkCP(Float.self, shape: shape)
        try checkCP(Double.self, shape: shape)
    }

    @Test func cpOutputAwareNeedsAKernelOfOrderThree() throws {
        let matrix = Tensor<Double>.randomNormal(shape: [4, 6], seed: 1)
        #expect(throws: DecompositionError.inconsistentParts(type: "cpDecompose(metric:)", shapes: [[4, 6]], requirement: .kernelOrder(minimum: 3))) {
            _ = try cpDecompose(matrix, rank: 2, metric: Matrix<Double>.identity(6))
        }
    }
}
