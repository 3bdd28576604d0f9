import Foundation
import Testing
import TensorDecompositions

/// Runs the `tensor-compress` binary that `swift build` put beside the test bundle.
struct Tool {
    static let binary: URL = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/tensor-compress")
    }()

    /// A new empty directory under the system's temporary directory.
    static func temporaryDirectory(_ prefix: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }
}

@Suite("tensor-compress end to end", .enabled(if: FileManager.default.isExecutableFile(atPath: Tool.binary.path)))
final class CommandLineTests: Sendable {
    let directory = Tool.temporaryDirectory("tensor-compress")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    struct StackEntry: Decodable {
        struct StackLayer: Decodable {
            var kind: String; var inChannels: Int; var outChannels: Int
            var kernel: [Int]?; var stride: [Int]?; var padding: [Int]?; var dilation: [Int]?; var groups: Int?
            var weight: String?; var bias: String?
        }
        var name: String; var method: String; var ranks: [Int]; var relativeError: Double; var layers: [StackLayer]
    }

    @Test func compressAtFullRankReproducesEveryLayer() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = path("model.safetensors"), output = path("out.safetensors")
        #expect(try Tool.run(["generate-model", model, "--hidden", "32", "--layers", "1"]).status == 0)
        let config = #"{"cnn.conv1.weight": {"stride": [2, 1], "padding": [1, 0, 1, 1], "dilation": [1, 2], "groups": 2}}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: path("layers.json")))
        // conv1 becomes grouped (64 × 16 × 3 × 3 with 2 groups) through the configuration.
        let result = try Tool.run(["compress", model, "--output", output, "--rank-selection", "energy:1.0", "--allow-growth",
                                   "--min-parameters", "0", "--exclude", "embeddings|conv1", "--json", "--quiet",
                                   "--input-size", "12,10", "--report", path("report.md")])
        #expect(result.status == 0, "\(result.error)")
        let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as! [String: Any]
        let layers = json["layers"] as! [[String: Any]]
        #expect(layers.count == 6 + 2)   // 6 encoder linears + conv0 + conv2
        #expect(layers.allSatisfy { ($0["status"] as! String) == "replaced" })
        let totals = json["totals"] as! [String: Any]
        #expect(totals["replacedLayers"] as! Int == 8)
        #expect(FileManager.default.fileExists(atPath: path("report.md")))

        let original = try SafetensorsFile(contentsOf: URL(fileURLWithPath: model))
        let compressed = try SafetensorsFile(contentsOf: URL(fileURLWithPath: output))
        #expect(compressed.metadata["format"] == "pt")
        let stacks = try JSONDecoder().decode([StackEntry].self, from: Data(compressed.metadata["stacks"]!.utf8))
        #expect(stacks.count == 8)
        // Untouched tensors are copied byte for byte; replaced weights and their biases are gone.
        for name in ["embeddings.word_embeddings.weight", "embeddings.position_ids", "cnn.conv1.weight", "cnn.conv1.bias",
                     "encoder.layer.0.attention.output.LayerNorm.weight"] {
            #expect(try compressed.rawBytes(named: name) == original.rawBytes(named: name), "\(name)")
        }
        for stack in stacks {
            #expect(compressed.entries[stack.name + ".weight"] == nil && compressed.entries[stack.name + ".bias"] == nil)
            // Rebuild the stack from the metadata and compare with the original layer.
            var rebuilt: [Layer<Float>] = []
            for (k, layer) in stack.layers.enumerated() {
                #expect(layer.weight == "\(stack.name).\(k).weight")
                let weight = try compressed.tensor(named: layer.weight!, as: Float.self)
                let bias = try layer.bias.map { Array(try compressed.tensor(named: $0, as: Float.self).scalars) }
                if layer.kind == "conv2d" {
                    let (s, p, d) = (layer.stride!, layer.padding!, layer.dilation!)
                    #expect(weight.shape == [layer.outChannels, layer.inChannels / layer.groups!] + layer.kernel!)
                    rebuilt.append(.conv2d(try Conv2D(weight: weight, bias: bias, stride: Size2D(s[0], s[1]),
                                                      padding: Padding(top: p[0], bottom: p[1], left: p[2], right: p[3]),
                                                      dilation: Size2D(d[0], d[1]), groups: layer.groups!)))
                } else {
                    #expect(layer.kind == "linear" && weight.shape == [layer.outChannels, layer.inChannels])
                    rebuilt.append(.linear(try Linear(weight: Matrix(weight), bias: bias)))
                }
            }
            let weight = try original.tensor(named: stack.name + ".weight", as: Float.self)
            let bias = try original.entries[stack.name + ".bias"].map { _ in Array(try original.tensor(named: stack.name + ".bias", as: Float.self).scalars) }
            let x: Tensor<Float>
            let reference: Layer<Float>
            if weight.order == 4 {
                reference = .conv2d(try Conv2D(weight: weight, bias: bias, padding: .symmetric(1)))
                x = Tensor.randomNormal(shape: [2, weight.shape[1], 9, 8], seed: 1)
            } else {
                reference = .linear(try Linear(weight: Matrix(weight), bias: bias))
                x = Tensor.randomNormal(shape: [3, weight.shape[1]], seed: 1)
            }
            let error = try LayerStack(rebuilt)(x).relativeError(to: reference(x))
            #expect(error < 1e-4, "\(stack.name) (\(stack.method) \(stack.ranks)): output error \(error)")
        }
    }

    @Test func inspectAndDecomposePrintJSON() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = path("model.safetensors")
        #expect(try Tool.run(["generate-model", model, "--hidden", "32", "--layers", "1"]).status == 0)
        let inspect = try Tool.run(["inspect", model, "--json"])
        #expect(inspect.status == 0)
        let tensors = (try JSONSerialization.jsonObject(with: Data(inspect.output.utf8)) as! [String: Any])["tensors"] as! [[String: Any]]
        let conv = tensors.first { $0["name"] as! String == "cnn.conv2.weight" }!
        #expect(conv["kind"] as! String == "conv2d (OIHW)" && (conv["vbmfRanks"] as! [Int]).count == 2)
        #expect(tensors.first { $0["name"] as! String == "embeddings.position_ids" }!["kind"] as! String == "other")
        for method in ["svd", "cp", "tucker", "tucker2", "tt"] {
            let tensor = method == "svd" ? "encoder.layer.0.intermediate.dense.weight" : "cnn.conv2.weight"
            var arguments = ["decompose", model, "--tensor", tensor, "--method", method, "--json", "--output", path("\(method).safetensors")]
            arguments += method == "tt" ? ["--max-rank", "8"] : (method == "cp" ? ["--rank", "8", "--max-iterations", "20"] : [])
            let run = try Tool.run(arguments)
            #expect(run.status == 0, "\(method): \(run.error)")
            let result = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as! [String: Any]
            for key in ["method", "shape", "ranks", "relativeError", "originalParameters", "parameters", "iterations", "seconds"] {
                #expect(result[key] != nil, "\(method) JSON lacks \(key)")
            }
            #expect(try SafetensorsFile(contentsOf: URL(fileURLWithPath: path("\(method).safetensors"))).names.isEmpty == false)
        }
    }

    @Test func failuresExitNonZeroWithOneLineAndNoOutput() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = path("model.safetensors"), output = path("out.safetensors")
        #expect(try Tool.run(["generate-model", model, "--hidden", "32", "--layers", "1"]).status == 0)
        let cases: [[String]] = [
            ["compress", path("missing.safetensors"), "--output", output],
            ["compress", model, "--output", output, "--rank", "500"],
            ["compress", model, "--output", output, "--rank-selection", "energy:2"],
            ["decompose", model, "--tensor", "nope", "--method", "svd", "--output", output],
            ["decompose", model, "--tensor", "cnn.conv0.weight", "--method", "tucker2", "--ranks", "70,3", "--output", output],
        ]
        for arguments in cases {
            let run = try Tool.run(arguments)
            #expect(run.status != 0, "\(arguments)")
            #expect(!run.error.isEmpty, "\(arguments)")
            #expect(!FileManager.default.fileExists(atPath: output), "no output after \(arguments)")
        }
        try Data("not a safetensors file".utf8).write(to: URL(fileURLWithPath: path("bad.safetensors")))
        let bad = try Tool.run(["inspect", path("bad.safetensors")])
        #expect(bad.status == 1 && bad.error.split(separator: "\n").count == 1)
    }
}
