import Decompositions
import NNLayers
import Testing
import TensorModule
import TestSupport

/// Correlated, shifted activations: `(n, d)` rows with a non-zero mean.
func activations<S: BLASScalar>(_: S.Type, rows n: Int, features d: Int, seed: UInt64) -> Tensor<S> {
    let mix = Tensor<S>.randomNormal(shape: [d, d], seed: seed)
    let z = Tensor<S>.randomNormal(shape: [n, d], seed: seed + 1)
    var x = Tensor(Matrix(z).scalingColumns(by: (0..<d).map { S(1) / S($0 + 1) }).matmul(Matrix(mix)))
    x = x.map { $0 + S(0.7) }
    return x
}

/// ‖A − B‖_F / ‖C‖_F in Double.
func relative<S: BLASScalar>(_ a: Tensor<S>, _ b: Tensor<S>, over c: Tensor<S>) -> Double {
    let num = zip(a.scalars, b.scalars).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }
    let den = c.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
    return (num / den).squareRoot()
}

@Suite("Calibration statistics and data-aware layers")
struct DataAwareTests {
    func checkAccumulation<S: BLASScalar>(_: S.Type) throws {
        let x = activations(S.self, rows: 37, features: 5, seed: 1)
        var stats = InputStatistics(dimension: 5)
        try stats.accumulate(rows: try x.reshaped(to: [37, 5]))
        // Direct: mean and E[xxᵀ] by loops.
        for i in 0..<5 {
            let mean = (0..<37).reduce(0.0) { $0 + Double(x[$1, i]) } / 37
            #expect(abs(stats.means[0][i] - mean) <= 1e-6 * max(1, abs(mean)))
            for j in 0..<5 {
                let moment = (0..<37).reduce(0.0) { $0 + Double(x[$1, i]) * Double(x[$1, j]) } / 37
                #expect(abs(stats.grams[0][i, j] - moment) <= 1e-6 * max(1, abs(moment)))
            }
        }
        // Two halves merged equal the whole.
        var first = InputStatistics(dimension: 5), second = InputStatistics(dimension: 5)
        try first.accumulate(rows: try Tensor(shape: [20, 5], scalars: x.scalars.prefix(100)))
        try second.accumulate(rows: try Tensor(shape: [17, 5], scalars: x.scalars.suffix(85)))
        let merged = try first.merged(with: second)
        #expect(merged.count == 37)
        #expect(zip(merged.grams[0].scalars, stats.grams[0].scalars).allSatisfy { abs($0 - $1) <= 1e-9 * max(1, abs($1)) })
        #expect(throws: NNLayersError.statistics(.unmergeable(groups: 1, dimension: 5, otherGroups: 1, otherDimension: 4))) {
            try first.merged(with: InputStatistics(dimension: 4))
        }
        #expect(throws: NNLayersError.self) { try stats.accumulate(rows: Tensor<S>.zeros(shape: [3, 4])) }
        // Parts that cannot be a second moment name the entry and its values.
        #expect(throws: NNLayersError.statistics(.negativeVariance(group: 0, input: 1, secondMoment: 1, mean: 2))) {
            try InputStatistics(count: 4, means: [[0, 2]], grams: [Matrix<Double>.identity(2)])
        }
        #expect(throws: NNLayersError.statistics(.parts(count: 4, means: 1, grams: 0))) { try InputStatistics(count: 4, means: [[0, 2]], grams: []) }
    }

    @Test func rowStatisticsMatchADirectComputation() throws {
        try checkAccumulation(Float.self)
        try checkAccumulation(Double.self)
    }

    func checkPatches<S: BLASScalar>(_: S.Type) throws {
        let conv = try Conv2D(weight: Tensor<S>.randomNormal(shape: [4, 3, 3, 2], seed: 2), stride: Size2D(2, 1),
                              padding: Padding(top: 1, bottom: 0, left: 1, right: 1), dilation: Size2D(1, 2), groups: 2)
        let x = Tensor<S>.randomNormal(shape: [2, 6, 7, 6], seed: 3)
        var stats = InputStatistics(dimension: 3 * 3 * 2, groups: 2)
        try stats.accumulate(patchesOf: x, for: conv)
        let out = try conv.outputSize(height: 7, width: 6)
        // Direct patches: x[n, g·3 + s, i·sh + p·dh − top, j·sw + q·dw − left], zero outside.
        for g in 0..<2 {
            var patches: [[Double]] = []
            for n in 0..<2 { for i in 0..<out.height { for j in 0..<out.width {
                var v: [Double] = []
                for s in 0..<3 { for p in 0..<3 { for q in 0..<2 {
                    let (ii, jj) = (i * 2 + p - 1, j + q * 2 - 1)
                    v.append(ii >= 0 && ii < 7 && jj >= 0 && jj < 6 ? Double(x[n, g * 3 + s, ii, jj]) : 0)
                } } }
                patches.append(v)
            } } }
            #expect(stats.count == Double(patches.count))
            for a in 0..<18 {
                let mean = patches.reduce(0.0) { $0 + $1[a] } / Double(patches.count)
                #expect(abs(stats.means[g][a] - mean) <= 1e-6)
                for b in 0..<18 {
                    let moment = patches.reduce(0.0) { $0 + $1[a] * $1[b] } / Double(patches.count)
                    #expect(abs(stats.grams[g][a, b] - moment) <= 1e-5)
                }
            }
        }
    }

    @Test func patchStatisticsMatchADirectComputation() throws {
        try checkPatches(Float.self)
        try checkPatches(Double.self)
    }

    func checkLinear<S: BLASScalar>(_: S.Type) throws {
        let fc = try Linear(weight: Matrix<S>.randomNormal(rows: 12, columns: 10, seed: 4), bias: (0..<12).map { S($0) / 10 })
        let x = activations(S.self, rows: 200, features: 10, seed: 5)
        var stats = InputStatistics(dimension: 10)
        try stats.accumulate(rows: x)
        let y = try fc(x)
        let unbiased = try Linear(weight: fc.weight)(x)
        for rank in [2, 5] {
            let aware = try fc.compressed(by: .svd(.fixed([rank])), statistics: stats)
            let free = try fc.compressed(by: .svd(.fixed([rank])))
            let yAware = try aware.stack(x), yFree = try free.stack(x)
            let eAware = relative(y, yAware, over: unbiased), eFree = relative(y, yFree, over: unbiased)
            // The reported output error is the measured one, and it beats the data-free SVD.
            #expect(abs(eAware - (aware.outputRelativeError ?? -1)) <= (S.self == Float.self ? 1e-4 : 1e-9), "\(eAware) vs \(aware.outputRelativeError ?? -1)")
            #expect(eAware <= eFree + 1e-6, "rank \(rank): data-aware \(eAware), data-free \(eFree)")
            // Bias correction: the mean output over the calibration inputs is the original's.
            for t in 0..<12 {
                let mean = (0..<200).reduce(0.0) { $0 + Double(y[$1, t]) } / 200
                let meanAware = (0..<200).reduce(0.0) { $0 + Double(yAware[$1, t]) } / 200
                #expect(abs(mean - meanAware) <= (S.self == Float.self ? 1e-4 : 1e-9) * max(1, abs(mean)))
            }
            // Without the correction the bias is the original's.
            var options = DataAwareOptions()
            options.biasCorrection = false
            let uncorrected = try fc.compressed(by: .svd(.fixed([rank])), statistics: stats, options: options)
            guard case let .linear(last) = uncorrected.stack.layers[1] else { Issue.record("not a linear layer"); return }
            #expect(last.bias == fc.bias)
        }
        // Rank rules on the output-space spectrum.
        let energy = try fc.compressed(by: .svd(.energy(0.99)), statistics: stats)
        #expect(energy.ranks[0] >= 1 && energy.ranks[0] <= 10)
        let error = try fc.compressed(by: .svd(.relativeError(0.05)), statistics: stats)
        #expect((error.outputRelativeError ?? 1) <= 0.05 + 1e-6)
        // TT-linear whitened per input mode.
        let tt = try fc.compressed(by: .tensorTrain(outputModes: [3, 4], inputModes: [2, 5], maxRank: 3), statistics: stats)
        let ttFree = try fc.compressed(by: .tensorTrain(outputModes: [3, 4], inputModes: [2, 5], maxRank: 3))
        #expect(abs(relative(y, try tt.stack(x), over: unbiased) - (tt.outputRelativeError ?? -1)) <= 1e-4)
        #expect(relative(y, try tt.stack(x), over: unbiased) <= relative(y, try ttFree.stack(x), over: unbiased) * 1.05)
        #expect(throws: NNLayersError.statistics(.dimension(layer: fc.summary, needed: 10, perChannel: 10, found: 9))) {
            try fc.compressed(by: .svd(.fixed([2])), statistics: InputStatistics(dimension: 9))
        }
    }

    @Test func dataAwareLinearLayersMinimiseTheOutputError() throws {
        try checkLinear(Float.self)
        try checkLinear(Double.self)
    }

    func checkConv<S: BLASScalar>(_: S.Type) throws {
        let x = activations(S.self, rows: 3 * 6 * 64, features: 1, seed: 6)
        let input = try Tensor(shape: [3, 6, 8, 8], scalars: Tensor<S>.randomNormal(shape: [3, 6, 8, 8], seed: 7).scalars.enumerated().map { $0.element + x.scalars[$0.offset] * S(0.3) })
        for (method, kernel, groups): (ConvDecomposition, [Int], Int) in [
            (.tucker2(.fixed([4, 3])), [8, 6, 3, 3], 1), (.tucker2(.fixed([2, 2])), [8, 3, 3, 3], 2),
            (.cp(.fixed([4]), maxIterations: 30), [8, 6, 3, 3], 1), (.svd(.fixed([3])), [8, 6, 1, 1], 1), (.svd(.fixed([2])), [8, 3, 1, 1], 2),
        ] {
            let conv = try Conv2D(weight: Tensor<S>.randomNormal(shape: kernel, seed: 8), bias: (0..<8).map { S($0) },
                                  stride: Size2D(1, 2), padding: kernel[2] == 3 ? .symmetric(1) : .zero, groups: groups)
            var stats = InputStatistics(dimension: kernel[1] * kernel[2] * kernel[3], groups: groups)
            try stats.accumulate(patchesOf: input, for: conv)
            let aware = try conv.compressed(by: method, statistics: stats)
            let free = try conv.compressed(by: method)
            let y = try conv(input)
            let unbiased = try Conv2D(weight: conv.weight, stride: conv.stride, padding: conv.padding, groups: groups)(input)
            let eAware = relative(y, try aware.stack(input), over: unbiased)
            let eFree = relative(y, try free.stack(input), over: unbiased)
            #expect(abs(eAware - (aware.outputRelativeError ?? -1)) <= 1e-3, "\(method): measured \(eAware), reported \(aware.outputRelativeError ?? -1)")
            #expect(eAware <= eFree * 1.001 + 1e-6, "\(method) groups \(groups): data-aware \(eAware) vs data-free \(eFree)")
        }
    }

    @Test func dataAwareConvolutionsMinimiseTheOutputError() throws {
        try checkConv(Float.self)
        try checkConv(Double.self)
    }
}
