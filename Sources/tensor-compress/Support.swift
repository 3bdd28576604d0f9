import ArgumentParser
import Foundation
import TensorDecompositions
#if canImport(Glibc)
import Glibc
#endif

/// Parses `vbmf`, `energy:F`, `params:F`, `flops:F` (layers only) or `error:F`.
func parseRankSelection(_ text: String) throws -> RankSelection {
    if text == "vbmf" { return .vbmf }
    let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
    guard parts.count == 2, let value = Double(parts[1]), value.isFinite else {
        throw ValidationError("--rank-selection \(text): expected vbmf, energy:F, params:F, flops:F or error:F")
    }
    switch parts[0] {
    case "energy":
        guard value > 0 && value <= 1 else { throw ValidationError("--rank-selection energy:\(value): F must be in (0, 1]") }
        return .energy(value)
    case "params":
        guard value > 0 && value <= 1 else { throw ValidationError("--rank-selection params:\(value): F must be in (0, 1]") }
        return .parameterBudget(value)
    case "flops":
        guard value > 0 && value <= 1 else { throw ValidationError("--rank-selection flops:\(value): F must be in (0, 1]") }
        return .flopBudget(value)
    case "error":
        guard value >= 0 else { throw ValidationError("--rank-selection error:\(value): F must be non-negative") }
        return .relativeError(value)
    default:
        throw ValidationError("--rank-selection \(text): expected vbmf, energy:F, params:F, flops:F or error:F")
    }
}

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
    guard FileManager.default.fileExists(atPath: path) else { throw TensorIOError.fileSystem(path: path, reason: "no such file") }
    return try SafetensorsFile(contentsOf: URL(fileURLWithPath: path))
}

/// Pretty-printed, key-sorted JSON of an encodable value.
func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// A progress bar on standard error, shown only when it is a terminal.
struct ProgressBar {
    let total: Int
    let enabled: Bool

    init(total: Int, quiet: Bool) {
        self.total = total
        enabled = !quiet && isatty(STDERR_FILENO) == 1 && total > 1
    }

    func update(_ done: Int, _ label: String) {
        guard enabled else { return }
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let text = "\r[\(bar)] \(done)/\(total) \(label.prefix(50))"
        FileHandle.standardError.write(Data((text.padding(toLength: 100, withPad: " ", startingAt: 0)).utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: 100) + "\r").utf8))
    }
}

/// A plain-text table with aligned columns.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(separator: "\n")
}

/// `12345678` → `12.3M`.
func compact(_ n: Int) -> String {
    let value = Double(n)
    if value >= 1e9 { return String(format: "%.2fG", value / 1e9) }
    if value >= 1e6 { return String(format: "%.2fM", value / 1e6) }
    if value >= 1e3 { return String(format: "%.1fk", value / 1e3) }
    return "\(n)"
}

/// Monotonic seconds.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
