import Foundation
import NNLayers
import ONNX
import Synchronization
import TensorModule

/// The result of ``ModelCompressor/compress(onnx:progress:)``: the rewritten model, ready to write,
/// and a report per `Conv`/`Gemm`/`MatMul` node.
public struct CompressedONNXModel: Sendable {
    /// The model with every replaced node rewritten; everything else as it was read (unless
    /// ``CompressionOptions/simplify`` is set: see ``simplification``).
    public var model: ONNXModel
    /// One report per analysed node in graph order (``LayerStatus/notCompressible(_:)`` for
    /// those that cannot be replaced).
    public var layers: [LayerReport]
    /// Sums over the replaced layers and the whole model (FLOPs at the analysed input shapes).
    public var totals: CompressionTotals
    /// What ``CompressionOptions/simplify`` rewrote, when set.
    public var simplification: ONNXSimplification?
    /// What the run did that a user may not expect (statistics missing for some layers, nothing
    /// replaced).
    public var warnings: [CompressionWarning] = []
}

extension ModelCompressor {
    /// The key of the model metadata entry that describes every replaced node.
    public static let onnxMetadataKey = "tensor_decompositions"

    /// Compresses every compressible `Conv`, `Gemm` and `MatMul` node of an ONNX model (see
    /// ``layers(in:estimateRanks:)``), replacing each by standard nodes of the model's opset.
    ///
    /// The graph stays topologically sorted: each node's replacement takes its place. Weights
    /// that nothing reads any more are removed (with the `Constant` and `Identity` nodes that
    /// carried them). New weights have the replaced weight's element type (FLOAT16 stays FLOAT16;
    /// every weight is decomposed in `Double` and its factors rounded once, when written). `metadata_props["tensor_decompositions"]`
    /// holds one JSON entry per replaced node: method, ranks, kernel error, parameters and MACs
    /// before and after, and the new nodes' names.
    ///
    /// ```swift
    /// let model = try ONNXModel(contentsOf: URL(fileURLWithPath: "det.onnx"))
    /// var options = CompressionOptions()
    /// options.inputShapes = ["x": [1, 3, 640, 640]]
    /// let result = try ModelCompressor(options: options).compress(onnx: model)
    /// try result.model.write(to: URL(fileURLWithPath: "det.compressed.onnx"))
    /// ```
    ///
    /// - Parameters:
    ///   - model: The model.
    ///   - progress: Called as compressible nodes finish (they are decomposed
    ///     concurrently, see ``CompressionOptions/jobs``) with the number done, the number to do and
    ///     the node's name, one call at a time, and once more at the end with `"writing"`.
    /// - Throws: the errors of ``layers(in:estimateRanks:)``, of the decompositions, and
    ///   ``ModelCompressionError/nameCollision(name:)`` when a new name is already taken.
    public func compress(onnx model: ONNXModel, progress: (@Sendable (Int, Int, String) -> Void)? = nil) throws -> CompressedONNXModel {
        var (plan, warnings) = try allocated(try self.plan(onnx: model))
        var reports: [LayerReport] = []
        var replacements: [(index: Int, subgraph: [ONNXSubgraphStep], nodes: [ONNXNode], initializers: [ONNXTensor], released: [String])] = []
        var entries: [[String: Any]] = []
        // Decomposed concurrently (each in Double whatever the weight's type: the factors are
        // rounded once, when written in it, so a full-rank stack reproduces the node to that
        // type's precision); the graph is rewritten afterwards, in graph order.
        let jobs = plan.layers.filter(\.isCandidate)
        let done = Mutex(0)
        let outcomes = try LayerWorkers.map(jobs.count, workers: LayerWorkers.count(layers: jobs.count, jobs: options.jobs)) { j in
            let outcome = try compressNode(jobs[j])
            done.withLock { count in
                count += 1
                progress?(count, jobs.count, jobs[j].name)
            }
            return outcome
        }
        var next = 0
        for planned in plan.layers {
            guard case let .graph(layer) = planned.source, case .decompose = planned.decision, let site = layer.site else {
                if case let .settled(status) = planned.decision { reports.append(planned.settledReport(status)) }
                continue
            }
            let outcome = outcomes[next]
            next += 1
            let report = outcome.report
            reports.append(report)
            guard let emitted = outcome.emitted, report.status.isReplaced else { continue }
            replacements.append((layer.nodeIndex, layer.subgraph, emitted.nodes, emitted.initializers,
                                 [site.weightName] + (site.biasName.map { [$0] } ?? []) + emitted.replacedInputs))
            entries.append([
                "node": layer.name, "op": layer.op, "method": report.method?.rawValue ?? "", "ranks": report.ranks,
                "kernelError": report.relativeError, "parametersBefore": report.parametersBefore, "parametersAfter": report.parametersAfter,
                "macsBefore": report.macsBefore, "macsAfter": report.macsAfter, "nodes": emitted.nodes.map(\.name),
            ])
        }
        progress?(plan.candidateCount, plan.candidateCount, "writing")
        var graph = model.graph
        try checkNames(replacements.flatMap { $0.nodes }, replacements.flatMap { $0.initializers }, in: graph)
        // Subgraphs first, the deepest first: a replacement changes the node indices of its own
        // graph only, which the paths of deeper subgraphs and of this graph's nodes go through.
        // A subgraph's new weights are its own initializers; what it no longer reads from the
        // graphs around it is removed at the end, when nothing else reads it.
        // A body's released weights may come from the graphs around it (a folded constant's source):
        // what it no longer reads from outside goes up, to every enclosing body and the main graph.
        let bySubgraph = Dictionary(grouping: replacements, by: \.subgraph)
        let enclosing = Set(bySubgraph.keys.flatMap { path in (1...max(path.count, 1)).map { Array(path.prefix($0)) } })
        var escaped = Set<String>()
        for path in enclosing.sorted(by: { $0.count > $1.count }) where !path.isEmpty {
            guard var body = graph.subgraph(at: path) else { continue }
            for replacement in (bySubgraph[path] ?? []).sorted(by: { $0.index > $1.index }) {
                body.replaceNode(at: replacement.index, with: replacement.nodes, initializers: replacement.initializers)
            }
            escaped.formUnion(body.removeUnused(Set((bySubgraph[path] ?? []).flatMap(\.released)).union(escaped)))
            graph.setSubgraph(body, at: path)
        }
        for replacement in (bySubgraph[[]] ?? []).sorted(by: { $0.index > $1.index }) {
            graph.replaceNode(at: replacement.index, with: replacement.nodes, initializers: replacement.initializers)
        }
        graph.removeUnused(Set(replacements.flatMap(\.released)).union(escaped))
        let simplification = options.simplify ? try graph.simplify(opset: model.opsetVersion) : nil
        var result = model
        result.graph = graph
        if !entries.isEmpty {
            var all: [Any] = []
            if let old = model.metadata[Self.onnxMetadataKey], let data = old.data(using: .utf8),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let nodes = object["nodes"] as? [Any] {
                all = nodes
            }
            let document: [String: Any] = ["version": 1, "nodes": all + entries]
            let json = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
            result.setMetadata(String(decoding: json, as: UTF8.self), forKey: Self.onnxMetadataKey)
        }
        var totals = Self.finished(reports, candidates: plan.candidateCount, modelParameters: Self.parameterCount(of: model.graph),
                                   changedOtherwise: !(simplification?.isEmpty ?? true), warnings: &warnings)
        // Counted in the written graph: a source that several replaced weights were computed from
        // is removed once, and simplification folds parameters too.
        totals.modelParametersAfter = Self.parameterCount(of: result.graph)
        return CompressedONNXModel(model: result, layers: reports, totals: totals, simplification: simplification, warnings: warnings)
    }

    /// Elements of every floating-point constant (initializers and `Constant` nodes) of the graph
    /// and of its subgraphs.
    public static func parameterCount(of graph: ONNXGraph) -> Int {
        ([graph] + graph.subgraphs().map(\.graph)).reduce(0) { total, g in
            total + g.constants().values.filter { $0.identities.isEmpty && $0.tensor.dataType.isFloatingPoint }
                .reduce(0) { $0 + ((try? $1.tensor.elementCount()) ?? 0) }
        }
    }

    /// One sample's input shape and the sample count of a site, for costs.
    func costInput<Scalar: BLASScalar>(_ site: GraphLayer.Site, _ built: Layer<Scalar>) -> (input: [Int], batch: Int) {
        switch built {
        case let .conv2d(conv):
            // A stand-in is costed at its positions; its input here only has to fit its kernel.
            if site.proxy != nil {
                return ([conv.inChannels, conv.dilation.height * (conv.kernelSize.height - 1) + 1, conv.dilation.width * (conv.kernelSize.width - 1) + 1],
                        site.inputShape?.first ?? 1)
            }
            if let x = site.inputShape, x.count == 4 { return (Array(x.dropFirst()), x[0]) }
            // Unknown shapes (a dynamic dimension inside a subgraph): the default input size,
            // at least the dilated kernel; a 1-D convolution's height is 1.
            let extent = { (k: Int, d: Int) in d * (k - 1) + 1 }
            let height = site.spatialRank == 1 ? 1 : max(options.inputSize.height, extent(conv.kernelSize.height, conv.dilation.height))
            return ([conv.inChannels, height, max(options.inputSize.width, extent(conv.kernelSize.width, conv.dilation.width))], 1)
        case let .linear(linear):
            return (site.inputShape ?? [linear.inFeatures], 1)
        default: preconditionFailure("graph sites are convolutions or linear layers")
        }
    }

    /// One planned node decomposed in `Double` and, when replaced, its new nodes.
    func compressNode(_ planned: PlannedLayer) throws -> (report: LayerReport, emitted: ONNXStackEmitter?) {
        guard case let .graph(layer) = planned.source, let site = layer.site else { preconditionFailure("graph candidates have a site") }
        var (compressed, report) = try decompose(planned, as: Double.self)
        // A recurrent node's report counts its whole cost: the recurrence R·h, which stays, beside
        // the input projection that the decomposition costed.
        if case .recurrent = site.kind, let whole = layer.macs, whole > report.macsBefore {
            let kept = whole - report.macsBefore
            report.macsBefore = whole
            report.macsAfter = report.macsAfter > Int.max - kept ? Int.max : report.macsAfter + kept
        }
        guard let compressed, report.status.isReplaced else { return (report, nil) }
        var emitter = ONNXStackEmitter(base: layer.name, method: compressed.method, dataType: site.weight.tensor.dataType, site: site)
        try emitter.emit(compressed.stack, rank: site.inputShape?.count)
        // Finite in the type they are written in: factors computed in Double may not fit float16
        // (or Float, after a bias correction by a huge mean).
        for tensor in emitter.initializers where tensor.dataType.isFloatingPoint {
            let values = try tensor.tensor(as: Double.self).scalars
            if let bad = values.first(where: { !$0.isFinite || abs($0) > tensor.dataType.largestFinite }) {
                throw ModelCompressionError.unrepresentableFactors(layer: layer.name, tensor: tensor.name, dataType: "\(tensor.dataType)", largest: bad)
            }
        }
        return (report, emitter)
    }

    /// Throws when a new node or value name is already used in the graph.
    func checkNames(_ nodes: [ONNXNode], _ initializers: [ONNXTensor], in main: ONNXGraph) throws {
        // Subgraphs share the main graph's namespace (they read outer values by name).
        var used = Set<String>(), replacedOutputs = Set<String>()
        for graph in [main] + main.subgraphs().map(\.graph) {
            used.formUnion(graph.nodes.map(\.name))
            for node in graph.nodes { used.formUnion(node.outputs) }
            used.formUnion(graph.initializers.map(\.name))
            used.formUnion(graph.inputs.map(\.name))
            replacedOutputs.formUnion(graph.nodes.flatMap(\.outputs))
        }
        for node in nodes {
            guard used.insert(node.name).inserted else { throw ModelCompressionError.nameCollision(name: node.name) }
            for output in node.outputs where !replacedOutputs.contains(output) {
                guard used.insert(output).inserted else { throw ModelCompressionError.nameCollision(name: output) }
            }
        }
        for tensor in initializers {
            guard used.insert(tensor.name).inserted else { throw ModelCompressionError.nameCollision(name: tensor.name) }
        }
    }
}
