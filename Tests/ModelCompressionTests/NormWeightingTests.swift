import Decompositions
import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorModule
import Testing

/// A `MatMul` whose output only a LayerNorm reads (after a bias and a residual `Add`): the data-aware
/// SVD weights its output error by the norm's centred scale, `P diag(γ²) P`.
@Suite("Data-aware SVD before a LayerNorm")
struct NormWeightingTests {
    static let (inputs, outputs, rank) = (9, 6, 2)
    static let gamma: [Double] = [0.1, 3, 0.5, 2, 0.05, 1]

    /// `y = LayerNorm(x W + b + r)`; `exposeSum` makes the sum a graph output too, `axis` is the
    /// norm's.
    static func model(_ dataType: ONNXDataType, exposeSum: Bool = false, axis: Int = -1) throws -> ONNXModel {
        let w = Tensor<Double>.randomNormal(shape: [inputs, outputs], seed: 61)
        let b = Tensor<Double>.randomNormal(shape: [outputs], seed: 62)
        let nodes = [
            ONNXNode(opType: "MatMul", name: "fc", inputs: ["x", "W"], outputs: ["h"]),
            ONNXNode(opType: "Add", name: "bias", inputs: ["h", "b"], outputs: ["hb"]),
            ONNXNode(opType: "Add", name: "residual", inputs: ["r", "hb"], outputs: ["sum"]),
            ONNXNode(opType: "LayerNormalization", name: "ln", inputs: ["sum", "gamma", "beta"], outputs: ["y"], attributes: [("axis", .int(axis))]),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes,
                              initializers: [try ONNXTensor(name: "W", w, dataType: dataType), try ONNXTensor(name: "b", b, dataType: dataType),
                                             try ONNXTensor(name: "gamma", try Tensor(shape: [outputs], scalars: gamma), dataType: dataType),
                                             try ONNXTensor(name: "beta", Tensor(repeating: 0.3, shape: [outputs]), dataType: dataType)],
                              inputs: [ONNXValueInfo(name: "x", elementType: dataType, shape: [.value(4), .value(inputs)]),
                                       ONNXValueInfo(name: "r", elementType: dataType, shape: [.value(4), .value(outputs)])],
                              outputs: [ONNXValueInfo(name: "y", elementType: dataType, shape: nil)]
                                  + (exposeSum ? [ONNXValueInfo(name: "sum", elementType: dataType, shape: nil)] : []))
        return ONNXModel(graph: graph, opset: 17)
    }

    static func statistics() throws -> InputStatistics {
        var statistics = InputStatistics(dimension: inputs)
        // Correlated inputs with a mean, so that the input metric matters too.
        let z = Tensor<Double>.randomNormal(shape: [80, inputs], seed: 63)
        let mixing = Tensor<Double>.randomNormal(shape: [inputs, inputs], seed: 64)
        let rows = try Tensor<Double>(shape: [80, inputs], scalars: Array(Matrix(z).matmul(Matrix(mixing)).scalars))
        try statistics.accumulate(rows: rows + Tensor(repeating: 0.4, shape: rows.shape))
        return statistics
    }

    /// The compressed model, its layer's reasons and `Ŵᵀ` (`inputs × outputs`) from its two
    /// factor `MatMul`s.
    static func compressed(_ model: ONNXModel, weighting: Bool = true) throws -> (reasons: [String], approximation: Matrix<Double>) {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.rank = rank
        options.statistics = CalibrationStatistics(layers: ["fc": try statistics()])
        options.normWeightedOutputs = weighting
        let result = try ModelCompressor(options: options).compress(onnx: model)
        let graph = result.model.graph
        let matmuls = graph.nodes.filter { $0.opType == "MatMul" }
        #expect(matmuls.count == 2 && matmuls[0].inputs[0] == "x")
        func value(_ name: String) throws -> Matrix<Double> {
            Matrix(try #require(graph.initializers.first { $0.name == name }).tensor(as: Double.self))
        }
        return (try #require(result.layers.first { $0.name == "fc" }).reasons, try value(matmuls[0].inputs[1]).matmul(try value(matmuls[1].inputs[1])))
    }

    /// `tr(M Δ C Δᵀ)` for the weight `W = (Wᵀ)ᵀ` and its approximation, both given transposed.
    static func weightedError(_ wT: Matrix<Double>, _ approximationT: Matrix<Double>, metric c: Matrix<Double>, output m: Matrix<Double>) -> Double {
        let delta = (wT - approximationT).transposed()
        return zip(m.matmul(delta).matmul(c).scalars, delta.scalars).reduce(0) { $0 + $1.0 * $1.1 }
    }

    @Test("the factors minimise the error the norm sees", arguments: [ONNXDataType.float, .double])
    func factorsMinimiseTheNormError(dataType: ONNXDataType) throws {
        let model = try Self.model(dataType)
        let (reasons, approximation) = try Self.compressed(model)
        #expect(reasons.contains { $0.contains("the LayerNorm 'ln'") }, "\(reasons)")
        let (plainReasons, plain) = try Self.compressed(model, weighting: false)
        #expect(!plainReasons.contains { $0.contains("LayerNorm") })
        let wT = Matrix(try Self.model(.double).graph.initializers[0].tensor(as: Double.self))
        let c = try Self.statistics().covariance()
        let norm = ModelCompressor.normMetric(Self.gamma)
        // The closed form: what the two-sided whitened SVD discards.
        let whitened = try WhitenedSVD(wT.transposed(), metric: c, outputMetric: norm)
        let tail = whitened.singularValues.dropFirst(Self.rank).reduce(0) { $0 + $1 * $1 }
        let energy = whitened.singularValues.reduce(0) { $0 + $1 * $1 }
        let error = Self.weightedError(wT, approximation, metric: c, output: norm)
        // The closed form is that of the damped metrics (δ = 1e-6 of their mean eigenvalue on each
        // side), the error that of the undamped ones.
        let tolerance = 1e-5
        #expect(abs(error - tail) <= tolerance * energy, "\(error) against the closed form \(tail)")
        // The unweighted factors leave more error for the norm to see.
        let plainError = Self.weightedError(wT, plain, metric: c, output: norm)
        #expect(error < 0.99 * plainError, "weighted \(error) against unweighted \(plainError)")
    }

    /// A budget ranks the layer by the error the norm sees: its rank options' errors are the
    /// two-sided whitened SVD's tails.
    @Test func theBudgetRanksWithTheSameMetric() throws {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.statistics = CalibrationStatistics(layers: ["fc": try Self.statistics()])
        options.budget = .macs(0.5)
        options.rankMultiple = 1
        let compressor = try ModelCompressor(options: options)
        let planned = try #require(try compressor.plan(onnx: try Self.model(.double)).layers.first { $0.name == "fc" })
        let rankOptions = try compressor.rankOptions(try compressor.prepared(planned, as: Double.self))
        let wT = Matrix(try Self.model(.double).graph.initializers[0].tensor(as: Double.self))
        let whitened = try WhitenedSVD(wT.transposed(), metric: try Self.statistics().covariance(), outputMetric: ModelCompressor.normMetric(Self.gamma))
        let total = whitened.singularValues.reduce(0) { $0 + $1 * $1 }
        #expect(!rankOptions.isEmpty)
        for option in rankOptions {
            let tail = whitened.singularValues.dropFirst(option.ranks[0]).reduce(0) { $0 + $1 * $1 } / total
            #expect(abs(option.error - tail) <= 1e-9, "rank \(option.ranks[0]): \(option.error) against \(tail)")
        }
    }

    /// The TT route has no use for an output metric, and says so.
    @Test func theTensorTrainRouteSaysItIgnoresTheMetric() throws {
        let linear = try Linear(weight: Matrix<Double>.randomNormal(rows: 8, columns: 12, seed: 65))
        var statistics = InputStatistics(dimension: 12)
        try statistics.accumulate(rows: Tensor<Double>.randomNormal(shape: [40, 12], seed: 66))
        let metric = ModelCompressor.normMetric((0..<8).map { 0.5 + Double($0) })
        let tt = try linear.compressed(by: .tensorTrain(outputModes: [2, 4], inputModes: [3, 4], maxRank: 2), statistics: statistics, outputMetric: metric)
        #expect(tt.reasons.contains { $0.contains("the TT route does not use an output metric") }, "\(tt.reasons)")
        let svd = try linear.compressed(by: .svd(.fixed([2])), statistics: statistics, outputMetric: metric)
        #expect(svd.reasons.contains { $0.contains("output error weighted by the given output metric") }, "\(svd.reasons)")
    }

    @Test func theNormMetricIsCentredAndScaled() {
        let m = ModelCompressor.normMetric(Self.gamma)
        let n = Self.gamma.count
        // P diag(γ²) P: a shift shared by every feature is invisible, one feature alone is seen
        // through its γ², less the mean's share.
        for i in 0..<n { #expect(abs((0..<n).reduce(0.0) { $0 + m[i, $1] }) <= 1e-12) }
        for i in 0..<n {
            let expected = Self.gamma[i] * Self.gamma[i] * (1 - 2 / Double(n)) + Self.gamma.reduce(0) { $0 + $1 * $1 } / Double(n * n)
            #expect(abs(m[i, i] - expected) <= 1e-12)
        }
    }

    /// The other forms: a `Gemm` with `transB` (`B` `[out, in]`), onnxruntime's fused
    /// `SkipLayerNormalization` (its fourth output, the sum, read when `sumRead`), and a second
    /// reader of the biased value.
    enum Form { case gemm, skipNorm(sumRead: Bool), secondReader }

    static func model(_ form: Form) throws -> ONNXModel {
        let w = Tensor<Double>.randomNormal(shape: [inputs, outputs], seed: 61)
        var nodes: [ONNXNode], extraOutputs: [String] = []
        switch form {
        case .gemm:
            nodes = [ONNXNode(opType: "Gemm", name: "fc", inputs: ["x", "Wt", "b"], outputs: ["hb"], attributes: [("transB", .int(1))])]
        case .skipNorm, .secondReader:
            nodes = [ONNXNode(opType: "MatMul", name: "fc", inputs: ["x", "W"], outputs: ["h"]),
                     ONNXNode(opType: "Add", name: "bias", inputs: ["h", "b"], outputs: ["hb"])]
        }
        switch form {
        case let .skipNorm(sumRead):
            nodes.append(ONNXNode(opType: "SkipLayerNormalization", name: "ln", inputs: ["r", "hb", "gamma", "beta"],
                                  outputs: sumRead ? ["y", "", "", "sum"] : ["y"], domain: "com.microsoft"))
            if sumRead { extraOutputs = ["sum"] }
        case .gemm, .secondReader:
            nodes += [ONNXNode(opType: "Add", name: "residual", inputs: ["r", "hb"], outputs: ["sum"]),
                      ONNXNode(opType: "LayerNormalization", name: "ln", inputs: ["sum", "gamma", "beta"], outputs: ["y"])]
            if case .secondReader = form {
                nodes.append(ONNXNode(opType: "Relu", name: "other", inputs: ["hb"], outputs: ["z"]))
                extraOutputs = ["z"]
            }
        }
        let graph = ONNXGraph(name: "g", nodes: nodes,
                              initializers: [try ONNXTensor(name: "W", w, dataType: .float), try ONNXTensor(name: "Wt", try w.transposed(permutation: [1, 0]), dataType: .float),
                                             try ONNXTensor(name: "b", Tensor<Double>.randomNormal(shape: [outputs], seed: 62), dataType: .float),
                                             try ONNXTensor(name: "gamma", try Tensor(shape: [outputs], scalars: gamma), dataType: .float),
                                             try ONNXTensor(name: "beta", Tensor(repeating: 0.3, shape: [outputs]), dataType: .float)],
                              inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(4), .value(inputs)]),
                                       ONNXValueInfo(name: "r", elementType: .float, shape: [.value(4), .value(outputs)])],
                              outputs: (["y"] + extraOutputs).map { ONNXValueInfo(name: $0, elementType: .float, shape: nil) })
        return ONNXModel(graph: graph, opset: 17)
    }

    @Test("a Gemm with transB and a fused SkipLayerNormalization are weighted; a read sum or a second reader is not")
    func otherForms() throws {
        let options = {
            var options = CompressionOptions()
            (options.minimumParameters, options.rank) = (0, Self.rank)
            options.statistics = CalibrationStatistics(layers: ["fc": try Self.statistics()])
            return options
        }
        for (form, weighted) in [(Form.gemm, true), (.skipNorm(sumRead: false), true), (.skipNorm(sumRead: true), false), (.secondReader, false)] {
            let layers = try ModelCompressor(options: try options()).layers(in: try Self.model(form))
            let norm = try #require(layers.first { $0.name == "fc" }?.site).followingNorm
            #expect((norm != nil) == weighted, "\(form)")
            if let norm { #expect(norm.node == "ln" && norm.scale == Self.gamma.map { Double(Float($0)) }) }
        }
    }

    @Test("not weighted when another node reads the sum or the norm is over other axes")
    func onlyASoleReaderOverTheFeatures() throws {
        for model in [try Self.model(.float, exposeSum: true), try Self.model(.float, axis: 0)] {
            let (reasons, _) = try Self.compressed(model)
            #expect(!reasons.contains { $0.contains("LayerNorm") }, "\(reasons)")
        }
    }
}
