import NNLayers

/// What happened to one candidate layer.
public enum LayerStatus: Sendable, Equatable, CustomStringConvertible {
    /// The layer's tensors were replaced by its stack.
    case replaced
    /// The stack would have had at least as many parameters, or more FLOPs, than the layer.
    case keptGrowth(parameters: Int, originalParameters: Int, flops: Int, originalFLOPs: Int)
    /// A budget allocation left the layer as it is: other layers' rank reductions cost less output error per MAC.
    case keptByBudget
    /// The bias is not floating point, so no factorized stack can carry it unchanged.
    case keptNonFloatBias(bias: String, dtype: String)
    /// An ONNX node that cannot be replaced, and why.
    case notCompressible(LayerRefusal)
    /// The name is an embedding table's (``CompressionOptions/embeddingPattern``) and
    /// ``CompressionOptions/include`` does not name it.
    case skippedEmbedding

    /// Whether the layer was replaced.
    public var isReplaced: Bool { self == .replaced }

    /// `"replaced"`, `"kept"` or `"skipped"`.
    public var kind: String {
        switch self {
        case .replaced: return "replaced"
        case .keptGrowth, .keptNonFloatBias, .keptByBudget: return "kept"
        case .skippedEmbedding, .notCompressible: return "skipped"
        }
    }

    /// Why, in words, with the numbers.
    public var description: String {
        switch self {
        case .replaced: return "replaced"
        case let .keptGrowth(parameters, originalParameters, flops, originalFLOPs):
            return parameters >= originalParameters
                ? "kept: the stack would have \(parameters) parameters, not fewer than \(originalParameters)"
                : "kept: the stack would need \(flops) FLOPs, more than \(originalFLOPs)"
        case .keptByBudget: return "kept: the budget is better spent on other layers"
        case let .keptNonFloatBias(bias, dtype): return "kept: its bias \(bias) is \(dtype), not floating point"
        case let .notCompressible(refusal): return "skipped: \(refusal)"
        case .skippedEmbedding: return "skipped: an embedding table (indexed, not multiplied); name it in the include pattern to compress it"
        }
    }
}

/// One candidate layer of a state dict: what was done to it, its counts before and after, and why.
public struct LayerReport: Sendable, Equatable, Encodable {
    /// The layer's name: the weight's name without `.weight`.
    public var name: String
    /// The weight's shape.
    public var shape: [Int]
    /// The decomposition, `nil` when none ran.
    public var method: CompressionMethod?
    /// What happened.
    public var status: LayerStatus
    /// The ranks used.
    public var ranks: [Int]
    /// Parameters of the layer, and of what replaces it (equal when kept).
    public var parametersBefore: Int, parametersAfter: Int
    /// FLOPs for one sample, before and after (equal when kept).
    public var flopsBefore: Int, flopsAfter: Int
    /// `‖W − Ŵ‖_F / ‖W‖_F` of the kernel (0 when nothing ran).
    public var relativeError: Double
    /// Whether CP-ALS met its tolerance (`true` for the direct decompositions).
    public var converged: Bool
    /// CP-ALS iterations (0 for the direct decompositions).
    public var iterations: Int
    /// Seconds spent decomposing.
    public var seconds: Double
    /// Why the ranks were chosen.
    public var reasons: [String]
    /// The ONNX operator of the node (`nil` for a state dict's layer).
    public var op: String? = nil
    /// `‖(W − Ŵ) X‖ / ‖W X‖` on the calibration inputs, when the layer had statistics.
    public var outputError: Double? = nil

    enum CodingKeys: String, CodingKey {
        case name, shape, method, status, reason, ranks, parametersBefore, parametersAfter, flopsBefore, flopsAfter
        case macsBefore, macsAfter, relativeError, outputError, converged, iterations, seconds, reasons, op
    }

    /// `status` is `"replaced"`, `"kept"` or `"skipped"`, and `reason` says why; `macsBefore` and
    /// `macsAfter` are half the FLOP counts.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(shape, forKey: .shape)
        try c.encode(method?.rawValue ?? "none", forKey: .method)
        try c.encode(status.kind, forKey: .status)
        try c.encode(status.description, forKey: .reason)
        try c.encode(ranks, forKey: .ranks)
        try c.encode(parametersBefore, forKey: .parametersBefore)
        try c.encode(parametersAfter, forKey: .parametersAfter)
        try c.encode(flopsBefore, forKey: .flopsBefore)
        try c.encode(flopsAfter, forKey: .flopsAfter)
        try c.encode(flopsBefore / 2, forKey: .macsBefore)
        try c.encode(flopsAfter / 2, forKey: .macsAfter)
        try c.encodeIfPresent(op, forKey: .op)
        try c.encode(relativeError, forKey: .relativeError)
        try c.encode(outputError, forKey: .outputError)
        try c.encode(converged, forKey: .converged)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(reasons, forKey: .reasons)
    }
}

/// Sums over the replaced layers, the compressible layers and the whole model, side by side: a
/// ratio over the replaced layers alone flatters a model whose other layers were left as they were.
public struct CompressionTotals: Sendable, Equatable, Encodable {
    /// Candidate layers (2-D and 4-D floating-point weights that passed the filters).
    public var candidateLayers: Int
    /// Layers replaced.
    public var replacedLayers: Int
    /// Parameters of the replaced layers, before and after.
    public var parametersBefore: Int, parametersAfter: Int
    /// FLOPs of the replaced layers, before and after (per sample for a state dict; at the
    /// analysed input shapes for an ONNX graph).
    public var flopsBefore: Int, flopsAfter: Int
    /// Parameters of the whole model, before and after.
    public var modelParametersBefore: Int, modelParametersAfter: Int
    /// FLOPs of every analysed layer, before and after: the compressible ones and those that
    /// cannot be compressed (an ONNX graph's Conv, ConvTranspose, Gemm, MatMul and recurrent
    /// nodes, refused ones included; a state dict's 2-D and 4-D weights).
    public var modelFlopsBefore: Int, modelFlopsAfter: Int
    /// Parameters and FLOPs of the candidate layers (those that could be replaced), before.
    public var compressibleParameters: Int, compressibleFlops: Int
    /// Seconds spent decomposing.
    public var seconds: Double

    /// The sums of `reports`, one per analysed layer; `candidates` of them could be replaced.
    init(_ reports: [LayerReport], candidates: Int, modelParameters: Int) {
        let replaced = reports.filter(\.status.isReplaced)
        let compressible = reports.filter { report in
            if case .notCompressible = report.status { return false }
            return report.status != .skippedEmbedding
        }
        func sum(_ layers: [LayerReport], _ value: (LayerReport) -> Int) -> Int {
            layers.reduce(0) { total, layer in
                let (s, overflow) = total.addingReportingOverflow(value(layer))
                return overflow ? Int.max : s
            }
        }
        candidateLayers = candidates
        replacedLayers = replaced.count
        parametersBefore = sum(replaced, \.parametersBefore)
        parametersAfter = sum(replaced, \.parametersAfter)
        flopsBefore = sum(replaced, \.flopsBefore)
        flopsAfter = sum(replaced, \.flopsAfter)
        modelParametersBefore = modelParameters
        modelParametersAfter = modelParameters - parametersBefore + parametersAfter
        modelFlopsBefore = sum(reports, \.flopsBefore)
        modelFlopsAfter = sum(reports, \.flopsAfter)
        compressibleParameters = sum(compressible, \.parametersBefore)
        compressibleFlops = sum(compressible, \.flopsBefore)
        seconds = reports.reduce(0) { $0 + $1.seconds }
    }
}
