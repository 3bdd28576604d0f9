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
/// ```swift
/// let stats = try CalibrationStatistics(contentsOf: URL(fileURLWithPath: "det.stats.safetensors"))
/// stats.layers["p2o.Conv.58"]?.dimension      // 864 = 96·3·3
/// ```
public struct CalibrationStatistics: Sendable, Equatable {
    /// The statistics by layer name.
    public var layers: [String: InputStatistics]

    /// Statistics from a dictionary.
    public init(layers: [String: InputStatistics] = [:]) { self.layers = layers }

    /// Reads a statistics file.
    ///
    /// - Throws: `TensorIOError` for a malformed file, `NNLayersError.statistics(_:)`
    ///   for missing or inconsistent tensors of a layer.
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
        self.layers = layers
    }

    /// The file's tensors, names sorted.
    public func writer() throws -> SafetensorsWriter {
        var writer = SafetensorsWriter()
        for name in layers.keys.sorted() {
            let s = layers[name]!
            try writer.add(name + ".count", Tensor<Double>(shape: [1], scalars: [s.count]))
            try writer.add(name + ".mean", Tensor<Double>(shape: [s.groups, s.dimension], scalars: s.means.flatMap { $0 }))
            try writer.add(name + ".gram", Tensor<Double>(shape: [s.groups, s.dimension, s.dimension], scalars: s.grams.flatMap(\.scalars)))
        }
        return writer
    }

    /// Writes the statistics file atomically.
    public func write(to url: URL) throws {
        try OutputFile.write([(try OutputFile(path: url.path), try writer().encoded())])
    }
}
