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
    /// What the run did that a user may not expect (statistics missing for some layers, nothing replaced).
    public var warnings: [CompressionWarning] = []
}

extension ModelCompressor {
    /// The names of the weights that `compress` considers, in file order: floating-point 2-D and
    /// 4-D weights with at least ``CompressionOptions/minimumParameters`` scalars, of a kind
    /// whose method is not `none`, matching `include` and not `exclude`.
    public func candidates(in file: SafetensorsFile) -> [String] {
        let passesFilters = nameFilter()
        return file.names.filter { name in
            let entry = file.entries[name]!
            guard entry.dtype.isFloatingPoint, entry.shape.count == 2 || entry.shape.count == 4 else { return false }
            if entry.shape.count == 2 && options.linear == .none { return false }
            if entry.shape.count == 4 && options.conv == .none { return false }
            if entry.shape.reduce(1, *) < options.minimumParameters { return false }
            return passesFilters(name)
        }
    }

    /// Checks the layer settings against the model's kernels before any work.
    ///
    /// - Throws: ``ModelCompressionError/unknownLayer(name:)`` or ``ModelCompressionError/invalidLayerSettings(name:_:)``.
    public func validateLayerSettings(for file: SafetensorsFile) throws {
        try validateLayerSettings(shapes: file.entries.mapValues(\.shape))
    }

    func validateLayerSettings(shapes: [String: [Int]]) throws {
        for name in options.layerSettings.keys.sorted() {
            guard let shape = shapes[name] else { throw ModelCompressionError.unknownLayer(name: name) }
            do { try options.layerSettings[name]!.validate(kernelShape: shape) } catch let error as NNLayersError {
                throw ModelCompressionError.invalidLayerSettings(name: name, error)
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
    ///   decompositions (an impossible fixed rank, for example);
    ///   ``ModelCompressionError/statisticsMatchNoLayer(statistics:candidates:)`` and
    ///   ``ModelCompressionError/budgetWithTensorTrain(_:)``.
    public func compress(_ file: SafetensorsFile, progress: (@Sendable (Int, Int, String) -> Void)? = nil) throws -> CompressedStateDict {
        var (plan, warnings) = try allocated(try self.plan(stateDict: [file]))
        let outcome = try compressFile(file, layers: plan.layers) { done, total, name, _ in progress?(done, total, name) }
        progress?(plan.candidateCount, plan.candidateCount, "writing")
        let totals = Self.finished(outcome.reports, candidates: plan.candidateCount, modelParameters: Self.parameterCount(of: file), warnings: &warnings)
        return CompressedStateDict(writer: outcome.writer, layers: outcome.reports, totals: totals, warnings: warnings)
    }

    /// Compresses every candidate layer of `file` into `output`, written while the layers are
    /// decomposed: the new file's tensors are written and flushed in the background in file order
    /// as soon as their place is settled (the tensors before the first replaced layer at once,
    /// then each layer's stack once the layers before it are done), by a
    /// `SafetensorsStagedWriter`, and the header last into room reserved for it. The
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
        var (plan, warnings) = try allocated(try self.plan(stateDict: [file]))
        let count = plan.candidateCount
        let outcome = try compressFile(file, layers: plan.layers, to: output, writing: { progress?(count, count, "writing") }) {
            done, total, name, _ in progress?(done, total, name)
        }
        let totals = Self.finished(outcome.reports, candidates: count, modelParameters: Self.parameterCount(of: file), warnings: &warnings)
        return (outcome.file, outcome.reports, totals, warnings)
    }

    /// ``compressFile(_:layers:emit:finished:)`` written into `output` as it goes, by a
    /// `SafetensorsStagedWriter`: the staged file, the names, bytes and elements of its
    /// tensors, and the reports. A layer's factors leave memory once they are written. `writing`
    /// is called after the last layer, before the header is written and the file flushed.
    func compressFile(
        _ file: SafetensorsFile, layers: [PlannedLayer], to output: OutputFile, writing: () -> Void = {},
        finished: @escaping @Sendable (Int, Int, String, Int) -> Void
    ) throws -> (file: StagedFile, names: [String], tensorBytes: Int, tensorElements: Int, reports: [LayerReport]) {
        let decompositions = layers.filter(\.isCandidate).count
        var all = SafetensorsWriter()
        all.metadata = file.metadata
        for name in file.names { try all.addRaw(name, from: file) }
        // Room for the input's header and, per decomposed layer, its stack's tensors and `stacks`
        // entry (under 1 KiB each for SVD, Tucker-2 and CP; a TT stack that outgrows it makes the
        // file be written again the ordinary way).
        let reserve = try all.headerByteCount + 2048 * decompositions + 1024
        let staging = try SafetensorsStagedWriter(output: output, reservedHeaderBytes: reserve)
        do {
            let outcome = try compressFile(file, layers: layers, emit: { try staging.append($0) }, finished: finished)
            writing()
            let staged = try staging.finish(metadata: outcome.writer.metadata)
            return (staged, staging.names, staging.tensorByteCount, staging.tensorElementCount, outcome.reports)
        } catch {
            staging.discard()
            throw error
        }
    }

    /// Elements of every tensor of a state dict.
    static func parameterCount(of file: SafetensorsFile) -> Int { file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) } }

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

    /// One file's planned layers (those of `file`, in file order) decomposed concurrently, and its
    /// new tensors laid out in file order.
    ///
    /// - Parameters:
    ///   - finished: Called as each layer finishes, one call at a time: layers done, layers to do,
    ///     the layer's name and its parameter count.
    ///   - emit: Called, one call at a time and in file order, with each run of the new file's
    ///     tensors (possibly empty) as soon as it is settled: before any layer is decomposed with
    ///     the tensors ahead of the first one a decomposition may replace, then as layers finish.
    ///     The runs are not kept: with `emit`, the returned writer holds only the metadata.
    func compressFile(
        _ file: SafetensorsFile, layers plans: [PlannedLayer],
        emit: (@Sendable (SafetensorsWriter) throws -> Void)? = nil,
        finished: @escaping @Sendable (Int, Int, String, Int) -> Void
    ) throws -> (writer: SafetensorsWriter, reports: [LayerReport]) {
        // Largest layers first, so that no worker is left with a large one while the other idles
        // at the end; the results are laid out in file order as they come.
        let sizes = plans.map { $0.isCandidate ? $0.parameters : nil }
        let jobs = plans.indices.filter { sizes[$0] != nil }.sorted { sizes[$0]! != sizes[$1]! ? sizes[$0]! > sizes[$1]! : $0 < $1 }
        let layout = Mutex(FileLayout(file: file, plans: plans, keepsTensors: emit == nil))
        let first = try layout.withLock { try $0.advance() }
        try emit?(first)
        let outcomes = try LayerWorkers.map(jobs.count, workers: LayerWorkers.count(layers: jobs.count, jobs: options.jobs)) { j in
            let planned = plans[jobs[j]]
            guard case let .stateDict(_, name, _) = planned.source else { preconditionFailure("a state dict's layers") }
            let outcome = file.entries[name]!.dtype == .float64 ? try compressLayer(planned, as: Double.self) : try compressLayer(planned, as: Float.self)
            try layout.withLock { layout in
                layout.outcomes[jobs[j]] = outcome
                layout.finishedCount += 1
                finished(layout.finishedCount, jobs.count, planned.name, planned.parameters)
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
            switch plan.decision {
            case let .settled(status): reports.append(plan.settledReport(status))
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
}
