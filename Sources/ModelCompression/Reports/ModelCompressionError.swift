import Foundation
import NNLayers

/// The options of ``CompressionOptions`` that ``ModelCompressor/init(options:)`` checks, by the
/// name a message gives them.
public enum CompressionOptionName: String, Sendable, Equatable {
    case rank, maxRank = "max rank", tolerance, maxIterations = "max iterations", minimumParameters = "minimum parameters", jobs
    case outputDType = "output dtype", inputSize = "input size", include = "include pattern", exclude = "exclude pattern", budget
    case rankMultiple = "rank multiple", minimumBudgetShare = "minimum budget share", layerWeights = "layer weight"
}

/// What an option of ``CompressionOptions`` must be: the payload of
/// ``ModelCompressionError/invalidOption(_:value:requirement:)``.
public enum OptionRequirement: Sendable, Equatable, CustomStringConvertible {
    /// 1 or more.
    case atLeastOne
    /// 0 or more.
    case nonNegative
    /// Finite and 0 or more.
    case finiteAndNonNegative
    /// Above 0.
    case positive
    /// A fraction `F` with `0 < F ≤ 1`.
    case fraction
    /// At least 0 and below 1.
    case belowOne
    /// One of these floating-point types.
    case floatingPointType([String])
    /// A regular expression that compiles; `error` is the compiler's message.
    case regularExpression(error: String)

    /// The requirement in words, after "must be".
    public var description: String {
        switch self {
        case .atLeastOne: return "at least 1"
        case .nonNegative: return "non-negative"
        case .finiteAndNonNegative: return "finite and non-negative"
        case .positive: return "positive"
        case .fraction: return "a fraction F with 0 < F ≤ 1"
        case .belowOne: return "at least 0 and below 1"
        case let .floatingPointType(types): return "a floating-point type (\(types.joined(separator: ", ")))"
        case let .regularExpression(error): return "a valid regular expression (\(error))"
        }
    }
}

/// Errors of whole-model compression: options and layer settings that do not fit the model.
public enum ModelCompressionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An option outside its range.
    case invalidOption(CompressionOptionName, value: String, requirement: OptionRequirement)
    /// A budget with the tensor-train method for this kind of layer (budgets allocate the ranks of
    /// SVD, Tucker-2 and CP).
    case budgetWithTensorTrain(LayerRefusal.LayerKind)
    /// A ``ShardAssignment`` outside `0 ≤ index < count`.
    case invalidShardAssignment(index: Int, count: Int)
    /// A sharded output directory that is the input checkpoint's.
    case outputDirectoryIsInput(path: String)
    /// Partial indexes that do not make one run's index: what was found, and what is required.
    case partialIndexes(PartialIndexProblem)
    /// A layer setting names a tensor that the model does not hold.
    case unknownLayer(name: String)
    /// A layer setting does not fit its kernel.
    case invalidLayerSettings(name: String, NNLayersError)
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
        case let .invalidOption(name, value, requirement): return "\(name.rawValue) \(value) must be \(requirement)"
        case let .budgetWithTensorTrain(kind):
            return "a budget allocates the ranks of SVD, Tucker-2 and CP; it cannot be used with tensor-train \(kind == .linear ? "linear layers" : "convolutions")"
        case let .invalidShardAssignment(index, count): return "shard assignment \(index)/\(count) must be INDEX/COUNT with 0 ≤ INDEX < COUNT"
        case let .outputDirectoryIsInput(path):
            return "output directory \(path) must be another directory than the input checkpoint's (its shards keep their names)"
        case let .partialIndexes(problem): return "partial indexes: \(problem)"
        case let .unknownLayer(name): return "the layer configuration names \(name), which the model does not hold"
        case let .invalidLayerSettings(name, error): return "layer configuration for \(name): \(error)"
        case let .unknownInputRank(node):
            return "node \(node): a tensor-train replacement needs the rank of its input, which the graph's shapes do not give; give the graph inputs' shapes"
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
