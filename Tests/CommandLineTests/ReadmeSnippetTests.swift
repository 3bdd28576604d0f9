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
        FileManager.default.changeCurrentDirectoryPath(directory.path)
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
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
