import Decompositions
import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorIO
import TensorModule
import Testing

/// A statistics file's end-to-end output metric (`NAME.outputMetric`, measured by calibration with
/// onnxruntime-training): the layer's factors minimise the output error in it, a budget keeps
/// ranking by the error the layer would have without it, and bad metrics are refused with their
/// shapes.
@Suite("End-to-end output metrics from calibration")
struct EndToEndMetricTests {
    static let (rank, outputs) = (NormWeightingTests.rank, NormWeightingTests.outputs)

    /// A symmetric positive semi-definite `outputs × outputs` metric with one null direction, of
    /// a small scale as measured ones are (squared gradients).
    static func metric() -> Matrix<Double> {
        let a = Matrix<Double>.randomNormal(rows: outputs, columns: outputs - 1, seed: 71)
        return 1e-6 * a.matmul(a.transposed())
    }

    static func compressed(metric: Matrix<Double>?, endToEnd: Bool = true, normWeighting: Bool = true)
        throws -> (reasons: [String], approximation: Matrix<Double>) {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.rank = rank
        options.statistics = CalibrationStatistics(layers: ["fc": try NormWeightingTests.statistics()],
                                                   outputMetrics: metric.map { ["fc": $0] } ?? [:])
        (options.endToEndOutputs, options.normWeightedOutputs) = (endToEnd, normWeighting)
        let result = try ModelCompressor(options: options).compress(onnx: try NormWeightingTests.model(.double))
        let graph = result.model.graph
        let matmuls = graph.nodes.filter { $0.opType == "MatMul" }
        func value(_ name: String) throws -> Matrix<Double> {
            Matrix(try #require(graph.initializers.first { $0.name == name }).tensor(as: Double.self))
        }
        let (first, second) = (try value(matmuls[0].inputs[1]), try value(matmuls[1].inputs[1]))
        if metric != nil && endToEnd {
            // Each component balanced between the factors (a fine-tuning's steps are of one size
            // per entry): column i of the first `MatMul`'s weight and row i of the second's.
            for i in 0..<first.columns {
                let a = (0..<first.rows).reduce(0.0) { $0 + first[$1, i] * first[$1, i] }
                let b = (0..<second.columns).reduce(0.0) { $0 + second[i, $1] * second[i, $1] }
                #expect(abs(a - b) <= 1e-9 * (a + b), "component \(i): \(a) against \(b)")
            }
        }
        return (try #require(result.layers.first { $0.name == "fc" }).reasons, first.matmul(second))
    }

    @Test func theFactorsMinimiseTheErrorInTheMeasuredMetric() throws {
        let g = Self.metric()
        let (reasons, approximation) = try Self.compressed(metric: g)
        #expect(reasons.contains { $0.contains("the network's outputs") }, "\(reasons)")
        // It stands in for the LayerNorm's metric, which the same node would otherwise get.
        #expect(!reasons.contains { $0.contains("the LayerNorm 'ln'") }, "\(reasons)")
        let wT = Matrix(try NormWeightingTests.model(.double).graph.initializers[0].tensor(as: Double.self))
        let c = try NormWeightingTests.statistics().covariance()
        let whitened = try WhitenedSVD(wT.transposed(), metric: c, outputMetric: g)
        let tail = whitened.singularValues.dropFirst(Self.rank).reduce(0) { $0 + $1 * $1 }
        let energy = whitened.singularValues.reduce(0) { $0 + $1 * $1 }
        let error = NormWeightingTests.weightedError(wT, approximation, metric: c, output: g)
        #expect(abs(error - tail) <= 1e-5 * energy, "\(error) against the closed form \(tail)")
        // The factors the norm's metric gives leave more of the measured error.
        let (normReasons, normFactors) = try Self.compressed(metric: g, endToEnd: false)
        #expect(normReasons.contains { $0.contains("the LayerNorm 'ln'") } && !normReasons.contains { $0.contains("the network's outputs") })
        #expect(error < 0.99 * NormWeightingTests.weightedError(wT, normFactors, metric: c, output: g))
        // Off, the factors are those of a file without the metric.
        let without = try Self.compressed(metric: nil)
        #expect(normFactors == without.approximation)
    }

    /// The budget's rank options keep the error the layer would have without the measured metric
    /// (here the LayerNorm's, else the plain output error).
    @Test(arguments: [true, false])
    func theBudgetRanksWithoutTheMeasuredMetric(normWeighting: Bool) throws {
        func rankOptions(_ metric: Matrix<Double>?) throws -> [RankOption] {
            var options = CompressionOptions()
            options.minimumParameters = 0
            options.statistics = CalibrationStatistics(layers: ["fc": try NormWeightingTests.statistics()], outputMetrics: metric.map { ["fc": $0] } ?? [:])
            (options.budget, options.rankMultiple, options.normWeightedOutputs) = (.macs(0.5), 1, normWeighting)
            let compressor = try ModelCompressor(options: options)
            let planned = try #require(try compressor.plan(onnx: try NormWeightingTests.model(.double)).layers.first { $0.name == "fc" })
            return try compressor.rankOptions(try compressor.prepared(planned, as: Double.self))
        }
        let with = try rankOptions(Self.metric()), without = try rankOptions(nil)
        #expect(!with.isEmpty && with == without)
    }

    @Test func aMetricOfAnotherSizeIsRefusedWithItsShape() throws {
        #expect {
            _ = try Self.compressed(metric: Matrix<Double>.identity(Self.outputs + 1))
        } throws: { error in
            "\(error)".contains("fc.outputMetric: shape [7, 7] does not match the layer's 6 outputs")
        }
    }

    /// Convolutions take no output metric: one in the file is refused, not ignored, unless the
    /// metrics are turned off.
    @Test func aConvolutionsMetricIsRefused() throws {
        var statistics = InputStatistics(dimension: 8 * 9)
        try statistics.accumulate(rows: Tensor<Double>.randomNormal(shape: [100, 8 * 9], seed: 72))
        var options = CompressionOptions()
        (options.minimumParameters, options.rank) = (0, 4)
        options.include = "^conv1$"
        options.statistics = CalibrationStatistics(layers: ["conv1": statistics], outputMetrics: ["conv1": Matrix<Double>.identity(16)])
        #expect {
            _ = try ModelCompressor(options: options).compress(onnx: try CompressionPlanTests.model())
        } throws: { "\($0)".contains("conv1.outputMetric: output metrics apply to Gemm and MatMul layers; conv1 is a convolution") }
        options.endToEndOutputs = false
        let result = try ModelCompressor(options: options).compress(onnx: try CompressionPlanTests.model())
        #expect(result.layers.first { $0.name == "conv1" }?.status == .replaced)
    }

    @Test func theFileRoundTripsAndRefusesBadMetrics() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("end-to-end-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("stats.safetensors")
        let statistics = CalibrationStatistics(layers: ["fc": try NormWeightingTests.statistics()], sensitivities: ["fc": 0.5],
                                               outputMetrics: ["fc": Self.metric()])
        try statistics.write(to: url)
        #expect(try CalibrationStatistics(contentsOf: url) == statistics)

        // A metric of a layer without statistics, a non-square one and a non-finite one: refused by
        // the writer and by the reader, with the layer and the shape.
        let square = Matrix<Double>.identity(2)
        var notFinite = square
        notFinite[0, 1] = .nan
        let cases: [(String, Tensor<Double>, String)] = [
            ("other", Tensor(square), "other.outputMetric without other.count"),
            ("fc", try Tensor(shape: [2, 3], scalars: [Double](repeating: 1, count: 6)), "fc.outputMetric: shape [2, 3]; must be a square matrix"),
            ("fc", Tensor(notFinite), "fc.outputMetric: shape [2, 2]; must be a square matrix of finite values"),
        ]
        for (layer, metric, message) in cases {
            var writer = try CalibrationStatistics(layers: ["fc": try NormWeightingTests.statistics()]).writer()
            try writer.add(layer + ".outputMetric", metric)
            let bad = directory.appendingPathComponent("bad.safetensors")
            try writer.encoded().write(to: bad)
            #expect { _ = try CalibrationStatistics(contentsOf: bad) } throws: { "\($0)".contains(message) }
            if metric.shape[0] == metric.shape[1] {
                var given = CalibrationStatistics(layers: ["fc": try NormWeightingTests.statistics()])
                given.outputMetrics[layer] = Matrix(metric)
                #expect { _ = try given.writer() } throws: { "\($0)".contains(message) }
            }
        }
    }
}
