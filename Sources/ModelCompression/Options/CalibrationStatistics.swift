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
/// A linear layer may also have `NAME.outputMetric` (`[m, m]`, float64, `m` its output features):
/// the end-to-end metric of its output error, `G = E[g gᵀ]` over the calibration rows, where `g` is
/// the gradient at the layer's output of `vᵀ y` for the network's outputs `y` and a random normal
/// `v` (so `E‖J Δ‖² = Δᵀ G Δ` for a change `Δ` of one row: the Gauss-Newton matrix of the outputs,
/// the output factor of K-FAC). `Scripts/calibrate.sh` measures it with onnxruntime-training. The
/// SVD of the layer then minimises `E[(ΔW x)ᵀ G (ΔW x)]` (``CompressionOptions/endToEndOutputs``).
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
    /// End-to-end output metrics by layer name (square, finite; each of a layer in ``layers``);
    /// empty when the file has none.
    public var outputMetrics: [String: Matrix<Double>]

    /// Statistics from dictionaries.
    public init(layers: [String: InputStatistics] = [:], sensitivities: [String: Double] = [:], outputMetrics: [String: Matrix<Double>] = [:]) {
        (self.layers, self.sensitivities, self.outputMetrics) = (layers, sensitivities, outputMetrics)
    }

    /// Reads a statistics file.
    ///
    /// - Throws: `TensorIOError` for a malformed file, `NNLayersError.statistics(_:)`
    ///   for missing or inconsistent tensors of a layer, and for a sensitivity that is not one
    ///   finite, non-negative number of a layer with statistics, and for an output metric that is
    ///   not a square, finite matrix of a layer with statistics.
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
        var outputMetrics: [String: Matrix<Double>] = [:]
        for name in file.names where name.hasSuffix(".outputMetric") {
            let layer = String(name.dropLast(".outputMetric".count))
            guard layers[layer] != nil else { throw NNLayersError.statistics(.outputMetricWithoutStatistics(layer: layer)) }
            let values = try file.tensor(named: name, as: Double.self)
            guard values.shape.count == 2, values.shape[0] == values.shape[1], values.shape[0] > 0, values.scalars.allSatisfy(\.isFinite) else {
                throw NNLayersError.statistics(.outputMetric(layer: layer, shape: values.shape))
            }
            outputMetrics[layer] = Matrix(values)
        }
        (self.layers, self.sensitivities, self.outputMetrics) = (layers, sensitivities, outputMetrics)
    }

    /// The file's tensors, names sorted: each layer's count, mean, Gram matrix, sensitivity and
    /// output metric.
    ///
    /// - Throws: `NNLayersError.statistics(_:)` for a sensitivity of a layer without
    ///   statistics, or one that is negative or not finite, and alike for an output metric that is
    ///   not square and finite.
    public func writer() throws -> SafetensorsWriter {
        if let (name, value) = sensitivities.sorted(by: { $0.key < $1.key }).first(where: { layers[$0.key] == nil || !($0.value.isFinite && $0.value >= 0) }) {
            throw NNLayersError.statistics(layers[name] == nil ? .sensitivityWithoutStatistics(layer: name) : .sensitivity(layer: name, shape: [1], values: [value]))
        }
        if let (name, metric) = outputMetrics.sorted(by: { $0.key < $1.key }).first(where: {
            layers[$0.key] == nil || $0.value.rows != $0.value.columns || $0.value.rows == 0 || !$0.value.scalars.allSatisfy(\.isFinite) }) {
            throw NNLayersError.statistics(layers[name] == nil ? .outputMetricWithoutStatistics(layer: name) : .outputMetric(layer: name, shape: [metric.rows, metric.columns]))
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
            if let metric = outputMetrics[name] {
                try writer.add(name + ".outputMetric", Tensor<Double>(shape: [metric.rows, metric.columns], scalars: metric.scalars))
            }
        }
        return writer
    }

    /// Writes the statistics file atomically.
    public func write(to url: URL) throws {
        try OutputFile.write([(try OutputFile(path: url.path), try writer().encoded())])
    }
}
