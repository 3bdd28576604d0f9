import ArgumentParser
import Foundation
import TensorDecompositions

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the layer weights of a model by factorized stacks and write a new safetensors file.",
        discussion: """
            Every 4-D weight is a conv kernel (OIHW), every 2-D weight a linear layer (out, in). A replaced weight
            P.weight (and P.bias) becomes the stack's tensors P.0.weight, P.1.weight, … (the state-dict names of a
            PyTorch nn.Sequential put in the layer's place); __metadata__["stacks"] describes every stack. All other
            tensors are copied unchanged. Conv settings come from --layer-config (defaults: stride 1, padding k//2,
            dilation 1, groups 1).
            """)

    enum ConvMethod: String, ExpressibleByArgument, CaseIterable { case cp, tucker2, tt, none }
    enum LinearMethod: String, ExpressibleByArgument, CaseIterable { case svd, tt, none }

    @Argument(help: "The model, a .safetensors file.") var model: String
    @Option(help: "The output .safetensors file.") var output: String
    @Option(help: "How to decompose 4-D weights.") var conv: ConvMethod = .tucker2
    @Option(help: "How to decompose 2-D weights.") var linear: LinearMethod = .svd
    @Option(help: "A fixed rank for every layer (CP rank; Tucker-2 uses it for both modes; SVD rank).") var rank: Int?
    @Option(help: "vbmf, energy:F, params:F, flops:F or error:F.") var rankSelection: String = "vbmf"
    @Option(help: "The largest TT rank (tt).") var maxRank: Int?
    @Option(help: "TT relative accuracy ε (tt).") var tolerance: Double?
    @Option(help: "CP-ALS iteration limit.") var maxIterations: Int = 100
    @Option(help: "Leave weights with fewer parameters unchanged.") var minParameters: Int = 1024
    @Option(help: "Only weights whose name matches this regular expression.") var include: String?
    @Option(help: "Skip weights whose name matches this regular expression.") var exclude: String?
    @Option(help: "JSON object keyed by weight name: {\"stride\": [sh, sw], \"padding\": [t, b, l, r], \"dilation\": [dh, dw], \"groups\": g}.")
    var layerConfig: String?
    @Option(help: "Input height,width of every conv, for FLOP counts.") var inputSize: String = "224,224"
    @Option(help: "Write the report to FILE.json or FILE.md.") var report: String?
    @Flag(help: "Replace a layer even when its stack has more parameters or FLOPs.") var allowGrowth = false
    @Flag(help: "Allow --output to be the input model itself (it is replaced only when everything succeeded).") var inPlace = false
    @Flag(help: "Print one JSON document on standard output.") var json = false
    @Flag(help: "No progress bar.") var quiet = false

    struct LayerReport: Encodable {
        var name: String
        var shape: [Int]
        var method: String
        var status: String
        var ranks: [Int]
        var parametersBefore: Int
        var parametersAfter: Int
        var flopsBefore: Int
        var flopsAfter: Int
        var relativeError: Double
        var seconds: Double
        var reasons: [String]
    }

    struct Totals: Encodable {
        var replacedLayers: Int
        var parametersBefore: Int
        var parametersAfter: Int
        var flopsBefore: Int
        var flopsAfter: Int
        var modelParametersBefore: Int
        var modelParametersAfter: Int
        var seconds: Double
    }

    struct StackLayer: Encodable {
        var kind: String
        var inChannels: Int
        var outChannels: Int
        var kernel: [Int]?
        var stride: [Int]?
        var padding: [Int]?
        var dilation: [Int]?
        var groups: Int?
        var weight: String?
        var cores: [String]?
        var bias: String?
    }

    struct StackEntry: Encodable {
        var name: String
        var method: String
        var ranks: [Int]
        var relativeError: Double
        var layers: [StackLayer]
    }

    func validate() throws {
        if let rank, rank < 1 { throw ValidationError("--rank \(rank) must be at least 1") }
        if let maxRank, maxRank < 1 { throw ValidationError("--max-rank \(maxRank) must be at least 1") }
        if maxIterations < 0 || minParameters < 0 { throw ValidationError("--max-iterations and --min-parameters must be non-negative") }
        _ = try parseRankSelection(rankSelection)
        _ = try parseIntegers(inputSize, option: "--input-size", count: 2)
        for pattern in [include, exclude].compactMap({ $0 }) {
            do { _ = try Regex(pattern) } catch { throw ValidationError("invalid regular expression \(pattern): \(error)") }
        }
        if let report, !(report.hasSuffix(".json") || report.hasSuffix(".md")) {
            throw ValidationError("--report \(report): the file name must end in .json or .md")
        }
    }

    func run() throws {
        do {
            let started = now()
            // Every output path is checked before any work: nothing is computed for a file that cannot be written.
            let outputFile = try OutputFile(path: output)
            let reportFile = try report.map { try OutputFile(path: $0) }
            if outputFile.isSameFile(as: model) && !inPlace {
                throw ValidationError("--output \(output) is the input model; pass --in-place to replace it")
            }
            if let reportFile, let report {
                if reportFile.isSameFile(as: model) { throw ValidationError("--report \(report) is the input model") }
                if reportFile.isSameFile(as: output) { throw ValidationError("--report \(report) is the same file as --output") }
            }
            let file = try openModel(model)
            let selection = try parseRankSelection(rankSelection)
            let size = try parseIntegers(inputSize, option: "--input-size", count: 2)
            let includeRegex = try include.map { try Regex($0) }
            let excludeRegex = try exclude.map { try Regex($0) }
            var configs: [String: Conv2DSettings] = [:]
            if let layerConfig {
                let data: Data
                do { data = try Data(contentsOf: URL(fileURLWithPath: layerConfig)) } catch {
                    throw TensorIOError.fileSystem(path: layerConfig, reason: "cannot read the layer configuration")
                }
                configs = try Conv2DSettings.configuration(json: data)
                for name in configs.keys.sorted() {
                    guard let entry = file.entries[name] else { throw TensorIOError.unknownTensor(name: name, available: file.names) }
                    do { try configs[name]!.validate(kernelShape: entry.shape) } catch let error as NNLayersError {
                        throw ValidationError("--layer-config \(name): \(error)")
                    }
                }
            }
            let candidates = file.names.filter { name in
                let entry = file.entries[name]!
                guard entry.dtype.isFloatingPoint, entry.shape.count == 2 || entry.shape.count == 4 else { return false }
                if entry.shape.count == 2 && linear == .none { return false }
                if entry.shape.count == 4 && conv == .none { return false }
                if entry.shape.reduce(1, *) < minParameters { return false }
                if let includeRegex, name.firstMatch(of: includeRegex) == nil { return false }
                if let excludeRegex, name.firstMatch(of: excludeRegex) != nil { return false }
                return true
            }
            var writer = SafetensorsWriter()
            writer.metadata = file.metadata
            var consumed = Set<String>()
            var reports: [LayerReport] = []
            var stacks: [StackEntry] = []
            var replacement: [String: [(String, Tensor<Float>, DType)]] = [:]
            let progress = ProgressBar(total: candidates.count, quiet: quiet || json)
            for (index, name) in candidates.enumerated() {
                progress.update(index, name)
                let entry = file.entries[name]!
                let prefix = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
                let biasName = prefix + ".bias"
                let weight = try file.tensor(named: name, as: Float.self)
                var bias: [Float]? = nil
                if let biasEntry = file.entries[biasName], biasEntry.shape == [entry.shape[0]], name != biasName {
                    guard biasEntry.dtype.isFloatingPoint else {
                        // A bias that is not floating point cannot be carried by a factorized stack
                        // without changing its type: keep the layer, copy both tensors byte for byte.
                        reports.append(LayerReport(
                            name: prefix, shape: entry.shape, method: "none",
                            status: "kept: its bias \(biasName) is \(biasEntry.dtype.rawValue), not floating point", ranks: [],
                            parametersBefore: entry.shape.reduce(1, *), parametersAfter: entry.shape.reduce(1, *),
                            flopsBefore: 0, flopsAfter: 0, relativeError: 0, seconds: 0, reasons: []))
                        continue
                    }
                    bias = Array(try file.tensor(named: biasName, as: Float.self).scalars)
                }
                let start = now()
                let compressed: CompressedLayer<Float>
                let input: [Int]
                if entry.shape.count == 4 {
                    let layer = try configs[name, default: Conv2DSettings()].convolution(weight: weight, bias: bias)
                    input = [layer.inChannels, size[0], size[1]]
                    switch conv {
                    case .cp: compressed = try layer.compressed(by: .cp(rank.map { .fixed([$0]) } ?? selection, maxIterations: maxIterations))
                    case .tucker2: compressed = try layer.compressed(by: .tucker2(rank.map { .fixed([$0, $0]) } ?? selection))
                    case .tt: compressed = try layer.compressed(by: .tensorTrain(maxRank: maxRank ?? rank, tolerance: tolerance))
                    case .none: continue
                    }
                } else {
                    let layer = try Linear(weight: Matrix(weight), bias: bias)
                    input = [layer.inFeatures]
                    switch linear {
                    case .svd: compressed = try layer.compressed(by: .svd(rank.map { .fixed([$0]) } ?? selection))
                    case .tt: compressed = try layer.compressed(by: .tensorTrain(maxRank: maxRank ?? rank, tolerance: tolerance))
                    case .none: continue
                    }
                }
                let seconds = now() - start
                let cost = try compressed.report(input: input)
                var row = LayerReport(name: prefix, shape: entry.shape, method: compressed.method, status: "replaced", ranks: compressed.ranks,
                                      parametersBefore: cost.originalParameters, parametersAfter: cost.parameters,
                                      flopsBefore: cost.originalFLOPs, flopsAfter: cost.flops,
                                      relativeError: compressed.kernelRelativeError, seconds: seconds, reasons: compressed.reasons)
                if (cost.parameters >= cost.originalParameters || cost.flops > cost.originalFLOPs) && !allowGrowth {
                    row.status = cost.parameters >= cost.originalParameters
                        ? "kept: the stack would have \(cost.parameters) parameters, not fewer than \(cost.originalParameters)"
                        : "kept: the stack would need \(cost.flops) FLOPs, more than \(cost.originalFLOPs)"
                    row.parametersAfter = cost.originalParameters
                    row.flopsAfter = cost.originalFLOPs
                    reports.append(row)
                    continue
                }
                consumed.insert(name)
                if bias != nil { consumed.insert(biasName) }
                let dtype = entry.dtype == .float64 || entry.dtype == .float16 || entry.dtype == .bfloat16 ? entry.dtype : .float32
                var tensors: [(String, Tensor<Float>, DType)] = []
                var layers: [StackLayer] = []
                for (k, layer) in compressed.stack.layers.enumerated() {
                    let base = "\(prefix).\(k)"
                    switch layer {
                    case let .conv2d(c):
                        tensors.append(("\(base).weight", c.weight, dtype))
                        if let b = c.bias { tensors.append(("\(base).bias", try Tensor(shape: [b.count], scalars: b), dtype)) }
                        layers.append(StackLayer(kind: "conv2d", inChannels: c.inChannels, outChannels: c.outChannels, kernel: c.kernelSize.array,
                                                 stride: c.stride.array, padding: c.padding.array, dilation: c.dilation.array, groups: c.groups,
                                                 weight: "\(base).weight", cores: nil, bias: c.bias == nil ? nil : "\(base).bias"))
                    case let .linear(l):
                        tensors.append(("\(base).weight", Tensor(l.weight), dtype))
                        if let b = l.bias { tensors.append(("\(base).bias", try Tensor(shape: [b.count], scalars: b), dtype)) }
                        layers.append(StackLayer(kind: "linear", inChannels: l.inFeatures, outChannels: l.outFeatures, weight: "\(base).weight",
                                                 bias: l.bias == nil ? nil : "\(base).bias"))
                    case let .ttLinear(l):
                        let names = l.weight.cores.indices.map { "\(base).core.\($0)" }
                        for (n, core) in zip(names, l.weight.cores) { tensors.append((n, core, dtype)) }
                        if let b = l.bias { tensors.append(("\(base).bias", try Tensor(shape: [b.count], scalars: b), dtype)) }
                        layers.append(StackLayer(kind: "ttLinear", inChannels: l.inFeatures, outChannels: l.outFeatures, cores: names,
                                                 bias: l.bias == nil ? nil : "\(base).bias"))
                    case let .ttConv2d(c):
                        let cores = c.rawCores
                        let names = cores.indices.map { "\(base).core.\($0)" }
                        for (n, core) in zip(names, cores) { tensors.append((n, core, dtype)) }
                        if let b = c.bias { tensors.append(("\(base).bias", try Tensor(shape: [b.count], scalars: b), dtype)) }
                        layers.append(StackLayer(kind: "ttConv2d", inChannels: c.inChannels, outChannels: c.outChannels,
                                                 kernel: c.spatial.kernelSize.array, stride: c.spatial.stride.array,
                                                 padding: c.spatial.padding.array, dilation: c.spatial.dilation.array, groups: 1,
                                                 cores: names, bias: c.bias == nil ? nil : "\(base).bias"))
                    }
                }
                replacement[name] = tensors
                stacks.append(StackEntry(name: prefix, method: compressed.method, ranks: compressed.ranks,
                                         relativeError: compressed.kernelRelativeError, layers: layers))
                reports.append(row)
            }
            progress.update(candidates.count, "writing")
            // Tensors in file order: a replaced weight's stack takes its place; its bias disappears.
            for name in file.names where !(consumed.contains(name) && replacement[name] == nil) {
                if let tensors = replacement[name] {
                    for (n, t, dtype) in tensors { try writer.add(n, t, dtype: dtype) }
                } else {
                    let entry = file.entries[name]!
                    try writer.addRaw(name, dtype: entry.dtype, shape: entry.shape, bytes: try file.rawBytes(named: name))
                }
            }
            writer.metadata["stacks"] = try String(decoding: JSONEncoder().encode(stacks), as: UTF8.self)
            let encoded = try writer.encoded()

            let replaced = reports.filter { $0.status == "replaced" }
            let modelBefore = file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
            let before = replaced.reduce(0) { $0 + $1.parametersBefore }, after = replaced.reduce(0) { $0 + $1.parametersAfter }
            let totals = Totals(replacedLayers: replaced.count, parametersBefore: before, parametersAfter: after,
                                flopsBefore: replaced.reduce(0) { $0 + $1.flopsBefore }, flopsAfter: replaced.reduce(0) { $0 + $1.flopsAfter },
                                modelParametersBefore: modelBefore, modelParametersAfter: modelBefore - before + after, seconds: now() - started)
            struct Document: Encodable {
                var model: String; var output: String; var conv: String; var linear: String; var rankSelection: String
                var inputSize: [Int]; var convDefaults: String; var layers: [LayerReport]; var totals: Totals
            }
            let document = Document(model: model, output: output, conv: conv.rawValue, linear: linear.rawValue,
                                    rankSelection: rank.map { "rank \($0)" } ?? rankSelection, inputSize: size,
                                    convDefaults: "stride 1, padding k//2, dilation 1, groups 1 unless --layer-config says otherwise",
                                    layers: reports, totals: totals)
            let text = table(["layer", "shape", "method", "ranks", "parameters", "FLOPs/sample", "kernel error", "seconds", "status"], reports.map { r in
                [r.name, r.shape.map(String.init).joined(separator: "×"), r.method, "\(r.ranks)",
                 "\(compact(r.parametersBefore)) → \(compact(r.parametersAfter))", "\(compact(r.flopsBefore)) → \(compact(r.flopsAfter))",
                 String(format: "%.4f", r.relativeError), String(format: "%.3f", r.seconds), r.status == "replaced" ? "replaced" : "kept"]
            })
            let summary = String(format: "%d of %d candidate layers replaced: parameters %@ → %@ (%.2f× smaller), FLOPs %@ → %@ (%.2f× fewer); model %@ → %@ parameters; %.1f s",
                                 replaced.count, candidates.count, compact(before), compact(after), Double(before) / Double(max(after, 1)),
                                 compact(totals.flopsBefore), compact(totals.flopsAfter), Double(totals.flopsBefore) / Double(max(totals.flopsAfter, 1)),
                                 compact(modelBefore), compact(totals.modelParametersAfter), totals.seconds)
            // The model and its report are written together: both or neither.
            var outputs = [(outputFile, encoded)]
            if let report, let reportFile {
                let content = report.hasSuffix(".json") ? try jsonString(document)
                    : "# Compression report\n\n`\(model)` → `\(output)`; conv: \(conv.rawValue), linear: \(linear.rawValue), ranks: \(document.rankSelection); "
                      + "conv FLOPs for \(size[0])×\(size[1]) inputs, \(document.convDefaults).\n\n```text\n\(text)\n```\n\n\(summary)\n"
                outputs.append((reportFile, Data(content.utf8)))
            }
            try OutputFile.write(outputs)
            progress.finish()
            if json { print(try jsonString(document)); return }
            print(text)
            print(summary)
            print("wrote \(output)")
        }
    }
}
