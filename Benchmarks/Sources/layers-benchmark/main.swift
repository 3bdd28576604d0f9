// Forward time (Float) of VGG-16-like 3×3 convolutions and of their CP, Tucker-2 and TT stacks at
// ranks C/4, C/2 and EVBMF ranks, batch 1 and 8: measured speed-up next to the FLOP ratio.
// TT stacks are timed at batch 1 only, one run after a warm-up (they are slow; see Performance.md).
// Then a 1536 → 384 linear layer and its TT-linear stacks at batches 1, 8, 64 and 512.
// `--quick` runs only the first layer (for CI smoke runs).
import BenchmarkSupport
import Foundation
import TensorDecompositions

let arguments = CommandLine.arguments.filter { $0 != "--quick" }
let quick = CommandLine.arguments.contains("--quick")
let options = BenchmarkArguments(arguments)

struct Row: Codable {
    var layer: String
    var batch: Int
    var variant: String
    var ranks: [Int]
    var milliseconds: Double
    var flops: Int
    var parameters: Int
    var kernelRelativeError: Double
    var measuredSpeedup: Double
    var flopRatio: Double
}

/// A kernel with decaying channel spectra plus noise, like a trained layer.
func kernel(_ c: Int, seed: UInt64) throws -> Tensor<Float> {
    let core = Tensor<Float>.randomNormal(shape: [c, c, 3, 3], seed: seed)
    let decay = { (n: Int) in Matrix<Float>.identity(n).scalingColumns(by: (0..<n).map { Float(Foundation.exp(-3 * Double($0) / Double(n))) }) }
    let shaped = try core.multiModeProduct([Matrix<Float>.randomNormal(rows: c, columns: c, seed: seed + 1).qr().q.matmul(decay(c)),
                                            Matrix<Float>.randomNormal(rows: c, columns: c, seed: seed + 2).qr().q.matmul(decay(c))], modes: [0, 1])
    return shaped + (0.02 * shaped.frobeniusNorm / Float(shaped.scalarCount).squareRoot()) * Tensor.randomNormal(shape: shaped.shape, seed: seed + 3)
}

let layers: [(size: Int, channels: Int)] = quick ? [(56, 64)] : [(56, 64), (56, 128), (56, 256), (28, 256), (28, 512), (14, 512)]
var rows: [Row] = []
for (size, c) in layers {
    let name = "\(size)×\(size) \(c)→\(c) 3×3"
    guard options.includes(name, shape: [c, c, 3, 3]) else { continue }  // --filter selects whole layers
    let conv = try Conv2D(weight: kernel(c, seed: UInt64(c + size)), bias: [Float](repeating: 0.1, count: c), padding: .symmetric(1))
    let vbmf = try selectRanks(for: conv.weight, modes: [0, 1], selection: .vbmf).ranks
    var variants: [(String, CompressedLayer<Float>)] = []
    for (label, r) in [("C/4", c / 4), ("C/2", c / 2)] {
        variants.append(("CP \(label)", try conv.compressed(by: .cp(.fixed([r]), maxIterations: 25))))
        variants.append(("Tucker-2 \(label)", try conv.compressed(by: .tucker2(.fixed([r, r])))))
    }
    variants.append(("Tucker-2 EVBMF", try conv.compressed(by: .tucker2(.fixed(vbmf)))))
    variants.append(("CP EVBMF", try conv.compressed(by: .cp(.fixed([vbmf.max()!]), maxIterations: 25))))
    variants.append(("TT rank C/4", try conv.compressed(by: .tensorTrain(maxRank: c / 4))))
    variants.append(("TT rank C/2", try conv.compressed(by: .tensorTrain(maxRank: c / 2))))
    variants.append(("TT EVBMF", try conv.compressed(by: .tensorTrain(maxRank: vbmf.max()!))))
    let original = try Layer.conv2d(conv).cost(input: [c, size, size])
    for batch in [1, 8] {
        let x = Tensor<Float>.randomNormal(shape: [batch, c, size, size], seed: 9)
        let base = try medianSeconds(samples: quick ? 3 : 5, minimum: quick ? 0.01 : 0.1) { _ = try conv(x) }
        rows.append(Row(layer: name, batch: batch, variant: "original", ranks: [], milliseconds: base * 1e3, flops: original.flops * batch,
                        parameters: original.parameters, kernelRelativeError: 0, measuredSpeedup: 1, flopRatio: 1))
        for (label, compressed) in variants where batch == 1 || !label.hasPrefix("TT") {
            // TT stacks take seconds per call: one timed run after a warm-up.
            let isTT = label.hasPrefix("TT")
            let seconds = try medianSeconds(samples: isTT ? 1 : (quick ? 3 : 5), minimum: isTT ? 0 : (quick ? 0.01 : 0.1)) { _ = try compressed.stack(x) }
            let cost = try compressed.stack.cost(input: [c, size, size])
            rows.append(Row(layer: name, batch: batch, variant: label, ranks: compressed.ranks, milliseconds: seconds * 1e3,
                            flops: cost.flops * batch, parameters: cost.parameters, kernelRelativeError: compressed.kernelRelativeError,
                            measuredSpeedup: base / seconds, flopRatio: Double(original.flops) / Double(cost.flops)))
        }
    }
}

// A BERT-sized linear layer (1536 → 384) and its TT-linear stacks (inputs 8·8·24, outputs 8·6·8),
// at the batch sizes of one token, a short sequence and two long ones.
let linearName = "linear 1536→384"
if !quick && options.includes(linearName, shape: [384, 1536]) {
    let linear = try Linear(weight: .randomNormal(rows: 384, columns: 1536, seed: 11), bias: [Float](repeating: 0.1, count: 384))
    let ttVariants = try [8, 16, 64].map { (r: Int) in
        ("TT rank \(r)", try linear.compressed(by: .tensorTrain(outputModes: [8, 6, 8], inputModes: [8, 8, 24], maxRank: r)))
    }
    for batch in [1, 8, 64, 512] {
        let x = Tensor<Float>.randomNormal(shape: [batch, 1536], seed: 12)
        let original = try Layer.linear(linear).cost(input: [batch, 1536])
        let base = try medianSeconds(samples: 5, minimum: 0.1) { _ = try linear(x) }
        rows.append(Row(layer: linearName, batch: batch, variant: "original", ranks: [], milliseconds: base * 1e3, flops: original.flops,
                        parameters: original.parameters, kernelRelativeError: 0, measuredSpeedup: 1, flopRatio: 1))
        for (label, compressed) in ttVariants {
            let seconds = try medianSeconds(samples: 5, minimum: 0.1) { _ = try compressed.stack(x) }
            let cost = try compressed.stack.cost(input: [batch, 1536])
            rows.append(Row(layer: linearName, batch: batch, variant: label, ranks: compressed.ranks, milliseconds: seconds * 1e3,
                            flops: cost.flops, parameters: cost.parameters, kernelRelativeError: compressed.kernelRelativeError,
                            measuredSpeedup: base / seconds, flopRatio: Double(original.flops) / Double(cost.flops)))
        }
    }
}

options.exitIfNothingMatched()
if options.json {
    struct Document: Codable { var machine: String; var blasThreads: Int; var rows: [Row] }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(Document(machine: machineDescription(), blasThreads: BLASThreads.count, rows: rows)), as: UTF8.self))
} else {
    print("# Layer forward passes (Float)\n# \(machineDescription())")
    print("| layer | batch | variant | ranks | ms | GFLOP/s | kernel error | speed-up | FLOP ratio | speed-up / FLOP ratio |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows {
        print(String(format: "| %@ | %d | %@ | %@ | %.2f | %.1f | %.3f | %.2f | %.2f | %.2f |", r.layer, r.batch, r.variant, "\(r.ranks)",
                     r.milliseconds, Double(r.flops) / r.milliseconds / 1e6, r.kernelRelativeError, r.measuredSpeedup, r.flopRatio,
                     r.measuredSpeedup / r.flopRatio))
    }
}
