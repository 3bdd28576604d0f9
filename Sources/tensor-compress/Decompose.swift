import ArgumentParser
import Foundation
import TensorDecompositions

struct Decompose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decompose one tensor and report its error and size; optionally write the factors.",
        discussion: """
            The file may be .safetensors, .npz or .npy. Float64 tensors are decomposed in Double and their \
            factors written as float64; float16 and bfloat16 ones are decomposed in Float and written in their \
            own dtype; all others in Float.
            """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case svd, cp, tucker, tucker2, tt }
    enum Initialization: String, ExpressibleByArgument, CaseIterable { case svd, random }

    @Argument(help: "A .safetensors, .npz or .npy file.") var file: String
    @Option(help: "The tensor to decompose (required when the file holds more than one).") var tensor: String?
    @Option(help: "svd, cp, tucker (all modes), tucker2 (modes 0 and 1), tt.") var method: Method
    @Option(help: "One rank (svd, cp; tt: the largest rank).") var rank: Int?
    @Option(help: "Ranks a,b,… (tucker: one per mode; tucker2: out,in; tt: one per internal bond).") var ranks: String?
    @Option(help: "The largest TT rank.") var maxRank: Int?
    @Option(help: "TT relative accuracy ε.") var tolerance: Double?
    @Option(help: "vbmf, energy:F, params:F or error:F (default vbmf when no rank is given).") var rankSelection: RankSelection?
    @Option(help: "CP start: svd or random.") var `init`: Initialization = .svd
    @Option(help: "Seed of random starts.") var seed: UInt64 = 0
    @Option(help: "Iteration limit of CP-ALS and HOOI.") var maxIterations: Int = 100
    @Option(help: "Write the factors to this .safetensors file.") var output: String?
    @Flag(help: "svd: LAPACK's exact gesdd (default: block Krylov for large matrices at small ranks).") var exact = false
    @Flag(help: "Print one JSON document on standard output.") var json = false

    struct Result: Encodable {
        var tensor: String
        var method: String
        var shape: [Int]
        var dtype: String
        var ranks: [Int]
        var relativeError: Double
        var originalParameters: Int
        var parameters: Int
        var iterations: Int
        var converged: Bool
        var seconds: Double
        var reasons: [String]
    }

    func validate() throws {
        if let rank, rank < 1 { throw ValidationError("--rank \(rank) must be at least 1") }
        if let maxRank, maxRank < 1 { throw ValidationError("--max-rank \(maxRank) must be at least 1") }
        if let tolerance, !(tolerance >= 0) { throw ValidationError("--tolerance \(tolerance) must be non-negative") }
        if maxIterations < 0 { throw ValidationError("--max-iterations \(maxIterations) must be non-negative") }
        if [rank != nil, ranks != nil, rankSelection != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give at most one of --rank, --ranks and --rank-selection")
        }
        if let ranks, method == .cp || method == .svd, (try? parseIntegers(ranks, option: "--ranks", count: 1)) == nil {
            throw ValidationError("--ranks \(ranks): \(method.rawValue) has a single rank; pass it as --rank R")
        }
        if method == .tt && rankSelection != nil { throw ValidationError("tt takes --ranks, --max-rank or --tolerance, not --rank-selection") }
        if method != .tt && (maxRank != nil || tolerance != nil) { throw ValidationError("--max-rank and --tolerance apply to --method tt") }
    }

    func run() throws {
        let outputFile = try output.map { try OutputFile(path: $0) }
        if let outputFile, outputFile.isSameFile(as: file) {
            throw ValidationError("--output \(outputFile.path) is the input file; write the factors to another file")
        }
        let source = try TensorFile(path: file)
        let name: String
        if let tensor { name = tensor } else {
            guard source.names.count == 1 else {
                throw ValidationError("the file holds \(source.names.count) tensors; choose one with --tensor (see `tensor-compress inspect`)")
            }
            name = source.names[0]
        }
        let dtype = try source.dtype(of: name)
        guard dtype.isFloatingPoint else { throw ValidationError("\(name) is \(dtype.rawValue); decompose needs a floating-point tensor") }
        let (result, writer) = dtype == .float64
            ? try decompose(try source.tensor(named: name, as: Double.self), name: name, dtype: dtype)
            : try decompose(try source.tensor(named: name, as: Float.self), name: name, dtype: dtype)
        if var writer, let outputFile {
            writer.metadata["source"] = "\(file) \(name)"
            writer.metadata["method"] = method.rawValue
            writer.metadata["ranks"] = result.ranks.map(String.init).joined(separator: ",")
            try OutputFile.write([(outputFile, try writer.encoded())])
        }
        if json { print(try jsonString(result)); return }
        print("\(name) \(result.shape) \(dtype.rawValue) by \(method.rawValue): ranks \(result.ranks)")
        for reason in result.reasons { print("  \(reason)") }
        print(String(format: "relative error %.6f, parameters %@ → %@ (%.1f× smaller), %.3f s%@",
                     result.relativeError, compact(result.originalParameters), compact(result.parameters),
                     Double(result.originalParameters) / Double(max(result.parameters, 1)), result.seconds,
                     result.iterations > 0 ? ", \(result.iterations) iterations\(result.converged ? "" : " (not converged)")" : ""))
        if let output { print("factors written to \(output)") }
    }

    /// The decomposition in `Scalar`, its report and (with `--output`) its factors in the input's dtype.
    func decompose<Scalar: BLASScalar>(_ x: Tensor<Scalar>, name: String, dtype: DType) throws -> (Result, SafetensorsWriter?) {
        let selection = rankSelection ?? .vbmf
        let outputType: DType = [.float16, .bfloat16, .float64].contains(dtype) ? dtype : .float32
        var writer = SafetensorsWriter()
        func add(_ tensorName: String, _ tensor: Tensor<Scalar>) throws { try writer.add(tensorName, tensor, dtype: outputType) }
        var result = Result(tensor: name, method: method.rawValue, shape: x.shape, dtype: dtype.rawValue, ranks: [], relativeError: 0,
                            originalParameters: x.scalarCount, parameters: 0, iterations: 0, converged: true, seconds: 0, reasons: [])
        let start = now()
        switch method {
        case .svd:
            guard x.order == 2 else { throw ValidationError("svd needs a 2-D tensor; \(name) has shape \(x.shape)") }
            let choice = try rank.map { RankChoice(ranks: [$0], reasons: ["rank \($0) given"]) }
                ?? selectRanks(for: x, modes: [0], selection: ranks.map { .fixed(try parseIntegers($0, option: "--ranks", count: 1)) } ?? selection)
            let f = try svd(Matrix(x), rank: choice.ranks[0], method: exact ? .exact : .automatic)
            result.seconds = now() - start
            (result.ranks, result.reasons, result.parameters) = (choice.ranks, choice.reasons, f.parameterCount)
            result.relativeError = Double(try f.relativeError(to: x))
            try add("u", Tensor(f.u)); try add("s", Tensor(shape: [f.rank], scalars: f.singularValues)); try add("vt", Tensor(f.vt))
        case .cp:
            let choice = try rank.map { RankChoice(ranks: [$0], reasons: ["rank \($0) given"]) }
                ?? selectCPRank(for: x, selection: ranks.map { .fixed(try parseIntegers($0, option: "--ranks", count: 1)) } ?? selection)
            let options = CPOptions<Scalar>(maxIterations: maxIterations, initialization: `init` == .svd ? .svd(seed: seed) : .random(seed: seed))
            let d = try cpDecompose(x, rank: choice.ranks[0], options: options)
            result.seconds = now() - start
            (result.ranks, result.reasons, result.parameters) = (choice.ranks, choice.reasons, d.cp.parameterCount)
            (result.iterations, result.converged) = (d.iterations, d.converged)
            result.relativeError = Double(try d.cp.relativeError(to: x))
            try add("weights", Tensor(shape: [d.cp.rank], scalars: d.cp.weights))
            for (k, factor) in d.cp.factors.enumerated() { try add("factor.\(k)", Tensor(factor)) }
        case .tucker, .tucker2:
            let modes = method == .tucker2 ? [0, 1] : Array(0..<x.order)
            if method == .tucker2 && x.order < 2 { throw ValidationError("tucker2 needs at least 2 modes; \(name) has shape \(x.shape)") }
            let choice = try ranks.map { RankChoice(ranks: try parseIntegers($0, option: "--ranks", count: modes.count), reasons: ["ranks given"]) }
                ?? selectRanks(for: x, modes: modes, selection: rank.map { .fixed([Int](repeating: $0, count: modes.count)) } ?? selection)
            let d = try tuckerDecompose(x, ranks: choice.ranks, modes: modes, options: TuckerOptions(maxIterations: maxIterations))
            result.seconds = now() - start
            (result.ranks, result.reasons, result.parameters) = (choice.ranks, choice.reasons, d.tucker.parameterCount)
            (result.iterations, result.converged) = (d.iterations, d.converged)
            result.relativeError = Double(try d.tucker.relativeError(to: x))
            try add("core", d.tucker.core)
            for (k, factor) in d.tucker.factors.enumerated() { try add("factor.\(modes[k])", Tensor(factor)) }
        case .tt:
            let tt: TTTensor<Scalar>
            if let ranks { tt = try ttDecompose(x, ranks: try parseIntegers(ranks, option: "--ranks")) }
            else if let tolerance { tt = try ttDecompose(x, tolerance: tolerance, maxRank: maxRank) }
            else if let maxRank { tt = try ttDecompose(x, maxRank: maxRank) }
            else if let rank { tt = try ttDecompose(x, maxRank: rank) }
            else { throw ValidationError("tt needs --ranks, --max-rank or --tolerance") }
            result.seconds = now() - start
            (result.ranks, result.parameters) = (tt.ranks, tt.parameterCount)
            result.relativeError = Double(try tt.relativeError(to: x))
            for (k, core) in tt.cores.enumerated() { try add("core.\(k)", core) }
        }
        return (result, output == nil ? nil : writer)
    }
}
