import Foundation
import Synchronization
import TensorIO

/// Which shards of a checkpoint one of several independent workers compresses: worker `index`
/// of `count` takes the shards at positions `index`, `index + count`, … of the index's sorted
/// shard names (an array job's task id and task count).
public struct ShardAssignment: Sendable, Equatable, CustomStringConvertible {
    /// This worker, `0 ≤ index < count`.
    public var index: Int
    /// The number of workers.
    public var count: Int

    /// Worker `index` of `count`.
    ///
    /// - Throws: ``ModelCompressionError/invalidShardAssignment(index:count:)`` unless `0 ≤ index < count`.
    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else {
            throw ModelCompressionError.invalidShardAssignment(index: index, count: count)
        }
        (self.index, self.count) = (index, count)
    }

    /// `index/count`.
    public var description: String { "\(index)/\(count)" }

    /// The shards of `all` (sorted names) this worker takes.
    public func shards(of all: [String]) -> [String] { all.enumerated().filter { $0.offset % count == index }.map(\.element) }

    /// The file name of this worker's partial index: `model.safetensors.index.json` gives
    /// `model.safetensors.index.part-0-of-3.json`.
    public func partialIndexName(for indexName: String) -> String {
        let stem = indexName.hasSuffix(".json") ? String(indexName.dropLast(".json".count)) : indexName
        return "\(stem).part-\(index)-of-\(count).json"
    }

    /// The metadata key that marks a partial index with its worker (`"0/3"`); `SafetensorsIndex.merged(_:)` removes it.
    public static let metadataKey = "tensor_compress_part"
    /// The metadata key that marks a partial index with its run: a hash of the input index and
    /// of the options, equal in every worker of one run; `SafetensorsIndex.merged(_:)` refuses
    /// parts whose runs differ, and removes it.
    public static let runKey = "tensor_compress_run"
}

/// Where a sharded compression is: reported after each layer.
public struct CheckpointProgress: Sendable {
    /// The shard being compressed (1-based among this run's shards), their number, its file name.
    public var shard: Int, shardCount: Int, shardName: String
    /// Layers finished in this shard, and its layers to decompose.
    public var layersDone: Int, layerCount: Int
    /// The layer that just finished (`"writing"` when the shard is being written).
    public var layerName: String
    /// Parameters of the decomposed layers finished so far, over all of this run's shards, and
    /// their total: the fraction of the work done, for an estimate of the time left.
    public var parametersDone: Int, parametersTotal: Int
}

/// One output shard: its layers, sizes and time.
public struct ShardReport: Sendable, Equatable, Encodable {
    /// The shard's file name (the input's and the output's).
    public var name: String
    /// Candidate layers in the shard, and those replaced.
    public var candidateLayers: Int, replacedLayers: Int
    /// Tensor bytes of the input shard and of the output shard.
    public var bytesBefore: Int, bytesAfter: Int
    /// Seconds from opening the shard to its output written to disk.
    public var seconds: Double
}

/// The result of ``ModelCompressor/compress(_:to:assignment:progress:)``: every output shard and
/// the index written to temporaries beside their targets, to be moved into place together by
/// ``commit()`` (or removed by ``discard()``).
public struct CompressedCheckpoint: Sendable {
    /// The output shards, then the index (or this worker's partial index).
    public var files: [StagedFile]
    /// The new index (partial under an assignment).
    public var index: SafetensorsIndex
    /// One report per candidate layer, in shard order, file order within a shard.
    public var layers: [LayerReport]
    /// One report per shard compressed.
    public var shards: [ShardReport]
    /// Sums over the replaced layers and the shards compressed.
    public var totals: CompressionTotals
    /// What the run did that a user may not expect (statistics missing for some layers, nothing replaced).
    public var warnings: [CompressionWarning] = []

    /// The existing index that ``commit()`` removes before it moves the first shard into place,
    /// so that a process killed among the renames leaves no index over a mix of old and new
    /// shards (a checkpoint that cannot be loaded, rather than one that loads wrong).
    public var replacedIndex: String?

    /// Moves every file into place: the old index removed first, the new index last.
    public func commit() throws { try StagedFile.commit(files, removingFirst: [replacedIndex].compactMap { $0 }) }

    /// Removes the temporaries.
    public func discard() { StagedFile.discard(files) }
}

extension ModelCompressor {
    /// Compresses a sharded checkpoint shard by shard, in bounded memory, into `directory`: each
    /// output shard has its input's file name and holds the stacks of the layers that input held
    /// (`__metadata__["stacks"]` describes them); the index keeps the input's name and metadata
    /// with `total_size` recomputed. Factors are written in ``CompressionOptions/outputDType``
    /// (default the weight's own: bfloat16 stays bfloat16); every other tensor is copied byte
    /// for byte.
    ///
    /// Memory: a shard's tensors are read through the memory map and the map's pages handed back
    /// after use; each output shard is written in file order while its layers are decomposed
    /// (unchanged tensors copied by the kernel, a layer's factors once the layers before it are
    /// done), its header last, and factors leave memory once written. Peak resident memory is
    /// therefore about the largest layers being decomposed (one per worker) plus the factors
    /// waiting for the layers before them.
    ///
    /// With an `assignment`, only that worker's shards are compressed and a partial index is
    /// written (``ShardAssignment/partialIndexName(for:)``); `SafetensorsIndex.merged(_:)`
    /// joins the partial indexes of all workers into the index a single run writes, byte for byte.
    /// A ``CompressionOptions/budget`` is allocated over all shards' layers in every worker alike.
    ///
    /// ```swift
    /// let checkpoint = try ShardedSafetensors(contentsOf: URL(fileURLWithPath: "llama"))
    /// var options = CompressionOptions()
    /// options.rankSelection = .parameterBudget(0.5)
    /// let result = try ModelCompressor(options: options).compress(checkpoint, to: URL(fileURLWithPath: "llama-svd"))
    /// try result.commit()
    /// ```
    ///
    /// - Parameters:
    ///   - checkpoint: The input checkpoint.
    ///   - directory: The output directory (created when missing); not the input's.
    ///   - assignment: This worker's share of the shards, or `nil` for all of them.
    ///   - progress: Called after each layer and before each shard is written, one call at a time.
    /// - Throws: ``ModelCompressionError/outputDirectoryIsInput(path:)`` for an output
    ///   directory that is the input's, `TensorIOError` for unreadable or inconsistent shards and
    ///   unwritable outputs, and the errors of the decompositions. Nothing is left in `directory`
    ///   when it throws.
    public func compress(
        _ checkpoint: ShardedSafetensors, to directory: URL, assignment: ShardAssignment? = nil,
        progress: (@Sendable (CheckpointProgress) -> Void)? = nil
    ) throws -> CompressedCheckpoint {
        let clock = ContinuousClock()
        if !FileManager.default.fileExists(atPath: directory.path) {
            do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
                throw TensorIOError.fileSystem(path: directory.path, problem: .foundation(.createDirectory, description: error.localizedDescription))
            }
        }
        let indexOutput = try OutputFile(path: directory.appendingPathComponent(assignment?.partialIndexName(for: checkpoint.indexName) ?? checkpoint.indexName).path)
        if OutputFile.canonicalPath(directory.path) == OutputFile.canonicalPath(checkpoint.directory.path) {
            throw ModelCompressionError.outputDirectoryIsInput(path: directory.path)
        }
        // Every shard's header is read first: layer settings and a budget need all of them.
        let allShards = checkpoint.index.shards
        let files = try allShards.map { try checkpoint.shard($0) }
        var (plan, warnings) = try allocated(try self.plan(stateDict: files))
        // Each shard's planned layers, in file order (the plan holds the shards' layers in shard order).
        var layersOf = [[PlannedLayer]](repeating: [], count: files.count)
        for layer in plan.layers { layersOf[layer.fileIndex].append(layer) }
        let mine = Set(assignment?.shards(of: allShards) ?? allShards)
        let work = allShards.indices.filter { mine.contains(allShards[$0]) }.map { (allShards[$0], files[$0], layersOf[$0]) }
        let outputs = try work.map { try OutputFile(path: directory.appendingPathComponent($0.0).path) }
        let parametersTotal = work.reduce(0) { total, shard in total + shard.2.filter(\.isCandidate).reduce(0) { $0 + $1.parameters } }
        let parametersDone = Mutex(0)
        var staged: [StagedFile] = []
        var layers: [LayerReport] = [], shards: [ShardReport] = []
        var weightMap: [String: String] = [:]
        var totalSize = 0, totalParameters = 0
        do {
            for (k, (name, file, planned)) in work.enumerated() {
                let started = clock.now
                let writing: () -> Void = {
                    progress?(CheckpointProgress(shard: k + 1, shardCount: work.count, shardName: name, layersDone: 0, layerCount: 0,
                                                 layerName: "writing", parametersDone: parametersDone.withLock { $0 }, parametersTotal: parametersTotal))
                }
                let outcome = try compressFile(file, layers: planned, to: outputs[k], writing: writing) { done, count, layer, parameters in
                    let total = parametersDone.withLock { $0 += parameters; return $0 }
                    progress?(CheckpointProgress(shard: k + 1, shardCount: work.count, shardName: name, layersDone: done, layerCount: count,
                                                 layerName: layer, parametersDone: total, parametersTotal: parametersTotal))
                }
                staged.append(outcome.file)
                for tensor in outcome.names { weightMap[tensor] = name }
                totalSize += outcome.tensorBytes
                totalParameters += outcome.tensorElements
                layers += outcome.reports
                let elapsed = clock.now - started
                shards.append(ShardReport(
                    name: name, candidateLayers: outcome.reports.count, replacedLayers: outcome.reports.filter(\.status.isReplaced).count,
                    bytesBefore: file.entries.values.reduce(0) { $0 + $1.byteRange.count }, bytesAfter: outcome.tensorBytes,
                    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18))
            }
            var index = SafetensorsIndex(weightMap: weightMap, metadata: checkpoint.index.metadata, totalSize: totalSize,
                                         totalParameters: checkpoint.index.totalParameters == nil ? nil : totalParameters)
            if let assignment {
                index.metadata[ShardAssignment.metadataKey] = assignment.description
                let identity = try checkpoint.index.encoded() + Data(options.fingerprint.utf8)
                index.metadata[ShardAssignment.runKey] = contentHash(identity)
            }
            staged.append(try indexOutput.stage(try index.encoded()))
            let modelBefore = work.reduce(0) { $0 + Self.parameterCount(of: $1.1) }
            let candidateCount = work.reduce(0) { $0 + $1.2.count }
            let totals = Self.finished(layers, candidates: candidateCount, modelParameters: modelBefore, warnings: &warnings)
            return CompressedCheckpoint(files: staged, index: index, layers: layers, shards: shards, totals: totals,
                                        warnings: warnings, replacedIndex: indexOutput.target.path)
        } catch {
            StagedFile.discard(staged)
            throw error
        }
    }
}

extension SafetensorsIndex {
    /// Joins the partial indexes that the workers of a ``ShardAssignment`` wrote into the index
    /// one run over all shards writes (byte for byte once encoded).
    ///
    /// - Throws: ``ModelCompressionError/partialIndexes(_:)`` when the parts
    ///   are not workers `0..<N` of one `N`, each once, when their other metadata differ, or when
    ///   two parts place the same tensor.
    public static func merged(_ parts: [SafetensorsIndex]) throws -> SafetensorsIndex {
        func fail(_ problem: PartialIndexProblem) -> ModelCompressionError { .partialIndexes(problem) }
        var workers: [Int: Int] = [:]
        var count: Int?
        for part in parts {
            let marks = part.metadata[ShardAssignment.metadataKey]?.split(separator: "/").compactMap { Int($0) } ?? []
            guard marks.count == 2 else { throw fail(.notAPart) }
            guard count == nil || count == marks[1] else { throw fail(.workerCounts(count!, marks[1])) }
            count = marks[1]
            guard workers.updateValue(marks[0], forKey: marks[0]) == nil else { throw fail(.workerTwice(marks[0])) }
        }
        let runs = Set(parts.map { $0.metadata[ShardAssignment.runKey] ?? "none" })
        guard runs.count <= 1 else { throw fail(.differentRuns(runs.sorted())) }
        guard let count, workers.count == count else {
            throw fail(.missingWorkers(found: workers.count, of: count ?? 0, missing: (0..<(count ?? 0)).filter { workers[$0] == nil }))
        }
        var result = SafetensorsIndex(weightMap: [:], metadata: parts[0].metadata, totalSize: 0,
                                      totalParameters: parts[0].totalParameters == nil ? nil : 0)
        result.metadata[ShardAssignment.metadataKey] = nil
        result.metadata[ShardAssignment.runKey] = nil
        for part in parts {
            var metadata = part.metadata
            metadata[ShardAssignment.metadataKey] = nil
            metadata[ShardAssignment.runKey] = nil
            guard metadata == result.metadata else { throw fail(.differentMetadata(metadata, result.metadata)) }
            for (tensor, shard) in part.weightMap {
                guard result.weightMap.updateValue(shard, forKey: tensor) == nil else { throw fail(.tensorTwice(tensor)) }
            }
            result.totalSize = (result.totalSize ?? 0) + (part.totalSize ?? 0)
            if let parameters = part.totalParameters { result.totalParameters = (result.totalParameters ?? 0) + parameters }
        }
        return result
    }
}

/// Why partial indexes do not join (``ModelCompressionError/partialIndexes(_:)``).
public enum PartialIndexProblem: Sendable, Equatable, CustomStringConvertible {
    /// An index that no worker of a shard assignment wrote (no `ShardAssignment.metadataKey` entry).
    case notAPart
    /// Parts of runs split among different worker counts.
    case workerCounts(Int, Int)
    /// The same worker's part twice.
    case workerTwice(Int)
    /// Parts of different runs (their run marks).
    case differentRuns([String])
    /// `found` of `of` parts; the workers whose parts are missing.
    case missingWorkers(found: Int, of: Int, missing: [Int])
    /// Parts whose other metadata differ.
    case differentMetadata([String: String], [String: String])
    /// A tensor placed by two parts.
    case tensorTwice(String)

    /// The problem in one line.
    public var description: String {
        switch self {
        case .notAPart:
            return "an index without \(ShardAssignment.metadataKey): only the partial indexes that the workers of a shard assignment write can be merged"
        case let .workerCounts(a, b): return "parts of a run split among \(a) workers and of one split among \(b)"
        case let .workerTwice(worker): return "worker \(worker)'s part is given twice"
        case let .differentRuns(runs):
            return "parts of \(runs.count) different runs (\(ShardAssignment.runKey) \(runs.joined(separator: ", "))); merge the parts of one run "
                + "(the same checkpoint and the same options)"
        case let .missingWorkers(found, count, missing):
            return "\(found) of \(count) parts; missing: \(missing.isEmpty ? "all" : "worker " + missing.map(String.init).joined(separator: ", "))"
        case let .differentMetadata(a, b): return "metadata \(a) and \(b) differ; the parts of one run have the same"
        case let .tensorTwice(tensor): return "\(tensor) is placed by two parts"
        }
    }
}
