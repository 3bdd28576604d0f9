import Foundation

/// The index of a sharded safetensors checkpoint (`model.safetensors.index.json`, as Hugging Face
/// writes it): which shard file holds each tensor.
///
/// ```json
/// {
///   "metadata": {"total_size": 2684354560},
///   "weight_map": {
///     "model.layers.0.mlp.down_proj.weight": "model-00001-of-00004.safetensors",
///     …
///   }
/// }
/// ```
///
/// `total_size` is the byte count of all tensors (data sections only); ``encoded()`` writes it
/// (and `total_parameters` when the input had it) from the values given, so that an index always
/// agrees with its shards. Other string-valued metadata entries are kept; other numeric ones are
/// dropped, since they describe the checkpoint that was read.
public struct SafetensorsIndex: Sendable, Equatable {
    /// Shard file name by tensor name.
    public var weightMap: [String: String]
    /// String-valued entries of `metadata` (not `total_size`).
    public var metadata: [String: String]
    /// `metadata.total_size`: the bytes of all tensors.
    public var totalSize: Int?
    /// `metadata.total_parameters`, when present: the elements of all tensors.
    public var totalParameters: Int?

    /// An index of the given tensors.
    public init(weightMap: [String: String], metadata: [String: String] = [:], totalSize: Int? = nil, totalParameters: Int? = nil) {
        (self.weightMap, self.metadata, self.totalSize, self.totalParameters) = (weightMap, metadata, totalSize, totalParameters)
    }

    /// The shard file names, sorted (the order `model-00001-of-00004…` names sort in).
    public var shards: [String] { Set(weightMap.values).sorted() }

    /// The tensor names of `shard`, sorted.
    public func tensors(in shard: String) -> [String] { weightMap.filter { $0.value == shard }.map(\.key).sorted() }

    /// Parses and checks an index.
    ///
    /// - Parameters:
    ///   - data: The index file's bytes (`model.safetensors.index.json`).
    ///   - path: The index's path, for messages.
    /// - Throws: ``TensorIOError/invalidIndex(path:problem:)`` when the JSON is not an object with
    ///   a `weight_map` object of strings, when a shard name is not a plain `*.safetensors` file
    ///   name (no directories, no `..`), or when `total_size` is not a non-negative integer.
    public init(data: Data, path: String) throws {
        func fail(_ problem: IndexProblem) -> TensorIOError { TensorIOError.invalidIndex(path: path, problem: problem) }
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any] else {
            throw fail(.notJSONObject)
        }
        guard let map = root["weight_map"] as? [String: Any] else { throw fail(.noWeightMap) }
        var weightMap: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String else { throw fail(.shardNotString(tensor: name)) }
            try Self.checkShardName(shard, path: path)
            weightMap[name] = shard
        }
        var metadata: [String: String] = [:]
        var totalSize: Int?, totalParameters: Int?
        if let entries = root["metadata"], !(entries is NSNull) {
            guard let entries = entries as? [String: Any] else { throw fail(.metadataNotObject) }
            for (key, value) in entries {
                switch key {
                case "total_size", "total_parameters":
                    guard let number = value as? Int, number >= 0 else { throw fail(.notNonNegativeInteger(key: key, value: "\(value)")) }
                    if key == "total_size" { totalSize = number } else { totalParameters = number }
                default:
                    if let string = value as? String { metadata[key] = string }
                }
            }
        }
        self.init(weightMap: weightMap, metadata: metadata, totalSize: totalSize, totalParameters: totalParameters)
    }

    /// Refuses shard names that leave the index's directory or are not safetensors files.
    static func checkShardName(_ shard: String, path: String) throws {
        guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), shard != ".", shard != "..", !shard.hasPrefix("."),
              shard.hasSuffix(".safetensors") else {
            throw TensorIOError.invalidIndex(path: path, problem: .shardName(shard))
        }
    }

    /// The index as JSON: keys sorted, two-space indentation, a final newline (deterministic, so
    /// that equal indexes are equal files).
    public func encoded() throws -> Data {
        var meta: [String: Any] = metadata
        if let totalSize { meta["total_size"] = totalSize }
        if let totalParameters { meta["total_parameters"] = totalParameters }
        let root: [String: Any] = ["metadata": meta, "weight_map": weightMap]
        var data = try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        data.append(0x0A)
        return data
    }
}

/// A sharded safetensors checkpoint: a directory holding `*.safetensors` shards and their
/// ``SafetensorsIndex``.
///
/// ```swift
/// let checkpoint = try ShardedSafetensors(contentsOf: URL(fileURLWithPath: "llama/"))
/// for shard in checkpoint.index.shards {
///     let file = try checkpoint.shard(shard)     // memory-mapped, checked against the index
///     …
/// }
/// ```
public struct ShardedSafetensors: Sendable {
    /// The directory of the index and its shards.
    public let directory: URL
    /// The index's file name (usually `model.safetensors.index.json`).
    public let indexName: String
    /// The index.
    public let index: SafetensorsIndex

    /// Opens `url`: an index file, or a directory holding exactly one `*.safetensors.index.json`.
    /// The shards are opened when asked for (``shard(_:)``); each must exist.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` for a missing file or a directory with
    ///   no index or several, a missing shard, ``TensorIOError/invalidIndex(path:problem:)``.
    public init(contentsOf url: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TensorIOError.fileSystem(path: url.path, problem: .noSuchFileOrDirectory)
        }
        var indexURL = url
        if isDirectory.boolValue {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).filter { $0.hasSuffix(".safetensors.index.json") }.sorted()
            guard names.count == 1 else {
                throw TensorIOError.fileSystem(path: url.path, problem: names.isEmpty ? .noIndex : .severalIndexes(names))
            }
            indexURL = url.appendingPathComponent(names[0])
        }
        let data = try InputFile.contents(of: indexURL)
        index = try SafetensorsIndex(data: data, path: indexURL.path)
        directory = indexURL.deletingLastPathComponent()
        indexName = indexURL.lastPathComponent
        for shard in index.shards where !FileManager.default.fileExists(atPath: directory.appendingPathComponent(shard).path) {
            throw TensorIOError.fileSystem(path: directory.appendingPathComponent(shard).path,
                                           problem: .missingShard(tensors: index.tensors(in: shard).count))
        }
    }

    /// Whether `path` names a sharded checkpoint: an index file or a directory.
    public static func isSharded(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return path.hasSuffix(".index.json") || (FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    /// The shard file `name`, memory-mapped and checked against the index.
    ///
    /// - Throws: the errors of ``SafetensorsFile/init(contentsOf:)``, and
    ///   ``TensorIOError/invalidIndex(path:problem:)`` when the shard lacks a tensor the index puts
    ///   in it or holds one the index does not put there.
    public func shard(_ name: String) throws -> SafetensorsFile {
        let url = directory.appendingPathComponent(name)
        let file = try SafetensorsFile(contentsOf: url)
        let listed = Set(index.tensors(in: name))
        let held = Set(file.names)
        if let missing = listed.subtracting(held).sorted().first {
            throw TensorIOError.invalidIndex(path: directory.appendingPathComponent(indexName).path,
                                             problem: .missingTensor(missing, shard: name))
        }
        if let extra = held.subtracting(listed).sorted().first {
            throw TensorIOError.invalidIndex(path: directory.appendingPathComponent(indexName).path,
                                             problem: .unlistedTensor(extra, shard: name, listedIn: index.weightMap[extra]))
        }
        return file
    }
}
