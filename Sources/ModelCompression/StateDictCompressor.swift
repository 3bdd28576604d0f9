import Decompositions
import Foundation
import NNLayers
import TensorIO
import TensorModule

/// Errors of whole-model compression: options and layer settings that do not fit the model.
public enum ModelCompressionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An option outside its range.
    case invalidOption(name: String, value: String, requirement: String)
    /// A layer setting names a tensor that the model does not hold.
    case unknownLayer(name: String)
    /// A layer setting does not fit its kernel.
    case invalidLayerSettings(name: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidOption(name, value, requirement): return "\(name) \(value) must be \(requirement)"
        case let .unknownLayer(name): return "the layer configuration names \(name), which the model does not hold"
        case let .invalidLayerSettings(name, reason): return "layer configuration for \(name): \(reason)"
        }
    }
}

/// The result of ``StateDictCompressor/compress(_:progress:)``: the new state dict, ready to write,
/// and a report per candidate layer.
public struct CompressedStateDict: Sendable {
    /// The tensors of the new file, in the input's order, with its metadata plus `stacks`.
    public var writer: SafetensorsWriter
    /// One report per candidate layer, in file order.
    public var layers: [LayerReport]
    /// Sums over the replaced layers and the whole model.
    public var totals: CompressionTotals
}

/// Compresses the layers of a safetensors state dict: the library behind `tensor-compress compress`.
///
/// A replaced weight `P.weight` (and `P.bias`) becomes the stack's tensors `P.0.weight`,
/// `P.1.weight`, … (the state-dict names of a PyTorch `nn.Sequential` in the layer's place);
/// `__metadata__["stacks"]` describes every stack with ``NNLayers/Layer``'s JSON form, tensors by
/// name. Every other tensor is copied byte for byte. Float64 weights are decomposed in `Double`,
/// all others in `Float`; factors are written in the weight's dtype. The output is deterministic:
/// the same input and options give the same bytes.
///
/// ```swift
/// let model = try SafetensorsFile(contentsOf: url)
/// var options = StateDictCompressionOptions()
/// options.rankSelection = .energy(0.9)
/// let result = try StateDictCompressor(options: options).compress(model)
/// try result.writer.write(to: outputURL)
/// ```
public struct StateDictCompressor: Sendable {
    /// The options, checked by ``init(options:)``.
    public let options: StateDictCompressionOptions

    /// A compressor with checked options.
    ///
    /// - Throws: ``ModelCompressionError/invalidOption(name:value:requirement:)`` for a rank below 1,
    ///   a negative iteration limit or size, or a regular expression that does not compile.
    public init(options: StateDictCompressionOptions) throws {
        if let rank = options.rank, rank < 1 { throw ModelCompressionError.invalidOption(name: "rank", value: "\(rank)", requirement: "at least 1") }
        if let maxRank = options.maxRank, maxRank < 1 {
            throw ModelCompressionError.invalidOption(name: "max rank", value: "\(maxRank)", requirement: "at least 1")
        }
        if let tolerance = options.tolerance, !(tolerance >= 0 && tolerance.isFinite) {
            throw ModelCompressionError.invalidOption(name: "tolerance", value: "\(tolerance)", requirement: "finite and non-negative")
        }
        for (name, value) in [("max iterations", options.maxIterations), ("minimum parameters", options.minimumParameters)] where value < 0 {
            throw ModelCompressionError.invalidOption(name: name, value: "\(value)", requirement: "non-negative")
        }
        if options.inputSize.height < 1 || options.inputSize.width < 1 {
            throw ModelCompressionError.invalidOption(name: "input size", value: "\(options.inputSize)", requirement: "positive")
        }
        for pattern in [options.include, options.exclude].compactMap({ $0 }) {
            do { _ = try Regex(pattern) } catch {
                throw ModelCompressionError.invalidOption(name: "regular expression", value: pattern, requirement: "valid (\(error))")
            }
        }
        self.options = options
    }

    /// The names of the weights that `compress` considers, in file order: floating-point 2-D and
    /// 4-D weights with at least ``StateDictCompressionOptions/minimumParameters`` scalars, of a kind
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
        let embedding = try Regex(StateDictCompressionOptions.embeddingPattern)
        let includeNames = options.include != nil
        var reports: [LayerReport] = []
        var consumed = Set<String>()
        var replacement: [String: [(String, AnyTensor)]] = [:]
        var stacks: [Any] = []
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
            let outcome = entry.dtype == .float64
                ? try compressLayer(file, name: name, bias: biasEntry == nil ? nil : biasName, prefix: prefix, as: Double.self)
                : try compressLayer(file, name: name, bias: biasEntry == nil ? nil : biasName, prefix: prefix, as: Float.self)
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

    /// One layer decomposed in `Scalar`: its report, its stack's tensors and its metadata entry.
    func compressLayer<Scalar: BLASScalar>(
        _ file: SafetensorsFile, name: String, bias biasName: String?, prefix: String, as _: Scalar.Type
    ) throws -> (report: LayerReport, tensors: [(String, AnyTensor)], stack: Any) {
        let entry = file.entries[name]!
        let weight = try file.tensor(named: name, as: Scalar.self)
        let bias = try biasName.map { Array(try file.tensor(named: $0, as: Scalar.self).scalars) }
        let selection = options.rank.map { rank in LayerRankSelection.fixed([rank]) } ?? options.rankSelection
        let clock = ContinuousClock()
        let start = clock.now
        let compressed: CompressedLayer<Scalar>
        let input: [Int]
        if entry.shape.count == 4 {
            let layer = try options.layerSettings[name, default: Conv2DSettings()].convolution(weight: weight, bias: bias)
            input = [layer.inChannels, options.inputSize.height, options.inputSize.width]
            switch options.conv {
            case .cp: compressed = try layer.compressed(by: .cp(selection, maxIterations: options.maxIterations))
            case .tucker2:
                compressed = try layer.compressed(by: .tucker2(options.rank.map { .fixed([$0, $0]) } ?? options.rankSelection))
            case .tt: compressed = try layer.compressed(by: .tensorTrain(maxRank: options.maxRank ?? options.rank, tolerance: options.tolerance))
            case .none: preconditionFailure("candidates(in:) leaves out 4-D weights when conv is none")
            }
        } else {
            let layer = try Linear(weight: Matrix(weight), bias: bias)
            input = [layer.inFeatures]
            switch options.linear {
            case .svd: compressed = try layer.compressed(by: .svd(selection))
            case .tt: compressed = try layer.compressed(by: .tensorTrain(maxRank: options.maxRank ?? options.rank, tolerance: options.tolerance))
            case .none: preconditionFailure("candidates(in:) leaves out 2-D weights when linear is none")
            }
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let cost = try compressed.report(input: input)
        let grows = cost.parameters >= cost.originalParameters || cost.flops > cost.originalFLOPs
        var report = LayerReport(
            name: prefix, shape: entry.shape, method: compressed.method, status: .replaced, ranks: compressed.ranks,
            parametersBefore: cost.originalParameters, parametersAfter: cost.parameters, flopsBefore: cost.originalFLOPs, flopsAfter: cost.flops,
            relativeError: compressed.kernelRelativeError, converged: compressed.converged, iterations: compressed.iterations,
            seconds: seconds, reasons: compressed.reasons)
        if grows && !options.allowGrowth {
            report.status = .keptGrowth(parameters: cost.parameters, originalParameters: cost.originalParameters,
                                        flops: cost.flops, originalFLOPs: cost.originalFLOPs)
            (report.parametersAfter, report.flopsAfter) = (cost.originalParameters, cost.originalFLOPs)
            return (report, [], [String: Any]())
        }
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
