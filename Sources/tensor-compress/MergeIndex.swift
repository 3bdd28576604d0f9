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
        for path in parts {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw TensorIOError.fileSystem(path: path, reason: "cannot read the partial index")
            }
            let index = try SafetensorsIndex(data: data, path: path)
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            for shard in index.shards where !FileManager.default.fileExists(atPath: directory.appendingPathComponent(shard).path) {
                throw TensorIOError.fileSystem(path: directory.appendingPathComponent(shard).path, reason: "named by \(path), but it does not exist")
            }
            indexes.append(index)
        }
        let merged = try SafetensorsIndex.merged(indexes)
        try OutputFile.write([(outputFile, try merged.encoded())])
        if removeParts { for path in parts { try? FileManager.default.removeItem(atPath: path) } }
        print("wrote \(output): \(merged.weightMap.count) tensors in \(merged.shards.count) shards, \(merged.totalSize ?? 0) bytes")
    }
}
