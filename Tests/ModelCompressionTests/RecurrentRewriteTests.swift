import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorModule
import Testing

/// A recurrent node's input projection W·x compressed as a `MatMul` before the node: the node then
/// reads the rank-k projection with `W = V`, its mean-shift correction in the input half of `B`,
/// and keeps R, the states and its attributes. (onnxruntime runs the rewritten nodes at full rank
/// in the conformance test; this checks the layout of what is written at a low rank.)
@Suite("Recurrent input projections")
struct RecurrentRewriteTests {
    static let (directions, hidden, features, steps) = (2, 3, 7, 5)
    static var rows: Int { 4 * hidden }   // the LSTM's gates of one direction

    /// A bidirectional LSTM on `x` [steps, 1, features], its weights in `dataType`.
    static func model(_ dataType: ONNXDataType) throws -> ONNXModel {
        let w = Tensor<Double>.randomNormal(shape: [directions, rows, features], seed: 21)
        let r = Tensor<Double>.randomNormal(shape: [directions, rows, hidden], seed: 22)
        let b = Tensor<Double>.randomNormal(shape: [directions, 2 * rows], seed: 23)
        let node = ONNXNode(opType: "LSTM", name: "lstm", inputs: ["x", "W", "R", "B"], outputs: ["y", "y_h"],
                            attributes: [("hidden_size", .int(hidden)), ("direction", .string("bidirectional"))])
        let graph = ONNXGraph(name: "g", nodes: [node],
                              initializers: [try ONNXTensor(name: "W", w, dataType: dataType), try ONNXTensor(name: "R", r, dataType: dataType),
                                             try ONNXTensor(name: "B", b, dataType: dataType)],
                              inputs: [ONNXValueInfo(name: "x", elementType: dataType, shape: [.value(steps), .value(1), .value(features)])],
                              outputs: [ONNXValueInfo(name: "y", elementType: dataType, shape: nil), ONNXValueInfo(name: "y_h", elementType: dataType, shape: nil)])
        return ONNXModel(graph: graph, opset: 13)
    }

    /// Statistics of `x` whose features have means near 0.5.
    static func statistics() throws -> CalibrationStatistics {
        var s = InputStatistics(dimension: features)
        let x = Tensor<Double>.randomNormal(shape: [64, features], seed: 24)
        try s.accumulate(rows: x + Tensor(repeating: 0.5, shape: x.shape))
        return CalibrationStatistics(layers: ["lstm": s])
    }

    @Test("rank 2 with statistics: MatMul by U, the node with W = V, B's input half corrected by (W − VU)·μ", arguments: [ONNXDataType.float, .double])
    func lowRankProjection(dataType: ONNXDataType) throws {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.rank = 2
        options.statistics = try Self.statistics()
        let mean = try #require(options.statistics?.layers["lstm"]?.means.first)
        let model = try Self.model(dataType)
        let layer = try #require(try ModelCompressor(options: options).layers(in: model).first)
        #expect(layer.compressible && layer.macs == Self.steps * Self.directions * Self.rows * (Self.features + Self.hidden))
        let result = try ModelCompressor(options: options).compress(onnx: model)
        let report = try #require(result.layers.first)
        #expect(report.status.isReplaced && report.ranks == [2])
        // The recurrence's MACs are counted on both sides of the report.
        let recurrence = Self.steps * Self.directions * Self.rows * Self.hidden
        #expect(report.macsBefore == layer.macs && report.macsAfter == recurrence + Self.steps * 2 * (Self.features + Self.directions * Self.rows))

        let graph = result.model.graph
        #expect(graph.nodes.map(\.opType) == ["MatMul", "LSTM"])
        let (matmul, lstm) = (graph.nodes[0], graph.nodes[1])
        #expect(matmul.inputs[0] == "x" && lstm.inputs[0] == matmul.outputs[0])
        #expect(lstm.inputs[2] == "R" && lstm.outputs == ["y", "y_h"])
        #expect(lstm.int("hidden_size") == Self.hidden && lstm.string("direction") == "bidirectional")
        func initializer(_ name: String) throws -> Tensor<Double> {
            let tensor = try #require(graph.initializers.first { $0.name == name })
            #expect(tensor.dataType == dataType, "\(name) keeps the weights' type")
            return try tensor.tensor(as: Double.self)
        }
        let u = try initializer(matmul.inputs[1]), v = try initializer(lstm.inputs[1]), b = try initializer(lstm.inputs[3])
        #expect(u.shape == [Self.features, 2] && v.shape == [Self.directions, Self.rows, 2] && b.shape == [Self.directions, 2 * Self.rows])
        let w = try Self.model(.double).graph.initializers[0].tensor(as: Double.self)
        let b0 = try Self.model(.double).graph.initializers[2].tensor(as: Double.self)
        let tolerance = dataType == .float ? 1e-4 : 1e-10
        for d in 0..<Self.directions {
            for j in 0..<Self.rows {
                // (W − VU)·μ with the statistics' mean μ, added to Wb; Rb unchanged.
                var shift = 0.0
                for i in 0..<Self.features {
                    let approximation = (0..<2).reduce(0.0) { $0 + v[d, j, $1] * u[i, $1] }
                    shift += (w[d, j, i] - approximation) * mean[i]
                }
                #expect(abs(b[d, j] - (b0[d, j] + shift)) <= tolerance * (1 + abs(shift)), "Wb[\(d), \(j)]")
                #expect(abs(b[d, Self.rows + j] - b0[d, Self.rows + j]) <= tolerance, "Rb[\(d), \(j)]")
            }
        }
        #expect(!graph.initializers.contains { $0.name == "W" || $0.name == "B" }, "the replaced W and B are removed")
    }

    @Test("shape inference gives a recurrent node's outputs, so that the layers after it are costed at their rows")
    func outputsAreInferred() throws {
        // LSTM (bidirectional) → Transpose [seq, batch, directions, H] → Reshape [seq·batch, directions·H] → Gemm.
        var nodes = try Self.model(.float).graph.nodes
        nodes[0].outputs = ["y", "y_h", "y_c"]
        nodes += [ONNXNode(opType: "Transpose", name: "t", inputs: ["y"], outputs: ["yt"], attributes: [("perm", .ints([0, 2, 1, 3]))]),
                  ONNXNode(opType: "Reshape", name: "r", inputs: ["yt", "flat"], outputs: ["z"]),
                  ONNXNode(opType: "Gemm", name: "head", inputs: ["z", "head.W"], outputs: ["logits"], attributes: [("transB", .int(1))])]
        let model = try Self.model(.float)
        let graph = ONNXGraph(name: "g", nodes: nodes,
                              initializers: model.graph.initializers + [ONNXTensor(name: "flat", int64: [-1, Self.directions * Self.hidden]),
                                                                        try ONNXTensor(name: "head.W", Tensor<Float>.randomNormal(shape: [40, 6], seed: 25))],
                              inputs: model.graph.inputs, outputs: [ONNXValueInfo(name: "logits", elementType: .float, shape: nil)])
        let shapes = try ONNXShapeInference(graph: graph)
        #expect(shapes.shapes["y"] == [Self.steps, 2, 1, Self.hidden] && shapes.shapes["y_h"] == [2, 1, Self.hidden] && shapes.shapes["y_c"] == [2, 1, Self.hidden])
        var options = CompressionOptions()
        options.minimumParameters = 0
        let layers = try ModelCompressor(options: options).layers(in: ONNXModel(graph: graph, opset: 13))
        #expect(layers.first { $0.name == "head" }?.macs == Self.steps * 6 * 40)

        // Without the Reshape's shape (computed from an operator the inference does not know), a MAC
        // budget says that it costs the Gemm at one row.
        var unknown = graph
        unknown.nodes[2] = ONNXNode(opType: "Custom", name: "r", inputs: ["yt"], outputs: ["z"], domain: "com.example")
        options.budget = .macs(0.5)
        options.dataFree = true
        let result = try ModelCompressor(options: options).compress(onnx: ONNXModel(graph: unknown, opset: 13))
        #expect(result.warnings.contains(.unknownShapes(layers: ["head"])), "\(result.warnings)")
    }

    @Test("refused with the reason: weights that do not fit the gates, and the tensor-train method")
    func refusals() throws {
        var options = CompressionOptions()
        options.minimumParameters = 0
        var model = try Self.model(.float)
        options.linear = .tt
        #expect(try ModelCompressor(options: options).layers(in: model).first?.refusal == .recurrentTensorTrain(op: "LSTM"))
        options.linear = .svd
        var node = model.graph.nodes[0]
        node.inputs = ["x", "W", "R", "B"]
        model.graph.nodes[0] = ONNXNode(opType: "LSTM", name: "lstm", inputs: node.inputs, outputs: node.outputs,
                                        attributes: [("hidden_size", .int(4)), ("direction", .string("bidirectional"))])
        let refusal = try ModelCompressor(options: options).layers(in: model).first?.refusal
        #expect(refusal == .recurrent(op: "LSTM", inputWeights: [2, 12, 7], recurrentWeights: [2, 12, 3]))
        // A hidden size whose gates overflow is a refusal, not a trap.
        model.graph.nodes[0] = ONNXNode(opType: "LSTM", name: "lstm", inputs: node.inputs, outputs: node.outputs,
                                        attributes: [("hidden_size", .int(1 << 62)), ("direction", .string("bidirectional"))])
        #expect(try ModelCompressor(options: options).layers(in: model).first?.refusal == .recurrent(op: "LSTM", inputWeights: [2, 12, 7], recurrentWeights: [2, 12, 3]))
    }
}
