import Foundation
import ModelCompression
import NNLayers
import Testing
@testable import ONNX
import TensorModule
import TensorIO

@Suite("ONNX shape inference")
struct ShapeInferenceTests {
    @Test func convolutionsPoolingAndShapeArithmetic() throws {
        let shape = ONNXTensor(name: "target", int64: [0, -1])
        let nodes = [
            ONNXNode(opType: "Conv", name: "same", inputs: ["x", "w"], outputs: ["a"],
                     attributes: [("auto_pad", .string("SAME_UPPER")), ("strides", .ints([2, 2]))]),
            ONNXNode(opType: "Conv", name: "explicit", inputs: ["a", "w2"], outputs: ["b"],
                     attributes: [("pads", .ints([0, 1, 2, 1])), ("dilations", .ints([2, 1])), ("strides", .ints([1, 2]))]),
            ONNXNode(opType: "MaxPool", name: "pool", inputs: ["b"], outputs: ["c"],
                     attributes: [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2])), ("ceil_mode", .int(1))]),
            ONNXNode(opType: "Shape", name: "shape", inputs: ["c"], outputs: ["s"]),
            ONNXNode(opType: "Gather", name: "batch", inputs: ["s", "zero"], outputs: ["n"], attributes: [("axis", .int(0))]),
            ONNXNode(opType: "Reshape", name: "flat", inputs: ["c", "target"], outputs: ["f"]),
            ONNXNode(opType: "MatMul", name: "mm", inputs: ["f", "m"], outputs: ["y"]),
        ]
        let initializers = [
            try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [6, 3, 3, 3])),
            try ONNXTensor(name: "w2", Tensor<Float>.zeros(shape: [5, 6, 3, 3])),
            try ONNXTensor(name: "m", Tensor<Float>.zeros(shape: [5 * 3 * 2, 7])),
            ONNXTensor(name: "zero", int64: [0], shape: []), shape,
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                              inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.parameter("n"), .value(3), .unknown, .unknown])],
                              outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        let inferred = try ONNXShapeInference(graph: graph, inputShapes: ["x": [2, 3, 11, 13]])
        // SAME_UPPER, stride 2: ⌈11/2⌉ × ⌈13/2⌉.
        #expect(inferred.shapes["a"] == [2, 6, 6, 7])
        // (6 + 0 + 2 − 2·2 − 1)/1 + 1 = 4 rows; (7 + 1 + 1 − 3)/2 + 1 = 4 columns.
        #expect(inferred.shapes["b"] == [2, 5, 4, 4])
        #expect(inferred.shapes["c"] == [2, 5, 2, 2])
        #expect(inferred.values["n"] == [2])
        #expect(inferred.shapes["f"] == [2, 20])
        #expect(inferred.failures.count == 1)      // MatMul of (2, 20) by (30, 7): the mismatch is reported, not thrown
        #expect(throws: ONNXError.dynamicInput(name: "x", shape: "[n, 3, ?, ?]")) { try ONNXShapeInference(graph: graph) }
        #expect(throws: ONNXError.self) { try ONNXShapeInference(graph: graph, inputShapes: ["x": [2, 4, 11, 13]]) }
        #expect(throws: ONNXError.self) { try ONNXShapeInference(graph: graph, inputShapes: ["z": [1]]) }
    }
}

@Suite("ONNX shape inference through If")
struct IfShapeInferenceTests {
    /// An If on `condition` whose branches are `thenNode` and `elseNode` (each reading x, writing its branch output).
    static func graph(condition: [ONNXNode], conditionInput: String, thenNode: ONNXNode, elseNode: ONNXNode) -> ONNXGraph {
        func body(_ node: ONNXNode, _ name: String) -> Onnx_AttributeProto {
            var attribute = Onnx_AttributeProto()
            let g = ONNXGraph(name: name, nodes: [node], initializers: [], inputs: [],
                              outputs: [ONNXValueInfo(name: node.outputs[0], elementType: .float, shape: nil)])
            (attribute.name, attribute.type, attribute.g) = (name, .graph, g.proto)
            return attribute
        }
        var ifNode = ONNXNode(opType: "If", name: "if", inputs: [conditionInput], outputs: ["y"]).proto
        ifNode.attribute = [body(thenNode, "then_branch"), body(elseNode, "else_branch")]
        return ONNXGraph(name: "g", nodes: condition + [ONNXNode(proto: ifNode)], initializers: [ONNXTensor(name: "axes", int64: [0]), ONNXTensor(name: "two", int64: [2], shape: [])],
                         inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(2), .value(3)]), ONNXValueInfo(name: "flag", elementType: .bool, shape: [])],
                         outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
    }

    @Test("a known condition picks its branch; an unknown one needs both branches to agree")
    func branches() throws {
        let unsqueeze = ONNXNode(opType: "Unsqueeze", name: "u", inputs: ["x", "axes"], outputs: ["a"])
        let identity = ONNXNode(opType: "Identity", name: "i", inputs: ["x"], outputs: ["b"])
        // x.dim() == 2, computed: Shape → Size → Equal → Not → Not → Cast to BOOL.
        let condition = [ONNXNode(opType: "Shape", name: "s", inputs: ["x"], outputs: ["shape"]),
                         ONNXNode(opType: "Size", name: "n", inputs: ["shape"], outputs: ["rank"]),
                         ONNXNode(opType: "Equal", name: "e", inputs: ["rank", "two"], outputs: ["is2"]),
                         ONNXNode(opType: "Not", name: "not", inputs: ["is2"], outputs: ["not2"]),
                         ONNXNode(opType: "Not", name: "notnot", inputs: ["not2"], outputs: ["again"]),
                         ONNXNode(opType: "Cast", name: "c", inputs: ["again"], outputs: ["cond"], attributes: [("to", .int(9))])]
        let known = try ONNXShapeInference(graph: Self.graph(condition: condition, conditionInput: "cond", thenNode: unsqueeze, elseNode: identity))
        #expect(known.values["cond"] == [1] && known.shapes["y"] == [1, 2, 3])
        let disagree = try ONNXShapeInference(graph: Self.graph(condition: [], conditionInput: "flag", thenNode: unsqueeze, elseNode: identity),
                                              inputShapes: ["flag": []])
        #expect(disagree.shapes["y"] == nil)
        let relu = ONNXNode(opType: "Relu", name: "r", inputs: ["x"], outputs: ["a"])
        let agree = try ONNXShapeInference(graph: Self.graph(condition: [], conditionInput: "flag", thenNode: relu, elseNode: identity),
                                           inputShapes: ["flag": []])
        #expect(agree.shapes["y"] == [2, 3])
    }
}

@Suite("ONNX graph compression")
struct GraphCompressionTests {
    func options(_ configure: (inout CompressionOptions) -> Void = { _ in }) -> CompressionOptions {
        var options = CompressionOptions()
        options.inputShapes = ["x": [1, 4, 8, 8]]
        options.minimumParameters = 0
        options.allowGrowth = true
        options.rankSelection = .energy(1)
        configure(&options)
        return options
    }

    @Test func analysisReadsSettingsAndReasons() throws {
        let layers = try ModelCompressor(options: options()).layers(in: try smallModel(), estimateRanks: true)
        #expect(layers.map(\.name) == ["conv", "fc"])
        let conv = layers[0]
        #expect(conv.kernel == [3, 3] && conv.stride == [2, 2] && conv.padding == [1, 1, 1, 1] && conv.groups == 1)
        #expect(conv.macs == 8 * 4 * 9 * 4 * 4)
        #expect(conv.vbmfRanks?.count == 2 && conv.compressible)
        #expect(layers[1].macs == 128 * 10 && layers[1].shape == [10, 128])
        let excluded = try ModelCompressor(options: options { $0.exclude = "^fc$" }).layers(in: try smallModel())
        #expect(excluded[1].compressible == false && excluded[1].reason?.contains("filters") == true)
    }

    @Test func fullRankCompressionRewritesNodesAndMetadata() throws {
        let model = try smallModel()
        // Full ranks fold the Tucker-2 output factor into the core: two convolutions, exact.
        let full = try ModelCompressor(options: options()).compress(onnx: model)
        #expect(full.model.graph.nodes.map(\.name) == ["conv/tucker2/0", "conv/tucker2/1", "relu", "flatten", "fc/svd/0", "fc/svd/1"])
        #expect(full.layers[0].relativeError < 1e-5 && full.layers[1].relativeError < 1e-5)
        let result = try ModelCompressor(options: options { $0.rank = 3 }).compress(onnx: model)
        let graph = result.model.graph
        #expect(graph.nodes.map(\.name) == ["conv/tucker2/0", "conv/tucker2/1", "conv/tucker2/2", "relu", "flatten", "fc/svd/0", "fc/svd/1"])
        #expect(graph.nodes.map(\.opType) == ["Conv", "Conv", "Conv", "Relu", "Flatten", "MatMul", "Gemm"])
        // The spatial layer carries stride and padding (ONNX order); the pointwise ones none.
        #expect(graph.nodes[1].ints("strides") == [2, 2] && graph.nodes[1].ints("pads") == [1, 1, 1, 1])
        #expect(graph.nodes[0].ints("pads") == [0, 0, 0, 0] && graph.nodes[2].ints("strides") == [1, 1])
        // The bias is reused by name; the replaced weights are gone.
        #expect(graph.nodes[2].inputs.last == "conv.bias")
        #expect(graph.initializer(named: "conv.weight") == nil && graph.initializer(named: "fc.weight") == nil)
        #expect(graph.nodes.last?.outputs == ["y"] && graph.nodes[2].outputs == ["c"])
        let metadata = try #require(result.model.metadata[ModelCompressor.onnxMetadataKey])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(metadata.utf8)) as? [String: Any])
        let nodes = try #require(document["nodes"] as? [[String: Any]])
        #expect(nodes.map { $0["node"] as? String } == ["conv", "fc"])
        #expect(nodes[0]["method"] as? String == "tucker2" && nodes[0]["ranks"] as? [Int] == [3, 3])
        #expect(result.model.metadata["character"] == "a b c")
        #expect(result.totals.replacedLayers == 2)
        // The rewritten model serializes and reads back.
        #expect(try ONNXModel(serializedData: result.model.serializedData()).graph == graph)
    }

    @Test func sharedAndDepthwiseWeightsAreLeftAlone() throws {
        let w = try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [4, 4, 3, 3], seed: 5))
        let dw = try ONNXTensor(name: "dw", Tensor<Float>.randomNormal(shape: [4, 1, 3, 3], seed: 6))
        let pads: [(String, ONNXAttribute)] = [("pads", .ints([1, 1, 1, 1]))]
        let graph = ONNXGraph(name: "g", nodes: [
            ONNXNode(opType: "Conv", name: "a", inputs: ["x", "w"], outputs: ["a"], attributes: pads),
            ONNXNode(opType: "Conv", name: "b", inputs: ["a", "w"], outputs: ["b"], attributes: pads),
            ONNXNode(opType: "Conv", name: "d", inputs: ["b", "dw"], outputs: ["y"], attributes: pads + [("group", .int(4))]),
        ], initializers: [w, dw], inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(4), .value(8), .value(8)])],
           outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        let model = ONNXModel(graph: graph, opset: 13)
        let layers = try ModelCompressor(options: options()).layers(in: model)
        #expect(layers.allSatisfy { !$0.compressible })
        #expect(layers[0].reason?.contains("shared with 1 other node") == true)
        #expect(layers[2].reason?.contains("depthwise") == true)
        let result = try ModelCompressor(options: options()).compress(onnx: model)
        #expect(result.model.graph == graph && result.totals.replacedLayers == 0)
    }

    @Test func float16WeightsStayFloat16() throws {
        var model = try smallModel()
        var graph = model.graph
        graph.initializers = try graph.initializers.map { try ONNXTensor(name: $0.name, $0.tensor(as: Float.self), dataType: .float16) }
        model.graph = graph
        let result = try ModelCompressor(options: options()).compress(onnx: model)
        let new = result.model.graph.initializers.filter { $0.name.contains("/") }
        #expect(!new.isEmpty && new.allSatisfy { $0.dataType == .float16 })
    }
}

@Suite("Embedding names")
struct EmbeddingNameTests {
    @Test func theScanMatchesThePattern() throws {
        let pattern = try Regex(CompressionOptions.embeddingPattern)
        let names = ["model.embed_tokens.weight", "embeddings.word_embeddings.weight", "transformer.wte.weight", "wpe", "tok_embeddings.weight",
                     "bert.embeddings.position_embeddings.weight", "encoder.layer.0.attention.self.query.weight", "embedder.weight",
                     "x_embed", "embeds_1", "unembed.weight", "lm_head.weight", "model.embed", "token_type_embeddings", "a.embedx", "",
                     "word_embeddings_x.weight", "blocks.0.wte_proj.weight", "embed.", ".embed", "EMBED"]
        for name in names {
            #expect(CompressionOptions.isEmbeddingName(name) == (name.firstMatch(of: pattern) != nil), "\(name)")
        }
    }
}

/// The ModelCompression catalog's landing-page snippet, as written (its files generated first).
@Suite("ModelCompression landing page")
struct ModelCompressionLandingPageTests {
    @Test func snippet() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(directory.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let weight = Tensor<Float>.randomNormal(shape: [16, 3, 3, 3], seed: 1)
        let graph = ONNXGraph(name: "det", nodes: [
            ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "w"], outputs: ["y"],
                     attributes: [("pads", .ints([1, 1, 1, 1])), ("strides", .ints([8, 8]))]),
        ], initializers: [try ONNXTensor(name: "w", weight)],
           inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(3), .value(640), .value(640)])],
           outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        try ONNXModel(graph: graph, opset: 13).write(to: URL(fileURLWithPath: "det.onnx"))
        let conv = try Conv2D(weight: weight, stride: Size2D(8), padding: .symmetric(1))
        var stats = InputStatistics(dimension: 27)
        try stats.accumulate(patchesOf: Tensor<Float>.randomNormal(shape: [1, 3, 64, 64], seed: 2), for: conv)
        try CalibrationStatistics(layers: ["conv": stats]).write(to: URL(fileURLWithPath: "det.stats.safetensors"))

        let model = try ONNXModel(contentsOf: URL(fileURLWithPath: "det.onnx"))
        var options = CompressionOptions()
        options.inputShapes = ["x": [1, 3, 640, 640]]
        options.statistics = try CalibrationStatistics(contentsOf: URL(fileURLWithPath: "det.stats.safetensors"))
        options.budget = .macs(0.67)
        let result = try ModelCompressor(options: options).compress(onnx: model)
        for layer in result.layers where layer.status.isReplaced {
            print(layer.name, layer.method!, layer.ranks, layer.outputError ?? 0)
        }
        try result.model.write(to: URL(fileURLWithPath: "det.compressed.onnx"))

        #expect(options.statistics?.layers["conv"] == stats)
        #expect(result.layers.count == 1 && FileManager.default.fileExists(atPath: "det.compressed.onnx"))
    }
}

/// The snippets print their results for the reader; under test they stay quiet.
private func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {}

@Suite("Budgets and statistics files")
struct BudgetTests {
    /// Two convolutions and a linear layer with input statistics from random activations.
    func model() throws -> (ONNXModel, CalibrationStatistics) {
        let model = try smallModel(convWeight: .randomNormal(shape: [8, 4, 3, 3], seed: 11))
        let conv = try Conv2D(weight: Tensor<Float>.randomNormal(shape: [8, 4, 3, 3], seed: 11), stride: Size2D(2), padding: .symmetric(1))
        let x = Tensor<Float>.randomNormal(shape: [6, 4, 8, 8], seed: 12)
        var convStats = InputStatistics(dimension: 36)
        try convStats.accumulate(patchesOf: x, for: conv)
        var fcStats = InputStatistics(dimension: 128)
        try fcStats.accumulate(rows: try conv(x).map { Swift.max($0, 0) }.reshaped(to: [6, 128]))
        return (model, CalibrationStatistics(layers: ["conv": convStats, "fc": fcStats]))
    }

    @Test(arguments: [BudgetAllocation.greedy, .uniform], [0.9, 0.6, 0.3])
    func budgetsAreMet(allocation: BudgetAllocation, fraction: Double) throws {
        let (model, stats) = try model()
        for statistics in [stats, nil] as [CalibrationStatistics?] {
            var options = CompressionOptions()
            options.inputShapes = ["x": [1, 4, 8, 8]]
            options.minimumParameters = 0
            options.minimumBudgetShare = 0
            options.rankMultiple = 1
            options.budget = .macs(fraction)
            options.allocation = allocation
            options.statistics = statistics
            options.dataFree = statistics == nil
            let result = try ModelCompressor(options: options).compress(onnx: model)
            let before = result.layers.reduce(0) { $0 + $1.flopsBefore }, after = result.layers.reduce(0) { $0 + $1.flopsAfter }
            #expect(Double(after) <= fraction * Double(before) * 1.0001 || allocation == .uniform,
                    "\(allocation) at \(fraction): \(after) of \(before) FLOPs")
            if allocation == .uniform {
                for layer in result.layers where layer.status.isReplaced { #expect(Double(layer.flopsAfter) <= fraction * Double(layer.flopsBefore) * 1.0001) }
            }
            #expect(result.layers.allSatisfy { $0.status.isReplaced || $0.status == .keptByBudget })
            if statistics != nil { #expect(result.layers.filter(\.status.isReplaced).allSatisfy { $0.outputError != nil }) }
        }
    }

    @Test func sensitivityWeightsSteerTheGreedyAllocation() throws {
        let (model, stats) = try model()
        var options = CompressionOptions()
        options.inputShapes = ["x": [1, 4, 8, 8]]
        (options.minimumParameters, options.minimumBudgetShare, options.rankMultiple) = (0, 0, 1)
        options.budget = .macs(0.7)
        options.statistics = stats
        options.layerWeights = ["conv": 1e6]                 // the convolution's errors are very costly
        let heavy = try ModelCompressor(options: options).compress(onnx: model)
        options.layerWeights = ["fc": 1e6]
        let light = try ModelCompressor(options: options).compress(onnx: model)
        let conv = { (r: CompressedONNXModel) in r.layers.first { $0.name == "conv" }! }
        #expect(conv(heavy).flopsAfter >= conv(light).flopsAfter)
    }

    @Test func statisticsFilesRoundTripAndRefuseBrokenOnes() throws {
        let (_, stats) = try model()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("stats-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try stats.write(to: url)
        #expect(try CalibrationStatistics(contentsOf: url) == stats)
        var writer = SafetensorsWriter()
        try writer.add("conv.count", Tensor<Double>(shape: [1], scalars: [4]))
        try writer.add("conv.mean", Tensor<Double>.zeros(shape: [1, 3]))
        try writer.write(to: url)
        #expect(throws: NNLayersError.self) { try CalibrationStatistics(contentsOf: url) }
        try writer.add("conv.gram", Tensor<Double>.zeros(shape: [1, 3, 2]))
        try writer.write(to: url)
        #expect(throws: NNLayersError.self) { try CalibrationStatistics(contentsOf: url) }
    }
}
