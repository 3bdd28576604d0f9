import Decompositions
import Foundation
import NNLayers
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
        for name in options.layerSettings.keys.sorted() {
            guard let entry = file.entries[name] else { throw ModelCompressionError.unknownLayer(name: name) }
            do { try options.layerSettings[name]!.validate(kernelShape: entry.shape) } catch {
                throw ModelCompressionError.invalidLayerSettings(name: name, reason: "\(error)")
            }
        }
    }

    /// Compresses every candidate layer of `file`.
    ///
    /// - Parameters:
    ///   - file: The state dict.
    ///   - progress: Called before each layer with the number done, the number of candidates and
    ///     the layer's name, and once more at the end with `"writing"`.
    /// - Throws: the errors of ``validateLayerSettings(for:)``, of reading the tensors, and of the
    ///   decompositions (an impossible fixed rank, for example).
    public func compress(_ file: SafetensorsFile, progress: ((Int, Int, String) -> Void)? = nil) throws -> CompressedStateDict {
        try validateLayerSettings(for: file)
        let names = candidates(in: file)
        let embedding = try Regex(CompressionOptions.embeddingPattern)
        let includeNames = options.include != nil
        var reports: [LayerReport] = []
        var consumed = Set<String>()
        var replacement: [String: [(String, AnyTensor)]] = [:]
        var stacks: [Any] = []
        let allocated = try stateDictBudget(file, names: names, embedding: embedding, includeNames: includeNames)
        for (index, name) in names.enumerated() {
            progress?(index, names.count, name)
            let entry = file.entries[name]!
            let prefix = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
            let count = entry.shape.reduce(1, *)
            var report = LayerReport(name: prefix, shape: entry.shape, method: nil, status: .replaced, ranks: [],
                                     parametersBefore: count, parametersAfter: count, flopsBefore: 0, flopsAfter: 0,
                                     relativeError: 0, converged: true, iterations: 0, seconds: 0, reasons: [])
            if entry.shape.count == 2 && !includeNames && name.firstMatch(of: embedding) != nil {
                report.status = .skippedEmbedding
                reports.append(report)
                continue
            }
            let biasName = prefix + ".bias"
            let biasEntry = file.entries[biasName].flatMap { $0.shape == [entry.shape[0]] && biasName != name ? $0 : nil }
            if let biasEntry, !biasEntry.dtype.isFloatingPoint {
                report.status = .keptNonFloatBias(bias: biasName, dtype: biasEntry.dtype.rawValue)
                reports.append(report)
                continue
            }
            if let allocated, allocated[prefix] == nil {
                report.status = .keptByBudget
                reports.append(report)
                continue
            }
            let ranks = allocated?[prefix] ?? nil
            let outcome = entry.dtype == .float64
                ? try compressLayer(file, name: name, bias: biasEntry == nil ? nil : biasName, prefix: prefix, ranks: ranks, as: Double.self)
                : try compressLayer(file, name: name, bias: biasEntry == nil ? nil : biasName, prefix: prefix, ranks: ranks, as: Float.self)
            report = outcome.report
            reports.append(report)
            guard report.status.isReplaced else { continue }
            consumed.insert(name)
            if biasEntry != nil { consumed.insert(biasName) }
            replacement[name] = outcome.tensors
            stacks.append(outcome.stack)
        }
        progress?(names.count, names.count, "writing")
        var writer = SafetensorsWriter()
        writer.metadata = file.metadata
        // Tensors in file order: a replaced weight's stack takes its place; its bias disappears.
        for name in file.names where !(consumed.contains(name) && replacement[name] == nil) {
            let entry = file.entries[name]!
            if let tensors = replacement[name] {
                for (tensorName, tensor) in tensors { try tensor.add(to: &writer, name: tensorName, dtype: entry.dtype) }
            } else {
                try writer.addRaw(name, dtype: entry.dtype, shape: entry.shape, bytes: try file.rawBytes(named: name))
            }
        }
        writer.metadata["stacks"] = String(decoding: try JSONSerialization.data(withJSONObject: stacks, options: [.sortedKeys]), as: UTF8.self)
        let replaced = reports.filter(\.status.isReplaced)
        let modelBefore = file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let before = replaced.reduce(0) { $0 + $1.parametersBefore }, after = replaced.reduce(0) { $0 + $1.parametersAfter }
        let totals = CompressionTotals(
            candidateLayers: names.count, replacedLayers: replaced.count, parametersBefore: before, parametersAfter: after,
            flopsBefore: replaced.reduce(0) { $0 + $1.flopsBefore }, flopsAfter: replaced.reduce(0) { $0 + $1.flopsAfter },
            modelParametersBefore: modelBefore, modelParametersAfter: modelBefore - before + after, seconds: reports.reduce(0) { $0 + $1.seconds })
        return CompressedStateDict(writer: writer, layers: reports, totals: totals)
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

    /// With a budget: the ranks allocated to each eligible layer by layer name (a missing name is kept).
    func stateDictBudget(_ file: SafetensorsFile, names: [String], embedding: Regex<AnyRegexOutput>, includeNames: Bool) throws -> [String: [Int]]? {
        guard let budget = options.budget else { return nil }
        var entries: [BudgetCandidate] = []
        for name in names {
            let entry = file.entries[name]!
            if entry.shape.count == 2 && !includeNames && name.firstMatch(of: embedding) != nil { continue }
            let prefix = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
            let biasName = prefix + ".bias"
            let biasEntry = file.entries[biasName].flatMap { $0.shape == [entry.shape[0]] && biasName != name ? $0 : nil }
            if let biasEntry, !biasEntry.dtype.isFloatingPoint { continue }
            let (layer, input) = try stateDictLayer(file, name: name, bias: biasEntry == nil ? nil : biasName, as: Float.self)
            let cost = try layer.cost(input: input)
            entries.append(BudgetCandidate(name: prefix, macs: Double(cost.flops) / 2, parameters: Double(cost.parameters),
                                           options: try rankOptions(layer, input: input, batch: 1, statistics: options.statistics?.layers[prefix])))
        }
        var result: [String: [Int]] = [:]
        for (entry, option) in zip(entries, allocate(entries, budget: budget, allocation: options.allocation)) {
            if let option { result[entry.name] = option.ranks }
        }
        return result
    }

    /// One layer decomposed in `Scalar`: its report, its stack's tensors and its metadata entry.
    func compressLayer<Scalar: BLASScalar>(
        _ file: SafetensorsFile, name: String, bias biasName: String?, prefix: String, ranks: [Int]?, as _: Scalar.Type
    ) throws -> (report: LayerReport, tensors: [(String, AnyTensor)], stack: Any) {
        let entry = file.entries[name]!
        let (layer, input) = try stateDictLayer(file, name: name, bias: biasName, as: Scalar.self)
        let (compressed, report) = try compress(layer, name: prefix, shape: entry.shape, input: input, ranks: ranks)
        guard let compressed, report.status.isReplaced else { return (report, [], [String: Any]()) }
        var tensors: [(String, AnyTensor)] = []
        var layers: [Any] = []
        for (k, layer) in compressed.stack.layers.enumerated() {
            let layerPrefix = "\(prefix).\(k)"
            tensors += layer.tensors(prefix: layerPrefix).map { ($0.name, AnyTensor($0.tensor)) }
            let encoder = JSONEncoder()
            encoder.userInfo[Layer<Scalar>.tensorNamePrefix] = layerPrefix
            layers.append(try JSONSerialization.jsonObject(with: try encoder.encode(layer)))
        }
        let stack: [String: Any] = [
            "name": prefix, "method": compressed.method.rawValue, "ranks": compressed.ranks,
            "relativeError": compressed.kernelRelativeError, "layers": layers,
        ]
        return (report, tensors, stack)
    }
}

/// A Float or Double tensor on its way to the writer.
struct AnyTensor: @unchecked Sendable {
    let add: (inout SafetensorsWriter, String, DType) throws -> Void

    init<Scalar: BLASScalar>(_ tensor: Tensor<Scalar>) {
        add = { writer, name, dtype in try writer.add(name, tensor, dtype: dtype) }
    }

    /// Adds the tensor in `dtype`: the weight's own, so that float16, bfloat16 and float64 layers stay so.
    func add(to writer: inout SafetensorsWriter, name: String, dtype: DType) throws {
        try add(&writer, name, dtype)
    }
}
