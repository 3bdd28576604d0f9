import Foundation

/// Errors of whole-model compression: options and layer settings that do not fit the model.
public enum ModelCompressionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An option outside its range.
    case invalidOption(name: String, value: String, requirement: String)
    /// A layer setting names a tensor that the model does not hold.
    case unknownLayer(name: String)
    /// A layer setting does not fit its kernel.
    case invalidLayerSettings(name: String, reason: String)
    /// A TT replacement needs the rank of the node's input, which shape inference could not derive.
    case unknownInputRank(node: String)
    /// A new node or value name that the graph already uses.
    case nameCollision(name: String)
    /// A layer's new factors hold values that the weight's element type cannot represent (a
    /// float16 factor beyond 65504, or a bias corrected by a huge statistics mean).
    case unrepresentableFactors(layer: String, tensor: String, dataType: String, largest: Double)
    /// A budget without calibration statistics, and ``CompressionOptions/dataFree`` not set.
    case budgetWithoutStatistics
    /// Calibration statistics that name none of the candidate layers (samples of both lists).
    case statisticsMatchNoLayer(statistics: [String], candidates: [String])

    public var description: String {
        switch self {
        case let .invalidOption(name, value, requirement): return "\(name) \(value) must be \(requirement)"
        case let .unknownLayer(name): return "the layer configuration names \(name), which the model does not hold"
        case let .invalidLayerSettings(name, reason): return "layer configuration for \(name): \(reason)"
        case let .unknownInputRank(node):
            return "node \(node): a tensor-train replacement needs the rank of its input, which the graph's shapes do not give; pass --input-shape"
        case let .nameCollision(name): return "the name \(name) for a new node or value is already used in the graph"
        case .budgetWithoutStatistics:
            return "a budget without calibration statistics allocates ranks and factors from the weights alone, which can break a network "
                + "(measured: a text-orientation CNN fell from 98% to 79% accuracy, PP-OCR's recogniser to 100% CER); "
                + "give statistics of the network's inputs, or ask for data-free compression explicitly"
        case let .statisticsMatchNoLayer(statistics, candidates):
            return "the calibration statistics name none of the candidate layers (statistics for \(CompressionWarning.list(statistics)); "
                + "candidates \(CompressionWarning.list(candidates))): they were collected for another model or another version of it"
        case let .unrepresentableFactors(layer, tensor, dataType, largest):
            return "layer \(layer): its factor \(tensor) reaches \(largest), beyond what \(dataType) represents; the weights or the statistics' means are too large for that type"
        }
    }
}
