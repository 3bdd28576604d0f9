/// What is wrong with calibration statistics: the payload of ``NNLayersError/statistics(_:)``,
/// with the values that show it.
public indirect enum StatisticsProblem: Sendable, Equatable, CustomStringConvertible {
    /// A convolution of `layerGroups` groups given statistics of `statisticsGroups`.
    case groupCount(layer: String, layerGroups: Int, statisticsGroups: Int)
    /// A layer that reads `needed` entries per input vector (`perChannel` per input channel of a
    /// convolution) given statistics of `found`.
    case dimension(layer: String, needed: Int, perChannel: Int, found: Int)
    /// A count that is negative or not finite, or not one mean and one second moment per group.
    case parts(count: Double, means: Int, grams: Int)
    /// Means of these lengths and second moments of these shapes: they do not agree.
    case partShapes(meanLengths: [Int], gramShapes: [[Int]])
    /// A mean or second-moment entry is NaN or infinite.
    case nonFiniteEntry
    /// Group `group`'s `E[x²]` of input `input` is below its squared mean (or negative).
    case negativeVariance(group: Int, input: Int, secondMoment: Double, mean: Double)
    /// Group `group`'s second-moment entry `(row, column)` exceeds `√(G_ii·G_jj)`: the matrix is
    /// not positive semidefinite.
    case notSemidefinite(group: Int, row: Int, column: Int, entry: Double, bound: Double)
    /// Statistics of `groups` groups of `dimension` entries merged with `otherGroups` of `otherDimension`.
    case unmergeable(groups: Int, dimension: Int, otherGroups: Int, otherDimension: Int)
    /// An activation (flat index `index`) is NaN or infinite.
    case nonFiniteActivation(index: Int)
    /// A statistics file has `LAYER.count` without `LAYER.mean` and `LAYER.gram`.
    case missingTensors(layer: String)
    /// A statistics file's `LAYER.mean` and `LAYER.gram` are not `[g, d]` and `[g, d, d]`.
    case tensorShapes(layer: String, mean: [Int], gram: [Int])
    /// A sensitivity for `layer`, which has no statistics.
    case sensitivityWithoutStatistics(layer: String)
    /// A sensitivity of `layer` that is not one finite, non-negative number (its shape and first values).
    case sensitivity(layer: String, shape: [Int], values: [Double])
    /// An output metric for `layer`, which has no statistics.
    case outputMetricWithoutStatistics(layer: String)
    /// An output metric of `layer` that is not a square, finite matrix (its shape), or that does
    /// not match the layer's outputs (`outputs`).
    case outputMetric(layer: String, shape: [Int], outputs: Int? = nil)
    /// An output metric for a layer that is not a linear one (convolutions take none).
    case outputMetricOfConvolution(layer: String)
    /// A problem of the statistics a file holds for `layer`.
    case inLayer(String, StatisticsProblem)

    /// The problem in one line.
    public var description: String {
        switch self {
        case let .groupCount(layer, layerGroups, statisticsGroups):
            return "\(layer) has \(layerGroups) groups, the statistics \(statisticsGroups)"
        case let .dimension(layer, needed, perChannel, found):
            return "\(layer) needs \(needed) entries per input vector (or \(perChannel) per channel), the statistics have \(found)"
        case let .parts(count, means, grams):
            return "count \(count) with \(means) means and \(grams) Gram matrices"
        case let .partShapes(meanLengths, gramShapes):
            return "means of lengths \(meanLengths) and Gram matrices \(gramShapes) do not agree"
        case .nonFiniteEntry:
            return "a mean or Gram entry is not finite"
        case let .negativeVariance(group, input, secondMoment, mean):
            return "group \(group): E[x²] of input \(input) is \(secondMoment) with mean \(mean); a second moment is at least the squared mean"
        case let .notSemidefinite(group, row, column, entry, bound):
            return "group \(group): Gram entry (\(row), \(column)) = \(entry) exceeds √(G_ii·G_jj) = \(bound); the matrix is not positive semidefinite"
        case let .unmergeable(groups, dimension, otherGroups, otherDimension):
            return "cannot merge \(groups) groups of dimension \(dimension) with \(otherGroups) of \(otherDimension)"
        case let .nonFiniteActivation(index):
            return "activation \(index) is not finite"
        case let .missingTensors(layer):
            return "\(layer): \(layer).count without \(layer).mean and \(layer).gram"
        case let .tensorShapes(layer, mean, gram):
            return "\(layer): mean \(mean) and gram \(gram) must be [g, d] and [g, d, d]"
        case let .sensitivityWithoutStatistics(layer):
            return "\(layer).sensitivity without \(layer).count: a sensitivity belongs to a layer with statistics"
        case let .sensitivity(layer, shape, values):
            return "\(layer).sensitivity: shape \(shape), values \(values); must be [1], finite and non-negative"
        case let .outputMetricWithoutStatistics(layer):
            return "\(layer).outputMetric without \(layer).count: an output metric belongs to a layer with statistics"
        case let .outputMetric(layer, shape, outputs):
            if let outputs { return "\(layer).outputMetric: shape \(shape) does not match the layer's \(outputs) outputs ([\(outputs), \(outputs)])" }
            return "\(layer).outputMetric: shape \(shape); must be a square matrix of finite values"
        case let .outputMetricOfConvolution(layer):
            return "\(layer).outputMetric: output metrics apply to Gemm and MatMul layers; \(layer) is a convolution (compress --no-output-metrics ignores the file's metrics)"
        case let .inLayer(layer, problem):
            return "\(layer): \(problem)"
        }
    }
}
