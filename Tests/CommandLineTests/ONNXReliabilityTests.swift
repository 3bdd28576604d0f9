import Foundation
import Testing
import TensorDecompositions
@testable import ONNX
import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#endif

/// Issue 21 against the binary: adversarial ONNX inputs and paths end in exit status 1 with one
/// `tensor-compress: error:` line, nothing written and every input byte-identical, or in a
/// correct result; never in a signal, a hang or a changed input.
@Suite("Reliability: tensor-compress on ONNX", .enabled(if: FileManager.default.isExecutableFile(atPath: Tool.binary.path)))
final class ONNXCommandLineReliabilityTests: Sendable {
    let directory = Tool.temporaryDirectory("tc-onnx-reliability")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs the tool, killing it after `limit` seconds (a hang is a failure, not a stuck test run).
    func run(_ arguments: [String], limit: Double = 60) throws -> (status: Int32, output: String, error: String, timedOut: Bool) {
        let process = Process()
        process.executableURL = Tool.binary
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        (process.standardOutput, process.standardError) = (out, err)
        try process.run()
        let deadline = Date().addingTimeInterval(limit)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let timedOut = process.isRunning
        if timedOut { process.terminate() }
        process.waitUntilExit()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, output, error, timedOut)
    }

    /// The failure contract: status 1, one error line (mentioning `text`), no file in `unwritten`.
    func expectFailure(_ arguments: [String], unwritten: [String] = [], mentioning text: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try run(arguments)
        #expect(!result.timedOut, "\(arguments) did not finish", sourceLocation: sourceLocation)
        #expect(result.status == 1, "\(arguments): status \(result.status), stderr \(result.error)", sourceLocation: sourceLocation)
        let lines = result.error.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("tensor-compress: error: "), "\(arguments): \(result.error)", sourceLocation: sourceLocation)
        if let text { #expect(result.error.contains(text), "\(arguments): \(result.error)", sourceLocation: sourceLocation) }
        for file in unwritten { #expect(!FileManager.default.fileExists(atPath: file), "\(file) was written", sourceLocation: sourceLocation) }
    }

    /// The bytes of every regular file in the directory, by name.
    func snapshot() throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            var status = stat()
            guard lstat(path(name), &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { continue }
            result[name] = FileManager.default.contents(atPath: path(name))
        }
        return result
    }

    /// A Conv → Relu → Gemm model; with `dataFile`, its weights live in that external file.
    func model(_ name: String, seed: UInt64 = 1, dataFile: String? = nil) throws -> String {
        let nodes = [
            ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "conv.weight", "conv.bias"], outputs: ["c"],
                     attributes: [("pads", .ints([1, 1, 1, 1]))]),
            ONNXNode(opType: "Relu", name: "relu", inputs: ["c"], outputs: ["r"]),
            ONNXNode(opType: "Flatten", name: "flatten", inputs: ["r"], outputs: ["f"]),
            ONNXNode(opType: "Gemm", name: "fc", inputs: ["f", "fc.weight"], outputs: ["y"], attributes: [("transB", .int(1))]),
        ]
        let initializers = [
            try ONNXTensor(name: "conv.weight", Tensor<Float>.randomNormal(shape: [16, 8, 3, 3], seed: seed)),
            try ONNXTensor(name: "conv.bias", Tensor<Float>.randomNormal(shape: [16], seed: seed + 1)),
            try ONNXTensor(name: "fc.weight", Tensor<Float>.randomNormal(shape: [10, 16 * 4 * 4], seed: seed + 2)),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                              inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(8), .value(4), .value(4)])],
                              outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: [.value(1), .value(10)])])
        let model = ONNXModel(graph: graph, opset: 13)
        guard let dataFile else {
            try model.serializedData().write(to: URL(fileURLWithPath: path(name)))
            return path(name)
        }
        // Encoded with its data, which goes to the file name asked for.
        let encoding = try model.encoded(fileName: name, externalData: .separateFile(minimumBytes: 64))
        var proto = try Onnx_ModelProto(serializedBytes: encoding.model)
        for k in proto.graph.initializer.indices {
            for e in proto.graph.initializer[k].externalData.indices where proto.graph.initializer[k].externalData[e].key == "location" {
                proto.graph.initializer[k].externalData[e].value = dataFile
            }
        }
        try Data(proto.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: path(name)))
        try encoding.externalData!.write(to: URL(fileURLWithPath: path(dataFile)))
        return path(name)
    }

    /// The weights of a model as floats, by name.
    func weights(_ file: String) throws -> [String: [Float]] {
        let model = try ONNXModel(contentsOf: URL(fileURLWithPath: file))
        return Dictionary(uniqueKeysWithValues: try model.graph.initializers.map { ($0.name, Array(try $0.tensor(as: Float.self).scalars)) })
    }

    @Test func runsNeverWriteOverWhatTheyRead() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        // (a) The input's data is called OUT.onnx.data: compress and simplify to OUT.onnx leave it as it was.
        let input = try model("in.onnx", dataFile: "out.onnx.data")
        let before = try weights(input)
        let bytes = try snapshot()
        let full = ["--rank-selection", "energy:1", "--allow-growth", "--min-parameters", "0", "--quiet"]
        #expect(try run(["compress", input, "--output", path("out.onnx")] + full).status == 0)
        #expect(try run(["simplify", input, "--output", path("out.onnx")]).status == 0)
        for (name, data) in bytes { #expect(FileManager.default.contents(atPath: path(name)) == data, "\(name) changed") }
        #expect(try weights(input) == before)
        #expect(try weights(path("out.onnx")).count >= 2)
        // (b) A report naming the input's data file.
        let reported = try model("r.onnx", dataFile: "r.json")
        let reportedData = FileManager.default.contents(atPath: path("r.json"))
        try expectFailure(["compress", reported, "--output", path("out2.onnx"), "--report", path("r.json")] + full,
                          unwritten: [path("out2.onnx")], mentioning: "which this run reads")
        #expect(FileManager.default.contents(atPath: path("r.json")) == reportedData)
        // (c) simplify onto its own input, by path and by hard link, without --in-place.
        let plain = try model("plain.onnx")
        try FileManager.default.linkItem(atPath: plain, toPath: path("hard.onnx"))
        let snapshotted = try snapshot()
        for output in [plain, path("hard.onnx"), path("./plain.onnx")] {
            try expectFailure(["simplify", plain, "--output", output], mentioning: "--in-place")
        }
        // (d) A data file name of the output that is a symlink to the input's data is not written through.
        // (The data file's name follows from its content: a run into another directory tells it.)
        try FileManager.default.createDirectory(atPath: path("probe"), withIntermediateDirectories: true)
        #expect(try run(["compress", input, "--output", path("probe/out3.onnx")] + full).status == 0)
        let dataName = try FileManager.default.contentsOfDirectory(atPath: path("probe")).first { $0.hasSuffix(".data") }!
        try FileManager.default.createSymbolicLink(atPath: path(dataName), withDestinationPath: path("out.onnx.data"))
        try expectFailure(["compress", input, "--output", path("out3.onnx")] + full, unwritten: [path("out3.onnx")], mentioning: "which this run reads")
        let afterSymlink = try snapshot()
        for (name, data) in snapshotted where afterSymlink[name] != nil { #expect(afterSymlink[name] == data, "\(name) changed") }
        #expect(try weights(input) == before)
    }

    @Test func irregularFilesAreRefusedWithoutBlocking() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx")
        for name in ["pipe.safetensors", "pipe.npz", "stats.safetensors", "pipe.onnx"] { #expect(mkfifo(path(name), 0o600) == 0) }
        try expectFailure(["decompose", path("pipe.safetensors"), "--tensor", "w", "--method", "svd", "--rank", "1"], mentioning: "FIFO")
        try expectFailure(["decompose", path("pipe.npz"), "--tensor", "w", "--method", "svd", "--rank", "1"], mentioning: "FIFO")
        try expectFailure(["compress", input, "--output", path("o.onnx"), "--statistics", path("stats.safetensors")],
                          unwritten: [path("o.onnx")], mentioning: "FIFO")
        try expectFailure(["inspect", path("pipe.onnx")], mentioning: "FIFO")
        // A shard named by an index.
        #expect(try run(["generate-model", path("ck"), "--shards", "2", "--layers", "2", "--hidden", "16", "--intermediate", "24"]).status == 0)
        let shard = try FileManager.default.contentsOfDirectory(atPath: path("ck")).first { $0.hasSuffix("-of-00002.safetensors") }!
        try FileManager.default.removeItem(atPath: path("ck/" + shard))
        #expect(mkfifo(path("ck/" + shard), 0o600) == 0)
        try expectFailure(["compress", path("ck"), "--output", path("ck-out"), "--quiet"], mentioning: "FIFO")
        try expectFailure(["inspect", path("ck")], mentioning: "FIFO")
    }

    @Test func mergeIndexProtectsItsInputsAndChecksThem() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(try run(["generate-model", path("ck"), "--shards", "2", "--layers", "2", "--hidden", "16", "--intermediate", "24"]).status == 0)
        let base = ["--rank-selection", "params:0.5", "--min-parameters", "0", "--quiet"]
        for k in 0..<2 { #expect(try run(["compress", path("ck"), "--output", path("parts"), "--shard", "\(k)/2"] + base).status == 0) }
        let parts = (0..<2).map { path("parts/model.safetensors.index.part-\($0)-of-2.json") }
        let shard = path("parts/model-00001-of-00002.safetensors")
        let bytes = (parts + [shard]).map { FileManager.default.contents(atPath: $0) }
        // The output may be neither a shard nor a part (with --remove-parts, part 0 would leave no index).
        for output in [shard, parts[1], parts[0]] {
            try expectFailure(["merge-index"] + parts + ["--output", output, "--remove-parts"], mentioning: "which this run reads")
        }
        #expect((parts + [shard]).map { FileManager.default.contents(atPath: $0) } == bytes)
        // A part of another run (other options) is refused.
        #expect(try run(["compress", path("ck"), "--output", path("other"), "--shard", "1/2", "--rank-selection", "params:0.25", "--min-parameters", "0", "--quiet"]).status == 0)
        try expectFailure(["merge-index", parts[0], path("other/model.safetensors.index.part-1-of-2.json"), "--output", path("parts/index.json")],
                          unwritten: [path("parts/index.json")], mentioning: "different runs")
        // A tampered total_size.
        var tampered = try String(contentsOfFile: parts[1], encoding: .utf8)
        let size = try #require(tampered.range(of: #""total_size" ?: ?[0-9]+"#, options: .regularExpression))
        tampered.replaceSubrange(size, with: "\"total_size\": 12")
        try tampered.write(toFile: path("parts/tampered.json"), atomically: true, encoding: .utf8)
        try expectFailure(["merge-index", parts[0], path("parts/tampered.json"), "--output", path("parts/index.json")],
                          unwritten: [path("parts/index.json")], mentioning: "total_size 12")
        // The honest parts merge.
        #expect(try run(["merge-index"] + parts + ["--output", path("parts/model.safetensors.index.json")]).status == 0)
    }

    @Test func adversarialGraphsAndSizesEndInOneLine() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try model("m.onnx")
        // Counts that overflow.
        try expectFailure(["inspect", input, "--input-shape", "x=1,16,3037000500,3037000500"], mentioning: "invalid shape")
        try expectFailure(["compress", input, "--output", path("o.onnx"), "--input-shape", "x=1,8,3037000500,3037000500"],
                          unwritten: [path("o.onnx")])
        // generate-model sizes whose weights cannot exist.
        for hidden in ["3037000500", "\(Int.max)"] {
            try expectFailure(["generate-model", path("g.safetensors"), "--hidden", hidden], unwritten: [path("g.safetensors")], mentioning: "--hidden")
        }
        // Statistics with counts beyond Int: compressed, not trapped.
        let count: Double = 1e19
        var gram = Matrix<Double>.zeros(rows: 16 * 4 * 4, columns: 16 * 4 * 4)
        for i in 0..<gram.rows { gram[i, i] = 1 }
        let stats = CalibrationStatistics(layers: ["fc": try InputStatistics(count: count, means: [[Double](repeating: 0, count: 256)], grams: [gram])])
        try stats.write(to: URL(fileURLWithPath: path("s.safetensors")))
        let result = try run(["compress", input, "--output", path("o.onnx"), "--statistics", path("s.safetensors"), "--rank", "4", "--min-parameters", "0", "--json"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("1e+19"))
    }

    /// A process killed at each rename of a multi-file output leaves the old model over its old
    /// data or the new model over its new data: never a model that loads with the wrong weights.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/strace")))
    func killedAtEachRenameLeavesNoTornModel() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try model("a.onnx", seed: 1, dataFile: "a.bin"), second = try model("b.onnx", seed: 7, dataFile: "b.bin")
        let out = path("out.onnx")
        #expect(try run(["simplify", first, "--output", out]).status == 0)
        let old = try weights(out)
        #expect(try run(["simplify", second, "--output", path("reference.onnx")]).status == 0)
        let new = try weights(path("reference.onnx"))
        var killed = 0
        for n in 1...3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
            process.arguments = ["-f", "-qq", "-o", "/dev/null", "-e", "inject=rename:signal=KILL:when=\(n)", Tool.binary.path,
                                 "simplify", second, "--output", out]
            (process.standardOutput, process.standardError) = (FileHandle.nullDevice, FileHandle.nullDevice)
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus != 0 { killed += 1 }
            let now = try weights(out)
            #expect(now == old || now == new, "after a kill at rename \(n) the model loads with other weights")
        }
        #expect(killed >= 2)
        // A sharded checkpoint: a kill among the renames leaves no index over a mix of shards.
        #expect(try run(["generate-model", path("ck"), "--shards", "2", "--layers", "2", "--hidden", "16", "--intermediate", "24"]).status == 0)
        #expect(try run(["compress", path("ck"), "--output", path("ck-out"), "--rank-selection", "params:0.5", "--min-parameters", "0", "--quiet"]).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        process.arguments = ["-f", "-qq", "-o", "/dev/null", "-e", "inject=rename:signal=KILL:when=2", Tool.binary.path,
                             "compress", path("ck"), "--output", path("ck-out"), "--rank-selection", "params:0.25", "--min-parameters", "0", "--quiet"]
        (process.standardOutput, process.standardError) = (FileHandle.nullDevice, FileHandle.nullDevice)
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(!FileManager.default.fileExists(atPath: path("ck-out/model.safetensors.index.json")))
    }
}
