import ArgumentParser
import Foundation
import TensorDecompositions

/// Writes a generated stand-in model: a small BERT-like encoder (linear layers with decaying
/// spectra plus noise, LayerNorm vectors, int64 position ids) and a small CNN.
struct GenerateModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-model", abstract: "Write a generated stand-in model (.safetensors) for demos and tests.")

    @Argument(help: "The output .safetensors file.") var output: String
    @Option(help: "Hidden size of the encoder.") var hidden: Int = 384
    @Option(help: "Encoder layers.") var layers: Int = 2
    @Option(help: "Seed.") var seed: UInt64 = 1

    func run() throws {
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
}
