import Foundation
import Testing
import TensorModule
import NNLayers

/// Issue 24, item 3: layer settings and layer configurations are refused with typed payloads
/// that carry the values; their descriptions are the one-line messages.
@Suite("Typed errors: layer settings")
struct TypedLayerErrorTests {
    func checkSettings<S: BLASScalar>(_: S.Type) throws {
        let kernel = Tensor<S>.randomNormal(shape: [8, 4, 3, 3], seed: 1)
        #expect(throws: NNLayersError.invalidSetting(layer: "Conv2D", setting: "stride", value: [0, 1], requirement: .atLeastOne)) {
            try Conv2D(weight: kernel, stride: Size2D(0, 1))
        }
        #expect(throws: NNLayersError.invalidSetting(layer: "Conv2D", setting: "dilation", value: [1, -2], requirement: .atLeastOne)) {
            try Conv2D(weight: kernel, dilation: Size2D(1, -2))
        }
        #expect(throws: NNLayersError.invalidSetting(layer: "Conv2D", setting: "padding", value: [1, 1, -1, 0], requirement: .nonNegative)) {
            try Conv2D(weight: kernel, padding: Padding(top: 1, bottom: 1, left: -1, right: 0))
        }
        #expect(throws: NNLayersError.invalidSetting(layer: "Conv2D", setting: "groups", value: [3], requirement: .dividesOutputChannels(8))) {
            try Conv2D(weight: kernel, groups: 3)
        }
        // The same checks through a layer configuration's settings.
        #expect(throws: NNLayersError.invalidSetting(layer: "Conv2D", setting: "stride", value: [2, 0], requirement: .atLeastOne)) {
            try Conv2DSettings(stride: [2, 0]).convolution(weight: kernel, bias: nil)
        }
    }

    @Test func invalidSettingsCarryTheirValues() throws {
        try checkSettings(Float.self)
        try checkSettings(Double.self)
        #expect("\(NNLayersError.invalidSetting(layer: "Conv2D", setting: "groups", value: [3], requirement: .dividesOutputChannels(8)))"
                == "Conv2D: groups [3] must be at least 1 and divide the 8 output channels")
        #expect("\(NNLayersError.invalidSetting(layer: "Conv2D", setting: "stride", value: [0, 1], requirement: .atLeastOne))"
                == "Conv2D: stride [0, 1] must be at least 1")
    }

    @Test func layerConfigurationProblemsSayWhereAndWhat() throws {
        func configure(_ json: String) throws { _ = try Conv2DSettings.configuration(json: Data(json.utf8)) }
        #expect(throws: NNLayersError.layerConfiguration(location: "a.stride", problem: .count(expected: 2, actual: 1))) {
            try configure(#"{"a": {"stride": [1]}}"#)
        }
        #expect(throws: NNLayersError.layerConfiguration(location: "b.padding", problem: .count(expected: 4, actual: 2))) {
            try configure(#"{"a": {}, "b": {"padding": [1, 1]}}"#)
        }
        #expect(throws: NNLayersError.layerConfiguration(location: "a.dilations", problem: .unknownSetting)) {
            try configure(#"{"a": {"dilations": [1, 1]}}"#)
        }
        // What Foundation's decoder refuses keeps its description (and the coding path, where it gives one).
        #expect {
            try configure(#"{"a": {"groups": "two"}}"#)
        } throws: { error in
            guard case let .layerConfiguration("a.groups", .decoding(description))? = error as? NNLayersError else { return false }
            return !description.isEmpty
        }
        #expect {
            try configure("{")
        } throws: { error in
            guard case let .layerConfiguration(_, .decoding(description))? = error as? NNLayersError else { return false }
            return !description.isEmpty
        }
        #expect("\(NNLayersError.layerConfiguration(location: "a.stride", problem: .count(expected: 2, actual: 1)))"
                == "layer configuration at a.stride: expected 2 integers, got 1")
        #expect("\(NNLayersError.layerConfiguration(location: "a.dilations", problem: .unknownSetting))"
                == "layer configuration at a.dilations: not a setting (stride, padding, dilation, groups)")
    }
}
