import ArgumentParser
import Foundation
import TensorDecompositions

/// Writes a generated stand-in model: a small BERT-like encoder (linear layers with decaying
/// spectra plus noise, LayerNorm vectors, int64 position ids) and a small CNN; or, with
/// `--shards`, a sharded decoder-only checkpoint in the layout of Llama-style language models.
struct GenerateModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-model", abstract: "Write a generated stand-in model (.safetensors, or a sharded checkpoint) for demos, tests and benchmarks.",
        discussion: """
            With --shards N, OUTPUT is a directory that receives a Llama-style checkpoint: --layers blocks of four \
            hidden×hidden attention projections and gate/up (intermediate×hidden) and down (hidden×intermediate) MLP \
            projections, RMSNorm vectors, a small embedding table, in --dtype, split over N shards \
            model-0000k-of-0000N.safetensors with model.safetensors.index.json. Weights are Gaussian with rows scaled by \
            a decaying profile (a decaying spectrum at the cost of one pass). Defaults give a 1.3B-parameter bfloat16 \
            checkpoint with --layers 24 --hidden 2048 --intermediate 5632 --shards 4.
            """)

    @Argument(help: "The output .safetensors file (a directory with --shards).") var output: String
    @Option(help: "Hidden size.") var hidden: Int = 384
    @Option(help: "Encoder (or decoder) layers.") var layers: Int = 2
    @Option(help: "MLP width of the sharded checkpoint (default 4 × hidden).") var intermediate: Int?
    @Option(help: "Write a sharded Llama-style checkpoint in this many shards.") var shards: Int?
    @Option(help: "Element type of the sharded checkpoint's weights.") var dtype: DType = .bfloat16
    @Option(help: "Seed.") var seed: UInt64 = 1

    /// Sizes a stand-in model can have: every weight's element count fits in memory and in `Int`.
    func validate() throws {
        guard (1...65_536).contains(hidden) else { throw ValidationError("--hidden \(hidden): expected 1 to 65536") }
        guard (1...4096).contains(layers) else { throw ValidationError("--layers \(layers): expected 1 to 4096") }
        if let intermediate, !(1...262_144).contains(intermediate) {
            throw ValidationError("--intermediate \(intermediate): expected 1 to 262144")
        }
    }

    func run() throws {
        if let shards { return try writeSharded(shards: shards) }
        do {
            var writer = SafetensorsWriter()
            writer.metadata["format"] = "pt"
            writer.metadata["generator"] = "tensor-compress generate-model"
            var nextSeed = seed
            func matrix(_ rows: Int, _ columns: Int) throws -> Tensor<Float> {
                nextSeed += 10
                let r = min(rows, columns)
                let u = try Matrix<Float>.randomNormal(rows: rows, columns: r, seed: nextSeed).qr().q
                let v = try Matrix<Float>.randomNormal(rows: columns, columns: r, seed: nextSeed + 1).qr().q
                let values = (0..<r).map { Float(Foundation.exp(-6 * Double($0) / Double(r))) }
                let signal = u.scalingColumns(by: values).matmul(v, transposeOther: true)
                let noise = 0.02 * signal.frobeniusNorm / Float(rows * columns).squareRoot()
                return Tensor(signal + noise * Matrix.randomNormal(rows: rows, columns: columns, seed: nextSeed + 2))
            }
            func vector(_ n: Int, _ value: Float) throws -> Tensor<Float> { Tensor(repeating: value, shape: [n]) }
            let h = hidden
            try writer.add("embeddings.word_embeddings.weight", matrix(1000, h))
            try writer.addRaw("embeddings.position_ids", dtype: .int64, shape: [1, 128],
                              bytes: Data((0..<128).flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }))
            for l in 0..<layers {
                let p = "encoder.layer.\(l)"
                for part in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                    try writer.add("\(p).\(part).weight", matrix(h, h))
                    try writer.add("\(p).\(part).bias", vector(h, 0.01))
                }
                try writer.add("\(p).attention.output.LayerNorm.weight", vector(h, 1))
                try writer.add("\(p).intermediate.dense.weight", matrix(4 * h, h))
                try writer.add("\(p).intermediate.dense.bias", vector(4 * h, 0.01))
                try writer.add("\(p).output.dense.weight", matrix(h, 4 * h))
                try writer.add("\(p).output.dense.bias", vector(h, 0.01))
            }
            // A small CNN: kernels with low channel rank plus noise.
            for (k, (t, s)) in [(32, 3), (64, 32), (128, 64)].enumerated() {
                nextSeed += 10
                let core = Tensor<Float>.randomNormal(shape: [max(1, t / 2), max(1, s / 2), 3, 3], seed: nextSeed)
                var kernel = try core.multiModeProduct([.randomNormal(rows: t, columns: max(1, t / 2), seed: nextSeed + 1),
                                                        .randomNormal(rows: s, columns: max(1, s / 2), seed: nextSeed + 2)], modes: [0, 1])
                kernel = kernel + (0.05 * kernel.frobeniusNorm / Float(kernel.scalarCount).squareRoot()) * Tensor.randomNormal(shape: kernel.shape, seed: nextSeed + 3)
                try writer.add("cnn.conv\(k).weight", kernel)
                try writer.add("cnn.conv\(k).bias", vector(t, 0.1))
            }
            try writer.write(to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        }
    }

    /// The sharded decoder checkpoint: blocks split as evenly as possible over the shards.
    func writeSharded(shards: Int) throws {
        guard shards >= 1, layers >= shards, hidden >= 1, dtype.isFloatingPoint else {
            throw ValidationError("--shards \(shards) needs 1 ≤ shards ≤ --layers \(layers), a positive --hidden and a floating-point --dtype")
        }
        let directory = URL(fileURLWithPath: output)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TensorIOError.fileSystem(path: output, problem: .foundation(.createDirectory, description: error.localizedDescription))
        }
        let (h, m) = (hidden, intermediate ?? 4 * hidden)
        var nextSeed = seed
        func matrix(_ rows: Int, _ columns: Int) -> Tensor<Float> {
            nextSeed += 1
            var w = Tensor<Float>.randomNormal(shape: [rows, columns], seed: nextSeed)
            let scale = 1 / Float(columns).squareRoot()
            w.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows {
                    let s = scale * Float(Foundation.exp(-3 * Double(r) / Double(rows)))
                    for c in 0..<columns { p[r * columns + c] *= s }
                }
            }
            return w
        }
        var weightMap: [String: String] = [:]
        var totalSize = 0
        for shard in 0..<shards {
            let name = String(format: "model-%05d-of-%05d.safetensors", shard + 1, shards)
            var writer = SafetensorsWriter()
            writer.metadata["format"] = "pt"
            if shard == 0 { try writer.add("model.embed_tokens.weight", matrix(1000, h), dtype: dtype) }
            for l in (shard * layers / shards)..<((shard + 1) * layers / shards) {
                let p = "model.layers.\(l)"
                for part in ["q_proj", "k_proj", "v_proj", "o_proj"] { try writer.add("\(p).self_attn.\(part).weight", matrix(h, h), dtype: dtype) }
                try writer.add("\(p).mlp.gate_proj.weight", matrix(m, h), dtype: dtype)
                try writer.add("\(p).mlp.up_proj.weight", matrix(m, h), dtype: dtype)
                try writer.add("\(p).mlp.down_proj.weight", matrix(h, m), dtype: dtype)
                try writer.add("\(p).input_layernorm.weight", Tensor(repeating: 1, shape: [h]), dtype: dtype)
                try writer.add("\(p).post_attention_layernorm.weight", Tensor(repeating: 1, shape: [h]), dtype: dtype)
            }
            if shard == shards - 1 { try writer.add("model.norm.weight", Tensor<Float>(repeating: 1, shape: [h]), dtype: dtype) }
            try writer.write(to: directory.appendingPathComponent(name))
            for tensor in writer.names { weightMap[tensor] = name }
            totalSize += writer.tensorByteCount
        }
        let index = SafetensorsIndex(weightMap: weightMap, totalSize: totalSize)
        try OutputFile.write([(try OutputFile(path: directory.appendingPathComponent("model.safetensors.index.json").path), try index.encoded())])
        print("wrote \(output): \(weightMap.count) tensors, \(totalSize) bytes in \(shards) shards")
    }
}
