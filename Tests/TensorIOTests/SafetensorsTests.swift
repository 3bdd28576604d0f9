import Foundation
import Testing
import TensorModule
import TensorIO

@Suite("Safetensors files")
struct SafetensorsTests {
    static let mixed = fixtures.appendingPathComponent("mixed.safetensors")

    func checkFixture<S: BLASScalar>(_: S.Type) throws {
        let file = try SafetensorsFile(contentsOf: Self.mixed)
        #expect(file.metadata == ["format": "pt", "source": "make_safetensors_fixtures.py"])
        #expect(Set(file.names) == ["f16", "bf16", "f32", "f64", "i64", "u8", "scalar"])
        for name in ["f16", "bf16", "f32", "f64"] {
            let x = try file.tensor(named: name, as: S.self)
            #expect(x.shape == [2, 3, 4])
            for (i, value) in x.scalars.enumerated() { #expect(value == S(i) / 8 - 1.25, "\(name) element \(i)") }
        }
        #expect(try file.tensor(named: "i64", as: S.self).scalars == [-2, -1, 0, 1, 2, 3])
        #expect(try file.tensor(named: "u8", as: S.self).scalars == [0, 1, 2, 3, 4])
        let scalar = try file.tensor(named: "scalar", as: S.self)
        #expect(scalar.shape == [] && scalar.scalars == [2.5])
        #expect(throws: TensorIOError.self) { try file.tensor(named: "missing", as: S.self) }
    }

    @Test func readsFilesOfTheSafetensorsPackage() throws {
        try checkFixture(Float.self)
        try checkFixture(Double.self)
    }

    func checkRoundTrip<S: BLASScalar>(_: S.Type) throws {
        var writer = SafetensorsWriter()
        let a = Tensor<S>.randomNormal(shape: [3, 4], seed: 1)
        let b = Tensor<S>.randomNormal(shape: [2, 2, 2], seed: 2)
        try writer.add("a", a)
        try writer.add("b.f32", b, dtype: .float32)
        try writer.add("b.f16", b, dtype: .float16)
        try writer.add("b.bf16", b, dtype: .bfloat16)
        try writer.add("b.f64", b, dtype: .float64)
        try writer.addRaw("ints", dtype: .int64, shape: [2], bytes: Data([1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]))
        writer.metadata["stacks"] = "[]"
        let data = try writer.encoded()
        #expect(data.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) } % 8 == 0, "data aligned to 8 bytes")
        let file = try SafetensorsFile(data: data)
        #expect(file.metadata == ["stacks": "[]"])
        #expect(try file.tensor(named: "a", as: S.self) == a)
        #expect(try file.tensor(named: "b.f64", as: S.self).isApproximatelyEqual(to: b, relativeTolerance: 1e-7))
        #expect(try file.tensor(named: "b.f32", as: S.self).isApproximatelyEqual(to: b, relativeTolerance: 1e-7))
        #expect(try file.tensor(named: "b.f16", as: S.self).relativeError(to: b) < 1e-3)
        #expect(try file.tensor(named: "b.bf16", as: S.self).relativeError(to: b) < 1e-2)
        #expect(try file.tensor(named: "ints", as: S.self).scalars == [1, -1])
        #expect(try file.rawBytes(named: "ints").count == 16)
        #expect(throws: TensorIOError.self) { try writer.add("a", a) }
    }

    @Test func roundTrips() throws {
        try checkRoundTrip(Float.self)
        try checkRoundTrip(Double.self)
    }

    /// A file from a header dictionary and a data section.
    func file(_ header: String, data: [UInt8] = []) -> Data {
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        return Data(bytes + Array(header.utf8) + data)
    }

    @Test func malformedFilesThrowNamedErrors() throws {
        func open(_ data: Data) throws -> SafetensorsFile { try SafetensorsFile(data: data) }
        #expect(throws: TensorIOError.headerLengthOutOfRange(format: "safetensors", length: 0, fileSize: 3)) { try open(Data([1, 2, 3])) }
        var huge = Data(file("{}"))
        huge.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: TensorIOError.self) { try open(huge) }
        #expect(throws: TensorIOError.malformedHeader(format: "safetensors", problem: .jsonSyntax(.expected("a string"), byte: 1))) { try open(file("{nope")) }
        #expect(throws: TensorIOError.unsupportedDType(format: "safetensors", dtype: "C64")) {
            try open(file(#"{"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        #expect(throws: TensorIOError.sizeMismatch(name: "x", expectedBytes: 8, actualBytes: 4)) {
            try open(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: TensorIOError.self) {  // beyond the data
            try open(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: TensorIOError.self) {  // overlapping
            try open(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                          data: [UInt8](repeating: 0, count: 8)))
        }
        #expect(throws: TensorIOError.self) {  // a hole
            try open(file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        #expect(throws: TensorIOError.invalidShape(format: "safetensors", shape: [4_294_967_296, 4_294_967_296, 16])) {
            try open(file(#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#))
        }
        #expect(throws: TensorIOError.self) { try open(file(#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#)) }
        #expect(throws: TensorIOError.self) { try open(file(#"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])) }
        #expect(throws: TensorIOError.self) { try open(file(#"{"__metadata__":{"a":1}}"#)) }
        #expect(throws: TensorIOError.self) { try open(file(#"[1, 2]"#)) }
        do {
            _ = try SafetensorsFile(contentsOf: URL(fileURLWithPath: "/nonexistent/x.safetensors"))
            Issue.record("a missing file should throw")
        } catch let TensorIOError.fileSystem(path, _) {
            #expect(path == "/nonexistent/x.safetensors")
        }
    }

    /// 10,000 corrupted variants of a valid file: each opens (and its tensors load) or throws, none crashes.
    @Test func mutatedFilesLoadOrThrow() throws {
        var generator = SeededGenerator(seed: 77)
        let source = try [UInt8](Data(contentsOf: Self.mixed))
        let headerLength = Int(source[0]) | Int(source[1]) << 8
        var opened = 0, thrown = 0
        for _ in 0..<10_000 {
            var bytes = source
            switch generator.next() % 6 {
            case 0: bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            case 1:  // absurd or wrong header lengths
                for k in 0..<8 where generator.next() % 3 == 0 { bytes[k] = UInt8(truncatingIfNeeded: generator.next()) }
            case 2:  // flip bytes inside the JSON
                for _ in 0..<(1 + generator.next() % 3) {
                    bytes[8 + Int(generator.next() % UInt64(headerLength))] ^= UInt8(truncatingIfNeeded: 1 << (generator.next() % 8))
                }
            case 3:  // rewrite digits in the header: huge shapes, moved and overlapping offsets
                for _ in 0..<(1 + generator.next() % 4) {
                    let index = 8 + Int(generator.next() % UInt64(headerLength))
                    if (48...57).contains(bytes[index]) { bytes[index] = UInt8(48 + generator.next() % 10) }
                }
            case 4:  // insert digits into the header (overflowing numbers), fixing the length field
                let index = 8 + Int(generator.next() % UInt64(headerLength))
                let digits = [UInt8]("99999999999999999999".utf8.prefix(Int(1 + generator.next() % 20)))
                bytes.insert(contentsOf: digits, at: index)
                let newLength = UInt64(headerLength + digits.count).littleEndian
                withUnsafeBytes(of: newLength) { for k in 0..<8 { bytes[k] = $0[k] } }
            default:  // flip data bytes (values only: must still open)
                let index = 8 + headerLength + Int(generator.next() % UInt64(bytes.count - 8 - headerLength))
                bytes[index] ^= 0xFF
            }
            do {
                let file = try SafetensorsFile(data: Data(bytes))
                for name in file.names { _ = try file.tensor(named: name, as: Float.self) }
                opened += 1
            } catch is TensorIOError {
                thrown += 1
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        #expect(opened + thrown == 10_000)
        #expect(opened > 500 && thrown > 2000)
    }

    @Test func writesAtomically() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var writer = SafetensorsWriter()
        try writer.add("x", Tensor<Float>.randomNormal(shape: [4, 4], seed: 1))
        let url = directory.appendingPathComponent("model.safetensors")
        try writer.write(to: url)
        #expect(try SafetensorsFile(contentsOf: url).names == ["x"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.safetensors"])
    }

    /// A source file of three tensors; the staged writer copies its first two in the background,
    /// or the runs `staged` gives (the first through `init(prefix:)`, the others through `append`).
    func stagedCase(
        reserved: Int, staged: ((SafetensorsFile) throws -> [SafetensorsWriter])? = nil,
        final configure: (inout SafetensorsWriter, SafetensorsFile) throws -> Void
    ) throws -> (Data, Data) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var source = SafetensorsWriter()
        try source.add("embed", Tensor<Float>.randomNormal(shape: [300, 40], seed: 1))
        try source.add("norm", Tensor<Float>.randomNormal(shape: [40], seed: 2), dtype: .bfloat16)
        try source.add("fc", Tensor<Float>.randomNormal(shape: [40, 40], seed: 3))
        let sourceURL = directory.appendingPathComponent("in.safetensors")
        try source.write(to: sourceURL)
        let file = try SafetensorsFile(contentsOf: sourceURL)
        var prefix = SafetensorsWriter()
        for name in ["embed", "norm"] { try prefix.addRaw(name, from: file) }
        let runs = try staged?(file) ?? [prefix]
        let output = directory.appendingPathComponent("out.safetensors")
        let staging = try SafetensorsStagedWriter(output: try OutputFile(path: output.path), prefix: runs[0], reservedHeaderBytes: reserved)
        for run in runs.dropFirst() { try staging.append(run) }
        var writer = SafetensorsWriter()
        try configure(&writer, file)
        try StagedFile.commit([try staging.finish(writer)])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["in.safetensors", "out.safetensors"])
        return (try Data(contentsOf: output), try writer.encoded())
    }

    @Test func stagedWriterReservesTheHeaderOrStartsOver() throws {
        let final: (inout SafetensorsWriter, SafetensorsFile) throws -> Void = { writer, file in
            try writer.addRaw("embed", from: file)
            try writer.addRaw("norm", from: file)
            try writer.add("fc.0", Tensor<Float>.randomNormal(shape: [8, 40], seed: 4))
            try writer.add("fc.1", Tensor<Float>.randomNormal(shape: [40, 8], seed: 5))
            writer.metadata["stacks"] = "[]"
        }
        // Room enough: the same tensors and metadata, the header padded with spaces to the room.
        let (written, reference) = try stagedCase(reserved: 4096, final: final)
        let a = try SafetensorsFile(data: written), b = try SafetensorsFile(data: reference)
        #expect(a.names == b.names && a.metadata == b.metadata && a.entries == b.entries)
        #expect(written.count == 8 + 4096 + b.entries.values.reduce(0) { $0 + $1.byteRange.count })
        for name in a.names { #expect(try a.rawBytes(named: name) == b.rawBytes(named: name)) }
        // Too little room, or tensors that do not start with the prefix: the ordinary file, byte for byte.
        #expect(try stagedCase(reserved: 16, final: final).0 == stagedCase(reserved: 16, final: final).1)
        let reordered = try stagedCase(reserved: 4096) { writer, file in
            try writer.addRaw("norm", from: file)
            try writer.addRaw("embed", from: file)
        }
        #expect(reordered.0 == reordered.1)
    }

    /// Runs appended one after another (copied tensors, computed ones, an empty run) make the same
    /// file as one prefix; a run that the final tensors do not start with makes the ordinary file.
    @Test func stagedWriterAppendsRunsInOrder() throws {
        let fc0 = Tensor<Float>.randomNormal(shape: [8, 40], seed: 4)
        let final: (inout SafetensorsWriter, SafetensorsFile) throws -> Void = { writer, file in
            try writer.addRaw("embed", from: file)
            try writer.addRaw("norm", from: file)
            try writer.add("fc.0", fc0, dtype: .bfloat16)
            try writer.add("fc.1", Tensor<Float>.randomNormal(shape: [40, 8], seed: 5))
            writer.metadata["stacks"] = "[]"
        }
        let runs: (SafetensorsFile) throws -> [SafetensorsWriter] = { file in
            var embed = SafetensorsWriter(), rest = SafetensorsWriter()
            try embed.addRaw("embed", from: file)
            try rest.addRaw("norm", from: file)
            try rest.add("fc.0", fc0, dtype: .bfloat16)
            return [embed, SafetensorsWriter(), rest]
        }
        let (written, reference) = try stagedCase(reserved: 4096, staged: runs, final: final)
        let a = try SafetensorsFile(data: written), b = try SafetensorsFile(data: reference)
        #expect(a.names == b.names && a.metadata == b.metadata && a.entries == b.entries)
        #expect(written.count == 8 + 4096 + b.entries.values.reduce(0) { $0 + $1.byteRange.count })
        #expect(written.suffix(b.entries.values.reduce(0) { $0 + $1.byteRange.count }) == reference.suffix(from: reference.count - b.entries.values.reduce(0) { $0 + $1.byteRange.count }))
        // The second run's computed tensor differs from the final one (another dtype): start over.
        let other = try stagedCase(reserved: 4096, staged: runs) { writer, file in
            try writer.addRaw("embed", from: file)
            try writer.addRaw("norm", from: file)
            try writer.add("fc.0", fc0, dtype: .float32)
        }
        #expect(other.0 == other.1)
    }

    /// Discarding after appends removes the temporary and leaves no output.
    @Test func stagedWriterDiscardsAfterAppends() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let staging = try SafetensorsStagedWriter(output: try OutputFile(path: directory.appendingPathComponent("out.safetensors").path),
                                                  reservedHeaderBytes: 64)
        for seed in 0..<4 {
            var run = SafetensorsWriter()
            try run.add("t\(seed)", Tensor<Double>.randomNormal(shape: [64, 64], seed: UInt64(seed)))
            try staging.append(run)
        }
        staging.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    /// Finishing from the appended runs alone (their bytes no longer in memory) gives the ordinary
    /// file's tensors and metadata; with too little room for the header, the ordinary file byte
    /// for byte, the appended tensors copied back from the first attempt. A name appended twice
    /// is refused.
    @Test func stagedWriterFinishesFromAppendedRunsAlone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let tensors = (0..<5).map { Tensor<Float>.randomNormal(shape: [17 + $0, 9], seed: UInt64($0)) }
        var reference = SafetensorsWriter()
        for (k, t) in tensors.enumerated() { try reference.add("t\(k)", t, dtype: k == 2 ? .bfloat16 : .float32) }
        reference.metadata = ["stacks": "[]", "format": "pt"]
        for reserved in [4096, 16] {
            let output = directory.appendingPathComponent("out-\(reserved).safetensors")
            let staging = try SafetensorsStagedWriter(output: try OutputFile(path: output.path), reservedHeaderBytes: reserved)
            for range in [0..<2, 2..<2, 2..<4] {
                var run = SafetensorsWriter()
                for k in range { try run.add("t\(k)", tensors[k], dtype: k == 2 ? .bfloat16 : .float32) }
                try staging.append(run)
            }
            var repeated = SafetensorsWriter()
            try repeated.add("t1", tensors[1])
            #expect(throws: TensorIOError.self) { try staging.append(repeated) }
            #expect(staging.names == ["t0", "t1", "t2", "t3"])
            var last = SafetensorsWriter()
            try last.add("t4", tensors[4])
            try StagedFile.commit([try staging.finish(appending: last, metadata: reference.metadata)])
            let written = try Data(contentsOf: output), expected = try reference.encoded()
            if reserved == 16 {
                #expect(written == expected, "the ordinary layout")
            } else {
                let a = try SafetensorsFile(data: written), b = try SafetensorsFile(data: expected)
                #expect(a.names == b.names && a.metadata == b.metadata && a.entries == b.entries)
                #expect(written.suffix(reference.tensorByteCount) == expected.suffix(reference.tensorByteCount))
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["out-16.safetensors", "out-4096.safetensors"])
    }
}
