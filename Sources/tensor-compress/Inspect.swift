import ArgumentParser
import Foundation
import TensorDecompositions

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the layers of a model: ONNX nodes with their settings and MACs, or a state dict's tensors.",
        discussion: """
            An .onnx model: every Conv, Gemm, MatMul, ConvTranspose, LSTM/GRU/RNN and Gather node with its weight, kernel, stride, \
            padding [top, bottom, left, right], dilation, groups, MACs at the input shapes (dynamic dimensions from \
            --input-shape), EVBMF ranks, and whether it can be compressed (the reason when not). \
            A .safetensors state dict: every tensor with its shape, dtype and kind, and EVBMF rank estimates for the \
            layer weights. A sharded checkpoint (a model.safetensors.index.json, or a directory holding one): the same \
            for every shard's tensors, with the shard of each.
            """)

    @Argument(help: "A .onnx or .safetensors file, a model.safetensors.index.json, or a directory holding one.") var file: String
    @Option(help: "NAME=d0,d1,… : the shape of an ONNX graph input (repeatable; NAME= for a scalar).") var inputShape: [InputShape] = []
    @Flag(help: "Print one JSON document on standard output.") var json = false
    @Flag(help: "Skip the EVBMF estimates (faster on large models).") var noVbmf = false

    func validate() throws {
        if !isONNX(file) && !inputShape.isEmpty { throw ValidationError("--input-shape applies to ONNX models") }
    }

    func inspectONNX() throws {
        let model = try ONNXModel(contentsOf: URL(fileURLWithPath: file))
        var options = CompressionOptions()
        options.inputShapes = try InputShape.dictionary(inputShape)
        options.minimumParameters = 0
        let layers = try ModelCompressor(options: options).layers(in: model, estimateRanks: !noVbmf)
        let compressible = layers.filter(\.compressible)
        let parameters = ModelCompressor.parameterCount(of: model.graph)
        let compressibleParameters = compressible.reduce(0) { $0 + ($1.shape?.reduce(1, *) ?? 0) }
        let total = layers.compactMap(\.macs).reduce(0, +), share = compressible.compactMap(\.macs).reduce(0, +)
        let unknown = layers.filter { $0.macs == nil }.count
        if json {
            struct Totals: Encodable {
                var nodes: Int, compressibleNodes: Int, macs: Int, compressibleMACs: Int, nodesWithUnknownMACs: Int
                var parameters: Int, compressibleParameters: Int, nodesInSubgraphs: Int
            }
            struct Document: Encodable { var file: String; var nodes: [GraphLayer]; var totals: Totals }
            let totals = Totals(nodes: layers.count, compressibleNodes: compressible.count, macs: total, compressibleMACs: share,
                                nodesWithUnknownMACs: unknown, parameters: parameters, compressibleParameters: compressibleParameters,
                                nodesInSubgraphs: layers.filter { !$0.subgraph.isEmpty }.count)
            print(try jsonString(Document(file: file, nodes: layers, totals: totals)))
            return
        }
        func list(_ values: [Int]?) -> String { values.map { $0.map(String.init).joined(separator: ",") } ?? "" }
        print(renderTable(["node", "op", "weight shape", "kernel", "stride", "padding", "dilation", "groups", "MACs", "EVBMF ranks", "compressible"],
                          layers.map { l in
            [l.name, l.op, l.shape.map { $0.map(String.init).joined(separator: "×") } ?? "", l.kernel.map { $0.map(String.init).joined(separator: "×") } ?? "",
             list(l.stride), list(l.padding), list(l.dilation), l.groups.map(String.init) ?? "", l.macs.map(compact) ?? "?",
             l.vbmfRanks.map { "\($0)" } ?? "", l.compressible ? "yes" : "no: \(l.refusal?.commandLineDescription ?? "")"]
        }))
        print("\(layers.count) nodes, \(compressible.count) compressible; MACs \(compact(total)) in all of them\(unknown > 0 ? " (\(unknown) with unknown MACs)" : ""), "
              + "\(compact(share)) in the compressible ones; parameters \(compact(parameters)) in the model, \(compact(compressibleParameters)) in the "
              + "compressible nodes; opset \(model.opsetVersion), IR \(model.irVersion)")
    }

    struct Row: Encodable {
        var name: String
        var shape: [Int]
        var dtype: String
        var kind: String
        var vbmfRanks: [Int]?
        var parameters: Int
        /// Parameters of the SVD (2-D) or Tucker-2 (4-D) factors at the EVBMF ranks.
        var compressedParameters: Int?
        /// The shard file that holds the tensor (sharded checkpoints only).
        var shard: String?
    }

    func run() throws {
        if isONNX(file) { return try inspectONNX() }
        do {
            var rows: [Row] = []
            if ShardedSafetensors.isSharded(file) {
                let checkpoint = try ShardedSafetensors(contentsOf: URL(fileURLWithPath: file))
                for shard in checkpoint.index.shards { rows += try inspect(try checkpoint.shard(shard), shard: shard) }
            } else {
                rows = try inspect(try openModel(file), shard: nil)
            }
            if json {
                struct Document: Encodable { var file: String; var tensors: [Row] }
                print(try jsonString(Document(file: file, tensors: rows)))
                return
            }
            let sharded = rows.contains { $0.shard != nil }
            print(renderTable(["name", "shape", "dtype", "kind", "EVBMF ranks", "parameters", "at EVBMF ranks"] + (sharded ? ["shard"] : []), rows.map { row in
                [row.name, row.shape.map(String.init).joined(separator: "×"), row.dtype, row.kind,
                 row.vbmfRanks.map { "\($0)" } ?? "", compact(row.parameters),
                 row.compressedParameters.map { "\(compact($0)) (\(String(format: "%.1f", Double(row.parameters) / Double(max($0, 1))))×)" } ?? ""]
                    + (sharded ? [row.shard ?? ""] : [])
            }))
            print("\(rows.count) tensors, \(compact(rows.reduce(0) { $0 + $1.parameters })) parameters")
        }
    }

    /// One row per tensor of `model`, in file order, with EVBMF estimates unless `--no-vbmf`.
    func inspect(_ model: SafetensorsFile, shard: String?) throws -> [Row] {
        var rows: [Row] = []
        for name in model.names {
            let entry = model.entries[name]!
            let count = entry.shape.reduce(1, *)
            var row = Row(name: name, shape: entry.shape, dtype: entry.dtype.rawValue, kind: "other", vbmfRanks: nil,
                          parameters: count, compressedParameters: nil, shard: shard)
            if entry.dtype.isFloatingPoint && entry.shape.count == 4 { row.kind = "conv2d (OIHW)" }
            if entry.dtype.isFloatingPoint && entry.shape.count == 2 { row.kind = "linear (out, in)" }
            if !noVbmf && entry.dtype.isFloatingPoint && count > 0 && (entry.shape.count == 2 || entry.shape.count == 4) {
                let tensor = try model.tensor(named: name, as: Float.self)
                if entry.shape.count == 2 {
                    let r = try evbmf(Matrix(tensor), forceAtLeastOne: true).rank
                    row.vbmfRanks = [r]
                    row.compressedParameters = r * (entry.shape[0] + entry.shape[1])
                } else {
                    let ranks = try selectRanks(for: tensor, modes: [0, 1], selection: .vbmf).ranks
                    row.vbmfRanks = ranks
                    row.compressedParameters = ranks[0] * ranks[1] * entry.shape[2] * entry.shape[3]
                        + entry.shape[0] * ranks[0] + entry.shape[1] * ranks[1]
                }
            }
            rows.append(row)
        }
        return rows
    }
}
