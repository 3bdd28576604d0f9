import Foundation
import Testing
import TensorDecompositions
@testable import ONNX

/// Issue 22's "never silent" part against the binary: a budget without statistics, statistics
/// for another model, a run that changes nothing and compute the tool cannot reach are errors or
/// warnings that say so; totals show the whole model beside the replaced layers.
@Suite("No silent fallbacks: tensor-compress", .enabled(if: FileManager.default.isExecutableFile(atPath: Tool.binary.path)))
final class SilentFallbackTests: Sendable {
    let directory = Tool.temporaryDirectory("tc-fallbacks")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Conv → Relu → Flatten → Gemm, plus a depthwise Conv nobody can compress, and (with
    /// `subgraph`) a Conv inside an `If` and an LSTM.
    func model(_ name: String, subgraph: Bool = false) throws -> String {
        var nodes = [
            ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "conv.weight"], outputs: ["c"], attributes: [("pads", .ints([1, 1, 1, 1]))]),
            ONNXNode(opType: "Conv", name: "depthwise", inputs: ["c", "dw.weight"], outputs: ["d"],
                     attributes: [("group", .int(32)), ("pads", .ints([1, 1, 1, 1]))]),
            ONNXNode(opType: "Relu", name: "relu", inputs: ["d"], outputs: ["r"]),
            ONNXNode(opType: "Flatten", name: "flatten", inputs: ["r"], outputs: ["f"]),
            ONNXNode(opType: "Gemm", name: "fc", inputs: ["f", "fc.weight"], outputs: ["y"], attributes: [("transB", .int(1))]),
        ]
        var initializers = [
            try ONNXTensor(name: "conv.weight", Tensor<Float>.randomNormal(shape: [32, 16, 3, 3], seed: 1)),
            try ONNXTensor(name: "dw.weight", Tensor<Float>.randomNormal(shape: [32, 1, 3, 3], seed: 2)),
            try ONNXTensor(name: "fc.weight", Tensor<Float>.randomNormal(shape: [64, 32 * 8 * 8], seed: 3)),
        ]
        var outputs = [ONNXValueInfo(name: "y", elementType: .float, shape: [.value(1), .value(64)])]
        if subgraph {
            let body = ONNXGraph(name: "then", nodes: [ONNXNode(opType: "Conv", name: "inner_conv", inputs: ["x", "conv.weight"], outputs: ["z"])],
                                 initializers: [], inputs: [], outputs: [ONNXValueInfo(name: "z", elementType: .float, shape: nil)])
            var branch = Onnx_AttributeProto()
            (branch.name, branch.type, branch.g) = ("then_branch", .graph, body.proto)
            var other = branch
            other.name = "else_branch"
            var ifNode = ONNXNode(opType: "If", name: "If_0", inputs: ["flag"], outputs: ["z"]).proto
            ifNode.attribute = [branch, other]
            nodes.append(ONNXNode(proto: ifNode))
            nodes.append(ONNXNode(opType: "LSTM", name: "lstm", inputs: ["seq", "lstm.W", "lstm.R"], outputs: ["h"], attributes: [("hidden_size", .int(8))]))
            initializers += [try ONNXTensor(name: "lstm.W", Tensor<Float>.randomNormal(shape: [1, 32, 5], seed: 4)),
                             try ONNXTensor(name: "lstm.R", Tensor<Float>.randomNormal(shape: [1, 32, 8], seed: 5))]
            outputs += [ONNXValueInfo(name: "z", elementType: .float, shape: nil), ONNXValueInfo(name: "h", elementType: .float, shape: nil)]
        }
        var inputs = [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(16), .value(8), .value(8)])]
        if subgraph {
            inputs += [ONNXValueInfo(name: "flag", elementType: .bool, shape: []),
                       ONNXValueInfo(name: "seq", elementType: .float, shape: [.value(10), .value(1), .value(5)])]
        }
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs)
        try ONNXModel(graph: graph, opset: 13).serializedData().write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    func statistics(_ name: String, layers: [String: Int]) throws -> String {
        var result = CalibrationStatistics()
        for (layer, d) in layers {
            var gram = Matrix<Double>.zeros(rows: d, columns: d)
            for i in 0..<d { gram[i, i] = 1 }
            result.layers[layer] = try InputStatistics(count: 100, means: [[Double](repeating: 0, count: d)], grams: [gram])
        }
        try result.write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    func expectOneError(_ arguments: [String], mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try Tool.run(arguments)
        #expect(result.status == 1, "\(arguments): \(result.error)", sourceLocation: sourceLocation)
        #expect(result.error.split(separator: "\n").count == 1 && result.error.hasPrefix("tensor-compress: error: "), "\(result.error)",
                sourceLocation: sourceLocation)
        #expect(result.error.contains(text), "\(result.error)", sourceLocation: sourceLocation)
    }

    @Test func budgetsNeedStatisticsOrDataFree() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx"), output = path("o.onnx")
        try expectOneError(["compress", input, "--output", output, "--budget", "macs:0.5"], mentioning: "--data-free")
        #expect(!FileManager.default.fileExists(atPath: output))
        let result = try Tool.run(["compress", input, "--output", output, "--budget", "macs:0.5", "--data-free", "--quiet"])
        #expect(result.status == 0, "\(result.error)")
    }

    @Test func statisticsOfAnotherModelAreRefusedAndGapsNamed() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx"), output = path("o.onnx")
        let foreign = try statistics("foreign.safetensors", layers: ["encoder.layer.0.query": 8])
        try expectOneError(["compress", input, "--output", output, "--statistics", foreign, "--rank", "4"], mentioning: "name none of the candidate layers")
        #expect(!FileManager.default.fileExists(atPath: output))
        let partial = try statistics("partial.safetensors", layers: ["fc": 32 * 8 * 8])
        let result = try Tool.run(["compress", input, "--output", output, "--statistics", partial, "--rank", "4", "--uncalibrated", "data-free", "--quiet"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("tensor-compress: warning: the statistics name 1 of the 2 candidate layers; 1 are compressed from their weights alone: conv"),
                "\(result.error)")
        // By default (--uncalibrated skip) the layer the statistics do not name is left as it is,
        // and said so; without statistics --uncalibrated data-free has nothing to act on.
        let skipped = try Tool.run(["compress", input, "--output", output, "--statistics", partial, "--rank", "4", "--json", "--quiet"])
        #expect(skipped.status == 0, "\(skipped.error)")
        #expect(skipped.error.contains("tensor-compress: warning: the statistics name 1 of the 2 candidate layers; 1 are left as they are and outside the budget: conv"),
                "\(skipped.error)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(skipped.output.utf8)) as? [String: Any])
        let layers = try #require(document["layers"] as? [[String: Any]])
        let conv = try #require(layers.first { $0["name"] as? String == "conv" })
        #expect(conv["status"] as? String == "skipped" && (conv["reason"] as? String ?? "").contains("statistics do not name it"), "\(conv)")
        try expectOneError(["compress", input, "--output", path("n.onnx"), "--rank", "4", "--uncalibrated", "data-free"], mentioning: "give --statistics")
    }

    @Test func runsThatChangeNothingSaySo() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx"), output = path("o.onnx")
        try expectOneError(["compress", input, "--output", output, "--min-parameters", "100000000"], mentioning: "no layer was replaced")
        #expect(!FileManager.default.fileExists(atPath: output))
        let allowed = try Tool.run(["compress", input, "--output", output, "--min-parameters", "100000000", "--allow-no-change", "--quiet"])
        #expect(allowed.status == 0 && allowed.error.contains("tensor-compress: warning: no layer was replaced"), "\(allowed.error)")
        #expect(FileManager.default.fileExists(atPath: output))
    }

    @Test func totalsShowTheWholeModel() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx")
        let result = try Tool.run(["compress", input, "--output", path("o.onnx"), "--rank", "4", "--json", "--quiet"])
        #expect(result.status == 0, "\(result.error)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let totals = try #require(document["totals"] as? [String: Any])
        let number = { (key: String) in totals[key] as? Int ?? -1 }
        // conv 1·32·16·9·64 + depthwise 1·32·1·9·64 + fc 64·2048 MACs, twice for FLOPs.
        let conv = 32 * 16 * 9 * 64, depthwise = 32 * 9 * 64, fc = 64 * 2048
        #expect(number("modelFlopsBefore") == 2 * (conv + depthwise + fc))
        #expect(number("compressibleFlops") == 2 * (conv + fc))
        #expect(number("flopsBefore") == 2 * (conv + fc) && number("replacedLayers") == 2)
        #expect(number("modelFlopsAfter") == number("modelFlopsBefore") - number("flopsBefore") + number("flopsAfter"))
        let text = try Tool.run(["compress", input, "--output", path("o.onnx"), "--rank", "4", "--quiet"])
        #expect(text.output.contains("model: FLOPs 888.8k → "), "\(text.output)")
        #expect(text.output.contains("compressible layers (2): FLOPs 852.0k"), "\(text.output)")
    }

    @Test func subgraphLayersAreCompressedAndRecurrentLayersListed() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx", subgraph: true)
        let inspected = try Tool.run(["inspect", input, "--no-vbmf", "--json"])
        #expect(inspected.status == 0 && inspected.error.isEmpty, "\(inspected.error)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(inspected.output.utf8)) as? [String: Any])
        let nodes = try #require(document["nodes"] as? [[String: Any]])
        let lstm = try #require(nodes.first { $0["op"] as? String == "LSTM" })
        #expect(lstm["macs"] as? Int == 10 * 1 * 1 * 32 * (5 + 8))
        // Its input projection is compressible (inspect lists every size); compress leaves it
        // below the default minimum of 1024 weights.
        #expect(lstm["compressible"] as? Bool == true && lstm["reason"] is NSNull, "\(lstm)")
        // The Conv in each branch reads the main graph's weight: listed under its path, with the outer input's shape.
        let inner = nodes.filter { ($0["name"] as? String)?.hasPrefix("If_0/") == true }
        #expect(inner.map { $0["name"] as? String } == ["If_0/then_branch/inner_conv", "If_0/else_branch/inner_conv"])
        #expect(inner.allSatisfy { $0["compressible"] as? Bool == true && $0["macs"] as? Int == 32 * 16 * 9 * 36 })
        let compressed = try Tool.run(["compress", input, "--output", path("o.onnx"), "--rank", "4", "--json", "--quiet"])
        #expect(compressed.status == 0, "\(compressed.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(compressed.output.utf8)) as? [String: Any])
        let replaced = (report["layers"] as? [[String: Any]] ?? []).filter { $0["status"] as? String == "replaced" }.compactMap { $0["name"] as? String }
        #expect(Set(replaced) == ["conv", "fc", "If_0/then_branch/inner_conv", "If_0/else_branch/inner_conv"])
    }
}
