import Foundation
import Testing
import TensorDecompositions

/// Issue 9 against the binary: every adversarial case ends in exit status 1 with one line on
/// standard error and nothing written (or in the right result), never in a signal.
@Suite("Reliability: tensor-compress", .enabled(if: FileManager.default.isExecutableFile(atPath: Tool.binary.path)))
final class CommandLineReliabilityTests: Sendable {
    let directory = Tool.temporaryDirectory("tc-reliability")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs the tool and checks the failure contract: status 1 (not a signal), one line on standard
    /// error that starts with `tensor-compress: error:`, and none of `unwritten` created.
    @discardableResult
    func expectFailure(_ arguments: [String], unwritten: [String] = [], mentioning text: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try Tool.run(arguments)
        #expect(result.status == 1, "\(arguments): status \(result.status), stderr \(result.error)", sourceLocation: sourceLocation)
        let lines = result.error.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("tensor-compress: error: "), "\(result.error)", sourceLocation: sourceLocation)
        if let text { #expect(result.error.contains(text), "\(result.error)", sourceLocation: sourceLocation) }
        for file in unwritten { #expect(!FileManager.default.fileExists(atPath: file), "\(file) was written", sourceLocation: sourceLocation) }
        return result.error
    }

    func model() throws -> String {
        let model = path("model.safetensors")
        if !FileManager.default.fileExists(atPath: model) {
            #expect(try Tool.run(["generate-model", model, "--hidden", "32", "--layers", "1"]).status == 0)
        }
        return model
    }

    func write(_ text: String, to name: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    /// A one-tensor safetensors file.
    func matrixFile(_ name: String, _ tensor: Tensor<Float>) throws -> String {
        var writer = SafetensorsWriter()
        try writer.add("w", tensor)
        try writer.write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    @Test func countsThatOverflowExitWithOneLine() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model(), output = path("out.safetensors")
        let base = ["compress", model, "--output", output, "--include", "cnn", "--min-parameters", "0", "--quiet"]
        for config in [#"{"cnn.conv0.weight": {"dilation": [4611686018427387904, 1]}}"#,
                       #"{"cnn.conv0.weight": {"padding": [4611686018427387904, 4611686018427387904, 0, 0]}}"#] {
            try expectFailure(base + ["--layer-config", try write(config, to: "layers.json")], unwritten: [output])
        }
        for size in ["4000000000,4000000000", "3037000500,3037000500"] {
            try expectFailure(base + ["--input-size", size], unwritten: [output], mentioning: "does not fit in a 64-bit integer")
        }
        let dilated = try write(#"{"cnn.conv0.weight": {"dilation": [1000000000, 1000000000]}}"#, to: "dilated.json")
        try expectFailure(base + ["--layer-config", dilated, "--rank-selection", "flops:0.5", "--conv", "cp"], unwritten: [output])
        try expectFailure(base + ["--layer-config", try write(#"{"cnn.conv0.weight": {"stride": [1]}}"#, to: "short.json")],
                          unwritten: [output], mentioning: "expected 2 integers")
    }

    @Test func impossibleCPRanksAreRefusedBeforeAllocating() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try matrixFile("m.safetensors", .randomNormal(shape: [64, 32], seed: 1))
        for rank in ["33", "5000", "100000", "9223372036854775807"] {
            try expectFailure(["decompose", file, "--method", "cp", "--rank", rank], mentioning: "exceeds 32, the product of the mode sizes")
        }
        let model = try model(), output = path("out.safetensors")
        try expectFailure(["compress", model, "--output", output, "--conv", "cp", "--rank", "5000", "--include", "cnn"],
                          unwritten: [output], mentioning: "exceeds")
    }

    @Test func valuesNearTheFloatRangeGiveFiniteFactorsAndTheRightError() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let unit = Tensor<Float>.randomNormal(shape: [64, 32], seed: 5)
        let huge = try matrixFile("huge.safetensors", unit * 1e37)
        let plain = try matrixFile("plain.safetensors", unit)
        for method in [["svd", "--rank", "8"], ["cp", "--rank", "8"], ["tucker2", "--ranks", "8,8"], ["tt", "--max-rank", "8"]] {
            var errors: [Double] = []
            for file in [huge, plain] {
                let factors = path("factors-\(method[0]).safetensors")
                let result = try Tool.run(["decompose", file, "--method"] + method + ["--json", "--output", factors])
                #expect(result.status == 0, "\(method): \(result.error)")
                let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as! [String: Any]
                errors.append(json["relativeError"] as! Double)
                let written = try SafetensorsFile(contentsOf: URL(fileURLWithPath: factors))
                for name in written.names {
                    #expect(try written.tensor(named: name, as: Float.self).firstNonFiniteIndex == nil, "\(method) \(name)")
                }
            }
            #expect(errors[0] > 0.05 && abs(errors[0] / errors[1] - 1) < 1e-3, "\(method): error \(errors[0]) at 1e37, \(errors[1]) at 1")
        }
        // compress writes finite stacks.
        var writer = SafetensorsWriter()
        try writer.add("fc.weight", unit * 1e37)
        try writer.write(to: URL(fileURLWithPath: path("huge-model.safetensors")))
        let result = try Tool.run(["compress", path("huge-model.safetensors"), "--output", path("out.safetensors"), "--rank", "8", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let out = try SafetensorsFile(contentsOf: URL(fileURLWithPath: path("out.safetensors")))
        for name in out.names { #expect(try out.tensor(named: name, as: Float.self).firstNonFiniteIndex == nil) }
    }

    @Test func outputsThatWouldDestroyDataAreRefused() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model(), output = path("out.safetensors")
        let original = try Data(contentsOf: URL(fileURLWithPath: model))
        let base = ["compress", model, "--quiet", "--include", "encoder"]
        // The report is the model, or the output; a report that cannot be written.
        let jsonModel = path("model.json")
        try original.write(to: URL(fileURLWithPath: jsonModel))
        try expectFailure(["compress", jsonModel, "--include", "encoder", "--output", output, "--report", jsonModel],
                          unwritten: [output], mentioning: "is the input model")
        #expect(try Data(contentsOf: URL(fileURLWithPath: jsonModel)) == original)
        try expectFailure(base + ["--output", path("out.json"), "--report", path("out.json")], unwritten: [path("out.json")],
                          mentioning: "same file as --output")
        try expectFailure(base + ["--output", output, "--report", model], unwritten: [output], mentioning: "must end in .json or .md")
        try expectFailure(base + ["--output", output, "--report", path("missing/report.md")], unwritten: [output])
        // The output is the model: by another spelling, or by a hard link.
        #expect(link(model, path("hard.safetensors")) == 0)
        let relative = "\(directory.path)/../\(directory.lastPathComponent)/model.safetensors"
        for spelling in [model, relative, path("hard.safetensors")] {
            try expectFailure(base + ["--output", spelling], mentioning: "is the input model; pass --in-place")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: model)) == original, "the model is unchanged")
        // Device nodes, directories and trailing slashes.
        try expectFailure(base + ["--output", "/dev/null"], mentioning: "not a regular file")
        try expectFailure(base + ["--output", "/dev/full"], mentioning: "not a regular file")
        try expectFailure(base + ["--output", directory.path + "/newdir/"], unwritten: [path("newdir")], mentioning: "ends in '/'")
        try expectFailure(["decompose", model, "--tensor", "cnn.conv0.weight", "--method", "tucker2", "--ranks", "2,2", "--output", model],
                          mentioning: "is the input file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: model)) == original)
        // --in-place replaces the model only on success, keeping its mode.
        let copy = path("copy.safetensors")
        try original.write(to: URL(fileURLWithPath: copy))
        chmod(copy, 0o600)
        let result = try Tool.run(["compress", copy, "--output", copy, "--in-place", "--quiet", "--include", "encoder"])
        #expect(result.status == 0, "\(result.error)")
        let replaced = try SafetensorsFile(contentsOf: URL(fileURLWithPath: copy))
        #expect(replaced.metadata["stacks"] != nil)
        var status = stat()
        #expect(stat(copy, &status) == 0 && status.st_mode & 0o777 == 0o600)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test func reportAndOutputAreWrittenTogether() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model(), output = path("out.safetensors"), report = path("report.json")
        let result = try Tool.run(["compress", model, "--output", output, "--report", report, "--quiet", "--include", "encoder"])
        #expect(result.status == 0, "\(result.error)")
        #expect(FileManager.default.fileExists(atPath: output) && FileManager.default.fileExists(atPath: report))
    }

    @Test func nonFloatBiasesAreKeptByteForByte() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        var writer = SafetensorsWriter()
        try writer.add("fc.weight", Tensor<Float>.randomNormal(shape: [64, 64], seed: 9))
        let bias = Data((0..<64).flatMap { withUnsafeBytes(of: Int64($0 - 30).littleEndian) { Array($0) } })
        try writer.addRaw("fc.bias", dtype: .int64, shape: [64], bytes: bias)
        try writer.add("fc2.weight", Tensor<Float>.randomNormal(shape: [64, 64], seed: 10))
        try writer.write(to: URL(fileURLWithPath: path("int-bias.safetensors")))
        let result = try Tool.run(["compress", path("int-bias.safetensors"), "--output", path("out.safetensors"), "--rank", "4", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let out = try SafetensorsFile(contentsOf: URL(fileURLWithPath: path("out.safetensors")))
        #expect(out.entries["fc.bias"]?.dtype == .int64)
        #expect(try out.rawBytes(named: "fc.bias") == bias)
        #expect(out.entries["fc.weight"] != nil, "the layer with an integer bias is kept")
        #expect(out.entries["fc2.0.weight"] != nil, "other layers are still replaced")
        #expect(result.output.contains("is int64, not floating point"))
    }

    @Test func argumentErrorsAreOneLineWithStatusOne() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model()
        try expectFailure(["compress", model])
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--rank", "0"], mentioning: "--rank 0 must be at least 1")
        try expectFailure(["decompose", model, "--method", "nope"])
        try expectFailure(["frobnicate"])
        try expectFailure(["simplify", model, "--output", path("s.onnx")], unwritten: [path("s.onnx")], mentioning: "simplify reads and writes .onnx models")
        try expectFailure(["compress", model, "--output", path("c.safetensors"), "--simplify"], unwritten: [path("c.safetensors")],
                          mentioning: "--simplify applies to ONNX models")
        // The library checks its options and names them as CompressionOptions does; the command
        // line renders them with its flags.
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--max-rank", "0"], mentioning: "--max-rank 0 must be at least 1")
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--include", "("], mentioning: "--include ( must be a valid regular expression")
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--budget", "macs:0.5", "--data-free", "--linear", "tt"],
                          unwritten: [path("o.safetensors")], mentioning: "--budget allocates SVD ranks of linear layers: use --linear svd, not tt")
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--budget", "macs:0.5"], mentioning: "--budget without --statistics")
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--rank", "4", "--damping", "1e-6"], unwritten: [path("o.safetensors")],
                          mentioning: "--damping applies to data-aware compression")
        try expectFailure(["compress", model, "--output", path("o.safetensors"), "--rank", "4", "--damping=-1"], mentioning: "--damping -1.0 must be finite and at least 0")
        let broken = try write("not a protobuf", to: "broken.onnx")
        try expectFailure(["simplify", broken, "--output", path("s.onnx")], unwritten: [path("s.onnx")], mentioning: "onnx:")
        let bare = try Tool.run([])
        #expect(bare.status == 1 && bare.error.contains("USAGE"))
        #expect(try Tool.run(["--version"]).status == 0)
    }
}
