import ArgumentParser
import Foundation
import TensorDecompositions

struct MergeIndex: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-index",
        abstract: "Join the partial indexes written by compress --shard INDEX/COUNT into the checkpoint's index.",
        discussion: """
            Each worker of an array job (compress CHECKPOINT --output DIR --shard I/N) writes its shards and \
            DIR/model.safetensors.index.part-I-of-N.json. Given all N parts, merge-index writes the index that one run over \
            all shards would have written, byte for byte, and checks that every part is there once and that every shard \
            it names exists beside it.
            """)

    @Argument(help: "The partial indexes (*.part-I-of-N.json), all N of them.") var parts: [String]
    @Option(help: "The index to write (usually DIR/model.safetensors.index.json).") var output: String
    @Flag(help: "Remove the partial indexes after the index was written.") var removeParts = false

    func run() throws {
        let outputFile = try OutputFile(path: output)
        var indexes: [SafetensorsIndex] = []
        var inputs = parts
        for path in parts {
            let data = try InputFile.contents(of: URL(fileURLWithPath: path))
            let index = try SafetensorsIndex(data: data, path: path)
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            // Each shard must exist and hold what the part says: its tensors, and bytes adding up
            // to the part's total_size (a tampered part is refused, not merged).
            var bytes = 0
            for shard in index.shards {
                let shardPath = directory.appendingPathComponent(shard).path
                guard FileManager.default.fileExists(atPath: shardPath) else {
                    throw TensorIOError.fileSystem(path: shardPath, problem: .missingNamedFile(namedBy: path))
                }
                let file = try SafetensorsFile(contentsOf: URL(fileURLWithPath: shardPath))
                for (tensor, place) in index.weightMap where place == shard && file.entries[tensor] == nil {
                    throw TensorIOError.invalidIndex(path: path, problem: .missingTensor(tensor, shard: shard))
                }
                bytes += file.entries.values.reduce(0) { $0 + $1.byteRange.count }
                inputs.append(shardPath)
            }
            if let total = index.totalSize, total != bytes {
                throw TensorIOError.invalidIndex(path: path, problem: .totalSize(declared: total, actual: bytes))
            }
            indexes.append(index)
        }
        try OutputFile.checkNotReading([outputFile], inputs: inputs)
        let merged = try SafetensorsIndex.merged(indexes)
        try OutputFile.write([(outputFile, try merged.encoded())])
        if removeParts { for path in parts { try? FileManager.default.removeItem(atPath: path) } }
        print("wrote \(output): \(merged.weightMap.count) tensors in \(merged.shards.count) shards, \(merged.totalSize ?? 0) bytes")
    }
}
