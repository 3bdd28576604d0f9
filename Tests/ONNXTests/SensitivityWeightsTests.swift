import Foundation
import ModelCompression
import NNLayers
import Testing
@testable import ONNX
import TensorModule
import TensorIO

/// End-to-end sensitivities in a statistics file (`NAME.sensitivity`): read and written with the
/// statistics, the greedy allocation's weights by default, and overridden by weights that are set.
@Suite("Sensitivities in statistics files")
struct SensitivityWeightsTests {
    func temporaryFile() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("sensitivity-\(UUID().uuidString).safetensors")
    }

    @Test func sensitivitiesRoundTripWithTheStatistics() throws {
        var (_, stats) = try BudgetTests().model()
        stats.sensitivities = ["conv": 0.25, "fc": 3]
        let url = temporaryFile()
        defer { try? FileManager.default.removeItem(at: url) }
        try stats.write(to: url)
        let read = try CalibrationStatistics(contentsOf: url)
        #expect(read.sensitivities == ["conv": 0.25, "fc": 3])
        #expect(read == stats)
        stats.sensitivities = [:]
        try stats.write(to: url)
        #expect(try CalibrationStatistics(contentsOf: url).sensitivities.isEmpty)
    }

    @Test(arguments: [("conv", [1], [-1.0]), ("conv", [1], [Double.nan]), ("conv", [2], [1.0, 2.0]), ("other", [1], [1.0])])
    func brokenSensitivitiesAreRefused(name: String, shape: [Int], values: [Double]) throws {
        let (_, stats) = try BudgetTests().model()
        var writer = try stats.writer()
        try writer.add(name + ".sensitivity", Tensor<Double>(shape: shape, scalars: values))
        let url = temporaryFile()
        defer { try? FileManager.default.removeItem(at: url) }
        try writer.write(to: url)
        #expect {
            try CalibrationStatistics(contentsOf: url)
        } throws: { error in
            guard case .statistics(let problem) = error as? NNLayersError else { return false }
            switch problem {
            case let .sensitivityWithoutStatistics(layer): return name == "other" && layer == name
            case let .sensitivity(layer, found, _): return layer == name && found == shape && "\(problem)".contains("\(name).sensitivity")
            default: return false
            }
        }
    }

    @Test func writingASensitivityOfNoLayerIsRefused() throws {
        var (_, stats) = try BudgetTests().model()
        stats.sensitivities = ["missing": 1]
        #expect(throws: NNLayersError.statistics(.sensitivityWithoutStatistics(layer: "missing"))) { try stats.writer() }
        stats.sensitivities = ["conv": -1]
        #expect(throws: NNLayersError.statistics(.sensitivity(layer: "conv", shape: [1], values: [-1]))) { try stats.writer() }
    }

    /// The statistics' sensitivities steer the allocation exactly as the same weights set by hand,
    /// and weights that are set (an empty dictionary too) replace them.
    @Test func sensitivitiesAreTheDefaultWeightsAndGivenWeightsWin() throws {
        let (model, plain) = try BudgetTests().model()
        var measured = plain
        measured.sensitivities = ["conv": 1e6, "fc": 1]
        func ranks(statistics: CalibrationStatistics, weights: [String: Double]?) throws -> ([String: [Int]], CompressionOptions.LayerWeightSource) {
            var options = CompressionOptions()
            options.inputShapes = ["x": [1, 4, 8, 8]]
            (options.minimumParameters, options.minimumBudgetShare, options.rankMultiple) = (0, 0, 1)
            options.budget = .macs(0.7)
            options.statistics = statistics
            if let weights { options.layerWeights = weights }
            let result = try ModelCompressor(options: options).compress(onnx: model)
            return (Dictionary(uniqueKeysWithValues: result.layers.map { ($0.name, $0.ranks) }), options.layerWeightSource)
        }
        let (byDefault, source) = try ranks(statistics: measured, weights: nil)
        let (byHand, _) = try ranks(statistics: plain, weights: ["conv": 1e6, "fc": 1])
        let (unweighted, noSource) = try ranks(statistics: plain, weights: nil)
        #expect(source == .statistics && noSource == CompressionOptions.LayerWeightSource.none)
        #expect(byDefault == byHand)
        #expect(byDefault != unweighted, "the weights should change the allocation of this model: \(byDefault) vs \(unweighted)")
        let (given, givenSource) = try ranks(statistics: measured, weights: ["fc": 1e6])
        let (givenByHand, _) = try ranks(statistics: plain, weights: ["fc": 1e6])
        #expect(givenSource == .given && given == givenByHand)
        let (emptyGiven, emptySource) = try ranks(statistics: measured, weights: [:])
        #expect(emptySource == .given && emptyGiven == unweighted)
    }
}
