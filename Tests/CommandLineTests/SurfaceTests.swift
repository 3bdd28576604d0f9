import Foundation
import Testing
import TensorDecompositions

/// Issue 10's newcomer friction, against the binary and the library compressor behind it.
@Suite("Command-line surface", .enabled(if: FileManager.default.isExecutableFile(atPath: Tool.binary.path)))
final class SurfaceTests: Sendable {
    let directory = Tool.temporaryDirectory("tc-surface")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func model() throws -> String {
        let model = path("model.safetensors")
        if !FileManager.default.fileExists(atPath: model) {
            #expect(try Tool.run(["generate-model", model, "--hidden", "32", "--layers", "1"]).status == 0)
        }
        return model
    }

    func layers(_ output: String) throws -> [[String: Any]] {
        let document = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        return document?["layers"] as? [[String: Any]] ?? []
    }

    @Test func embeddingTablesAreSkippedUnlessIncluded() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        let plain = try Tool.run(["compress", model, "--output", path("a.safetensors"), "--json", "--quiet"])
        #expect(plain.status == 0, "\(plain.error)")
        let embedding = try layers(plain.output).first { $0["name"] as? String == "embeddings.word_embeddings" }
        #expect(embedding?["status"] as? String == "skipped")
        #expect((embedding?["reason"] as? String)?.contains("embedding table") == true)
        let written = try SafetensorsFile(contentsOf: URL(fileURLWithPath: path("a.safetensors")))
        let original = try SafetensorsFile(contentsOf: URL(fileURLWithPath: model))
        #expect(try written.rawBytes(named: "embeddings.word_embeddings.weight") == original.rawBytes(named: "embeddings.word_embeddings.weight"))

        let included = try Tool.run(["compress", model, "--output", path("b.safetensors"), "--json", "--quiet",
                                     "--include", "word_embeddings", "--rank", "4"])
        #expect(included.status == 0, "\(included.error)")
        #expect(try layers(included.output).map { $0["status"] as? String } == ["replaced"])
    }

    @Test func identicalRunsWriteIdenticalBytes() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        for name in ["first", "second"] {
            let run = try Tool.run(["compress", model, "--output", path("\(name).safetensors"), "--conv", "cp", "--rank", "4",
                                    "--max-iterations", "5", "--quiet", "--report", path("\(name).md")])
            #expect(run.status == 0, "\(run.error)")
        }
        let first = try Data(contentsOf: URL(fileURLWithPath: path("first.safetensors")))
        let second = try Data(contentsOf: URL(fileURLWithPath: path("second.safetensors")))
        #expect(first == second)
    }

    /// The text table prints the numbers of the JSON report as `%.4f`, `%.2fM`, `%.1fk` would.
    @Test func tableNumbersMatchTheJSONReport() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        let arguments = ["compress", model, "--output", path("t.safetensors"), "--rank", "4", "--quiet"]
        let text = try Tool.run(arguments), json = try Tool.run(arguments + ["--json"])
        #expect(text.status == 0 && json.status == 0, "\(text.error)\(json.error)")
        let rows = text.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        func compact(_ n: Int) -> String {
            n >= 1_000_000 ? String(format: "%.2fM", Double(n) / 1e6) : n >= 1000 ? String(format: "%.1fk", Double(n) / 1e3) : "\(n)"
        }
        let replaced = try layers(json.output).filter { $0["status"] as? String == "replaced" }
        #expect(replaced.count == 8)
        for layer in replaced {
            let name = try #require(layer["name"] as? String)
            let row = try #require(rows.first { $0.first == name }, "\(name) has a row")
            let error = try #require(layer["relativeError"] as? Double)
            #expect(row.contains(String(format: "%.4f", error)), "\(row)")
            let before = try #require(layer["parametersBefore"] as? Int), after = try #require(layer["parametersAfter"] as? Int)
            #expect(row.joined(separator: " ").contains("\(compact(before)) → \(compact(after))"), "\(row)")
        }
    }

    @Test func cpThatDoesNotConvergeSaysSo() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        let run = try Tool.run(["compress", model, "--output", path("cp.safetensors"), "--conv", "cp", "--linear", "none",
                                "--rank", "6", "--max-iterations", "1", "--quiet", "--allow-growth"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("not converged, 1 iterations"), "\(run.output)")
        let json = try Tool.run(["compress", model, "--output", path("cp.safetensors"), "--conv", "cp", "--linear", "none",
                                 "--rank", "6", "--max-iterations", "1", "--json", "--allow-growth"])
        #expect(try layers(json.output).allSatisfy { $0["converged"] as? Bool == false })
    }

    @Test func decomposeReadsNPYAndNPZAndKeepsFloat64() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let x = Tensor<Double>.randomNormal(shape: [12, 9], seed: 3)
        try x.writeNPY(to: URL(fileURLWithPath: path("w.npy")))
        let run = try Tool.run(["decompose", path("w.npy"), "--method", "svd", "--rank", "3", "--json", "--output", path("f.safetensors")])
        #expect(run.status == 0, "\(run.error)")
        let factors = try SafetensorsFile(contentsOf: URL(fileURLWithPath: path("f.safetensors")))
        #expect(factors.entries["u"]?.dtype == .float64 && factors.entries["vt"]?.dtype == .float64)
        let result = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        #expect(result?["dtype"] as? String == "float64" && result?["tensor"] as? String == "w")

        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TensorIOTests/Fixtures/arrays_deflated.npz")
        #expect(try NPZFile(contentsOf: fixtures).header(named: "weight").shape == [2, 3, 4])
        let fromNPZ = try Tool.run(["decompose", fixtures.path, "--tensor", "weight", "--method", "tucker", "--ranks", "2,3,4", "--json"])
        #expect(fromNPZ.status == 0, "\(fromNPZ.error)")
        let exact = try JSONSerialization.jsonObject(with: Data(fromNPZ.output.utf8)) as? [String: Any]
        #expect((exact?["relativeError"] as? Double ?? 1) < 1e-5)
    }

    @Test func cpWithSeveralRanksSaysWhatItWants() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        let run = try Tool.run(["decompose", model, "--tensor", "cnn.conv2.weight", "--method", "cp", "--ranks", "8,8"])
        #expect(run.status == 1 && run.error.contains("cp has a single rank; pass it as --rank R"), "\(run.error)")
        let flops = try Tool.run(["decompose", model, "--tensor", "cnn.conv2.weight", "--method", "tucker2", "--rank-selection", "flops:0.5"])
        #expect(flops.status == 1 && flops.error.split(separator: "\n").count == 1, "\(flops.error)")
    }

    /// The library behind `compress`: a Float64 model stays Float64, and the metadata's layers
    /// decode with `Layer`'s JSON form, tensors by name.
    @Test func libraryCompressorKeepsDTypesAndDescribesStacks() throws {
        var writer = SafetensorsWriter()
        let weight = Tensor<Double>.randomNormal(shape: [48, 40], seed: 1)
        try writer.add("fc.weight", weight)
        try writer.add("fc.bias", Tensor<Double>.randomNormal(shape: [48], seed: 2))
        let file = try SafetensorsFile(data: try writer.encoded())
        var options = CompressionOptions()
        options.rank = 40
        options.allowGrowth = true
        let result = try ModelCompressor(options: options).compress(file)
        #expect(result.layers.map(\.status) == [.replaced] && result.layers[0].method == .svd)
        let out = try SafetensorsFile(data: try result.writer.encoded())
        #expect(out.entries["fc.0.weight"]?.dtype == .float64 && out.entries["fc.1.bias"]?.dtype == .float64)
        // Full rank: the two layers reproduce the original to Double precision.
        let first = try Linear(weight: Matrix(out.tensor(named: "fc.0.weight", as: Double.self)))
        let second = try Linear(weight: Matrix(out.tensor(named: "fc.1.weight", as: Double.self)),
                                bias: Array(out.tensor(named: "fc.1.bias", as: Double.self).scalars))
        let x = Tensor<Double>.randomNormal(shape: [5, 40], seed: 4)
        let reference = try Linear(weight: Matrix(weight), bias: Array(file.tensor(named: "fc.bias", as: Double.self).scalars))(x)
        #expect(try second(first(x)).relativeError(to: reference) < 1e-12)
        let stacks = try JSONSerialization.jsonObject(with: Data(try #require(out.metadata["stacks"]).utf8)) as? [[String: Any]]
        let layers = stacks?.first?["layers"] as? [[String: Any]]
        #expect(layers?.map { $0["weight"] as? String } == ["fc.0.weight", "fc.1.weight"])
        #expect(layers?.map { $0["bias"] as? String } == [nil, "fc.1.bias"])
    }

    /// The snippet of the ModelCompression landing page.

    @Test func budgetsWorkOnStateDictsAndBadOnesAreOneLine() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        let run = try Tool.run(["compress", model, "--output", path("budget.safetensors"), "--json", "--quiet", "--budget", "macs:0.5", "--data-free"])
        #expect(run.status == 0, "\(run.error)")
        let rows = try layers(run.output).filter { $0["status"] as? String != "skipped" }
        let before = rows.reduce(0) { $0 + ($1["flopsBefore"] as? Int ?? 0) }, after = rows.reduce(0) { $0 + ($1["flopsAfter"] as? Int ?? 0) }
        #expect(before > 0 && Double(after) <= 0.5 * Double(before) * 1.0001, "\(after) of \(before)")
        for bad in [["--budget", "macs:2"], ["--budget", "flops:0.5"], ["--budget", "macs:0.5", "--rank", "4"], ["--statistics", path("missing.safetensors")],
                    ["--budget", "macs:0.5"]] {
            let refused = try Tool.run(["compress", model, "--output", path("bad.safetensors")] + bad)
            #expect(refused.status == 1 && refused.error.split(separator: "\n").count == 1 && refused.error.hasPrefix("tensor-compress: error:"), "\(bad): \(refused.error)")
            #expect(!FileManager.default.fileExists(atPath: path("bad.safetensors")))
        }
    }
}

/// The snippets print their results for the reader; under test they stay quiet.
private func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {}
