import Foundation
import NNLayers
import TensorIO
import TensorModule

/// The input statistics of a model's layers, by layer name (an ONNX node's name, or a state
/// dict layer's name without `.weight`), read from and written to safetensors.
///
/// Each layer `NAME` has three float64 tensors:
///
/// | tensor | shape | content |
/// |---|---|---|
/// | `NAME.count` | `[1]` | input vectors accumulated (rows, or patches per group) |
/// | `NAME.mean` | `[g, d]` | the mean input vector of each group |
/// | `NAME.gram` | `[g, d, d]` | the second moment `E[x xᵀ]` of each group |
///
/// `d` is the layer's input features, or `(C/g)·kh·kw` for a convolution's im2col patches; a
/// convolution whose patches are too long may have per-channel statistics (`d = C/g`), which the
/// data-aware methods expand as `C_channels ⊗ I`. `Scripts/calibrate.sh` writes such a file from
/// onnxruntime runs.
///
/// A layer may also have `NAME.sensitivity` (`[1]`, float64): its end-to-end sensitivity, the
/// damage at the network's outputs per unit of its normalised output error, which
/// `Scripts/calibrate.sh` measures after the statistics. They are the default
/// ``CompressionOptions/layerWeights`` of the greedy budget allocation.
///
/// ```swift
/// let stats = try CalibrationStatistics(contentsOf: URL(fileURLWithPath: "det.stats.safetensors"))
/// stats.layers["p2o.Conv.58"]?.dimension      // 864 = 96·3·3
/// stats.sensitivities["p2o.Conv.58"]           // its end-to-end sensitivity, when calibrate.sh stored one
/// ```
public struct CalibrationStatistics: Sendable, Equatable {
    /// The statistics by layer name.
    public var layers: [String: InputStatistics]
    /// End-to-end sensitivities by layer name (finite, non-negative; each of a layer in
    /// ``layers``); empty when the file has none.
    public var sensitivities: [String: Double]

    /// Statistics from dictionaries.
    public init(layers: [String: InputStatistics] = [:], sensitivities: [String: Double] = [:]) {
        (self.layers, self.sensitivities) = (layers, sensitivities)
    }

    /// Reads a statistics file.
    ///
    /// - Throws: `TensorIOError` for a malformed file, `NNLayersError.statistics(_:)`
    ///   for missing or inconsistent tensors of a layer, and for a sensitivity that is not one
    ///   finite, non-negative number of a layer with statistics.
    public init(contentsOf url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        var layers: [String: InputStatistics] = [:]
        for name in file.names where name.hasSuffix(".count") {
            let layer = String(name.dropLast(".count".count))
            guard let meanEntry = file.entries[layer + ".mean"], let gramEntry = file.entries[layer + ".gram"] else {
                throw NNLayersError.statistics(.missingTensors(layer: layer))
            }
            guard meanEntry.shape.count == 2, gramEntry.shape.count == 3, gramEntry.shape[0] == meanEntry.shape[0],
                  gramEntry.shape[1] == meanEntry.shape[1], gramEntry.shape[2] == meanEntry.shape[1] else {
                throw NNLayersError.statistics(.tensorShapes(layer: layer, mean: meanEntry.shape, gram: gramEntry.shape))
            }
            let count = try file.tensor(named: name, as: Double.self).scalars.first ?? -1
            let (g, d) = (meanEntry.shape[0], meanEntry.shape[1])
            let mean = try file.tensor(named: layer + ".mean", as: Double.self).scalars
            let gram = try file.tensor(named: layer + ".gram", as: Double.self).scalars
            let means = (0..<g).map { Array(mean[($0 * d)..<(($0 + 1) * d)]) }
            let grams = try (0..<g).map { try Matrix(rows: d, columns: d, scalars: gram[($0 * d * d)..<(($0 + 1) * d * d)]) }
            do { layers[layer] = try InputStatistics(count: count, means: means, grams: grams) } catch let NNLayersError.statistics(problem) {
                throw NNLayersError.statistics(.inLayer(layer, problem))
            }
        }
        var sensitivities: [String: Double] = [:]
        for name in file.names where name.hasSuffix(".sensitivity") {
            let layer = String(name.dropLast(".sensitivity".count))
            guard layers[layer] != nil else {
                throw NNLayersError.statistics(.sensitivityWithoutStatistics(layer: layer))
            }
            let values = try file.tensor(named: name, as: Double.self)
            guard values.shape == [1], let value = values.scalars.first, value.isFinite, value >= 0 else {
                throw NNLayersError.statistics(.sensitivity(layer: layer, shape: values.shape, values: Array(values.scalars.prefix(3))))
            }
            sensitivities[layer] = value
        }
        (self.layers, self.sensitivities) = (layers, sensitivities)
    }

    /// The file's tensors, names sorted: each layer's count, mean, Gram matrix and sensitivity.
    ///
    /// - Throws: `NNLayersError.statistics(_:)` for a sensitivity of a layer without
    ///   statistics, or one that is negative or not finite.
    public func writer() throws -> SafetensorsWriter {
        if let (name, value) = sensitivities.sorted(by: { $0.key < $1.key }).first(where: { layers[$0.key] == nil || !($0.value.isFinite && $0.value >= 0) }) {
            throw NNLayersError.statistics(layers[name] == nil ? .sensitivityWithoutStatistics(layer: name) : .sensitivity(layer: name, shape: [1], values: [value]))
        }
        var writer = SafetensorsWriter()
        for name in layers.keys.sorted() {
            let s = layers[name]!
            try writer.add(name + ".count", Tensor<Double>(shape: [1], scalars: [s.count]))
            try writer.add(name + ".mean", Tensor<Double>(shape: [s.groups, s.dimension], scalars: s.means.flatMap { $0 }))
            try writer.add(name + ".gram", Tensor<Double>(shape: [s.groups, s.dimension, s.dimension], scalars: s.grams.flatMap(\.scalars)))
            if let sensitivity = sensitivities[name] {
                try writer.add(name + ".sensitivity", Tensor<Double>(shape: [1], scalars: [sensitivity]))
            }
        }
        return writer
    }

    /// Writes the statistics file atomically.
    public func write(to url: URL) throws {
        try OutputFile.write([(try OutputFile(path: url.path), try writer().encoded())])
    }
}
