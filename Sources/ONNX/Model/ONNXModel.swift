import Foundation
import SwiftProtobuf
import TensorIO

/// An operator set the model imports.
public struct ONNXOpset: Sendable, Equatable {
    /// The domain: empty for the standard operators.
    public var domain: String
    /// Its version.
    public var version: Int
}

/// Where ``ONNXModel/write(to:externalData:)`` puts tensor data.
public enum ONNXExternalData: Sendable, Equatable {
    /// In one file unless the input model had external data or the file would exceed protobuf's
    /// 2 GiB limit; then as ``separateFile(minimumBytes:)`` with the default size.
    case automatic
    /// Everything in the `.onnx` file (throws beyond 2 GiB).
    case none
    /// Every initializer of at least `minimumBytes` bytes in `NAME.data` beside the model
    /// `NAME`, at 64-byte aligned offsets; `Constant` node values stay in the model.
    case separateFile(minimumBytes: Int = 1024)
}

/// An ONNX model: the graph, its operator sets and metadata, read from and written to the
/// protobuf file format (`onnx.proto`, IR versions 3 and later).
///
/// Writing keeps everything that was not changed: IR version, opset imports, producer,
/// `metadata_props`, doc strings, `value_info`, node order and names, functions and training
/// information, and unknown fields. External data (`data_location = EXTERNAL`) is read in when
/// the model is read from a file, with each `location` checked to stay inside the model's
/// directory and each `offset`/`length` to lie inside its file.
///
/// ```swift
/// let model = try ONNXModel(contentsOf: URL(fileURLWithPath: "det.onnx"))
/// print(model.opsetVersion, model.graph.nodes.count, model.metadata["character"] != nil)
/// var graph = model.graph
/// // … rewrite nodes …
/// var copy = model
/// copy.graph = graph
/// try copy.write(to: URL(fileURLWithPath: "det.compressed.onnx"))
/// ```
public struct ONNXModel: Sendable {
    var proto: Onnx_ModelProto
    /// Names of the initializers that were stored externally when read.
    var externalTensorNames: Set<String> = []
    /// The external data files read, resolved (no symlinks), in the order first read.
    public private(set) var externalDataFiles: [URL] = []

    /// protobuf's limit for one message.
    static let protobufLimit = Int(Int32.max)

    /// A model of `graph` importing the standard operator set `opset`.
    public init(graph: ONNXGraph, opset: Int, irVersion: Int = 8, producer: String = "TensorDecompositions") {
        var proto = Onnx_ModelProto()
        proto.irVersion = Int64(irVersion)
        var set = Onnx_OperatorSetIdProto()
        set.domain = ""
        set.version = Int64(opset)
        proto.opsetImport = [set]
        proto.producerName = producer
        proto.graph = graph.proto
        self.proto = proto
    }

    /// Reads a model file and the external data it refers to (resolved against the file's directory).
    ///
    /// - Throws: ``ONNXError/invalidProtobuf(decoderError:)``, ``ONNXError/missingGraph``,
    ///   ``ONNXError/externalData(tensor:location:problem:)``, and
    ///   `TensorIOError.fileSystem` (from `TensorIO`) for a file that cannot be read.
    public init(contentsOf url: URL) throws {
        let data = try InputFile.contents(of: url)
        try self.init(serializedData: data, externalDataDirectory: url.deletingLastPathComponent())
    }

    /// Decodes a model from its bytes; external data is read from `externalDataDirectory`.
    ///
    /// - Throws: as ``init(contentsOf:)``; ``ONNXError/externalDataWithoutDirectory(tensor:)`` when
    ///   a tensor is external and no directory is given.
    public init(serializedData data: Data, externalDataDirectory: URL? = nil) throws {
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            proto = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw ONNXError.invalidProtobuf(decoderError: "\(error)")
        }
        guard proto.hasGraph else { throw ONNXError.missingGraph }
        var reader = ExternalDataReader(directory: externalDataDirectory)
        try reader.load(&proto.graph)
        externalTensorNames = reader.loadedInitializers
        externalDataFiles = reader.order.map { URL(fileURLWithPath: $0) }
    }

    /// The IR version.
    public var irVersion: Int { Int(proto.irVersion) }
    /// The producer's name and version as written by the exporter.
    public var producer: String { [proto.producerName, proto.producerVersion].filter { !$0.isEmpty }.joined(separator: " ") }
    /// The operator sets imported.
    public var opsetImports: [ONNXOpset] { proto.opsetImport.map { ONNXOpset(domain: $0.domain, version: Int($0.version)) } }
    /// The version of the standard operator set (domain `""` or `ai.onnx`), 1 when none is listed.
    public var opsetVersion: Int {
        proto.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map { Int($0.version) } ?? 1
    }
    /// Whether any tensor was stored in external data when the model was read.
    public var hadExternalData: Bool { !externalTensorNames.isEmpty }

    /// `metadata_props` as a dictionary (the last entry wins for a repeated key).
    public var metadata: [String: String] {
        Dictionary(proto.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
    }

    /// Sets a `metadata_props` entry: an existing key keeps its place, a new one is appended.
    public mutating func setMetadata(_ value: String, forKey key: String) {
        if let k = proto.metadataProps.firstIndex(where: { $0.key == key }) {
            proto.metadataProps[k].value = value
        } else {
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            proto.metadataProps.append(entry)
        }
    }

    /// The main graph.
    public var graph: ONNXGraph {
        get {
            var graph = ONNXGraph(proto: proto.graph)
            graph.initializersCanBeOverridden = proto.irVersion >= 4
            return graph
        }
        set { proto.graph = newValue.proto }
    }

    /// The whole model as one protobuf message, every tensor inline.
    ///
    /// - Throws: ``ONNXError/tooLargeForOneFile(bytes:)`` beyond 2 GiB.
    public func serializedData() throws -> Data {
        try encoded(fileName: "", externalData: .none).model
    }

    /// The bytes of a model file and of its external data file.
    public struct Encoding: Sendable {
        /// The model file's bytes.
        public var model: Data
        /// The external data file's bytes, `nil` when every tensor is in the model file.
        public var externalData: Data?
        /// The external data file's name beside the model, `NAME.HASH.data`: named by its
        /// content, so that a new model's data never replaces the data an older model file reads.
        public var externalDataFileName: String?
    }

    /// The bytes of the model file and of its external data file (`nil` when there is none), for a
    /// model file called `fileName`.
    ///
    /// The data file is called `fileName.HASH.data`, `HASH` being 16 hexadecimal digits of a hash
    /// of its bytes: writing a model never changes a data file that another model (or the model
    /// being replaced) refers to, and identical models get identical files.
    ///
    /// - Throws: ``ONNXError/tooLargeForOneFile(bytes:)`` when `.none` would exceed 2 GiB.
    public func encoded(fileName: String, externalData: ONNXExternalData = .automatic) throws -> Encoding {
        try encoded(fileName: fileName, externalData: externalData, limit: Self.protobufLimit)
    }

    /// ``encoded(fileName:externalData:)`` with the one-file limit as a parameter (tests lower it).
    func encoded(fileName: String, externalData: ONNXExternalData, limit: Int) throws -> Encoding {
        var policy = externalData
        if policy == .automatic {
            let tensorBytes = proto.graph.initializer.reduce(0) { $0 + $1.rawData.count }
            policy = hadExternalData || tensorBytes > limit - Swift.min(64 << 20, limit / 32) ? .separateFile() : .none
        }
        guard case let .separateFile(minimumBytes) = policy else {
            let estimate = proto.graph.initializer.reduce(0) { $0 + $1.rawData.count }
            if estimate > limit { throw ONNXError.tooLargeForOneFile(bytes: estimate) }
            let bytes: [UInt8] = try proto.serializedBytes()
            if bytes.count > limit { throw ONNXError.tooLargeForOneFile(bytes: bytes.count) }
            return Encoding(model: Data(bytes), externalData: nil, externalDataFileName: nil)
        }
        var copy = proto
        var blob = Data()
        var moved: [(index: Int, offset: Int, length: Int)] = []
        for k in copy.graph.initializer.indices where copy.graph.initializer[k].rawData.count >= max(minimumBytes, 1) {
            let padding = (64 - blob.count % 64) % 64
            blob.append(Data(count: padding))
            moved.append((k, blob.count, copy.graph.initializer[k].rawData.count))
            blob.append(copy.graph.initializer[k].rawData)
        }
        let location = moved.isEmpty ? nil : fileName + "." + contentHash(blob) + ".data"
        for (k, offset, length) in moved {
            var tensor = copy.graph.initializer[k]
            tensor.clearRawData()
            tensor.dataLocation = .external
            tensor.externalData = [("location", location!), ("offset", "\(offset)"), ("length", "\(length)")].map { key, value in
                var entry = Onnx_StringStringEntryProto()
                entry.key = key
                entry.value = value
                return entry
            }
            copy.graph.initializer[k] = tensor
        }
        let bytes: [UInt8] = try copy.serializedBytes()
        if bytes.count > limit { throw ONNXError.tooLargeForOneFile(bytes: bytes.count) }
        return Encoding(model: Data(bytes), externalData: location == nil ? nil : blob, externalDataFileName: location)
    }

    /// The files that writing the model to `output` produces, in the order to commit them: the
    /// external data file first (a new name, which no model reads yet), then the model file, so
    /// that a process killed between the two renames leaves the old model over its old data.
    /// A data file that already exists with the same bytes is not written again.
    ///
    /// - Throws: as ``encoded(fileName:externalData:)``, and
    ///   `TensorIOError.fileSystem` (from `TensorIO`) for a data path that cannot be written.
    public func outputFiles(for output: OutputFile, externalData: ONNXExternalData = .automatic) throws -> [(OutputFile, Data)] {
        let encoding = try encoded(fileName: output.target.lastPathComponent, externalData: externalData)
        var files: [(OutputFile, Data)] = []
        if let data = encoding.externalData, let name = encoding.externalDataFileName {
            let path = output.target.deletingLastPathComponent().appendingPathComponent(name).path
            let existing = try? InputFile.contents(of: URL(fileURLWithPath: path))   // never waits on a FIFO
            if existing != data { files.append((try OutputFile(path: path), data)) }
        }
        files.append((output, encoding.model))
        return files
    }

    /// The external data files that the model file at `url` refers to and that are named as this
    /// writer names them beside it (`NAME.data`, `NAME.HASH.data`), resolved; empty when there is
    /// no such file or it cannot be decoded. Read before a model is replaced, so that its data can
    /// be removed after (``removeReplacedData(_:of:keeping:)``).
    public static func ownDataFiles(ofModelAt url: URL) -> [String] {
        guard let data = try? InputFile.contents(of: url),
              let proto = try? Onnx_ModelProto(serializedBytes: data) else { return [] }
        let name = url.lastPathComponent
        func own(_ location: String) -> Bool {
            guard location.hasPrefix(name + "."), location.hasSuffix(".data") else { return false }
            let middle = location.dropFirst(name.count + 1).dropLast(".data".count)
            return middle.isEmpty || middle.count == 16 && middle.allSatisfy(\.isHexDigit)
        }
        let locations = Set(proto.graph.initializer.flatMap { tensor in
            tensor.externalData.filter { $0.key == "location" && own($0.value) }.map(\.value)
        })
        return locations.sorted().map { OutputFile.canonicalPath(url.deletingLastPathComponent().appendingPathComponent($0).path) }
    }

    /// Removes the data files of a replaced model (``ownDataFiles(ofModelAt:)`` of `output`, read
    /// before the replacement) that the new model at `output` does not use and that are not among
    /// `keeping` (the files the run read, which other models may still refer to).
    public static func removeReplacedData(_ previous: [String], of output: URL, keeping: [String]) {
        guard !previous.isEmpty else { return }
        let current = Set(ownDataFiles(ofModelAt: output))
        for path in previous where !current.contains(path) {
            guard let file = try? OutputFile(path: path), !keeping.contains(where: file.isSameFile(as:)) else { continue }
            unlink(path)
        }
    }

    /// Writes the model (and its external data file, when there is one) atomically: the data file
    /// under a new name first, then the model file, then the replaced model's own data file is
    /// removed.
    ///
    /// - Throws: ``ONNXError/tooLargeForOneFile(bytes:)``, `TensorIOError.fileSystem` (from `TensorIO`).
    public func write(to url: URL, externalData: ONNXExternalData = .automatic) throws {
        let output = try OutputFile(path: url.path)
        let previous = Self.ownDataFiles(ofModelAt: output.target)
        try OutputFile.write(try outputFiles(for: output, externalData: externalData))
        Self.removeReplacedData(previous, of: output.target, keeping: externalDataFiles.map(\.path))
    }
}

/// Reads `data_location = EXTERNAL` tensors into `raw_data`.
struct ExternalDataReader {
    let directory: URL?
    var files: [String: Data] = [:]
    /// The resolved paths of the files read, in the order first read.
    var order: [String] = []
    var loadedInitializers: Set<String> = []

    init(directory: URL?) { self.directory = directory }

    mutating func load(_ graph: inout Onnx_GraphProto) throws {
        for k in graph.initializer.indices where graph.initializer[k].dataLocation == .external {
            try load(&graph.initializer[k])
            loadedInitializers.insert(graph.initializer[k].name)
        }
        for n in graph.node.indices {
            for a in graph.node[n].attribute.indices {
                if graph.node[n].attribute[a].hasT && graph.node[n].attribute[a].t.dataLocation == .external {
                    try load(&graph.node[n].attribute[a].t)
                }
                for t in graph.node[n].attribute[a].tensors.indices where graph.node[n].attribute[a].tensors[t].dataLocation == .external {
                    try load(&graph.node[n].attribute[a].tensors[t])
                }
                if graph.node[n].attribute[a].hasG { try load(&graph.node[n].attribute[a].g) }
                for g in graph.node[n].attribute[a].graphs.indices { try load(&graph.node[n].attribute[a].graphs[g]) }
            }
        }
    }

    mutating func load(_ tensor: inout Onnx_TensorProto) throws {
        guard let directory else { throw ONNXError.externalDataWithoutDirectory(tensor: tensor.name) }
        let fields = Dictionary(tensor.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        let location = fields["location"] ?? ""
        func fail(_ problem: ExternalDataProblem) -> ONNXError { ONNXError.externalData(tensor: tensor.name, location: location, problem: problem) }
        guard !location.isEmpty else { throw fail(.noLocation) }
        let components = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.hasPrefix("/"), !components.contains(".."), !location.contains("\\") else {
            throw fail(.outsideDirectory)
        }
        if files[location] == nil {
            let url = directory.appendingPathComponent(location)
            guard FileManager.default.fileExists(atPath: url.path) else { throw fail(.missingFile(directory: directory.path)) }
            // Symlinks are resolved and the file must still lie inside the model's directory, as
            // onnx.load requires: a link must not bring outside bytes into the model (or its output).
            let resolved = OutputFile.canonicalPath(url.path), root = OutputFile.canonicalPath(directory.path)
            guard resolved.hasPrefix(root == "/" ? "/" : root + "/") else {
                throw fail(.symlinkOutside(resolved: resolved, root: root))
            }
            do { files[location] = try InputFile.contents(of: URL(fileURLWithPath: resolved)) } catch let error as TensorIOError {
                throw fail(.unreadable(error))
            }
            order.append(resolved)
        }
        let file = files[location]!
        guard let offset = Int(fields["offset"] ?? "0"), offset >= 0 else {
            throw fail(.notNonNegativeInteger(field: "offset", value: fields["offset"]!))
        }
        guard offset <= file.count else { throw fail(.offsetBeyondFile(offset: offset, fileSize: file.count)) }
        let length: Int
        if let text = fields["length"] {
            guard let value = Int(text), value >= 0 else { throw fail(.notNonNegativeInteger(field: "length", value: text)) }
            length = value
        } else {
            length = file.count - offset
        }
        guard length <= file.count - offset else {
            throw fail(.rangeBeyondFile(offset: offset, length: length, fileSize: file.count))
        }
        let view = ONNXTensor(proto: tensor)
        if let dtype = view.dataType.dtype {
            let expected = try view.elementCount().multipliedReportingOverflow(by: dtype.size)
            guard !expected.overflow, expected.partialValue == length else {
                throw ONNXError.dataSize(tensor: tensor.name, expected: expected.partialValue, actual: length)
            }
        }
        tensor.rawData = file.subdata(in: (file.startIndex + offset)..<(file.startIndex + offset + length))
        tensor.externalData = []
        tensor.clearDataLocation()
    }
}
