import Foundation
import Testing
import TensorIO
import TensorModule

/// Issue 24, item 3: errors carry typed payloads with the values; their descriptions are the
/// one-line messages.
@Suite("Typed errors: files")
struct TypedFileErrorTests {
    /// A `.npy` file (format 1.0) whose header dictionary is `dict`.
    func npy(_ dict: String, declaredLength: Int? = nil) -> Data {
        let bytes = Array(dict.utf8)
        let length = declaredLength ?? bytes.count
        return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + bytes)
    }

    /// A safetensors file from a header and a data section.
    func safetensors(_ header: String, data: [UInt8] = []) -> Data {
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        return Data(bytes + Array(header.utf8) + data)
    }

    func checkNPYHeaders<S: BLASScalar>(_: S.Type) {
        // A dictionary cut short after a key: the ':' is missing at its end.
        let truncated = "{'descr': '<f4', 'fortran_order'"
        #expect(throws: TensorIOError.malformedHeader(format: "npy", problem: .dictionarySyntax(.expected("':'"), character: truncated.count))) {
            try Tensor<S>(npyData: npy(truncated))
        }
        #expect(throws: TensorIOError.malformedHeader(format: "npy", problem: .missingKey("shape", kind: "tuple"))) {
            try Tensor<S>(npyData: npy("{'descr': '<f4', 'fortran_order': False, }"))
        }
        // An integer beyond 64 bits: refused at the character after its digits.
        let overflowing = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"
        let afterDigits = Array(overflowing).firstIndex(of: "(")! + 21
        #expect(throws: TensorIOError.malformedHeader(format: "npy", problem: .dictionarySyntax(.expectedInteger(bits: 64), character: afterDigits))) {
            try Tensor<S>(npyData: npy(overflowing))
        }
        // A header longer than NumPy's limit: 10,001 bytes declared and present.
        let long = "{" + String(repeating: " ", count: 10_000)
        #expect(throws: TensorIOError.malformedHeader(format: "npy", problem: .tooLong(length: 10_001, limit: NPYHeader.maximumHeaderLength))) {
            try Tensor<S>(npyData: npy(long))
        }
    }

    @Test func npyHeaderProblemsCarryTheirValues() {
        checkNPYHeaders(Float.self)
        checkNPYHeaders(Double.self)
        #expect("\(TensorIOError.malformedHeader(format: "npy", problem: .tooLong(length: 10_001, limit: 10_000)))"
                == "npy: malformed header: a header of 10001 bytes exceeds the limit of 10000 bytes (NumPy's own limit)")
        #expect("\(TensorIOError.malformedHeader(format: "npy", problem: .dictionarySyntax(.expected("':'"), character: 33)))"
                == "npy: malformed header: expected ':' at character 33")
    }

    @Test func safetensorsHeaderAndOffsetProblemsCarryTheirValues() throws {
        let header = #"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#
        let dot = Array(header.utf8).firstIndex(of: UInt8(ascii: "."))!
        #expect(throws: TensorIOError.malformedHeader(format: "safetensors",
                                                      problem: .jsonSyntax(.notNonNegativeInteger(key: "shape", tensor: "x"), byte: dot))) {
            try SafetensorsFile(data: safetensors(header, data: [0, 0, 0, 0]))
        }
        // A repeated name: refused where its value starts.
        let repeated = #"{"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"x":{}}"#
        let secondValue = repeated.utf8.count - 3
        #expect(throws: TensorIOError.malformedHeader(format: "safetensors", problem: .jsonSyntax(.repeatedTensor("x"), byte: secondValue))) {
            try SafetensorsFile(data: safetensors(repeated))
        }
        #expect(throws: TensorIOError.malformedHeader(format: "safetensors", problem: .incompleteEntry(tensor: "x"))) {
            try SafetensorsFile(data: safetensors(#"{"x":{"dtype":"F32","shape":[1]}}"#))
        }
        #expect(throws: TensorIOError.invalidOffsets(name: "x", problem: .outsideData(start: 0, end: 8, dataSize: 4))) {
            try SafetensorsFile(data: safetensors(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: TensorIOError.invalidOffsets(name: "y", problem: .overlap(start: 4, end: 8, previousEnd: 8))) {
            try SafetensorsFile(data: safetensors(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                                  data: [UInt8](repeating: 0, count: 8)))
        }
        #expect(throws: TensorIOError.invalidOffsets(name: "x", problem: .hole(bytes: 4))) {
            try SafetensorsFile(data: safetensors(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        #expect(throws: TensorIOError.invalidOffsets(name: "x", problem: .coverage(covered: 4, dataSize: 8))) {
            try SafetensorsFile(data: safetensors(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        // The size limit: a length field of 2⁶³ − 1.
        var huge = safetensors("{}")
        huge.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: TensorIOError.malformedHeader(format: "safetensors", problem: .tooLong(length: UInt64(Int.max), limit: 100 << 20))) {
            try SafetensorsFile(data: huge)
        }
        #expect("\(TensorIOError.invalidOffsets(name: "x", problem: .hole(bytes: 4)))" == "tensor x: invalid data offsets: a hole of 4 bytes precedes it")
        #expect("\(TensorIOError.malformedHeader(format: "safetensors", problem: .jsonSyntax(.expected("a string"), byte: 1)))"
                == "safetensors: malformed header: expected a string at byte 1 of the header")
    }

    @Test func fileSystemProblemsCarryTheirValues() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("typed-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("missing.safetensors").path
        #expect(throws: TensorIOError.fileSystem(path: missing, problem: .noSuchFile)) { try SafetensorsFile(contentsOf: URL(fileURLWithPath: missing)) }
        let pipe = directory.appendingPathComponent("pipe.npz").path
        #expect(mkfifo(pipe, 0o600) == 0)
        #expect(throws: TensorIOError.fileSystem(path: pipe, problem: .notRegularInput(.fifo))) { try InputFile.checkRegular(pipe) }
        #expect(throws: TensorIOError.fileSystem(path: directory.path, problem: .notRegularInput(.directory))) { try InputFile.checkRegular(directory.path) }
        #expect(throws: TensorIOError.fileSystem(path: "/dev/null", problem: .notRegularOutput(.device))) { try OutputFile(path: "/dev/null") }
        #expect(throws: TensorIOError.fileSystem(path: directory.path + "/", problem: .endsInSlash)) { try OutputFile(path: directory.path + "/") }
        let nowhere = directory.appendingPathComponent("no/x.npy").path
        #expect(throws: TensorIOError.fileSystem(path: nowhere, problem: .missingDirectory(directory.appendingPathComponent("no").path))) {
            try OutputFile(path: nowhere)
        }
        let a = try OutputFile(path: directory.appendingPathComponent("a.npy").path)
        let b = try OutputFile(path: directory.path + "/./a.npy")
        #expect(throws: TensorIOError.fileSystem(path: b.path, problem: .sameOutput(as: a.path))) { try OutputFile.checkDistinct([a, b]) }
        #expect("\(TensorIOError.fileSystem(path: "/dev/null", problem: .notRegularOutput(.device)))"
                == "/dev/null: is not a regular file (a device); refusing to replace it")
        #expect("\(TensorIOError.fileSystem(path: pipe, problem: .notRegularInput(.fifo)))" == "\(pipe): is a FIFO; only regular files are read")
        #expect("\(FileSystemProblem.system(.copy(bytes: 12), errno: ENOSPC))" == "cannot copy 12 bytes into it (\(String(cString: strerror(ENOSPC))))")
    }

    @Test func indexProblemsCarryTheirValues() throws {
        func index(_ json: String) throws -> SafetensorsIndex { try SafetensorsIndex(data: Data(json.utf8), path: "i.json") }
        #expect(throws: TensorIOError.invalidIndex(path: "i.json", problem: .notJSONObject)) { try index("[1]") }
        #expect(throws: TensorIOError.invalidIndex(path: "i.json", problem: .noWeightMap)) { try index("{}") }
        #expect(throws: TensorIOError.invalidIndex(path: "i.json", problem: .shardNotString(tensor: "a"))) { try index(#"{"weight_map": {"a": 1}}"#) }
        #expect(throws: TensorIOError.invalidIndex(path: "i.json", problem: .shardName("../x.safetensors"))) {
            try index(#"{"weight_map": {"a": "../x.safetensors"}}"#)
        }
        #expect(throws: TensorIOError.invalidIndex(path: "i.json", problem: .notNonNegativeInteger(key: "total_size", value: "-1"))) {
            try index(#"{"metadata": {"total_size": -1}, "weight_map": {"a": "x.safetensors"}}"#)
        }
        #expect("\(TensorIOError.invalidIndex(path: "i.json", problem: .unlistedTensor("b", shard: "x.safetensors", listedIn: nil)))"
                == "i.json: invalid sharded-checkpoint index: x.safetensors holds b, but the index does not list it")
    }
}
