import NNLayers
import ONNX
import Synchronization
import TensorIO
import TensorModule

// The one pipeline: a reader builds the plan (`plan(onnx:)`, `plan(stateDict:)`), `allocate`
// spends a budget over it, `decompose` runs each candidate, and the writers of
// `ModelCompressor+ONNX.swift` and `ModelCompressor+StateDict.swift` emit the result.

extension ModelCompressor {
    /// The plan of an ONNX model: every `Conv`, `Gemm`, `MatMul`, `ConvTranspose`, recurrent and
    /// `Gather` node of its graph and subgraphs (``layers(in:estimateRanks:)``), the compressible
    /// ones to decompose, the others settled with the reason.
    ///
    /// - Throws: the errors of ``layers(in:estimateRanks:)``.
    public func plan(onnx model: ONNXModel) throws -> CompressionPlan {
        let layers = try self.layers(in: model).map { layer in
            PlannedLayer(name: layer.name, op: layer.op, shape: layer.shape ?? [], parameters: layer.parameters, macs: layer.macs,
                         decision: layer.refusal.map { .settled(.notCompressible($0)) } ?? .decompose(ranks: nil),
                         source: .graph(layer))
        }
        return CompressionPlan(layers, candidateCount: layers.filter(\.isCandidate).count)
    }

    /// The plan of one or more safetensors files (a state dict, or the shards of a checkpoint,
    /// in order): their candidate weights (``candidates(in:)``), file by file in file order,
    /// embedding tables and layers with an integer bias settled.
    ///
    /// - Throws: the errors of ``validateLayerSettings(for:)``, over the tensors of all files.
    public func plan(stateDict files: [SafetensorsFile]) throws -> CompressionPlan {
        var shapes: [String: [Int]] = [:]
        for file in files { for (name, entry) in file.entries { shapes[name] = entry.shape } }
        try validateLayerSettings(shapes: shapes)
        var layers: [PlannedLayer] = []
        for (index, file) in files.enumerated() {
            for name in candidates(in: file) {
                let entry = file.entries[name]!
                let bias = biasEntry(of: name, in: file)
                let decision: PlannedLayer.Decision
                if isSkippedEmbedding(name, shape: entry.shape) {
                    decision = .settled(.skippedEmbedding)
                } else if let bias, !bias.entry.dtype.isFloatingPoint {
                    decision = .settled(.keptNonFloatBias(bias: bias.name, dtype: bias.entry.dtype.rawValue))
                } else {
                    decision = .decompose(ranks: nil)
                }
                layers.append(PlannedLayer(name: Self.layerName(of: name), op: nil, shape: entry.shape, parameters: entry.shape.reduce(1, *),
                                           macs: nil, decision: decision, source: .stateDict(file: file, weight: name, bias: bias?.name),
                                           fileIndex: index))
            }
        }
        return CompressionPlan(layers, candidateCount: layers.count)
    }

    /// Spends ``CompressionOptions/budget`` over the plan's candidates: each gets the ranks the
    /// allocation chose, or is settled as ``LayerStatus/keptByBudget``. Without a budget the plan
    /// is unchanged. The candidates' rank options are computed concurrently. Call it once, on a
    /// plan fresh from its reader: a second call allocates over the layers the first one kept.
    ///
    /// - Throws: ``ModelCompressionError/budgetWithTensorTrain(_:)`` for a budget
    ///   with tensor-train layers, and the errors of building the layers and of the statistics.
    public func allocate(_ plan: inout CompressionPlan) throws {
        guard let budget = options.budget else { return }
        let candidates = plan.layers.indices.filter { plan.layers[$0].isCandidate }
        let layers = candidates.map { plan.layers[$0] }
        // Each layer is prepared in the type it is decomposed in, and kept for the decomposition
        // while the prepared layers fit in `preparedByteLimit`.
        let kept = Mutex(0)
        let entries = try LayerWorkers.map(layers.count, workers: LayerWorkers.count(layers: layers.count, jobs: options.jobs)) { k in
            func entry<Scalar: BLASScalar>(_: Scalar.Type) throws -> (BudgetCandidate, AnyPreparedLayer?) {
                let prepared = try self.prepared(layers[k], as: Scalar.self)
                let cost = try prepared.cost()
                let candidate = BudgetCandidate(name: layers[k].name, macs: Double(cost.macs * prepared.batch),
                                                parameters: Double(cost.parameters), options: try rankOptions(prepared))
                let keep = kept.withLock { total in
                    guard total + prepared.byteCount <= Self.preparedByteLimit else { return false }
                    total += prepared.byteCount
                    return true
                }
                return (candidate, keep ? AnyPreparedLayer(prepared) : nil)
            }
            return Self.decomposedInDouble(layers[k]) ? try entry(Double.self) : try entry(Float.self)
        }
        for (k, option) in zip(candidates, allocate(entries.map(\.0), budget: budget, allocation: options.allocation)) {
            plan.layers[k].decision = option.map { .decompose(ranks: $0.ranks) } ?? .settled(.keptByBudget)
        }
        for (k, entry) in zip(candidates, entries) where plan.layers[k].isCandidate { plan.layers[k].prepared = entry.1 }
    }

    /// The pipeline's first steps for every format: the statistics' warnings on a reader's plan,
    /// then the budget spent over it (``allocate(_:)``).
    func allocated(_ plan: CompressionPlan) throws -> (plan: CompressionPlan, warnings: [CompressionWarning]) {
        var plan = plan
        var warnings = try settleUncalibrated(&plan)
        // A MAC budget over graph nodes whose input shapes shape inference could not derive
        // counts them at one row or the default input size: say so, with their names.
        if case .macs = options.budget {
            let unknown = plan.layers.filter(\.isCandidate).compactMap { planned -> String? in
                guard case let .graph(layer) = planned.source, layer.site?.inputShape == nil else { return nil }
                return planned.name
            }
            if !unknown.isEmpty { warnings.append(.unknownShapes(layers: unknown)) }
        }
        // An attention weighting asked for and not applied, in part or at all.
        if options.attentionWeightedOutputs, let statistics = options.statistics {
            let paired = plan.layers.filter(\.isCandidate).compactMap { planned -> (String, String)? in
                guard case let .graph(layer) = planned.source, let partner = layer.site?.attentionPartner else { return nil }
                return (planned.name, partner.node)
            }
            let unweighted = paired.filter { statistics.layers[$0.1] == nil }.map(\.0)
            if paired.isEmpty || !unweighted.isEmpty { warnings.append(.attentionUnweighted(layers: unweighted)) }
        }
        try allocate(&plan)
        return (plan, warnings)
    }

    /// The pipeline's last step for every format: the sums of a run's reports (`candidates` of
    /// them could be replaced), and a ``CompressionWarning/nothingReplaced(candidates:)`` warning
    /// when no layer was replaced and nothing else changed.
    static func finished(_ reports: [LayerReport], candidates: Int, modelParameters: Int, changedOtherwise: Bool = false,
                         warnings: inout [CompressionWarning]) -> CompressionTotals {
        let totals = CompressionTotals(reports, candidates: candidates, modelParameters: modelParameters)
        if totals.replacedLayers == 0 && !changedOtherwise { warnings.append(.nothingReplaced(candidates: candidates)) }
        return totals
    }

    /// What the statistics say about the plan's layers to decompose: an error when they name none
    /// of them; those they leave out listed in a warning, and with
    /// ``UncalibratedLayers/skip`` settled as ``LayerStatus/skippedUncalibrated`` (before a budget
    /// is spent, so that it is spent over the calibrated layers only).
    ///
    /// - Throws: ``ModelCompressionError/statisticsMatchNoLayer(statistics:candidates:)``.
    func settleUncalibrated(_ plan: inout CompressionPlan) throws -> [CompressionWarning] {
        let names = plan.decompositionNames
        guard let statistics = options.statistics, !names.isEmpty else { return [] }
        let missing = names.filter { statistics.layers[$0] == nil }
        if missing.count == names.count {
            throw ModelCompressionError.statisticsMatchNoLayer(statistics: statistics.layers.keys.sorted(), candidates: names)
        }
        guard !missing.isEmpty else { return [] }
        switch options.uncalibratedLayers {
        case .dataFree:
            return [.statisticsMissing(layers: missing, candidates: names.count)]
        case .skip:
            for k in plan.layers.indices where plan.layers[k].isCandidate && statistics.layers[plan.layers[k].name] == nil {
                plan.layers[k].decision = .settled(.skippedUncalibrated)
            }
            return [.uncalibratedSkipped(layers: missing, candidates: names.count)]
        }
    }

    /// One planned layer decomposed in `Scalar` (at its allocated ranks, else by the options' rule),
    /// from the layer the budget prepared when the plan kept it: the compressed layer and its
    /// report (see ``compress(_:name:shape:ranks:)``).
    func decompose<Scalar: BLASScalar>(_ planned: PlannedLayer, as _: Scalar.Type) throws -> (CompressedLayer<Scalar>?, LayerReport) {
        let prepared = try planned.prepared?.prepared(as: Scalar.self) ?? self.prepared(planned, as: Scalar.self)
        var (compressed, report) = try compress(prepared, name: planned.name, shape: planned.shape, ranks: planned.ranks)
        report.op = planned.op
        return (compressed, report)
    }
}
