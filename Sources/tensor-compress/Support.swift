import ArgumentParser
import Foundation
import Synchronization
import TensorDecompositions
#if canImport(Glibc)
import Glibc
#endif

/// `vbmf`, `energy:F`, `params:F`, `flops:F` or `error:F`, as the command line writes a rank rule.
extension LayerRankSelection: ExpressibleByArgument {
    public init?(argument: String) {
        if argument.hasPrefix("flops:") {
            guard let value = Double(argument.dropFirst("flops:".count)), value > 0, value <= 1 else { return nil }
            self = .flopBudget(value)
        } else {
            guard let rule = RankSelection(argument: argument) else { return nil }
            self = .kernel(rule)
        }
    }

    public static var defaultCompletionKind: CompletionKind { .list(["vbmf", "energy:", "params:", "flops:", "error:"]) }
}

/// `vbmf`, `energy:F`, `params:F` or `error:F`: the rules that need only the tensor.
extension RankSelection: ExpressibleByArgument {
    public init?(argument: String) {
        if argument == "vbmf" { self = .vbmf; return }
        let parts = argument.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let value = Double(parts[1]), value.isFinite else { return nil }
        switch parts[0] {
        case "energy" where value > 0 && value <= 1: self = .energy(value)
        case "params" where value > 0 && value <= 1: self = .parameterBudget(value)
        case "error" where value >= 0: self = .relativeError(value)
        default: return nil
        }
    }
}

/// `H,W` or one size for both axes.
extension Size2D: ExpressibleByArgument {
    public init?(argument: String) {
        let values = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(values.count), values.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        self = values.count == 1 ? Size2D(values[0]!) : Size2D(values[0]!, values[1]!)
    }

    public var defaultValueDescription: String { "\(height),\(width)" }
}

/// `NAME=d0,d1,…`: the shape of one ONNX graph input (`NAME=` for a scalar).
struct InputShape: ExpressibleByArgument, CustomStringConvertible {
    var name: String
    var shape: [Int]

    init?(argument: String) {
        guard let equals = argument.lastIndex(of: "=") else { return nil }
        let name = String(argument[..<equals])
        let values = argument[argument.index(after: equals)...].split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        // `NAME=` with nothing after it is a scalar (rank 0), such as a sample rate.
        guard !name.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        (self.name, self.shape) = (name, values.map { $0! })
    }

    var description: String { "\(name)=\(shape.map(String.init).joined(separator: ","))" }

    static var defaultCompletionKind: CompletionKind { .default }

    /// The shapes by input name; a name given twice is refused.
    static func dictionary(_ shapes: [InputShape]) throws -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for s in shapes {
            guard result.updateValue(s.shape, forKey: s.name) == nil else { throw ValidationError("--input-shape \(s.name) is given twice") }
        }
        return result
    }
}

/// Whether a path names an ONNX model (by its extension).
func isONNX(_ path: String) -> Bool { path.lowercased().hasSuffix(".onnx") }

/// `macs:F` or `params:F` with `0 < F ≤ 1`.
extension CompressionBudget: ExpressibleByArgument {
    public init?(argument: String) {
        let parts = argument.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let value = Double(parts[1]), value > 0, value <= 1 else { return nil }
        switch parts[0] {
        case "macs": self = .macs(value)
        case "params": self = .parameters(value)
        default: return nil
        }
    }
}

extension BudgetAllocation: ExpressibleByArgument {}
extension UncalibratedLayers: ExpressibleByArgument {}

/// `float32`, `float16`, `bfloat16`, `float64` (and the other element types, refused where they
/// make no sense).
extension DType: ExpressibleByArgument {}

/// `INDEX/COUNT`, e.g. `0/3`.
extension ShardAssignment: ExpressibleByArgument {
    public init?(argument: String) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let index = parts[0], let count = parts[1], let value = try? ShardAssignment(index: index, count: count) else { return nil }
        self = value
    }
}

extension CompressionOptions.ConvMethod: ExpressibleByArgument {}
extension CompressionOptions.LinearMethod: ExpressibleByArgument {}

/// Parses `a,b,…` of positive integers.
func parseIntegers(_ text: String, option: String, count: Int? = nil) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }), count.map({ values.count == $0 }) ?? true else {
        throw ValidationError("\(option) \(text): expected \(count.map { "\($0) " } ?? "")comma-separated positive integers")
    }
    return values.map { $0! }
}

/// Prints one line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Opens a safetensors file with a clear error for a missing path.
func openModel(_ path: String) throws -> SafetensorsFile {
    return try SafetensorsFile(contentsOf: URL(fileURLWithPath: path))
}

/// The tensors of a `.safetensors`, `.npz` or `.npy` file, read by name.
struct TensorFile {
    /// The tensor names: a `.npy` file holds one, named after the file.
    let names: [String]
    private let dtypeOf: (String) throws -> DType
    private let float: (String) throws -> Tensor<Float>
    private let double: (String) throws -> Tensor<Double>

    /// Opens `path` by its extension; anything but `.npy` and `.npz` is read as safetensors.
    init(path: String) throws {
        try InputFile.checkRegular(path)
        let url = URL(fileURLWithPath: path)
        switch url.pathExtension.lowercased() {
        case "npy":
            let data = try InputFile.contents(of: url)
            let header = try data.withUnsafeBytes { try NPYHeader(parsing: $0) }
            names = [url.deletingPathExtension().lastPathComponent]
            dtypeOf = { _ in header.dtype }
            float = { _ in try Tensor<Float>(npyData: data) }
            double = { _ in try Tensor<Double>(npyData: data) }
        case "npz":
            let archive = try NPZFile(contentsOf: url)
            names = archive.names
            dtypeOf = { try archive.header(named: $0).dtype }
            float = { try archive.tensor(named: $0, as: Float.self) }
            double = { try archive.tensor(named: $0, as: Double.self) }
        default:
            let model = try SafetensorsFile(contentsOf: url)
            names = model.names
            dtypeOf = { name in
                guard let entry = model.entries[name] else { throw TensorIOError.unknownTensor(name: name, available: model.names) }
                return entry.dtype
            }
            float = { try model.tensor(named: $0, as: Float.self) }
            double = { try model.tensor(named: $0, as: Double.self) }
        }
    }

    func dtype(of name: String) throws -> DType {
        guard names.contains(name) else { throw TensorIOError.unknownTensor(name: name, available: names) }
        return try dtypeOf(name)
    }

    func tensor<Scalar: BLASScalar>(named name: String, as _: Scalar.Type) throws -> Tensor<Scalar> {
        guard names.contains(name) else { throw TensorIOError.unknownTensor(name: name, available: names) }
        if Scalar.self == Double.self, let tensor = try double(name) as? Tensor<Scalar> { return tensor }
        if let tensor = try float(name) as? Tensor<Scalar> { return tensor }
        preconditionFailure("BLASScalar has two conformances, Float and Double; got \(Scalar.self)")
    }
}

/// Pretty-printed, key-sorted JSON of an encodable value.
func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// A progress bar on standard error, shown only when it is a terminal, with the time left
/// estimated from the fraction of the work done. Safe to update from several threads.
final class ProgressBar: Sendable {
    let enabled: Bool
    let started = now()
    let lastDrawn = Mutex(0.0)

    init(quiet: Bool) {
        enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Redraws the bar (at most ten times a second): `fraction` of the work done, and a label.
    func update(fraction: Double, _ label: String) {
        guard enabled else { return }
        let time = now()
        guard lastDrawn.withLock({ last in
            guard time - last >= 0.1 || fraction >= 1 else { return false }
            last = time
            return true
        }) else { return }
        let width = 30
        let done = Swift.min(Swift.max(fraction, 0), 1)
        let filled = Int(Double(width) * done)
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let elapsed = time - started
        let left = done > 0.01 ? Self.duration(elapsed * (1 - done) / done) + " left" : ""
        let text = "\r[\(bar)] \(Int(done * 100))% \(Self.duration(elapsed)) \(left) \(label.prefix(60))"
        FileHandle.standardError.write(Data(text.padding(toLength: 130, withPad: " ", startingAt: 0).utf8))
    }

    /// `m:ss` or `h:mm:ss`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: 130) + "\r").utf8))
    }
}

/// A plain-text table with aligned columns.
func renderTable(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        var text = ""
        for (column, cell) in cells.enumerated() {
            if column > 0 { text += "  " }
            text += cell
            if column < cells.count - 1 { text += String(repeating: " ", count: widths[column] - cell.count) }
        }
        while text.last == " " { text.removeLast() }
        return text
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(separator: "\n")
}

/// `value` with `digits` decimals (`fixed(0.12345, 3)` is `0.123`), as `%.Nf` prints it, without
/// Foundation's formatter (a report's table formats a few hundred numbers).
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard value.isFinite, scaled < 1e18 else { return String(format: "%.\(digits)f", value) }
    let units = Int(scaled)
    let whole = units / Int(scale), fraction = units % Int(scale)
    let sign = value < 0 && units > 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let decimals = String(fraction)
    return sign + String(whole) + "." + String(repeating: "0", count: digits - decimals.count) + decimals
}

/// `12345678` → `12.35M`.
func compact(_ n: Int) -> String {
    let value = Double(n)
    if value >= 1e9 { return fixed(value / 1e9, 2) + "G" }
    if value >= 1e6 { return fixed(value / 1e6, 2) + "M" }
    if value >= 1e3 { return fixed(value / 1e3, 1) + "k" }
    return "\(n)"
}

/// Monotonic seconds.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

// MARK: The library's errors and reasons in the command line's words
//
// The library names options as `CompressionOptions` does; only here are they spelled as flags.

extension CompressionOptionName {
    /// The flag that sets the option, `nil` for options the command line does not expose.
    var flag: String? {
        switch self {
        case .rank: return "--rank"
        case .maxRank: return "--max-rank"
        case .tolerance: return "--tolerance"
        case .maxIterations: return "--max-iterations"
        case .minimumParameters: return "--min-parameters"
        case .jobs: return "--jobs"
        case .outputDType: return "--dtype"
        case .inputSize: return "--input-size"
        case .include: return "--include"
        case .exclude: return "--exclude"
        case .budget: return "--budget"
        case .layerWeights: return "--layer-weights"
        case .rankMultiple, .minimumBudgetShare: return nil
        }
    }
}

extension LayerRefusal {
    /// The reason, options named by their flags.
    var commandLineDescription: String {
        switch self {
        case .methodNone(.convolution): return "convolutions are not compressed (--conv none)"
        case .methodNone(.linear): return "linear layers are not compressed (--linear none)"
        case .filtered: return "excluded by --include/--exclude"
        default: return description
        }
    }
}

extension LayerStatus {
    /// What happened, options named by their flags.
    var commandLineDescription: String {
        switch self {
        case let .notCompressible(refusal): return "skipped: \(refusal.commandLineDescription)"
        case .skippedEmbedding: return "skipped: an embedding table (indexed, not multiplied); name it in --include to compress it"
        case .skippedUncalibrated: return "skipped: the statistics do not name it (--uncalibrated data-free compresses it from its weights alone)"
        default: return description
        }
    }
}

/// A library error's one-line message with the options named by their flags, `nil` for errors
/// whose own description already says it all.
func commandLineMessage(for error: any Error) -> String? {
    if let error = error as? ModelCompressionError {
        switch error {
        case let .invalidOption(name, value, requirement):
            guard let flag = name.flag else { return nil }
            return "\(flag) \(value) must be \(requirement)"
        case let .budgetWithTensorTrain(kind):
            return kind == .linear ? "--budget allocates SVD ranks of linear layers: use --linear svd, not tt"
                : "--budget allocates Tucker-2 and CP ranks of convolutions: use --conv tucker2 or cp, not tt"
        case let .unknownInputRank(node):
            return "node \(node): a tensor-train replacement needs the rank of its input, which the graph's shapes do not give; pass --input-shape"
        case .budgetWithoutStatistics:
            return "--budget without --statistics allocates ranks and factors from the weights alone, which can break a network "
                + "(measured: a text-orientation CNN fell from 98% to 79% accuracy, PP-OCR's recogniser to 100% CER); collect statistics "
                + "with Scripts/calibrate.sh MODEL INPUTS.npz STATS.safetensors and pass --statistics STATS.safetensors, or pass --data-free"
        case let .invalidShardAssignment(index, count): return "--shard \(index)/\(count) must be INDEX/COUNT with 0 ≤ INDEX < COUNT"
        default: return nil
        }
    }
    if let error = error as? ONNXError, case let .dynamicInput(name, shape) = error {
        return "onnx: input \(name) has shape \(shape) with dynamic dimensions; give its shape with --input-shape \(name)=d0,d1,…"
    }
    return nil
}
