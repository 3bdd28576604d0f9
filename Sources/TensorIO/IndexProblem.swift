/// What is wrong with a sharded checkpoint's index: the payload of
/// ``TensorIOError/invalidIndex(path:problem:)``, which names the index.
public enum IndexProblem: Sendable, Equatable, CustomStringConvertible {
    /// The file is not a JSON object.
    case notJSONObject
    /// The object has no `weight_map` object.
    case noWeightMap
    /// The `weight_map` entry of `tensor` is not a string.
    case shardNotString(tensor: String)
    /// `metadata` is not an object.
    case metadataNotObject
    /// The metadata entry `key` (`total_size`, `total_parameters`) holds `value`, not a non-negative integer.
    case notNonNegativeInteger(key: String, value: String)
    /// A shard name that is not a plain `*.safetensors` file name in the index's directory.
    case shardName(String)
    /// The index puts `tensor` in `shard`, which does not hold it.
    case missingTensor(String, shard: String)
    /// `shard` holds `tensor`, which the index puts in `listedIn` (or does not list: `nil`).
    case unlistedTensor(String, shard: String, listedIn: String?)
    /// `total_size` is `declared`, the shards' tensors hold `actual` bytes.
    case totalSize(declared: Int, actual: Int)

    /// The problem in one line.
    public var description: String {
        switch self {
        case .notJSONObject: return "not a JSON object"
        case .noWeightMap: return "no \"weight_map\" object"
        case let .shardNotString(tensor): return "the shard of \(tensor) is not a string"
        case .metadataNotObject: return "\"metadata\" is not an object"
        case let .notNonNegativeInteger(key, value): return "\(key) \(value) is not a non-negative integer"
        case let .shardName(shard): return "shard \"\(shard)\" is not a plain *.safetensors file name in the index's directory"
        case let .missingTensor(tensor, shard): return "it puts \(tensor) in \(shard), which does not hold it"
        case let .unlistedTensor(tensor, shard, listedIn):
            return "\(shard) holds \(tensor), but the index \(listedIn.map { "puts it in \($0)" } ?? "does not list it")"
        case let .totalSize(declared, actual): return "total_size \(declared) differs from the \(actual) tensor bytes of its shards"
        }
    }
}
