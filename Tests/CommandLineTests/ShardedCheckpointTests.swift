import Foundation
import Testing
import TensorDecompositions

/// Sharded checkpoints (issue 12): index reading and checks, streamed writing, dtypes, concurrent
/// layers, and array-job shards merged into the single run's output byte for byte.
@Suite("Sharded checkpoints")
final class ShardedCheckpointTests: Sendable {
    let directory = Tool.temporaryDirectory("tc-sharded")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// A small Llama-style checkpoint: `blocks` blocks over `shards` shards, bfloat16 weights plus
    /// an int64 tensor and a float32 vector that must be copied byte for byte.
    func checkpoint(_ name: String = "ck", blocks: Int = 3, shards: Int = 3, dtype: DType = .bfloat16) throws -> URL {
        let root = url(name)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var weightMap: [String: String] = [:]
        var size = 0
        for shard in 0..<shards {
            let file = "model-\(shard + 1)-of-\(shards).safetensors"
            var writer = SafetensorsWriter()
            writer.metadata["format"] = "pt"
            for b in stride(from: shard, to: blocks, by: shards) {
                let seed = UInt64(10 * b)
                try writer.add("layers.\(b).attn.weight", Tensor<Float>.randomNormal(shape: [24, 40], seed: seed), dtype: dtype)
                try writer.add("layers.\(b).attn.bias", Tensor<Float>.randomNormal(shape: [24], seed: seed + 1), dtype: dtype)
                try writer.add("layers.\(b).mlp.weight", Tensor<Float>.randomNormal(shape: [40, 64], seed: seed + 2), dtype: dtype)
                try writer.add("layers.\(b).norm.weight", Tensor<Float>(repeating: 1, shape: [40]), dtype: .float32)
                try writer.addRaw("layers.\(b).ids", dtype: .int64, shape: [3],
                                  bytes: Data((0..<3).flatMap { withUnsafeBytes(of: Int64($0 + b).littleEndian, Array.init) }))
            }
            try writer.write(to: root.appendingPathComponent(file))
            for tensor in writer.names { weightMap[tensor] = file }
            size += writer.tensorByteCount
        }
        try SafetensorsIndex(weightMap: weightMap, metadata: ["note": "kept"], totalSize: size).encoded()
            .write(to: root.appendingPathComponent("model.safetensors.index.json"))
        return root
    }

    func options(jobs: Int? = nil) -> CompressionOptions {
        var options = CompressionOptions()
        options.rankSelection = .parameterBudget(0.5)
        options.minimumParameters = 0
        options.jobs = jobs
        return options
    }

    func contents(_ directory: URL) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            result[name] = try Data(contentsOf: directory.appendingPathComponent(name))
        }
        return result
    }

    @Test func shardsKeepNamesDtypesAndUnchangedBytes() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try checkpoint()
        let source = try ShardedSafetensors(contentsOf: input)
        let result = try ModelCompressor(options: options()).compress(source, to: url("out"))
        #expect(!FileManager.default.fileExists(atPath: url("out/model.safetensors.index.json").path), "written before commit")
        try result.commit()
        let output = try ShardedSafetensors(contentsOf: url("out"))
        #expect(output.index.shards == source.index.shards)
        #expect(output.index.metadata == ["note": "kept"])
        var bytes = 0
        for shard in output.index.shards {
            let file = try output.shard(shard), original = try source.shard(shard)
            bytes += file.entries.values.reduce(0) { $0 + $1.byteRange.count }
            for name in file.names {
                if let entry = original.entries[name] {   // unchanged: the same bytes
                    #expect(try file.rawBytes(named: name) == original.rawBytes(named: name), "\(name)")
                    #expect(file.entries[name]!.dtype == entry.dtype)
                } else {                                  // a factor: the weight's bfloat16
                    #expect(file.entries[name]!.dtype == .bfloat16, "\(name)")
                }
            }
            #expect(file.names.contains { $0.hasSuffix("attn.0.weight") } && !file.names.contains { $0.hasSuffix("attn.weight") })
        }
        #expect(output.index.totalSize == bytes)
        #expect(result.layers.count == 6 && result.layers.allSatisfy(\.status.isReplaced))
        #expect(result.shards.map(\.name) == source.index.shards)
        // The stack of a shard reproduces its layer within the kernel error the report states.
        let file = try output.shard(output.index.shards[0]), original = try source.shard(source.index.shards[0])
        let w = try original.tensor(named: "layers.0.attn.weight", as: Float.self)
        let a = try file.tensor(named: "layers.0.attn.0.weight", as: Float.self), b = try file.tensor(named: "layers.0.attn.1.weight", as: Float.self)
        let product = Tensor(Matrix(b).matmul(Matrix(a)))
        let error = Double(try product.relativeError(to: w))
        let stated = result.layers.first { $0.name == "layers.0.attn" }!.relativeError
        #expect(abs(error - stated) < 0.02, "bfloat16 factors: \(error) against \(stated)")
    }

    @Test func outputDTypeIsChosen() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = options()
        options.outputDType = .float32
        let result = try ModelCompressor(options: options).compress(try ShardedSafetensors(contentsOf: try checkpoint()), to: url("out"))
        try result.commit()
        let output = try ShardedSafetensors(contentsOf: url("out"))
        let file = try output.shard(output.index.shards[0])
        #expect(file.entries["layers.0.mlp.0.weight"]?.dtype == .float32)
        #expect(file.entries["layers.0.norm.weight"]?.dtype == .float32)
        options.outputDType = .int8
        #expect(throws: ModelCompressionError.self) { try ModelCompressor(options: options) }
    }

    /// Workers of an array job write the shards a single run writes, and merge-index their index.
    @Test func arrayJobSharesMergeToTheSingleRunByteForByte() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try ShardedSafetensors(contentsOf: try checkpoint(blocks: 5, shards: 3))
        let compressor = try ModelCompressor(options: options())
        try compressor.compress(source, to: url("single")).commit()
        var parts: [SafetensorsIndex] = []
        for k in 0..<3 {
            let assignment = try ShardAssignment(index: k, count: 3)
            let result = try compressor.compress(source, to: url("parts"), assignment: assignment)
            #expect(result.shards.map(\.name) == assignment.shards(of: source.index.shards))
            try result.commit()
            parts.append(try SafetensorsIndex(data: Data(contentsOf: url("parts/" + assignment.partialIndexName(for: source.indexName))), path: "part"))
        }
        try SafetensorsIndex.merged(parts).encoded().write(to: url("parts/model.safetensors.index.json"))
        let single = try contents(url("single")), merged = try contents(url("parts")).filter { !$0.key.contains(".part-") }
        #expect(single.keys.sorted() == merged.keys.sorted())
        for (name, data) in single { #expect(merged[name] == data, "\(name) differs") }
        #expect(throws: ModelCompressionError.self) { try SafetensorsIndex.merged(Array(parts.prefix(2))) }
        #expect(throws: ModelCompressionError.self) { try SafetensorsIndex.merged(parts + [parts[0]]) }
        #expect(throws: ModelCompressionError.self) { try SafetensorsIndex.merged([SafetensorsIndex(weightMap: [:])]) }
        #expect(throws: ModelCompressionError.self) { try ShardAssignment(index: 3, count: 3) }
    }

    /// Layers decomposed two at a time (one BLAS thread each) give the same bytes as one at a time
    /// with one BLAS thread.
    @Test func concurrentLayersEqualSequentialOnes() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try ShardedSafetensors(contentsOf: try checkpoint(blocks: 4, shards: 1))
        try BLASThreads.withCount(1) { try ModelCompressor(options: options(jobs: 1)).compress(source, to: url("one")).commit() }
        try ModelCompressor(options: options(jobs: 2)).compress(source, to: url("two")).commit()
        #expect(try contents(url("one")) == contents(url("two")))
    }

    /// A layer that fails (rank 30 for a 24 × 40 weight) stops the run with the same error on one
    /// worker and on two, and nothing is left in the output directory.
    @Test func aFailingLayerStopsTheRunAndWritesNothing() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try ShardedSafetensors(contentsOf: try checkpoint(blocks: 3, shards: 1))
        var errors: [String] = []
        for jobs in [1, 2] {
            var options = options(jobs: jobs)
            options.rank = 30
            do {
                _ = try ModelCompressor(options: options).compress(source, to: url("out"))
                Issue.record("rank 30 of a 24 × 40 weight was accepted")
            } catch {
                errors.append("\(error)")
            }
        }
        #expect(errors.count == 2 && errors[0] == errors[1] && errors[0].contains("30"), "\(errors)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: url("out").path).isEmpty)
    }

    @Test func inconsistentIndexesAreRefusedWithTheNames() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try checkpoint(blocks: 2, shards: 2)
        let indexURL = input.appendingPathComponent("model.safetensors.index.json")
        let good = try Data(contentsOf: indexURL)
        func refuses(_ json: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            try Data(json.utf8).write(to: indexURL)
            do {
                let checkpoint = try ShardedSafetensors(contentsOf: input)
                for shard in checkpoint.index.shards { _ = try checkpoint.shard(shard) }
                Issue.record("accepted \(json)", sourceLocation: sourceLocation)
            } catch let error as TensorIOError {
                #expect(error.description.contains(text), "\(error)", sourceLocation: sourceLocation)
            }
        }
        try refuses(#"{"weight_map": {"a": "../x.safetensors"}}"#, "not a plain *.safetensors file name")
        try refuses(#"{"metadata": {}}"#, "no \"weight_map\"")
        try refuses(#"{"metadata": {"total_size": 1.5}, "weight_map": {}}"#, "total_size")
        try refuses(#"{"weight_map": {"a": "missing.safetensors"}}"#, "does not exist")
        try refuses(#"{"weight_map": {"layers.0.attn.weight": "model-1-of-2.safetensors"}}"#, "holds")
        var map = (try JSONSerialization.jsonObject(with: good) as! [String: Any])["weight_map"] as! [String: String]
        map["layers.9.attn.weight"] = "model-1-of-2.safetensors"
        try refuses(String(decoding: try JSONSerialization.data(withJSONObject: ["weight_map": map]), as: UTF8.self), "does not hold it")
        try good.write(to: indexURL)
        #expect(throws: ModelCompressionError.self) { try ModelCompressor(options: options()).compress(try ShardedSafetensors(contentsOf: input), to: input) }
    }

    /// The streaming writer writes what the in-memory encoding holds, and reading a mapped file
    /// twice (its pages released in between) gives the same tensor.
    @Test func streamedWritingEqualsTheEncodedFile() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var writer = SafetensorsWriter()
        try writer.add("big", Tensor<Float>.randomNormal(shape: [300, 1000], seed: 3))
        try writer.add("small", Tensor<Double>.randomNormal(shape: [5], seed: 4))
        try writer.write(to: url("a.safetensors"))
        let file = try SafetensorsFile(contentsOf: url("a.safetensors"))
        let first = try file.tensor(named: "big", as: Float.self)
        #expect(try file.tensor(named: "big", as: Float.self) == first)
        var copy = SafetensorsWriter()
        copy.metadata["k"] = "v"
        try copy.addRaw("small", from: file)
        try copy.add("new", Tensor<Float>(repeating: 2, shape: [3]), dtype: .float16)
        try copy.addRaw("big", from: file)
        try copy.write(to: url("b.safetensors"))
        #expect(try Data(contentsOf: url("b.safetensors")) == copy.encoded())
        let back = try SafetensorsFile(contentsOf: url("b.safetensors"))
        #expect(back.names == ["small", "new", "big"] && back.metadata == ["k": "v"])
        #expect(try back.tensor(named: "big", as: Float.self) == first)
    }

    /// A single state dict written while it is compressed (`compress(_:to:)`) holds the same
    /// tensors, bytes and metadata as the writer of `compress(_:)`, for every method.
    @Test(arguments: [CompressionOptions.LinearMethod.svd, .tt])
    func stagedStateDictEqualsTheWriter(linear: CompressionOptions.LinearMethod) throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let shard = try checkpoint("single", blocks: 3, shards: 1).appendingPathComponent("model-1-of-1.safetensors")
        let file = try SafetensorsFile(contentsOf: shard)
        var options = options()
        options.linear = linear
        if linear == .tt { (options.maxRank, options.allowGrowth) = (4, true) }
        let compressor = try ModelCompressor(options: options)
        let reference = try SafetensorsFile(data: try compressor.compress(file).writer.encoded())
        let result = try compressor.compress(file, to: try OutputFile(path: url("staged.safetensors").path))
        try StagedFile.commit([result.file])
        let staged = try SafetensorsFile(contentsOf: url("staged.safetensors"))
        #expect(staged.names == reference.names && staged.metadata == reference.metadata && staged.entries == reference.entries)
        for name in staged.names { #expect(try staged.rawBytes(named: name) == reference.rawBytes(named: name), "\(name)") }
        #expect(result.totals.replacedLayers == 6, "\(linear)")
    }
}

/// The command line over sharded checkpoints.
@Suite("Sharded checkpoints: tensor-compress", .enabled(if: FileManager.default.isExecutableFile(atPath: Tool.binary.path)))
final class ShardedCommandLineTests: Sendable {
    let directory = Tool.temporaryDirectory("tc-sharded-cli")
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    @Test func arrayJobWithMergeIndex() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = path("ck")
        #expect(try Tool.run(["generate-model", input, "--shards", "2", "--layers", "2", "--hidden", "32", "--intermediate", "48"]).status == 0)
        let inspected = try Tool.run(["inspect", input, "--json"])
        #expect(inspected.status == 0, "\(inspected.error)")
        let tensors = (try JSONSerialization.jsonObject(with: Data(inspected.output.utf8)) as? [String: Any])?["tensors"] as? [[String: Any]] ?? []
        #expect(tensors.count == 2 * 9 + 2 && tensors.allSatisfy { ($0["shard"] as? String)?.hasSuffix("-of-00002.safetensors") == true })
        #expect(tensors.first { $0["name"] as? String == "model.layers.1.mlp.down_proj.weight" }?["vbmfRanks"] != nil)
        let base = ["--rank-selection", "params:0.5", "--quiet"]
        let single = try Tool.run(["compress", input + "/model.safetensors.index.json", "--output", path("single"), "--json"] + base)
        #expect(single.status == 0, "\(single.error)")
        let document = try JSONSerialization.jsonObject(with: Data(single.output.utf8)) as? [String: Any]
        #expect((document?["shards"] as? [[String: Any]])?.count == 2)
        for k in 0..<2 { #expect(try Tool.run(["compress", input, "--output", path("parts"), "--shard", "\(k)/2"] + base).status == 0) }
        let parts = (0..<2).map { path("parts/model.safetensors.index.part-\($0)-of-2.json") }
        #expect(try Tool.run(["merge-index"] + parts + ["--output", path("parts/model.safetensors.index.json"), "--remove-parts"]).status == 0)
        for name in try FileManager.default.contentsOfDirectory(atPath: path("single")) {
            #expect(FileManager.default.contents(atPath: path("single/" + name)) == FileManager.default.contents(atPath: path("parts/" + name)), "\(name)")
        }
        #expect(!FileManager.default.fileExists(atPath: parts[0]))
        // One line and nothing written for each misuse.
        for arguments in [["compress", input, "--output", input] + base,
                          ["compress", input, "--output", path("x"), "--shard", "2/2"] + base,
                          ["compress", input, "--output", path("y.safetensors")] + base,
                          ["compress", path("single/model-00001-of-00002.safetensors"), "--output", path("z.safetensors"), "--shard", "0/2"],
                          ["merge-index", parts[0], "--output", path("m.json")]] {
            let result = try Tool.run(arguments)
            #expect(result.status == 1 && result.error.hasPrefix("tensor-compress: error: ") && result.error.split(separator: "\n").count == 1,
                    "\(arguments): \(result.error)")
        }
        for unwritten in ["x", "y.safetensors", "z.safetensors", "m.json"] { #expect(!FileManager.default.fileExists(atPath: path(unwritten))) }
    }
}
