import Decompositions
import Foundation
import NNLayers
import Synchronization
import TensorIO
import TensorModule

/// The result of ``ModelCompressor/compress(_:progress:)``: the new state dict, ready to write,
/// and a report per candidate layer.
public struct CompressedStateDict: Sendable {
    /// The tensors of the new file, in the input's order, with its metadata plus `stacks`.
    public var writer: SafetensorsWriter
    /// One report per candidate layer, in file order.
    public var layers: [LayerReport]
    /// Sums over the replaced layers and the whole model.
    public var totals: CompressionTotals
}

extension ModelCompressor {
    /// The names of the weights that `compress` considers, in file order: floating-point 2-D and
    /// 4-D weights with at least ``CompressionOptions/minimumParameters`` scalars, of a kind
    /// whose method is not `none`, matching `include` and not `exclude`.
    public func candidates(in file: SafetensorsFile) -> [String] {
        let include = options.include.flatMap { try? Regex($0) }
        let exclude = options.exclude.flatMap { try? Regex($0) }
        return file.names.filter { name in
            let entry = file.entries[name]!
            guard entry.dtype.isFloatingPoint, entry.shape.count == 2 || entry.shape.count == 4 else { return false }
            if entry.shape.count == 2 && options.linear == .none { return false }
            if entry.shape.count == 4 && options.conv == .none { return false }
            if entry.shape.reduce(1, *) < options.minimumParameters { return false }
            if let include, name.firstMatch(of: include) == nil { return false }
            if let exclude, name.firstMatch(of: exclude) != nil { return false }
            return true
        }
    }

    /// Checks the layer settings against the model's kernels before any work.
    ///
    /// - Throws: ``ModelCompressionError/unknownLayer(name:)`` or ``ModelCompressionError/invalidLayerSettings(name:reason:)``.
    public func validateLayerSettings(for file: SafetensorsFile) throws {
        try validateLayerSettings(shapes: file.entries.mapValues(\.shape))
    }

    func validateLayerSettings(shapes: [String: [Int]]) throws {
        for name in options.layerSettings.keys.sorted() {
            guard let shape = shapes[name] else { throw ModelCompressionError.unknownLayer(name: name) }
            do { try options.layerSettings[name]!.validate(kernelShape: shape) } catch {
                throw ModelCompressionError.invalidLayerSettings(name: name, reason: "\(error)")
            }
        }
    }

    /// Compresses every candidate layer of `file`.
    ///
    /// Layers are decomposed concurrently (``CompressionOptions/jobs``); the new file's tensors
    /// keep the input's order. Tensors that are not replaced are not copied into memory: the
    /// writer streams them from `file` when it writes.
    ///
    /// - Parameters:
    ///   - file: The state dict.
    ///   - progress: Called as layers finish with the number done, the number of candidates and
    ///     the finished layer's name (from the workers' threads, one call at a time), and once
    ///     more at the end with `"writing"`.
    /// - Throws: the errors of ``validateLayerSettings(for:)``, of reading the tensors, and of the
    ///   decompositions (an impossible fixed rank, for example).
    public func compress(_ file: SafetensorsFile, progress: (@Sendable (Int, Int, String) -> Void)? = nil) throws -> CompressedStateDict {
        try validateLayerSettings(for: file)
        let names = candidates(in: file)
        let allocated = try stateDictBudget([(file, names)])
        let outcome = try compressFile(file, allocated: allocated) { done, total, name, _ in progress?(done, total, name) }
        progress?(names.count, names.count, "writing")
        let modelBefore = file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
        return CompressedStateDict(writer: outcome.writer, layers: outcome.reports,
                                   totals: Self.totals(outcome.reports, candidates: names.count, modelParameters: modelBefore))
    }

    /// Compresses every candidate layer of `file` into `output`, written while the layers are
    /// decomposed: the new file's tensors are written and flushed in the background in file order
    /// as soon as their place is settled (the tensors before the first replaced layer at once,
    /// then each layer's stack once the layers before it are done), by a
    /// ``TensorIO/SafetensorsStagedWriter``, and the header last into room reserved for it. The
    /// content equals ``compress(_:progress:)``'s writer; the header is padded with spaces to the
    /// reserved length.
    ///
    /// ```swift
    /// let file = try SafetensorsFile(contentsOf: URL(fileURLWithPath: "model.safetensors"))
    /// let result = try ModelCompressor(options: options).compress(file, to: try OutputFile(path: "small.safetensors"))
    /// try StagedFile.commit([result.file])
    /// ```
    ///
    /// - Returns: The staged output (commit it, alone or with other files), the reports and totals.
    /// - Throws: the errors of ``compress(_:progress:)`` and of writing; the temporary is removed.
    public func compress(
        _ file: SafetensorsFile, to output: OutputFile, progress: (@Sendable (Int, Int, String) -> Void)? = nil
    ) throws -> (file: StagedFile, layers: [LayerReport], totals: CompressionTotals, warnings: [CompressionWarning]) {
        try validateLayerSettings(for: file)
        let names = candidates(in: file)
        var warnings = try statisticsWarnings(candidates: names.map(Self.layerName(of:)))
        let allocated = try stateDictBudget([(file, names)])
        let outcome = try compressFile(file, allocated: allocated, to: output, writing: { progress?(names.count, names.count, "writing") }) {
            done, total, name, _ in progress?(done, total, name)
        }
        let modelBefore = file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let totals = Self.totals(outcome.reports, candidates: names.count, modelParameters: modelBefore)
        if totals.replacedLayers == 0 { warnings.append(.nothingReplaced(candidates: names.count)) }
        return (outcome.file, outcome.reports, totals, warnings)
    }

    /// ``compressFile(_:allocated:emit:finished:)`` written into `output` as it goes, by a
    /// ``TensorIO/SafetensorsStagedWriter``: the staged file, the names, bytes and elements of its
    /// tensors, and the reports. A layer's factors leave memory once they are written. `writing`
    /// is called after the last layer, before the header is written and the file flushed.
    func compressFile(
        _ file: SafetensorsFile, allocated: [String: [Int]]?, to output: OutputFile, writing: () -> Void = {},
        finished: @escaping @Sendable (Int, Int, String, Int) -> Void
    ) throws -> (file: StagedFile, names: [String], tensorBytes: Int, tensorElements: Int, reports: [LayerReport]) {
        var decompositions = 0
        for name in candidates(in: file) {
            if case .decompose = plan(name, in: file, allocated: allocated) { decompositions += 1 }
        }
        var all = SafetensorsWriter()
        all.metadata = file.metadata
        for name in file.names { try all.addRaw(name, from: file) }
        // Room for the input's header and, per decomposed layer, its stack's tensors and `stacks`
        // entry (under 1 KiB each for SVD, Tucker-2 and CP; a TT stack that outgrows it makes the
        // file be written again the ordinary way).
        let reserve = try all.headerByteCount + 2048 * decompositions + 1024
        let staging = try SafetensorsStagedWriter(output: output, reservedHeaderBytes: reserve)
        do {
            let outcome = try compressFile(file, allocated: allocated, emit: { try staging.append($0) }, finished: finished)
            writing()
            let staged = try staging.finish(metadata: outcome.writer.metadata)
            return (staged, staging.names, staging.tensorByteCount, staging.tensorElementCount, outcome.reports)
        } catch {
            staging.discard()
            throw error
        }
    }

    /// Sums of reports.
    static func totals(_ reports: [LayerReport], candidates: Int, modelParameters: Int) -> CompressionTotals {
        CompressionTotals(reports, candidates: candidates, modelParameters: modelParameters)
    }

    /// What one candidate weight of a file needs: a report already settled, or a decomposition.
    enum LayerPlan: Sendable {
        case settled(LayerReport)
        case decompose(name: String, bias: String?, prefix: String, ranks: [Int]?)
    }

    /// The layer's name of weight `name`: `P` for `P.weight`, the name itself otherwise.
    static func layerName(of name: String) -> String {
        name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
    }

    /// The bias tensor of weight `name` (`P.bias` for `P.weight`, of shape `[out]`), if any.
    func biasEntry(of name: String, in file: SafetensorsFile) -> (name: String, entry: SafetensorsFile.Entry)? {
        let biasName = Self.layerName(of: name) + ".bias"
        guard biasName != name, let entry = file.entries[biasName], entry.shape == [file.entries[name]!.shape[0]] else { return nil }
        return (biasName, entry)
    }

    /// Whether a candidate is an embedding table that ``CompressionOptions/include`` does not name.
    func isSkippedEmbedding(_ name: String, shape: [Int]) -> Bool {
        guard shape.count == 2, options.include == nil else { return false }
        return CompressionOptions.isEmbeddingName(name)
    }

    func plan(_ name: String, in file: SafetensorsFile, allocated: [String: [Int]]?) -> LayerPlan {
        let entry = file.entries[name]!
        let prefix = Self.layerName(of: name)
        let count = entry.shape.reduce(1, *)
        var report = LayerReport(name: prefix, shape: entry.shape, method: nil, status: .replaced, ranks: [],
                                 parametersBefore: count, parametersAfter: count, flopsBefore: 0, flopsAfter: 0,
                                 relativeError: 0, converged: true, iterations: 0, seconds: 0, reasons: [])
        if isSkippedEmbedding(name, shape: entry.shape) {
            report.status = .skippedEmbedding
            return .settled(report)
        }
        let bias = biasEntry(of: name, in: file)
        if let bias, !bias.entry.dtype.isFloatingPoint {
            report.status = .keptNonFloatBias(bias: bias.name, dtype: bias.entry.dtype.rawValue)
            return .settled(report)
        }
        if let allocated, allocated[prefix] == nil {
            report.status = .keptByBudget
            return .settled(report)
        }
        return .decompose(name: name, bias: bias?.name, prefix: prefix, ranks: allocated?[prefix] ?? nil)
    }

    /// One file's candidates decomposed (concurrently) and its new tensors laid out in file order.
    ///
    /// - Parameters:
    ///   - finished: Called as each layer finishes, one call at a time: layers done, layers to do,
    ///     the layer's name and its parameter count.
    ///   - emit: Called, one call at a time and in file order, with each run of the new file's
    ///     tensors (possibly empty) as soon as it is settled: before any layer is decomposed with
    ///     the tensors ahead of the first one a decomposition may replace, then as layers finish.
    ///     The runs are not kept: with `emit`, the returned writer holds only the metadata.
    func compressFile(
        _ file: SafetensorsFile, allocated: [String: [Int]]?,
        emit: (@Sendable (SafetensorsWriter) throws -> Void)? = nil,
        finished: @escaping @Sendable (Int, Int, String, Int) -> Void
    ) throws -> (writer: SafetensorsWriter, reports: [LayerReport]) {
        let plans = candidates(in: file).map { plan($0, in: file, allocated: allocated) }
        // Largest layers first, so that no worker is left with a large one while the other idles
        // at the end; the results are laid out in file order as they come.
        let sizes = plans.map { plan -> Int? in
            guard case let .decompose(name, _, _, _) = plan else { return nil }
            return file.entries[name]!.shape.reduce(1, *)
        }
        let jobs = plans.indices.filter { sizes[$0] != nil }.sorted { sizes[$0]! != sizes[$1]! ? sizes[$0]! > sizes[$1]! : $0 < $1 }
        let layout = Mutex(FileLayout(file: file, plans: plans, keepsTensors: emit == nil))
        let first = try layout.withLock { try $0.advance() }
        try emit?(first)
        let outcomes = try LayerWorkers.map(jobs.count, workers: LayerWorkers.count(layers: jobs.count, jobs: options.jobs)) { j in
            guard case let .decompose(name, bias, prefix, ranks) = plans[jobs[j]] else { preconditionFailure("jobs are decompositions") }
            let outcome = file.entries[name]!.dtype == .float64
                ? try compressLayer(file, name: name, bias: bias, prefix: prefix, ranks: ranks, as: Double.self)
                : try compressLayer(file, name: name, bias: bias, prefix: prefix, ranks: ranks, as: Float.self)
            try layout.withLock { layout in
                layout.outcomes[jobs[j]] = outcome
                layout.finishedCount += 1
                finished(layout.finishedCount, jobs.count, prefix, file.entries[name]!.shape.reduce(1, *))
                let run = try layout.advance()   // not inside `emit?(…)`, which skips its argument when `emit` is nil
                try emit?(run)
            }
            var kept = outcome
            if emit != nil { kept.tensors = SafetensorsWriter() }   // written (or queued) by `emit`
            return kept
        }
        let outcomeOf = Dictionary(uniqueKeysWithValues: zip(jobs, outcomes))
        var reports: [LayerReport] = []
        var stacks = JSONText()
        stacks.beginArray()
        for (k, plan) in plans.enumerated() {
            switch plan {
            case let .settled(report): reports.append(report)
            case .decompose:
                let outcome = outcomeOf[k]!
                reports.append(outcome.report)
                if outcome.report.status.isReplaced { stacks.raw(outcome.stack) }
            }
        }
        stacks.endArray()
        var writer = layout.withLock { $0.writer }
        precondition(layout.withLock { $0.position == file.names.count && $0.outcomes.isEmpty }, "every tensor is laid out")
        writer.metadata = file.metadata
        writer.metadata["stacks"] = stacks.text
        return (writer, reports)
    }

    /// The new file's tensors laid out in the input's order as decompositions finish: a replaced
    /// weight's stack takes its place and its bias disappears; every other tensor is copied.
    struct FileLayout: Sendable {
        let file: SafetensorsFile
        /// The plan index deciding each weight and bias of a decomposition.
        let decidedBy: [String: Int]
        /// Per decomposition, its tensors (weight, bias) not laid out yet.
        var unplaced: [Int: Int]
        let plans: [LayerPlan]
        /// Finished layers whose tensors are not all laid out yet.
        var outcomes: [Int: LayerOutcome] = [:]
        /// The layers finished so far.
        var finishedCount = 0
        /// The next input tensor to lay out.
        var position = 0
        /// Whether ``writer`` collects the runs (else they are only returned).
        let keepsTensors: Bool
        /// Every tensor laid out so far, when ``keepsTensors``.
        var writer = SafetensorsWriter()

        init(file: SafetensorsFile, plans: [LayerPlan], keepsTensors: Bool) {
            self.file = file
            self.plans = plans
            self.keepsTensors = keepsTensors
            var decidedBy: [String: Int] = [:], unplaced: [Int: Int] = [:]
            for (k, plan) in plans.enumerated() {
                guard case let .decompose(name, bias, _, _) = plan else { continue }
                decidedBy[name] = k
                if let bias { decidedBy[bias] = k }
                unplaced[k] = bias == nil ? 1 : 2
            }
            self.decidedBy = decidedBy
            self.unplaced = unplaced
        }

        /// Lays out the input's tensors from `position` up to the first whose layer has not
        /// finished, and returns them.
        mutating func advance() throws -> SafetensorsWriter {
            var run = SafetensorsWriter()
            let names = file.names
            while position < names.count {
                let name = names[position]
                if let k = decidedBy[name] {
                    guard let outcome = outcomes[k] else { break }
                    guard case let .decompose(weight, _, _, _) = plans[k] else { preconditionFailure("decided by a decomposition") }
                    if !outcome.report.status.isReplaced {
                        try run.addRaw(name, from: file)
                    } else if name == weight {
                        try run.append(contentsOf: outcome.tensors)
                    }
                    // A layer leaves once its weight and bias are both laid out (in either order).
                    unplaced[k]! -= 1
                    if unplaced[k] == 0 { outcomes[k] = nil }
                } else {
                    try run.addRaw(name, from: file)
                }
                position += 1
            }
            if keepsTensors { try writer.append(contentsOf: run) }
            return run
        }
    }

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

    /// With a budget: the ranks allocated to each eligible layer by layer name (a missing name is
    /// kept), over the candidates of every file given (all shards of a checkpoint). The layers'
    /// rank options are computed concurrently.
    func stateDictBudget(_ files: [(file: SafetensorsFile, names: [String])]) throws -> [String: [Int]]? {
        guard let budget = options.budget else { return nil }
        let layers = files.flatMap { file, names in
            names.compactMap { name -> (file: SafetensorsFile, name: String, bias: String?)? in
                guard case let .decompose(_, bias, _, _) = plan(name, in: file, allocated: nil) else { return nil }
                return (file, name, bias)
            }
        }
        let entries = try LayerWorkers.map(layers.count, workers: LayerWorkers.count(layers: layers.count, jobs: options.jobs)) { k in
            let (file, name, bias) = layers[k]
            let prefix = Self.layerName(of: name)
            let (layer, input) = try stateDictLayer(file, name: name, bias: bias, as: Float.self)
            let cost = try layer.cost(input: input)
            return BudgetCandidate(name: prefix, macs: Double(cost.flops) / 2, parameters: Double(cost.parameters),
                                   options: try rankOptions(layer, input: input, batch: 1, statistics: options.statistics?.layers[prefix]))
        }
        var result: [String: [Int]] = [:]
        for (entry, option) in zip(entries, allocate(entries, budget: budget, allocation: options.allocation)) {
            if let option { result[entry.name] = option.ranks }
        }
        return result
    }

    /// One layer decomposed in `Scalar`: its report, its stack's tensors (encoded here, in the
    /// worker, in ``CompressionOptions/outputDType`` or the weight's own type) and its metadata entry.
    func compressLayer<Scalar: BLASScalar>(
        _ file: SafetensorsFile, name: String, bias biasName: String?, prefix: String, ranks: [Int]?, as _: Scalar.Type
    ) throws -> LayerOutcome {
        let entry = file.entries[name]!
        let (layer, input) = try stateDictLayer(file, name: name, bias: biasName, as: Scalar.self)
        let (compressed, report) = try compress(layer, name: prefix, shape: entry.shape, input: input, ranks: ranks)
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
