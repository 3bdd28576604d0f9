import Decompositions
import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorModule
import Testing

/// Query and key projections that meet in the attention logits `q·kᵀ` per head
/// (`CompressionOptions.attentionWeightedOutputs`, off by default): each one's output error is
/// weighted by its partner's statistics.
@Suite("Data-aware SVD of query and key projections")
struct AttentionWeightingTests {
    static let (tokens, features, heads, rank) = (4, 8, 2, 2)

    /// `softmax(split(x Wq + bq) · split(x Wk + bk)ᵀ)`; `keyPerm` is the key's transpose.
    static func model(keyPerm: [Int] = [0, 2, 3, 1]) throws -> ONNXModel {
        let head = features / heads
        var nodes: [ONNXNode] = []
        var initializers = [ONNXTensor(name: "split", int64: [0, 0, heads, head])]
        for (name, perm, seed) in [("q", [0, 2, 1, 3], UInt64(71)), ("k", keyPerm, 73)] {
            nodes += [
                ONNXNode(opType: "MatMul", name: name, inputs: ["x", "W" + name], outputs: [name + ".raw"]),
                ONNXNode(opType: "Add", name: name + ".bias", inputs: [name + ".raw", "b" + name], outputs: [name + ".b"]),
                ONNXNode(opType: "Reshape", name: name + ".split", inputs: [name + ".b", "split"], outputs: [name + ".s"]),
                ONNXNode(opType: "Transpose", name: name + ".heads", inputs: [name + ".s"], outputs: [name + ".h"], attributes: [("perm", .ints(perm))]),
            ]
            initializers += [try ONNXTensor(name: "W" + name, Tensor<Double>.randomNormal(shape: [features, features], seed: seed), dataType: .float),
                             try ONNXTensor(name: "b" + name, Tensor<Double>.randomNormal(shape: [features], seed: seed + 1), dataType: .float)]
        }
        nodes += [ONNXNode(opType: "MatMul", name: "scores", inputs: ["q.h", "k.h"], outputs: ["scores"]),
                  ONNXNode(opType: "Softmax", name: "attention", inputs: ["scores"], outputs: ["y"], attributes: [("axis", .int(-1))])]
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                              inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(tokens), .value(features)])],
                              outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        return ONNXModel(graph: graph, opset: 17)
    }

    /// Each projection's calibration rows: different ones, so that a metric taken from the
    /// layer's own statistics instead of its partner's would show.
    static func rows(_ name: String) throws -> Matrix<Double> {
        let seed: UInt64 = name == "q" ? 75 : 77
        let z = Matrix<Double>.randomNormal(rows: 120, columns: features, seed: seed)
        let mixing = Matrix<Double>.randomNormal(rows: features, columns: features, seed: seed + 1)
        return Matrix(Tensor(z.matmul(mixing)) + Tensor(repeating: name == "q" ? 0.3 : -0.5, shape: [120, features]))
    }

    static func statistics(_ name: String) throws -> InputStatistics {
        var statistics = InputStatistics(dimension: features)
        try statistics.accumulate(rows: Tensor(try rows(name)))
        return statistics
    }

    static func options(weighting: Bool = true) throws -> CompressionOptions {
        var options = CompressionOptions()
        (options.minimumParameters, options.rank, options.attentionWeightedOutputs) = (0, rank, weighting)
        options.statistics = CalibrationStatistics(layers: ["q": try statistics("q"), "k": try statistics("k")])
        return options
    }

    static func weight(_ model: ONNXModel, _ name: String) throws -> Matrix<Double> {
        Matrix(try #require(model.graph.initializers.first { $0.name == name }).tensor(as: Double.self))
    }

    /// The metrics against moments computed from the projected rows themselves.
    @Test func metricsAreThePartnersPerHeadMoments() throws {
        let model = try Self.model()
        let layers = try ModelCompressor(options: try Self.options()).layers(in: model)
        let query = try #require(layers.first { $0.name == "q" }?.site?.attentionPartner)
        let key = try #require(layers.first { $0.name == "k" }?.site?.attentionPartner)
        #expect(query.role == .query && query.node == "k" && query.heads == Self.heads)
        #expect(key.role == .key && key.node == "q" && key.heads == Self.heads)
        let head = Self.features / Self.heads
        for (partner, name, centred) in [(query, "k", true), (key, "q", false)] {
            let x = try Self.rows(name), statistics = try Self.statistics(name)
            let n = Double(x.rows)
            // The partner's outputs on the calibration rows, centred for a query's metric.
            var y = x.matmul(try Self.weight(model, "W" + name))
            let bias = try #require(model.graph.initializers.first { $0.name == "b" + name }).tensor(as: Double.self).scalars
            y = Matrix(uncheckedRows: y.rows, columns: y.columns, scalars: ContiguousArray(y.scalars.indices.map { y.scalars[$0] + bias[$0 % Self.features] }))
            if centred {
                let means = (0..<Self.features).map { j in (0..<y.rows).reduce(0.0) { $0 + y[$1, j] } / n }
                y = Matrix(uncheckedRows: y.rows, columns: y.columns, scalars: ContiguousArray(y.scalars.indices.map { y.scalars[$0] - means[$0 % Self.features] }))
            }
            let moment = y.matmul(y, transposeSelf: true)
            let metric = try #require(ModelCompressor.attentionMetric(partner, statistics: statistics))
            for i in 0..<Self.features {
                for j in 0..<Self.features {
                    let expected = i / head == j / head ? moment[i, j] / n : 0
                    #expect(abs(metric[i, j] - expected) <= 1e-9 * (1 + abs(expected)), "\(name) [\(i), \(j)]")
                }
            }
        }
    }

    @Test func factorsMinimiseTheLogitError() throws {
        let model = try Self.model()
        let result = try ModelCompressor(options: try Self.options()).compress(onnx: model)
        let layers = try ModelCompressor(options: try Self.options()).layers(in: model)
        for name in ["q", "k"] {
            let reasons = try #require(result.layers.first { $0.name == name }).reasons
            #expect(reasons.contains { $0.contains("attention logits it forms with '\(name == "q" ? "k" : "q")'") }, "\(reasons)")
            // The factor MatMuls that read x and the one after it, in the order the rewrite wrote them.
            let graph = result.model.graph
            let first = try #require(graph.nodes.first { $0.opType == "MatMul" && $0.inputs[0] == "x" && $0.name.hasPrefix(name) })
            let second = try #require(graph.nodes.first { $0.opType == "MatMul" && $0.inputs[0] == first.outputs[0] })
            let approximation = try Self.weight(result.model, first.inputs[1]).matmul(try Self.weight(result.model, second.inputs[1]))
            let w = try Self.weight(model, "W" + name)
            let partner = try #require(layers.first { $0.name == name }?.site?.attentionPartner)
            let covariance = try Self.statistics(name).covariance()
            let metric = try #require(ModelCompressor.attentionMetric(partner, statistics: try Self.statistics(name == "q" ? "k" : "q")))
            let delta = (w - approximation).transposed()
            let error = zip(metric.matmul(delta).matmul(covariance).scalars, delta.scalars).reduce(0) { $0 + $1.0 * $1.1 }
            let whitened = try WhitenedSVD(w.transposed(), metric: covariance, outputMetric: metric)
            let tail = whitened.singularValues.dropFirst(Self.rank).reduce(0) { $0 + $1 * $1 }
            let energy = whitened.singularValues.reduce(0) { $0 + $1 * $1 }
            #expect(abs(error - tail) <= 1e-5 * energy, "\(name): \(error) against the closed form \(tail)")
        }
    }

    @Test("asked for and not applied: a warning names the layers, or says it changes nothing")
    func unappliedWeightingIsSaid() throws {
        var options = try Self.options()
        options.statistics = CalibrationStatistics(layers: ["q": try Self.statistics("q")])
        let partial = try ModelCompressor(options: options).compress(onnx: try Self.model())
        #expect(partial.warnings.contains(.attentionUnweighted(layers: ["q"])), "\(partial.warnings)")
        #expect(!(try #require(partial.layers.first { $0.name == "q" })).reasons.contains { $0.contains("attention") })
        let none = try ModelCompressor(options: try Self.options()).compress(onnx: try Self.model(keyPerm: [0, 2, 1, 3]))
        #expect(none.warnings.contains(.attentionUnweighted(layers: [])), "\(none.warnings)")
        let applied = try ModelCompressor(options: try Self.options()).compress(onnx: try Self.model())
        #expect(!applied.warnings.contains { if case .attentionUnweighted = $0 { true } else { false } })
    }

    @Test("off by default, and not where the key is not transposed onto the contracted axis")
    func onlyWhenAskedAndTheAxesFit() throws {
        let model = try Self.model()
        let plain = try ModelCompressor(options: try Self.options(weighting: false)).compress(onnx: model)
        #expect(!plain.layers.contains { $0.reasons.contains { $0.contains("attention") } })
        #expect(!CompressionOptions().attentionWeightedOutputs)
        // Both sides as [N, H, T, D]: the product contracts the key's tokens, not a logit.
        let layers = try ModelCompressor(options: try Self.options()).layers(in: try Self.model(keyPerm: [0, 2, 1, 3]))
        #expect(layers.allSatisfy { $0.site?.attentionPartner == nil })
    }
}
