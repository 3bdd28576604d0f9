import ArgumentParser
import Foundation
import TensorDecompositions

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the layers of a model by factorized stacks and write a new model (ONNX or safetensors).",
        discussion: """
            An .onnx model: every Conv, Gemm and MatMul node with a constant weight is a candidate (see inspect for \
            why a node is not), read with its stride, padding, dilation and groups, and replaced by standard ONNX \
            nodes (1×1 convolutions by two 1×1 convolutions under cp and tucker2); the output is an .onnx file that \
            onnxruntime runs as it is, with metadata_props["tensor_decompositions"] describing every replacement. \
            Dynamic input dimensions need --input-shape. \
            A .safetensors state dict: every 4-D weight is a conv kernel (OIHW), every 2-D weight a linear layer \
            (out, in); embedding tables (names such as embeddings, embed_tokens, wte, wpe) are skipped unless \
            --include names them. A replaced weight P.weight (and P.bias) becomes the stack's tensors P.0.weight, \
            P.1.weight, … (the state-dict names of a PyTorch nn.Sequential put in the layer's place); \
            __metadata__["stacks"] describes every stack. All other tensors are copied unchanged. Conv settings \
            come from --layer-config (defaults: stride 1, padding k//2, dilation 1, groups 1). \
            A sharded checkpoint (a model.safetensors.index.json, or a directory holding one): --output is a \
            directory; each output shard has its input's name and the index is rewritten. Shards are compressed one \
            after the other in bounded memory; with --shard INDEX/COUNT only every COUNT-th shard from INDEX, with a \
            partial index for merge-index. Layers are decomposed on all cores (--jobs).
            """)

    @Argument(help: "The model: a .onnx or .safetensors file, a model.safetensors.index.json, or a directory holding one.") var model: String
    @Option(help: "The output: a file of the model's format (.onnx or .safetensors), or a directory for a sharded checkpoint.") var output: String
    @Option(help: "How to decompose 4-D weights.") var conv: CompressionOptions.ConvMethod = .tucker2
    @Option(help: "How to decompose 2-D weights.") var linear: CompressionOptions.LinearMethod = .svd
    @Option(help: "A fixed rank for every layer (CP rank; Tucker-2 uses it for both modes; SVD rank).") var rank: Int?
    @Option(help: "vbmf, energy:F, params:F, flops:F or error:F.") var rankSelection: LayerRankSelection = .vbmf
    @Option(help: "The largest TT rank (tt).") var maxRank: Int?
    @Option(help: "TT relative accuracy ε (tt).") var tolerance: Double?
    @Option(help: "CP-ALS iteration limit.") var maxIterations: Int = 100
    @Option(help: "Leave weights with fewer parameters unchanged.") var minParameters: Int = 1024
    @Option(help: "Only weights whose name matches this regular expression (embedding tables too).") var include: String?
    @Option(help: "Skip weights whose name matches this regular expression.") var exclude: String?
    @Option(help: "JSON object keyed by weight name: {\"stride\": [sh, sw], \"padding\": [t, b, l, r], \"dilation\": [dh, dw], \"groups\": g}.")
    var layerConfig: String?
    @Option(help: "Input height,width of every conv of a state dict, for FLOP counts.") var inputSize: Size2D = Size2D(224, 224)
    @Option(help: "NAME=d0,d1,… : the shape of an ONNX graph input (repeatable; NAME= for a scalar), for shapes and MACs.") var inputShape: [InputShape] = []
    @Option(help: "Calibration statistics (safetensors from Scripts/calibrate.sh): the layers they name are compressed data-aware.") var statistics: String?
    @Option(help: "macs:F or params:F: keep this fraction of the compressible layers' MACs or parameters, ranks allocated across layers.") var budget: CompressionBudget?
    @Flag(help: "Allow --budget without --statistics: ranks and factors from the weights alone (can break a network; see the error without it).")
    var dataFree = false
    @Option(help: "With --statistics: what to do with candidate layers they do not name (an If branch no calibration input took): skip them (left as they are, outside the budget), or compress them data-free (from their weights alone, counted in the budget; can break the path through them).")
    var uncalibrated: UncalibratedLayers = .skip
    @Flag(help: "Write the output even when no layer was replaced (a warning instead of an error).") var allowNoChange = false
    @Option(help: "How --budget is shared: greedy (least normalised output error per MAC) or uniform (the same fraction per layer).") var allocation: BudgetAllocation = .greedy
    @Option(help: "JSON object of per-layer weights of the normalised error in the greedy allocation (default: the end-to-end sensitivities in --statistics, when it has them).")
    var layerWeights: String?
    @Flag(help: "Do not correct the mean shift in the biases (data-aware compression).") var noBiasCorrection = false
    @Option(help: "Data-aware: δ in the input metric C + δ·tr(C)/d·I, relative to its mean eigenvalue (larger trusts the calibration data less); an output metric is damped alike.")
    var damping: Double?
    @Flag(help: "Data-aware: do not weight the output error of a Gemm or MatMul that a LayerNorm reads by the norm's scale (the default does; see the report's reasons).")
    var noNormWeighting = false
    @Flag(help: "Data-aware: weight the output error of a query or key projection by the attention logits it forms with its partner, from the partner's statistics (off by default: it lowered MiniLM's cosine; see Performance.md).")
    var attentionWeighting = false
    @Flag(help: "Data-aware: ignore the end-to-end output metrics that --statistics holds (calibrate.sh measures them for Gemm and MatMul layers; the default weights each such layer's output error by it).")
    var noOutputMetrics = false
    @Flag(help: "Use LAPACK's exact SVD for every SVD layer (default: block Krylov for large matrices at small ranks).") var exact = false
    @Option(help: "Write the report to FILE.json or FILE.md.") var report: String?
    @Flag(help: "Replace a layer even when its stack has more parameters or FLOPs.") var allowGrowth = false
    @Flag(help: "ONNX: also fold elementwise scales, shifts and BatchNormalization into convolutions and Gemm and shorten hard-swish (see simplify).") var simplify = false
    @Flag(help: "Allow --output to be the input model itself (it is replaced only when everything succeeded).") var inPlace = false
    @Option(help: "The element type of a state dict's factors: float32, float16, bfloat16 or float64 (default: each weight's own).") var dtype: DType?
    @Option(help: "Layers decomposed at once, one BLAS thread each (default: the number of cores).") var jobs: Int?
    @Option(help: "INDEX/COUNT: compress only the sharded checkpoint's shards INDEX, INDEX+COUNT, … and write a partial index (see merge-index).")
    var shard: ShardAssignment?
    @Flag(help: "Print one JSON document on standard output.") var json = false
    @Flag(help: "No progress bar.") var quiet = false

    var isSharded: Bool { ShardedSafetensors.isSharded(model) }

    /// The files the run reads besides the model's own data: the model, statistics, layer weights
    /// and configuration. No output may be one of them.
    var readFiles: [String] { [model, statistics, layerWeights, layerConfig].compactMap { $0 } }

    func validate() throws {
        // Ranges of the library's options are checked by ModelCompressor(options:), once; here only
        // what concerns the command line (files, formats, flag combinations).
        if let report, !(report.hasSuffix(".json") || report.hasSuffix(".md")) {
            throw ValidationError("--report \(report): the file name must end in .json or .md")
        }
        if isONNX(model) && dtype != nil { throw ValidationError("--dtype applies to state dicts; an ONNX model's factors keep each weight's element type") }
        if shard != nil && !isSharded { throw ValidationError("--shard applies to sharded checkpoints (a *.safetensors.index.json or a directory)") }
        if isSharded && (inPlace || output.hasSuffix(".safetensors") || isONNX(output)) {
            throw ValidationError("--output \(output): a sharded checkpoint is written to a directory (not --in-place, not a single file)")
        }
        if isONNX(model) != isONNX(output) {
            throw ValidationError("--output \(output) must have the model's format: \(isONNX(model) ? ".onnx" : "not .onnx") like \(model)")
        }
        if !isONNX(model) && !inputShape.isEmpty { throw ValidationError("--input-shape applies to ONNX models") }
        if simplify && !isONNX(model) { throw ValidationError("--simplify applies to ONNX models") }
        if isONNX(model) && layerConfig != nil { throw ValidationError("--layer-config applies to state dicts; an ONNX graph states its conv settings") }
        if budget != nil && rank != nil { throw ValidationError("give --budget or --rank, not both") }
        if dataFree && statistics != nil { throw ValidationError("--data-free and --statistics contradict each other") }
        if uncalibrated != .skip && statistics == nil {
            throw ValidationError("--uncalibrated \(uncalibrated.rawValue) applies to data-aware compression: give --statistics (the layers they do not name are the uncalibrated ones)")
        }
        if let damping, !(damping.isFinite && damping >= 0) { throw ValidationError("--damping \(damping) must be finite and at least 0") }
        for (flag, given) in [("--no-norm-weighting", noNormWeighting), ("--attention-weighting", attentionWeighting), ("--no-output-metrics", noOutputMetrics)] where given && statistics == nil {
            throw ValidationError("\(flag) applies to data-aware compression: give --statistics (without them no output error is weighted)")
        }
        if damping != nil && statistics == nil {
            throw ValidationError("--damping applies to data-aware compression: give --statistics (without them there is no input metric to damp)")
        }
    }

    /// The library's options from the command line.
    func options() throws -> CompressionOptions {
        var options = CompressionOptions()
        (options.conv, options.linear, options.rank, options.rankSelection) = (conv, linear, rank, rankSelection)
        (options.maxRank, options.tolerance, options.maxIterations) = (maxRank, tolerance, maxIterations)
        (options.minimumParameters, options.include, options.exclude) = (minParameters, include, exclude)
        (options.inputSize, options.allowGrowth) = (inputSize, allowGrowth)
        options.inputShapes = try InputShape.dictionary(inputShape)
        (options.budget, options.allocation) = (budget, allocation)
        options.dataAware.biasCorrection = !noBiasCorrection
        if let damping { options.dataAware.decomposition.damping = damping }
        (options.normWeightedOutputs, options.attentionWeightedOutputs) = (!noNormWeighting, attentionWeighting)
        options.endToEndOutputs = !noOutputMetrics
        options.exactSVD = exact
        options.simplify = simplify
        options.dataFree = dataFree
        options.uncalibratedLayers = uncalibrated
        (options.outputDType, options.jobs) = (dtype, jobs)
        if let statistics {
            options.statistics = try CalibrationStatistics(contentsOf: URL(fileURLWithPath: statistics))
        }
        if let layerWeights {
            let data = try InputFile.contents(of: URL(fileURLWithPath: layerWeights))
            guard let weights = try? JSONDecoder().decode([String: Double].self, from: data) else {
                throw ValidationError("--layer-weights \(layerWeights): expected a JSON object of numbers by layer name")
            }
            options.layerWeights = weights
        }
        if let layerConfig {
            let data = try InputFile.contents(of: URL(fileURLWithPath: layerConfig))
            options.layerSettings = try Conv2DSettings.configuration(json: data)
        }
        return options
    }

    func run() throws {
        if isSharded { return try runSharded() }
        // Every output path is checked before any work: nothing is computed for a file that cannot be written.
        let outputFile = try OutputFile(path: output)
        let reportFile = try report.map { try OutputFile(path: $0) }
        if outputFile.isSameFile(as: model) && !inPlace {
            throw ValidationError("--output \(output) is the input model; pass --in-place to replace it")
        }
        try OutputFile.checkNotReading([outputFile], inputs: readFiles.filter { $0 != model })
        if let reportFile, let report {
            if reportFile.isSameFile(as: model) { throw ValidationError("--report \(report) is the input model") }
            if reportFile.isSameFile(as: output) { throw ValidationError("--report \(report) is the same file as --output") }
        }
        let options = try options()
        let compressor = try ModelCompressor(options: options)
        let started = now()
        let progress = ProgressBar(quiet: quiet || json)
        let onProgress: @Sendable (Int, Int, String) -> Void = { done, total, label in
            progress.update(fraction: Double(done) / Double(max(total, 1)), "\(done)/\(total) \(label)")
        }
        if isONNX(model) {
            let source = try ONNXModel(contentsOf: URL(fileURLWithPath: model))
            let inputs = readFiles + source.externalDataFiles.map(\.path)
            try OutputFile.checkNotReading([reportFile].compactMap { $0 }, inputs: inputs)
            let result = try compressor.compress(onnx: source, progress: onProgress)
            let previous = ONNXModel.ownDataFiles(ofModelAt: outputFile.target)
            let outputs = try result.model.outputFiles(for: outputFile)
            try OutputFile.checkNotReading(outputs.map(\.0).filter { $0 != outputFile }, inputs: inputs)
            try finish(layers: result.layers, totals: result.totals, started: started, progress: progress, staged: [], outputs: outputs,
                       reportFile: reportFile, simplification: result.simplification, warnings: result.warnings, weights: weightsNote(options))
            ONNXModel.removeReplacedData(previous, of: outputFile.target, keeping: inputs)
        } else {
            try OutputFile.checkNotReading([reportFile].compactMap { $0 }, inputs: readFiles)
            // The state dict is streamed to its temporary while the layers are decomposed: unchanged
            // tensors go from the input to the file, those before the first replaced layer at once.
            let result = try compressor.compress(try openModel(model), to: outputFile, progress: onProgress)
            try finish(layers: result.layers, totals: result.totals, started: started, progress: progress,
                       staged: [result.file], outputs: [], reportFile: reportFile, warnings: result.warnings, weights: weightsNote(options))
        }
    }

    /// Compresses a sharded checkpoint into the `--output` directory, shard by shard.
    func runSharded() throws {
        let checkpoint = try ShardedSafetensors(contentsOf: URL(fileURLWithPath: model))
        let reportFile = try report.map { try OutputFile(path: $0) }
        let options = try options()
        let compressor = try ModelCompressor(options: options)
        let started = now()
        let progress = ProgressBar(quiet: quiet || json)
        let result = try compressor.compress(checkpoint, to: URL(fileURLWithPath: output), assignment: shard) { p in
            progress.update(fraction: Double(p.parametersDone) / Double(max(p.parametersTotal, 1)),
                            "shard \(p.shard)/\(p.shardCount) layer \(p.layersDone)/\(p.layerCount) \(p.layerName)")
        }
        try finish(layers: result.layers, totals: result.totals, started: started, progress: progress, staged: result.files, outputs: [],
                   reportFile: reportFile, shards: result.shards, warnings: result.warnings, removingFirst: [result.replacedIndex].compactMap { $0 },
                   weights: weightsNote(options))
    }

    /// Which weights the greedy budget allocation gives the layers' errors, for standard error and
    /// the report; `nil` when there is no greedy budget allocation.
    func weightsNote(_ options: CompressionOptions) -> String? {
        guard budget != nil, allocation == .greedy else { return nil }
        let measured = options.statistics?.sensitivities.count ?? 0
        switch options.layerWeightSource {
        case .statistics:
            return "greedy allocation: each layer's normalised error weighted by its end-to-end sensitivity from --statistics \(statistics ?? "") "
                + "(\(measured) layers; others 1; --layer-weights overrides)"
        case .given:
            return "greedy allocation: layer weights from --layer-weights \(layerWeights ?? "") (\(options.layerWeights.count) layers; others 1)"
                + (measured > 0 ? ", not the \(measured) sensitivities in --statistics" : "")
        case .none:
            return "greedy allocation: every layer's normalised error weighs 1 ("
                + (statistics == nil ? "no --statistics"
                   : "--statistics \(statistics!) has no sensitivities: Scripts/calibrate.sh stores them unless they fail its check or --no-sensitivity") + ")"
        }
    }

    /// Renders the report, writes it with the model's staged files (all or nothing: the staged
    /// files are removed when anything fails), and prints.
    func finish(layers: [LayerReport], totals: CompressionTotals, started: Double, progress: ProgressBar, staged: [StagedFile],
                outputs: [(OutputFile, Data)], reportFile: OutputFile?, shards: [ShardReport]? = nil,
                simplification: ONNXSimplification? = nil, warnings: [CompressionWarning] = [], removingFirst: [String] = [],
                weights: String? = nil) throws {
        var all = staged
        do {
            try write(layers: layers, totals: totals, started: started, outputs: outputs, reportFile: reportFile, shards: shards,
                      simplification: simplification, warnings: warnings, removingFirst: removingFirst, weights: weights, staged: &all)
        } catch {
            StagedFile.discard(all)
            throw error
        }
        progress.finish()
    }

    func write(layers: [LayerReport], totals: CompressionTotals, started: Double, outputs: [(OutputFile, Data)], reportFile: OutputFile?,
               shards: [ShardReport]?, simplification: ONNXSimplification?, warnings: [CompressionWarning], removingFirst: [String],
               weights: String?, staged all: inout [StagedFile]) throws {
        // A run that changes nothing is an error unless asked for: a default that silently writes
        // the input back looks like success.
        if !allowNoChange, let unchanged = warnings.first(where: { if case .nothingReplaced = $0 { return true } else { return false } }) {
            let reasons = Dictionary(grouping: layers.filter { !$0.status.isReplaced }, by: \.status.commandLineDescription)
                .sorted { ($0.value.count, $1.key) > ($1.value.count, $0.key) }.prefix(3).map { "\($0.value.count)× \($0.key)" }.joined(separator: "; ")
            throw ValidationError("\(unchanged); nothing written (pass --allow-no-change to write it anyway)\(reasons.isEmpty ? "" : ". Why: " + reasons)")
        }
        var outputs = outputs
        let seconds = now() - started
        let rendered = CompressionReportRenderer(layers: layers, totals: totals, seconds: seconds)
        let shapes = inputShape.map(\.description).joined(separator: " ")
        var document = rendered.document(model: model, output: output, conv: conv.rawValue, linear: linear.rawValue,
                                         rankSelection: budget.map { "budget \($0), \(allocation.rawValue)" } ?? rank.map { "rank \($0)" } ?? rankSelection.description,
                                         inputSize: isONNX(model) ? nil : inputSize, inputShapes: isONNX(model) ? shapes : nil)
        document.shards = shards
        document.simplification = simplification
        document.warnings = warnings
        document.layerWeights = weights
        // The model and its report are written together: all or nothing.
        if let report, let reportFile {
            let where_ = isONNX(model) ? "MACs at the graph's input shapes \(shapes.isEmpty ? "as declared" : shapes)"
                : "conv FLOPs for \(inputSize.height)×\(inputSize.width) inputs, \(document.convDefaults ?? "")"
            let content = report.hasSuffix(".json") ? try jsonString(document)
                : "# Compression report\n\n`\(model)` → `\(output)`; conv: \(conv.rawValue), linear: \(linear.rawValue), ranks: \(document.rankSelection); "
                  + "\(where_).\(weights.map { " \($0.prefix(1).uppercased() + $0.dropFirst())." } ?? "")\n\n```text\n\(rendered.table)\n```\n\n\(rendered.summary)\n"
            outputs.append((reportFile, Data(content.utf8)))
        }
        try OutputFile.checkDistinct(all.map(\.file) + outputs.map(\.0))
        for (file, data) in outputs { all.append(try file.stage(data)) }
        try StagedFile.commit(all, removingFirst: removingFirst)
        all = []
        for warning in warnings { printError("tensor-compress: warning: \(warning)") }
        // After the outputs are written, like the warnings: a run that fails says one line.
        if let weights { printError("tensor-compress: \(weights)") }
        if json { print(try jsonString(document)); return }
        print(rendered.table)
        if let shards {
            print(renderTable(["shard", "layers replaced", "bytes", "seconds"], shards.map { s in
                [s.name, "\(s.replacedLayers) of \(s.candidateLayers)", "\(compact(s.bytesBefore)) → \(compact(s.bytesAfter))", String(format: "%.1f", s.seconds)]
            }))
        }
        print(rendered.summary)
        if let simplification { print(Simplify.summary(simplification)) }
        print("wrote \(output)")
    }
}

/// The terminal table, the summary line and the JSON document of a compression.
struct CompressionReportRenderer {
    let layers: [LayerReport]
    let totals: CompressionTotals
    let seconds: Double

    struct Document: Encodable {
        var model: String; var output: String; var conv: String; var linear: String; var rankSelection: String
        var inputSize: [Int]?; var inputShapes: String?; var convDefaults: String?; var layers: [LayerReport]; var totals: CompressionTotals
        var seconds: Double; var shards: [ShardReport]? = nil; var simplification: ONNXSimplification? = nil
        var warnings: [CompressionWarning] = []
        /// Which weights the greedy budget allocation used (``Compress/weightsNote(_:)``); absent without one.
        var layerWeights: String? = nil
    }

    func document(model: String, output: String, conv: String, linear: String, rankSelection: String, inputSize: Size2D?,
                  inputShapes: String?) -> Document {
        Document(model: model, output: output, conv: conv, linear: linear, rankSelection: rankSelection, inputSize: inputSize?.array,
                 inputShapes: inputShapes,
                 convDefaults: inputSize == nil ? nil : "stride 1, padding k//2, dilation 1, groups 1 unless --layer-config says otherwise",
                 layers: layers, totals: totals, seconds: seconds)
    }

    /// One row per candidate layer; CP that stopped at its iteration limit says so in the status.
    var table: String {
        renderTable(["layer", "shape", "method", "ranks", "parameters", "FLOPs", "kernel error", "output error", "seconds", "status"], layers.map { r in
            [r.name, r.shape.map(String.init).joined(separator: "×"), r.method?.rawValue ?? "none", r.ranks.isEmpty ? "" : "\(r.ranks)",
             "\(compact(r.parametersBefore)) → \(compact(r.parametersAfter))", "\(compact(r.flopsBefore)) → \(compact(r.flopsAfter))",
             r.method == nil ? "" : fixed(r.relativeError, 4), r.outputError.map { fixed($0, 4) } ?? "",
             fixed(r.seconds, 3),
             (r.status.isReplaced ? r.status.kind : r.status.commandLineDescription) + (r.converged ? "" : " (not converged, \(r.iterations) iterations)")]
        })
    }

    /// `a → b (x× smaller)` or `(x× larger)`: a ratio below 1 is never called "fewer".
    static func ratio(_ before: Int, _ after: Int, smaller: String, larger: String) -> String {
        let (b, a) = (Double(before), Double(max(after, 1)))
        return b >= a ? String(format: "%.2f× %@", b / a, smaller) : String(format: "%.2f× %@", a / max(b, 1), larger)
    }

    /// The whole model first, then the compressible part, then the replaced layers: a ratio over
    /// the replaced layers alone would flatter a model whose other layers stayed as they were.
    var summary: String {
        let t = totals
        func pair(_ before: Int, _ after: Int, _ smaller: String, _ larger: String) -> String {
            "\(compact(before)) → \(compact(after)) (\(Self.ratio(before, after, smaller: smaller, larger: larger)))"
        }
        return "model: FLOPs \(pair(t.modelFlopsBefore, t.modelFlopsAfter, "fewer", "more")), parameters "
            + "\(pair(t.modelParametersBefore, t.modelParametersAfter, "smaller", "larger")); compressible layers (\(t.candidateLayers)): FLOPs "
            + "\(compact(t.compressibleFlops)), parameters \(compact(t.compressibleParameters)); \(t.replacedLayers) of \(t.candidateLayers) replaced: FLOPs "
            + "\(pair(t.flopsBefore, t.flopsAfter, "fewer", "more")), parameters \(pair(t.parametersBefore, t.parametersAfter, "smaller", "larger")); "
            + String(format: "%.1f s", seconds)
    }
}
