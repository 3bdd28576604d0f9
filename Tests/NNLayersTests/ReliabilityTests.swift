import Foundation
import Testing
import TensorModule
@testable import NNLayers

/// Issue 9, item 1: settings and input sizes whose counts overflow throw, never trap.
@Suite("Reliability: layer settings and counts")
struct LayerReliabilityTests {
    let kernel = Tensor<Float>.randomNormal(shape: [8, 4, 3, 3], seed: 1)

    @Test func settingsWhoseSizesOverflowAreRefused() throws {
        #expect(throws: NNLayersError.self) { try Conv2D(weight: kernel, dilation: Size2D(4_611_686_018_427_387_904, 1)) }
        #expect(throws: NNLayersError.self) { try Conv2D(weight: kernel, dilation: Size2D(1, Int.max)) }
        #expect(throws: NNLayersError.self) {
            try Conv2D(weight: kernel, padding: Padding(top: 1 << 62, bottom: 1 << 62, left: 0, right: 0))
        }
        #expect(throws: NNLayersError.self) { try Conv2D(weight: kernel, padding: Padding(top: 0, bottom: 0, left: Int.max, right: 1)) }
    }

    @Test(arguments: [[4, 4_000_000_000, 4_000_000_000], [4, 3_037_000_500, 3_037_000_500], [4, Int.max, 1]])
    func costsThatOverflowThrow(input: [Int]) throws {
        let conv = try Conv2D(weight: kernel, padding: .symmetric(1))
        #expect {
            _ = try Layer.conv2d(conv).cost(input: input)
        } throws: { error in
            guard let error = error as? NNLayersError else { return false }
            if case .countOverflow = error { return true }
            return false
        }
        let stack = try conv.compressed(by: .tucker2(.fixed([4, 2]))).stack
        #expect(throws: NNLayersError.self) { try stack.cost(input: input) }
        let linear = try Linear(weight: Matrix<Float>.randomNormal(rows: 8, columns: 4, seed: 2))
        #expect(throws: NNLayersError.self) { try Layer.linear(linear).cost(input: [input[1], input[2], 4]) }
        let tt = try linear.compressed(by: .tensorTrain(outputModes: [2, 4], inputModes: [2, 2])).stack
        #expect(throws: (any Error).self) { try tt.cost(input: [input[1], input[2], 4]) }
    }

    @Test func flopBudgetsWithHugeDilationDoNotTrap() throws {
        let conv = try Conv2D(weight: kernel, dilation: Size2D(1_000_000_000, 1_000_000_000))
        for method in [ConvDecomposition.cp(.flopBudget(0.5), maxIterations: 2), .tucker2(.flopBudget(0.5))] {
            let result = try conv.compressed(by: method)
            #expect(result.ranks.allSatisfy { $0 >= 1 })
            #expect(result.kernelRelativeError.isFinite)
        }
        #expect(throws: NNLayersError.self) { try Layer.conv2d(conv).cost(input: [4, 224, 224]) }
    }

    @Test func layerConfigurationErrorsAreOneLine() throws {
        let good = try Conv2DSettings.configuration(json: Data(#"{"a": {"stride": [2, 1], "padding": [1, 0, 1, 1], "groups": 2}}"#.utf8))
        #expect(good == ["a": Conv2DSettings(stride: [2, 1], padding: [1, 0, 1, 1], groups: 2)])
        for bad in ["[1]", "{", #"{"a": 1}"#, #"{"a": {"stride": [1]}}"#, #"{"a": {"dilations": [1, 1]}}"#,
                    #"{"a": {"groups": 1.5}}"#, #"{"a": {"padding": [1, 1, 1, "x"]}}"#, #"{"a": {"stride": [1e40, 1]}}"#] {
            #expect {
                _ = try Conv2DSettings.configuration(json: Data(bad.utf8))
            } throws: { error in
                guard let error = error as? NNLayersError, case .layerConfiguration = error else { return false }
                return !error.description.contains("\n") && error.description.hasPrefix("layer configuration")
            }
        }
        #expect(throws: NNLayersError.self) {
            try Conv2DSettings(dilation: [4_611_686_018_427_387_904, 1]).convolution(weight: kernel, bias: nil)
        }
    }
}
