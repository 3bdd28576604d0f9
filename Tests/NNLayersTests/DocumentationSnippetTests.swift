import Testing
import TensorModule
import Decompositions
import NNLayers

/// The code of `NNLayers.docc` (landing page and "Compressing a convolution layer"), run as written.
@Suite("NNLayers documentation snippets")
struct NNLayersDocumentationSnippetTests {
    @Test func landingPage() throws {
        let conv = try Conv2D(weight: .randomNormal(shape: [128, 64, 3, 3], seed: 1),
                              bias: [Float](repeating: 0, count: 128), padding: .symmetric(1))
        let compressed = try conv.compressed(by: .tucker2(.vbmf))
        let x = Tensor<Float>.randomNormal(shape: [1, 64, 56, 56], seed: 2)
        let error = try compressed.stack(x).relativeError(to: conv(x))
        let report = try compressed.report(input: [64, 56, 56])
        print(compressed.summary, error, report.predictedSpeedup)
        #expect(error.isFinite && report.parameters > 0)
    }

    @Test func checkedForwardPass() throws {
        // An exactly rank-8 kernel, so that the CP layers reproduce the layer.
        let factors = [32, 16, 3, 3].enumerated().map { Matrix<Double>.randomNormal(rows: $0.element, columns: 8, seed: UInt64($0.offset)) }
        let kernel = try Tensor(CPTensor(factors: factors))
        let conv = try Conv2D(weight: kernel, bias: [Double](repeating: 0.5, count: 32),
                              stride: Size2D(2, 1), padding: Padding(top: 1, bottom: 0, left: 1, right: 1))

        let cp = try cpDecompose(kernel, rank: 8, options: CPOptions(maxIterations: 1000, tolerance: 1e-14)).cp
        let stack = try LayerStack(cp: [cp], replacing: conv)       // pointwise, depthwise 3×1, depthwise 1×3, pointwise

        let x = Tensor<Double>.randomNormal(shape: [2, 16, 20, 17], seed: 9)
        let error = try stack(x).relativeError(to: conv(x))         // tiny
        let report = try CompressedLayer(original: .conv2d(conv), stack: stack, method: .cp, ranks: [8],
                                         kernelRelativeError: Double(cp.relativeError(to: kernel)), reasons: [])
            .report(input: [16, 20, 17])
        print(stack.summary, error, report.compression, report.predictedSpeedup)
        #expect(error < 1e-6)
        #expect(report.compression >= 10)   // 4,640 parameters → 464
    }
}

/// The snippets print their results for the reader; under test they stay quiet, so that the
/// test command's output holds only the test results.
private func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {}
