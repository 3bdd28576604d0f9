import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorModule
import Testing

/// A `Gemm`'s data-aware mean-shift correction goes into its C: folded into a constant row
/// (`C' = beta·C + (W − Ŵ)·μ`, beta 1), or written as C when there is none; no `Add` after it.
@Suite("Gemm: the bias correction in C")
struct GemmCorrectionTests {
    static let (inputs, outputs) = (9, 6)

    /// `y = Gemm(x, B, C)` with alpha 2, beta 0.5, B [in, out] (transB 0), C [out] when `withC`.
    static func model(_ dataType: ONNXDataType, withC: Bool) throws -> ONNXModel {
        let b = Tensor<Double>.randomNormal(shape: [inputs, outputs], seed: 41)
        let c = Tensor<Double>.randomNormal(shape: [outputs], seed: 42)
        let node = ONNXNode(opType: "Gemm", name: "fc", inputs: ["x", "B"] + (withC ? ["C"] : []), outputs: ["y"],
                            attributes: [("alpha", .float(2)), ("beta", .float(0.5))])
        let graph = ONNXGraph(name: "g", nodes: [node],
                              initializers: [try ONNXTensor(name: "B", b, dataType: dataType)] + (withC ? [try ONNXTensor(name: "C", c, dataType: dataType)] : []),
                              inputs: [ONNXValueInfo(name: "x", elementType: dataType, shape: [.value(4), .value(inputs)])],
                              outputs: [ONNXValueInfo(name: "y", elementType: dataType, shape: nil)])
        return ONNXModel(graph: graph, opset: 13)
    }

    @Test("rank 2 with statistics: MatMul then a Gemm whose C holds the correction", arguments: [ONNXDataType.float, .double], [true, false])
    func correctionInC(dataType: ONNXDataType, withC: Bool) throws {
        var statistics = InputStatistics(dimension: Self.inputs)
        let rows = Tensor<Double>.randomNormal(shape: [64, Self.inputs], seed: 43)
        try statistics.accumulate(rows: rows + Tensor(repeating: 0.7, shape: rows.shape))
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.rank = 2
        options.statistics = CalibrationStatistics(layers: ["fc": statistics])
        let model = try Self.model(dataType, withC: withC)
        let graph = try ModelCompressor(options: options).compress(onnx: model).model.graph
        #expect(graph.nodes.map(\.opType) == ["MatMul", "Gemm"], "no Add after the Gemm")
        let gemm = graph.nodes[1]
        #expect(gemm.float("beta") == 1 && gemm.inputs.count == 3 && gemm.outputs == ["y"])
        func value(_ name: String) throws -> Tensor<Double> { try #require(graph.initializers.first { $0.name == name }).tensor(as: Double.self) }
        let u = try value(graph.nodes[0].inputs[1]), v = try value(gemm.inputs[1]), c = try value(gemm.inputs[2])   // Uᵀ [in, 2], V [out, 2]
        let b = try Self.model(.double, withC: true).graph.initializers[0].tensor(as: Double.self)
        let c0 = try Self.model(.double, withC: true).graph.initializers[1].tensor(as: Double.self)
        let mean = try #require(options.statistics?.layers["fc"]?.means.first)
        let tolerance = dataType == .float ? 1e-4 : 1e-10
        for o in 0..<Self.outputs {
            var shift = 0.0
            for i in 0..<Self.inputs {
                let approximation = (0..<2).reduce(0.0) { $0 + v[o, $1] * u[i, $1] }
                shift += (2 * b[i, o] - approximation) * mean[i]   // W = alpha · Bᵀ
            }
            let expected = (withC ? 0.5 * c0[o] : 0) + shift
            #expect(abs(c[o] - expected) <= tolerance * (1 + abs(expected)), "C[\(o)]")
        }
        #expect(!graph.initializers.contains { $0.name == "C" || $0.name == "B" }, "the replaced B and C are removed")
    }
}
