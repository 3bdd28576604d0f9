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
    /// Calibration statistics were given, but not for this layer, and
    /// ``CompressionOptions/uncalibratedLayers`` is ``UncalibratedLayers/skip``: it is left as it
    /// is and outside the budget.
    case skippedUncalibrated

    /// Whether the layer was replaced.
    public var isReplaced: Bool { self == .replaced }

    /// `"replaced"`, `"kept"` or `"skipped"`.
    public var kind: String {
        switch self {
        case .replaced: return "replaced"
        case .keptGrowth, .keptNonFloatBias, .keptByBudget: return "kept"
        case .skippedEmbedding, .skippedUncalibrated, .notCompressible: return "skipped"
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
        case .skippedUncalibrated: return "skipped: the calibration statistics do not name it (uncalibrated layers are left as they are)"
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
    /// Multiply-adds, before and after (equal when kept): for one sample of a state dict's
    /// layer, at the analysed input shape of an ONNX node.
    public var macsBefore: Int, macsAfter: Int
    /// FLOPs, before and after: twice ``macsBefore`` and ``macsAfter``.
    public var flopsBefore: Int { twice(macsBefore) }
    /// FLOPs after.
    public var flopsAfter: Int { twice(macsAfter) }
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

    /// `status` is `"replaced"`, `"kept"` or `"skipped"`, and `reason` says why; `flopsBefore` and
    /// `flopsAfter` are twice the multiply-adds.
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
        try c.encode(macsBefore, forKey: .macsBefore)
        try c.encode(macsAfter, forKey: .macsAfter)
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
    /// Multiply-adds of the replaced layers, before and after (per sample for a state dict; at
    /// the analysed input shapes for an ONNX graph).
    public var macsBefore: Int, macsAfter: Int
    /// Parameters of the whole model, before and after.
    public var modelParametersBefore: Int, modelParametersAfter: Int
    /// Multiply-adds of every analysed layer, before and after: the compressible ones and those
    /// that cannot be compressed (an ONNX graph's Conv, ConvTranspose, Gemm, MatMul and recurrent
    /// nodes, refused ones included; a state dict's 2-D and 4-D weights).
    public var modelMACsBefore: Int, modelMACsAfter: Int
    /// Parameters and multiply-adds of the candidate layers (those that could be replaced), before.
    public var compressibleParameters: Int, compressibleMACs: Int
    /// Seconds spent decomposing.
    public var seconds: Double

    /// The sums of `reports`, one per analysed layer; `candidates` of them could be replaced.
    init(_ reports: [LayerReport], candidates: Int, modelParameters: Int) {
        let replaced = reports.filter(\.status.isReplaced)
        let compressible = reports.filter { report in
            if case .notCompressible = report.status { return false }
            return report.status != .skippedEmbedding && report.status != .skippedUncalibrated
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
        macsBefore = sum(replaced, \.macsBefore)
        macsAfter = sum(replaced, \.macsAfter)
        modelParametersBefore = modelParameters
        modelParametersAfter = modelParameters - parametersBefore + parametersAfter
        modelMACsBefore = sum(reports, \.macsBefore)
        modelMACsAfter = sum(reports, \.macsAfter)
        compressibleParameters = sum(compressible, \.parametersBefore)
        compressibleMACs = sum(compressible, \.macsBefore)
        seconds = reports.reduce(0) { $0 + $1.seconds }
    }

    /// FLOPs of the replaced layers, before: twice ``macsBefore``.
    public var flopsBefore: Int { twice(macsBefore) }
    /// FLOPs of the replaced layers, after.
    public var flopsAfter: Int { twice(macsAfter) }
    /// FLOPs of every analysed layer, before: twice ``modelMACsBefore``.
    public var modelFlopsBefore: Int { twice(modelMACsBefore) }
    /// FLOPs of every analysed layer, after.
    public var modelFlopsAfter: Int { twice(modelMACsAfter) }
    /// FLOPs of the candidate layers, before: twice ``compressibleMACs``.
    public var compressibleFlops: Int { twice(compressibleMACs) }

    enum CodingKeys: String, CodingKey {
        case candidateLayers, replacedLayers, parametersBefore, parametersAfter, flopsBefore, flopsAfter, modelParametersBefore,
             modelParametersAfter, modelFlopsBefore, modelFlopsAfter, compressibleParameters, compressibleFlops, seconds
    }

    /// The counts with FLOPs (twice the multiply-adds), as earlier versions wrote them.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(candidateLayers, forKey: .candidateLayers)
        try c.encode(replacedLayers, forKey: .replacedLayers)
        try c.encode(parametersBefore, forKey: .parametersBefore)
        try c.encode(parametersAfter, forKey: .parametersAfter)
        try c.encode(flopsBefore, forKey: .flopsBefore)
        try c.encode(flopsAfter, forKey: .flopsAfter)
        try c.encode(modelParametersBefore, forKey: .modelParametersBefore)
        try c.encode(modelParametersAfter, forKey: .modelParametersAfter)
        try c.encode(modelFlopsBefore, forKey: .modelFlopsBefore)
        try c.encode(modelFlopsAfter, forKey: .modelFlopsAfter)
        try c.encode(compressibleParameters, forKey: .compressibleParameters)
        try c.encode(compressibleFlops, forKey: .compressibleFlops)
        try c.encode(seconds, forKey: .seconds)
    }
}

/// `2 × macs`, saturating: the FLOPs of a count of multiply-adds.
private func twice(_ macs: Int) -> Int {
    let (flops, overflow) = macs.multipliedReportingOverflow(by: 2)
    return overflow ? Int.max : flops
}
