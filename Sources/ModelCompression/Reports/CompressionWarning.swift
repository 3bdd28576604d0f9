/// Something a compression did that a user may not expect, with the names and numbers: the run
/// went on, but says so. The command line prints each as a `warning:` line.
///
/// ```swift
/// let result = try ModelCompressor(options: options).compress(onnx: model)
/// for warning in result.warnings { print("warning: \(warning)") }
/// ```
public enum CompressionWarning: Sendable, Equatable, CustomStringConvertible, Encodable {
    /// Calibration statistics were given, but not for these candidate layers (of `candidates`),
    /// and ``CompressionOptions/uncalibratedLayers`` is ``UncalibratedLayers/dataFree``: they are
    /// compressed from their weights alone.
    case statisticsMissing(layers: [String], candidates: Int)
    /// Calibration statistics were given, but not for these candidate layers (of `candidates`),
    /// and ``CompressionOptions/uncalibratedLayers`` is ``UncalibratedLayers/skip``: they are left
    /// as they are, outside the budget.
    case uncalibratedSkipped(layers: [String], candidates: Int)
    /// No layer was replaced (and nothing simplified): the output equals the input.
    case nothingReplaced(candidates: Int)
    /// A MAC budget over candidate layers whose input shapes are unknown: each is costed at one
    /// row (a linear layer) or the default input size (a convolution), so its MACs are not its own.
    case unknownShapes(layers: [String])
    /// ``CompressionOptions/attentionWeightedOutputs`` was asked for, but these query or key
    /// projections have no statistics for their partner (their output error is the plain one),
    /// or, when `layers` is empty, no candidate layer is a query or key projection that the
    /// graph shows meeting its partner: the option changes nothing.
    case attentionUnweighted(layers: [String])

    public var description: String {
        switch self {
        case let .statisticsMissing(layers, candidates):
            return "the statistics name \(candidates - layers.count) of the \(candidates) candidate layers; \(layers.count) are compressed "
                + "from their weights alone: \(Self.list(layers))"
        case let .uncalibratedSkipped(layers, candidates):
            return "the statistics name \(candidates - layers.count) of the \(candidates) candidate layers; \(layers.count) are left as they are "
                + "and outside the budget: \(Self.list(layers))"
        case let .nothingReplaced(candidates):
            return "no layer was replaced (\(candidates) candidate layers): the output computes what the input does"
        case let .unknownShapes(layers):
            return "the input shapes of \(layers.count) candidate layers are unknown, so the MAC budget costs each at one row or the "
                + "default input size, not at its own: \(Self.list(layers))"
        case let .attentionUnweighted(layers):
            if layers.isEmpty { return "attention weighting found no query or key projection meeting its partner in q·kᵀ: it changes nothing" }
            return "attention weighting: the statistics do not name the partners of \(layers.count) query or key projections, "
                + "whose output error stays the plain one: \(Self.list(layers))"
        }
    }

    /// The first names, then how many more.
    static func list(_ names: [String]) -> String {
        names.prefix(5).joined(separator: ", ") + (names.count > 5 ? " and \(names.count - 5) more" : "")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
