import Decompositions
import Foundation
import NNLayers
import Synchronization
import TensorIO
import TensorModule

extension ModelCompressor {
    /// The layer of weight `name` (with its bias) and one sample's input shape.
    func stateDictLayer<Scalar: BLASScalar>(_ file: SafetensorsFile, name: String, bias biasName: String?, as _: Scalar.Type) throws -> (Layer<Scalar>, [Int]) {
        let weight = try file.tensor(named: name, as: Scalar.self)
        let bias = try biasName.map { Array(try file.tensor(named: $0, as: Scalar.self).scalars) }
        if weight.order == 4 {
            let conv = try options.layerSettings[name, default: Conv2DSettings()].convolution(weight: weight, bias: bias)
            return (.conv2d(conv), [conv.inChannels, options.inputSize.height, options.inputSize.width])
        }
        let linear = try Linear(weight: Matrix(weight), bias: bias)
        return (.linear(linear), [linear.inFeatures])
    }

    /// One layer decomposed in `Scalar`: its report, its stack's tensors (encoded here, in the
    /// worker, in ``CompressionOptions/outputDType`` or the weight's own type) and its metadata entry.
    func compressLayer<Scalar: BLASScalar>(_ planned: PlannedLayer, as _: Scalar.Type) throws -> LayerOutcome {
        guard case let .stateDict(file, name, _) = planned.source else { preconditionFailure("a state dict's layer") }
        let (entry, prefix) = (file.entries[name]!, planned.name)
        let (compressed, report) = try decompose(planned, as: Scalar.self)
        guard let compressed, report.status.isReplaced else { return LayerOutcome(report: report, tensors: SafetensorsWriter(), stack: []) }
        var tensors = SafetensorsWriter()
        // The stack's `stacks` entry, keys in alphabetical order; each layer's object as
        // `JSONEncoder` writes it with sorted keys.
        var stack = JSONText()
        stack.beginObject()
        stack.key("layers")
        stack.beginArray()
        for (k, layer) in compressed.stack.layers.enumerated() {
            let layerPrefix = "\(prefix).\(k)"
            let dtype = options.outputDType ?? entry.dtype
            for (tensorName, tensor) in layer.tensors(prefix: layerPrefix) {
                // Finite in the type they are written in (a bias corrected by a huge mean, a factor past float16's 65504).
                let limit = dtype.largestFinite
                if let bad = tensor.scalars.first(where: { !$0.isFinite || abs(Double($0)) > limit }) {
                    throw ModelCompressionError.unrepresentableFactors(layer: prefix, tensor: tensorName, dataType: dtype.rawValue, largest: Double(bad))
                }
                try tensors.add(tensorName, tensor, dtype: dtype)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.userInfo[Layer<Scalar>.tensorNamePrefix] = layerPrefix
            stack.raw(try encoder.encode(layer))
        }
        stack.endArray()
        stack.key("method"); stack.value(compressed.method.rawValue)
        stack.key("name"); stack.value(prefix)
        stack.key("ranks"); stack.value(compressed.ranks)
        stack.key("relativeError"); stack.value(compressed.kernelRelativeError)
        stack.endObject()
        return LayerOutcome(report: report, tensors: tensors, stack: stack.bytes)
    }
}

/// One decomposed layer of a state dict: its report, its stack's tensors and its `stacks` entry
/// (JSON text; empty when the layer is kept).
struct LayerOutcome: Sendable {
    var report: LayerReport
    var tensors: SafetensorsWriter
    var stack: [UInt8]
}
