import Foundation
import Testing
import TensorDecompositions

/// The README's "Using the library" snippet, run as written (the model path points at a generated file).
@Suite("README snippet")
struct ReadmeSnippetTests {
    @Test func usingTheLibrary() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var writer = SafetensorsWriter()
        try writer.add("encoder.layer.0.attention.self.query.weight", Tensor<Float>.randomNormal(shape: [8, 8], seed: 3))
        let modelPath = directory.appendingPathComponent("model.safetensors").path
        try writer.write(to: URL(fileURLWithPath: modelPath))

        let kernel = Tensor<Float>.randomNormal(shape: [64, 32, 3, 3], seed: 1)     // OIHW

        let cp = try cpDecompose(kernel, rank: 16)                    // CPDecomposition: cp, iterations, converged, errorHistory
        let ranks = try selectRanks(for: kernel, modes: [0, 1], selection: .vbmf).ranks
        let tucker2 = try tuckerDecompose(kernel, ranks: ranks, modes: [0, 1]).tucker
        let tt = try ttDecompose(kernel, tolerance: 0.1)             // ‖X − X̂‖ ≤ 0.1‖X‖
        let full = try Tensor(tucker2)                               // reconstruction

        let conv = try Conv2D(weight: kernel, bias: nil, stride: Size2D(2), padding: .symmetric(1))
        let stack = try conv.compressed(by: .cp(.fixed([16]))).stack  // pointwise → depthwise 3×1 → depthwise 1×3 → pointwise
        let y = try stack(Tensor<Float>.randomNormal(shape: [1, 32, 28, 28], seed: 2))

        let file = try SafetensorsFile(contentsOf: URL(fileURLWithPath: modelPath))
        let w = try file.tensor(named: "encoder.layer.0.attention.self.query.weight", as: Float.self)

        #expect(cp.cp.rank == 16 && full.shape == kernel.shape && y.shape == [1, 64, 14, 14] && w.shape == [8, 8])
        #expect(try tt.relativeError(to: kernel) <= 0.1 * 1.0001)
    }

    @Test func dataAwareAndONNX() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("readme-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(directory.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let graph = ONNXGraph(name: "det", nodes: [
            ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "w"], outputs: ["y"], attributes: [("pads", .ints([1, 1, 1, 1]))]),
        ], initializers: [try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [32, 3, 3, 3], seed: 5))],
           inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(3), .value(640), .value(640)])],
           outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        try ONNXModel(graph: graph, opset: 13).write(to: URL(fileURLWithPath: "det.onnx"))

        let activations = Tensor<Float>.randomNormal(shape: [1000, 384], seed: 4)   // the layer's real inputs
        var stats = InputStatistics(dimension: 384)
        try stats.accumulate(rows: activations)
        let fc = try Linear(weight: Matrix<Float>.randomNormal(rows: 1536, columns: 384, seed: 3))
        let svd = try fc.compressed(by: .svd(.fixed([64])), statistics: stats)      // whitened SVD, bias corrected
        let outputError = svd.outputRelativeError!                                   // ‖(W − Ŵ)X‖ / ‖WX‖ on those inputs

        var options = CompressionOptions()
        options.inputShapes = ["x": [1, 3, 640, 640]]
        options.budget = .macs(0.67)                     // with options.statistics from Scripts/calibrate.sh: data-aware
        options.dataFree = true                          // no statistics: say so (options.statistics makes it data-aware)
        let model = try ONNXModel(contentsOf: URL(fileURLWithPath: "det.onnx"))
        let compressed = try ModelCompressor(options: options).compress(onnx: model)
        try compressed.model.write(to: URL(fileURLWithPath: "det.compressed.onnx"))

        #expect(outputError > 0 && outputError < 1)
        #expect(FileManager.default.fileExists(atPath: "det.compressed.onnx") && compressed.layers.count == 1)
    }
}

/// The landing pages of the umbrella and TensorIO catalogs, run as written (files generated first).
@Suite("Landing-page snippets")
struct LandingPageSnippetTests {
    @Test func umbrella() throws {
        let kernel = Tensor<Float>.randomNormal(shape: [64, 32, 3, 3], seed: 1)
        let conv = try Conv2D(weight: kernel, padding: .symmetric(1))
        let compressed = try conv.compressed(by: .tucker2(.vbmf))
        print(compressed.summary)
        #expect(compressed.stack.layers.count == 3)
    }

    @Test func tensorIO() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(directory.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try Tensor<Float>.randomNormal(shape: [3, 4], seed: 1).writeNPY(to: URL(fileURLWithPath: "x.npy"))
        var writer = SafetensorsWriter()
        try writer.add("w", Tensor<Float>.randomNormal(shape: [2, 2], seed: 2))
        try writer.write(to: URL(fileURLWithPath: "model.safetensors"))

        let x = try Tensor<Float>(contentsOfNPY: URL(fileURLWithPath: "x.npy"))
        try x.writeNPY(to: URL(fileURLWithPath: "copy.npy"))

        let model = try SafetensorsFile(contentsOf: URL(fileURLWithPath: "model.safetensors"))
        let w = try model.tensor(named: model.names[0], as: Float.self)
        #expect(try Tensor<Float>(contentsOfNPY: URL(fileURLWithPath: "copy.npy")) == x && w.shape == [2, 2])
    }
}

/// The snippets print their results for the reader; under test they stay quiet, so that the
/// test command's output holds only the test results.
private func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {}
