import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorModule
import Testing

/// 3-D convolutions and strided `ConvTranspose`s, decomposed through a 2-D stand-in: costed at the
/// positions where their stacks run, written back as nodes of their own kind. (onnxruntime runs
/// the rewritten nodes at full rank in the conformance test; this checks costs and layout.)
@Suite("3-D and transposed convolutions through a stand-in")
struct StandInTests {
    /// A 3-D convolution 6 → 8, kernel 3×3×3, pads 1, strides [1, 2, 2] on x [1, 6, 5, 6, 7]
    /// (output 5×3×4 = 60 voxels of 210), and a ConvTranspose 6 → 8, kernel 3×3, strides 2, pads 1,
    /// output padding 1 on t [1, 6, 5, 5] (output 10×10).
    static func model(_ dataType: ONNXDataType) throws -> ONNXModel {
        let nodes = [
            ONNXNode(opType: "Conv", name: "conv3d", inputs: ["x", "w3"], outputs: ["y"],
                     attributes: [("pads", .ints([1, 1, 1, 1, 1, 1])), ("strides", .ints([1, 2, 2]))]),
            ONNXNode(opType: "ConvTranspose", name: "up", inputs: ["t", "wt", "bt"], outputs: ["u"],
                     attributes: [("strides", .ints([2, 2])), ("pads", .ints([1, 1, 1, 1])), ("output_padding", .ints([1, 1]))]),
        ]
        let initializers = [
            try ONNXTensor(name: "w3", Tensor<Double>.randomNormal(shape: [8, 6, 3, 3, 3], seed: 31), dataType: dataType),
            try ONNXTensor(name: "wt", Tensor<Double>.randomNormal(shape: [6, 8, 3, 3], seed: 32), dataType: dataType),
            try ONNXTensor(name: "bt", Tensor<Double>.randomNormal(shape: [8], seed: 33), dataType: dataType),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                              inputs: [ONNXValueInfo(name: "x", elementType: dataType, shape: [1, 6, 5, 6, 7].map { .value($0) }),
                                       ONNXValueInfo(name: "t", elementType: dataType, shape: [1, 6, 5, 5].map { .value($0) })],
                              outputs: [ONNXValueInfo(name: "y", elementType: dataType, shape: nil), ONNXValueInfo(name: "u", elementType: dataType, shape: nil)])
        return ONNXModel(graph: graph, opset: 13)
    }

    /// Options that compress every layer by CP (3-D convolutions included), small ones too.
    static func cpOptions(_ configure: (inout CompressionOptions) -> Void) -> CompressionOptions {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.conv = .cp
        configure(&options)
        return options
    }

    @Test("Tucker-2 at ranks [2, 2]: exact MACs at the stacks' positions, the original node kept for the spatial layer",
          arguments: [ONNXDataType.float, .double])
    func costsAndLayout(dataType: ONNXDataType) throws {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.rank = 2
        let model = try Self.model(dataType)
        let listed = try ModelCompressor(options: options).layers(in: model)
        #expect(listed.map(\.compressible) == [true, true], "\(listed.map(\.reason))")
        #expect(listed[0].padding == [1, 1, 1, 1, 1, 1] && listed[0].stride == [1, 2, 2])
        // The ConvTranspose's equivalent convolution pads d·(k − 1) − p = 1, and 1 more at the ends (output padding).
        #expect(listed[1].padding == [1, 2, 1, 2] && listed[1].stride == [2, 2])
        let result = try ModelCompressor(options: options).compress(onnx: model)
        // 3-D: 8·6·27 MACs at 60 output voxels; after, 2·6 at the 210 input voxels, 2·2·27 and 8·2 at the 60 output ones.
        #expect(listed[0].macs == 8 * 6 * 27 * 60 && result.layers[0].macsBefore == listed[0].macs)
        #expect(result.layers[0].macsAfter == 2 * 6 * 210 + 2 * 2 * 27 * 60 + 8 * 2 * 60)
        // Transposed: 6·8·9 MACs at each of the 25 input pixels; after, 2·6 and 2·2·9 there, 8·2 at the 100 output pixels.
        #expect(listed[1].macs == 6 * 8 * 9 * 25 && result.layers[1].macsBefore == listed[1].macs)
        #expect(result.layers[1].macsAfter == 2 * 6 * 25 + 2 * 2 * 9 * 25 + 8 * 2 * 100)

        let graph = result.model.graph
        #expect(graph.nodes.map(\.opType) == ["Conv", "Conv", "Conv", "Conv", "ConvTranspose", "Conv"])
        func shape(_ name: String) -> [Int]? { graph.initializers.first { $0.name == name }?.shape }
        #expect(graph.nodes[0..<3].map { shape($0.inputs[1]) } == [[2, 6, 1, 1, 1], [2, 2, 3, 3, 3], [8, 2, 1, 1, 1]])
        #expect(graph.nodes[1].ints("strides") == [1, 2, 2] && graph.nodes[1].ints("pads") == [1, 1, 1, 1, 1, 1])
        #expect(graph.nodes[0].attributeNames.isEmpty && graph.nodes[2].attributeNames.isEmpty)
        // The ConvTranspose core: [R_in, R_out, kh, kw], its strides, pads and output padding kept; the bias on the last layer.
        #expect(graph.nodes[3..<6].map { shape($0.inputs[1]) } == [[2, 6, 1, 1], [2, 2, 3, 3], [8, 2, 1, 1]])
        #expect(graph.nodes[4].ints("strides") == [2, 2] && graph.nodes[4].ints("output_padding") == [1, 1] && graph.nodes[4].ints("pads") == [1, 1, 1, 1])
        #expect(graph.nodes[4].inputs.count == 2 && graph.nodes[5].inputs.count == 3 && graph.nodes[5].outputs == ["u"])
        #expect(graph.initializers.allSatisfy { $0.dataType == dataType }, "new weights keep the model's type")
    }

    @Test("CP of a 3-D convolution at rank 2: one depthwise Conv per axis with its stride and pads, exact MACs, the written factors' kernel error as reported",
          arguments: [ONNXDataType.float, .double])
    func separableCP(dataType: ONNXDataType) throws {
        let options = Self.cpOptions { $0.rank = 2; $0.include = "conv3d" }
        let model = try Self.model(dataType)
        let result = try ModelCompressor(options: options).compress(onnx: model)
        let report = try #require(result.layers.first { $0.name == "conv3d" })
        #expect(report.status.isReplaced && report.method == .cp && report.ranks == [2])
        // 2·6 MACs at the 210 input voxels; depth taps 2·3 at 5×6×7, height taps (stride 2) 2·3 at 5×3×7,
        // width taps (stride 2) 2·3 at the 60 output voxels; 8·2 at the output.
        #expect(report.macsAfter == 2 * 6 * 210 + 2 * 3 * 210 + 2 * 3 * 105 + 2 * 3 * 60 + 8 * 2 * 60)
        #expect(report.parametersAfter == 2 * 6 + 2 * 9 + 8 * 2)
        let graph = result.model.graph
        let convs = graph.nodes.filter { $0.opType == "Conv" }
        #expect(convs.count == 5 && convs.last?.outputs == ["y"])
        func weight(_ node: ONNXNode) throws -> Tensor<Double> {
            try #require(graph.initializers.first { $0.name == node.inputs[1] }).tensor(as: Double.self)
        }
        let tensors = try convs.map(weight)
        let weights = tensors.map(\.scalars)
        #expect(tensors.map(\.shape) == [[2, 6, 1, 1, 1], [2, 1, 3, 1, 1], [2, 1, 1, 3, 1], [2, 1, 1, 1, 3], [8, 2, 1, 1, 1]])
        #expect(convs[1...3].map { $0.ints("strides") } == [[1, 1, 1], [1, 2, 1], [1, 1, 2]])
        #expect(convs[1...3].map { $0.ints("pads") } == [[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1]])
        #expect(convs[1...3].map { $0.int("group") } == [2, 2, 2] && convs[0].attributeNames.isEmpty && convs[4].attributeNames.isEmpty)
        // The kernel the written nodes compute, Σ_r last[t, r]·d[r, i]·h[r, j]·w[r, l]·first[r, s], has the reported error.
        let original = try #require(model.graph.initializers.first { $0.name == "w3" }).tensor(as: Double.self).scalars
        var difference = 0.0, norm = 0.0
        for t in 0..<8 { for c in 0..<6 { for i in 0..<3 { for j in 0..<3 { for l in 0..<3 {
            var sum = 0.0
            for r in 0..<2 {
                sum += weights[4][t * 2 + r] * weights[1][r * 3 + i] * weights[2][r * 3 + j] * weights[3][r * 3 + l] * weights[0][r * 6 + c]
            }
            let w = original[(((t * 6 + c) * 3 + i) * 3 + j) * 3 + l]
            (difference, norm) = (difference + (w - sum) * (w - sum), norm + w * w)
        } } } } }
        #expect(abs((difference / norm).squareRoot() - report.relativeError) <= (dataType == .float ? 1e-5 : 1e-9))
    }

    @Test("CP of a 3-D convolution by a FLOP budget: the rank from its own shapes, and the budget as the reason")
    func separableCPByFLOPBudget() throws {
        let options = Self.cpOptions { $0.rankSelection = .flopBudget(0.5); $0.include = "conv3d" }
        let result = try ModelCompressor(options: options).compress(onnx: try Self.model(.double))
        let report = try #require(result.layers.first { $0.name == "conv3d" })
        #expect(report.status.isReplaced && report.method == .cp)
        // Per rank: 6 at the 210 input voxels, 3 taps at 210, 105 and 60 voxels, 8 at the 60 output ones.
        let perRank = 6 * 210 + 3 * 210 + 3 * 105 + 3 * 60 + 8 * 60
        let rank = try #require(report.ranks.first)
        #expect(rank == Int(0.5 * Double(8 * 6 * 27 * 60) / Double(perRank)) && report.macsAfter == rank * perRank)
        #expect(report.reasons.first?.hasPrefix("CP rank \(rank): ") == true && report.reasons.first?.contains("(budget 0.5)") == true, "\(report.reasons)")
        #expect(!report.reasons.contains { $0.hasSuffix(" given") }, "\(report.reasons)")
    }

    @Test("a 3-D convolution whose input has an empty axis is refused with the shapes, not costed")
    func emptyThreeDimensionalInput() throws {
        let options = Self.cpOptions { $0.rankSelection = .flopBudget(0.5) }
        // SAME padding keeps an empty axis empty ((0 + s − 1) / s = 0); explicit pads would make it negative.
        let conv = ONNXNode(opType: "Conv", name: "conv3d", inputs: ["x", "w3"], outputs: ["y"], attributes: [("auto_pad", .string("SAME_UPPER"))])
        let graph = ONNXGraph(name: "g", nodes: [conv],
                              initializers: [try ONNXTensor(name: "w3", Tensor<Double>.randomNormal(shape: [8, 6, 3, 3, 3], seed: 31), dataType: .float)],
                              inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [1, 6, 0, 6, 7].map { .value($0) })],
                              outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        let model = ONNXModel(graph: graph, opset: 13)
        let layer = try #require(try ModelCompressor(options: options).layers(in: model).first { $0.name == "conv3d" })
        guard case let .emptyShapes(input, output)? = layer.refusal else {
            Issue.record("expected an empty-shape refusal, got \(String(describing: layer.refusal))")
            return
        }
        #expect(input == [1, 6, 0, 6, 7] && output.count == 5 && output[2] == 0)
    }

    @Test("a ConvTranspose with strides past 2³¹ or output padding not below its stride is refused, not trapped")
    func overflowingTransposedSettings() throws {
        var options = CompressionOptions()
        options.minimumParameters = 0
        var model = try Self.model(.float)
        for (strides, outputPadding) in [([1 << 62, 1], [(1 << 62) - 1, 0]), ([(1 << 31) + 1, 1], [0, 0]), ([2, 2], [2, 0])] {
            model.graph.nodes[1] = ONNXNode(opType: "ConvTranspose", name: "up", inputs: ["t", "wt", "bt"], outputs: ["u"],
                                            attributes: [("strides", .ints(strides)), ("output_padding", .ints(outputPadding))])
            let layer = try #require(try ModelCompressor(options: options).layers(in: model).last)
            #expect(layer.refusal == .transposedSettings(strides: strides, outputPadding: outputPadding, autoPad: "NOTSET", outputShape: false))
        }
    }

    @Test("with statistics and a budget: patch statistics of S/g·∏k entries, allocated over the stand-ins' MACs")
    func dataAwareBudget() throws {
        var layers: [String: InputStatistics] = [:]
        for (name, dimension, seed) in [("conv3d", 6 * 27, UInt64(34)), ("up", 6 * 9, UInt64(35))] {
            var s = InputStatistics(dimension: dimension)
            try s.accumulate(rows: Tensor<Double>.randomNormal(shape: [2 * dimension, dimension], seed: seed))
            layers[name] = s
        }
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.statistics = CalibrationStatistics(layers: layers)
        options.budget = .macs(0.5)
        options.minimumBudgetShare = 0
        for method in [CompressionOptions.ConvMethod.tucker2, .cp] {
            options.conv = method
            let result = try ModelCompressor(options: options).compress(onnx: try Self.model(.float))
            #expect(result.totals.replacedLayers >= 1, "\(method)")
            #expect(Double(result.totals.macsAfter) <= 0.5 * Double(result.totals.compressibleMACs) + 1, "\(method)")
            #expect(result.layers.filter(\.status.isReplaced).allSatisfy { ($0.outputError ?? 1) < 1 }, "\(method)")
            if method == .cp {
                // CP is written for the 3-D convolution; the strided ConvTranspose is refused with the reason.
                #expect(result.layers.first { $0.name == "conv3d" }?.method == .cp)
                #expect(result.layers.first { $0.name == "up" }?.status.isReplaced == false)
            }
        }
    }
}
