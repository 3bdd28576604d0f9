import Foundation
import TensorModule

/// One measured operation.
public struct BenchmarkResult: Codable, Sendable {
    public var name: String
    public var scalar: String
    public var shape: [Int]
    /// Median seconds of one call.
    public var seconds: Double
    /// Floating-point operations of one call (0 for pure data movement).
    public var flops: Double
    /// Bytes read and written by one call (for data movement).
    public var bytes: Double
    /// The same-run baseline's rate (GFLOP/s or GB/s) and the ratio of this operation's rate to it.
    public var baselineRate: Double
    public var ratio: Double

    public init(name: String, scalar: String, shape: [Int], seconds: Double, flops: Double, bytes: Double, baselineRate: Double, ratio: Double) {
        (self.name, self.scalar, self.shape, self.seconds) = (name, scalar, shape, seconds)
        (self.flops, self.bytes, self.baselineRate, self.ratio) = (flops, bytes, baselineRate, ratio)
    }

    public var gflops: Double { flops / seconds / 1e9 }
    public var gigabytesPerSecond: Double { bytes / seconds / 1e9 }
}

/// Median of `samples` timings of `body`, each sample repeating it enough to last `minimum` seconds.
public func medianSeconds(samples: Int = 5, minimum: Double = 0.05, _ body: () throws -> Void) rethrows -> Double {
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    try body()  // warm-up
    var start = now()
    try body()
    let once = max(now() - start, 1e-9)
    let repeats = max(1, Int(minimum / once))
    var times: [Double] = []
    for _ in 0..<samples {
        start = now()
        for _ in 0..<repeats { try body() }
        times.append((now() - start) / Double(repeats))
    }
    times.sort()
    return times[times.count / 2]
}

/// Interleaved timing of an operation and its baseline: each of `samples` rounds times both
/// (each for at least `minimum` seconds), so that drift of the machine affects both alike.
/// Returns the median seconds of one call of each and the median of the per-round ratios
/// `baselineSeconds / operationSeconds` scaled by `work / baselineWork`.
public func interleavedMedians(
    samples: Int = 7, minimum: Double = 0.03,
    _ operation: () throws -> Void, baseline: () throws -> Void
) rethrows -> (operation: Double, baseline: Double, speedRatio: Double) {
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    func repeats(_ body: () throws -> Void) rethrows -> Int {
        try body()
        let start = now()
        try body()
        return max(1, Int(minimum / max(now() - start, 1e-9)))
    }
    let (n1, n2) = (try repeats(operation), try repeats(baseline))
    var op: [Double] = [], base: [Double] = [], ratio: [Double] = []
    for _ in 0..<samples {
        var start = now()
        for _ in 0..<n1 { try operation() }
        let a = (now() - start) / Double(n1)
        start = now()
        for _ in 0..<n2 { try baseline() }
        let b = (now() - start) / Double(n2)
        op.append(a); base.append(b); ratio.append(b / a)
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    return (median(op), median(base), median(ratio))
}

/// Command-line flags shared by the benchmark executables.
///
/// A class because ``includes(_:shape:)`` records every measurement it is asked about, so that
/// ``exitIfNothingMatched()`` can list them when `--filter` selects none.
public final class BenchmarkArguments {
    public var json = false
    /// A folder to write the inputs, the CP starts and the results to (for the TensorLy comparison).
    public var inputDirectory: String?
    /// Only measurements whose name and shape contain every one of these strings (all when empty).
    /// `x` and `×` are the same letter here, so `128x128` selects `128×128`.
    public var filters: [String] = []
    /// Every measurement label offered to `includes`, in order, and whether one passed the filters.
    private var labels: [String] = []
    private var matched = false

    /// Whether a measurement named `name` on `shape` passes `--filter`.
    public func includes(_ name: String, shape: [Int]) -> Bool {
        let shapeText = shape.map(String.init).joined(separator: "×")
        let label = name + " " + shapeText
        let shown = name.contains(shapeText) ? name : label
        if !labels.contains(shown) { labels.append(shown) }
        let passes = filters.allSatisfy { Self.folded(label).contains(Self.folded($0)) }
        if passes { matched = true }
        return passes
    }

    /// `text` with `×` written `x`, so that filters typed without the Unicode sign match.
    static func folded(_ text: String) -> String { text.replacingOccurrences(of: "×", with: "x") }

    /// Exits with status 1, naming every measurement, when `--filter` was given and none of the
    /// measurements offered to ``includes(_:shape:)`` so far passed it.
    public func exitIfNothingMatched() {
        guard !filters.isEmpty, !matched else { return }
        let given = filters.map { "--filter '\($0)'" }.joined(separator: " ")
        let message = "no measurement matches \(given); a measurement runs when its name and shape contain every filter's text. The measurements:\n"
            + labels.map { "  \($0)\n" }.joined()
        FileHandle.standardError.write(Data(message.utf8))
        exit(1)
    }

    public init(_ arguments: [String] = CommandLine.arguments) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--json": json = true
            case "--write-inputs":
                guard let value = iterator.next() else {
                    FileHandle.standardError.write(Data("--write-inputs needs a folder\n".utf8))
                    exit(2)
                }
                inputDirectory = value
            case "--filter":
                guard let value = iterator.next() else {
                    FileHandle.standardError.write(Data("--filter needs a text, e.g. 'mttkrp' or '128x128x128'\n".utf8))
                    exit(2)
                }
                filters.append(value)
            case "--help", "-h":
                print("""
                    usage: \(arguments[0]) [--json] [--write-inputs DIR] [--filter TEXT]...
                      OPENBLAS_NUM_THREADS sets the BLAS thread count (quote 1 first).
                      --filter keeps the measurements whose name or shape (e.g. 128×128×128, or 128x128x128) contains TEXT
                      (repeatable: all must match); a filter that matches nothing lists the measurements and exits 1.
                    """)
                exit(0)
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument); try --help\n".utf8))
                exit(2)
            }
        }
    }
}

/// A line describing the machine and thread count.
public func machineDescription() -> String {
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, OpenBLAS threads: \(BLASThreads.count)"
}

/// Prints the measurements as a table or as one JSON document.
public func report(_ measurements: [BenchmarkResult], title: String, json: Bool) {
    if json {
        struct Document: Codable { var title: String; var machine: String; var blasThreads: Int; var measurements: [BenchmarkResult] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try! encoder.encode(Document(title: title, machine: machineDescription(), blasThreads: BLASThreads.count, measurements: measurements))
        print(String(decoding: data, as: UTF8.self))
        return
    }
    print("# \(title)\n# \(machineDescription())")
    print("| operation | type | shape | median ms | rate | same-run baseline | ratio |")
    print("|---|---|---|---:|---:|---:|---:|")
    for m in measurements {
        let rate = m.flops > 0 ? String(format: "%.1f GFLOP/s", m.gflops) : String(format: "%.2f GB/s", m.gigabytesPerSecond)
        let base = m.flops > 0 ? String(format: "%.1f GFLOP/s", m.baselineRate) : String(format: "%.2f GB/s", m.baselineRate)
        let shape = m.shape.map(String.init).joined(separator: "×")
        print(String(format: "| %@ | %@ | %@ | %.3f | %@ | %@ | %.2f |", m.name, m.scalar, shape, m.seconds * 1e3, rate, base, m.ratio))
    }
}
