import Foundation
import Testing
import TensorIO
import TensorModule
import TestSupport
import ZIPFoundation

/// Adversarial files and paths (issue 9): each case is built here, in the test run, and must end
/// in a `TensorIOError` or in the right result, never in a crash, a wrong number or a stray file.
@Suite("Reliability: files")
final class FileReliabilityTests: Sendable {
    // MARK: Helpers

    /// A `.npy` file of little-endian float32 values.
    static func npy(_ values: [Float], shape: [Int]? = nil) throws -> Data {
        try Tensor(shape: shape ?? [values.count], scalars: values).npyData()
    }

    /// An in-memory zip archive of the given members, stored or deflated, in order (names may repeat).
    static func zip(_ members: [(name: String, data: Data, deflate: Bool)]) throws -> Data {
        let archive = try Archive(data: Data(), accessMode: .create)
        for member in members {
            try archive.addEntry(with: member.name, type: .file, uncompressedSize: Int64(member.data.count),
                                 compressionMethod: member.deflate ? .deflate : .none) { position, size in
                member.data.subdata(in: Int(position)..<(Int(position) + size))
            }
        }
        return archive.data!
    }

    /// Offsets of every occurrence of `pattern` in `bytes`.
    static func offsets(of pattern: [UInt8], in bytes: [UInt8]) -> [Int] {
        guard bytes.count >= pattern.count else { return [] }
        return (0...(bytes.count - pattern.count)).filter { Array(bytes[$0..<($0 + pattern.count)]) == pattern }
    }

    static let centralSignature: [UInt8] = [0x50, 0x4B, 0x01, 0x02]
    static let localSignature: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    /// Writes a little-endian UInt32 into `bytes` at `offset`.
    static func put(_ value: UInt32, _ bytes: inout [UInt8], at offset: Int) {
        for k in 0..<4 { bytes[offset + k] = UInt8((value >> (8 * k)) & 0xFF) }
    }

    /// A safetensors file from a header written by hand and `dataSize` zero bytes of data.
    static func safetensors(header: String, dataSize: Int) -> Data {
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + [UInt8](repeating: 0, count: dataSize)
        return Data(bytes)
    }

    // MARK: .npz: CRC (4), duplicates (6), zip bombs (14)

    @Test(arguments: [false, true])
    func npzChecksEveryMembersCRC(deflate: Bool) throws {
        let good = try Self.zip([("w.npy", Self.npy([1, 2, 3, 4]), deflate)])
        #expect(try NPZFile(data: good).tensor(named: "w", as: Float.self).scalars == [1, 2, 3, 4])
        var bytes = [UInt8](good)
        if deflate {
            // A wrong CRC in the central directory (what ZIPFoundation reports as the entry's CRC).
            let central = Self.offsets(of: Self.centralSignature, in: bytes)[0]
            bytes[central + 16] ^= 0x01
        } else {
            // One data byte of the stored member changed: 1.0 → another number.
            let lastValue = Self.offsets(of: Array(withUnsafeBytes(of: Float(4).bitPattern.littleEndian) { Array($0) }), in: bytes)[0]
            bytes[lastValue + 2] ^= 0x10
        }
        let archive = try NPZFile(data: Data(bytes))
        #expect {
            _ = try archive.tensor(named: "w", as: Float.self)
        } throws: { error in
            guard case let .malformedHeader("npz", .npzMember("w", "(memory)", .badChecksum(computed, stored)))? = error as? TensorIOError else { return false }
            return computed != stored && "\(error)".contains("bad CRC-32")
        }
    }

    @Test func npzDuplicateNamesReadTheLastMemberAsNumPyDoes() throws {
        let data = try Self.zip([("w.npy", Self.npy([1, 2]), false), ("b.npy", Self.npy([5]), true), ("w.npy", Self.npy([3, 4, 5]), true)])
        let archive = try NPZFile(data: data)
        #expect(archive.names == ["w", "b"])
        #expect(try archive.tensor(named: "w", as: Double.self).scalars == [3, 4, 5])
    }

    @Test func npzZipBombStopsAtTheDeclaredSize() throws {
        // A member whose .npy header declares shape (4,) but whose stream inflates 64 MiB.
        var member = [UInt8](try Self.npy([0, 0, 0, 0]))
        member += [UInt8](repeating: 0, count: 64 << 20)
        let bomb = try Self.zip([("w.npy", Data(member), true)])
        #expect(bomb.count < 1 << 20, "the archive is small: \(bomb.count) bytes")
        #expect {
            _ = try NPZFile(data: bomb).tensor(named: "w", as: Float.self)
        } throws: { error in
            error as? TensorIOError == .malformedHeader(format: "npz", problem: .npzMember("w", archive: "(memory)", .headerSize(declared: UInt64(member.count), header: 144)))
                && "\(error)".contains("claims \(member.count) bytes where its .npy header declares 144")
        }
        // The same stream with its zip sizes rewritten to match the header: inflation stops at 144 bytes.
        var lying = [UInt8](bomb)
        for central in Self.offsets(of: Self.centralSignature, in: lying) { Self.put(144, &lying, at: central + 24) }
        for local in Self.offsets(of: Self.localSignature, in: lying) { Self.put(144, &lying, at: local + 22) }
        #expect {
            _ = try NPZFile(data: Data(lying)).tensor(named: "w", as: Float.self)
        } throws: { error in
            error as? TensorIOError == .malformedHeader(format: "npz", problem: .npzMember("w", archive: "(memory)", .inflatesPast(limit: 144)))
                && "\(error)".contains("inflates past the 144 bytes")
        }
        // A claimed size beyond what deflate can produce from the compressed bytes.
        let small = try Self.zip([("w.npy", Self.npy([1, 2, 3, 4]), true)])
        var impossible = [UInt8](small)
        for central in Self.offsets(of: Self.centralSignature, in: impossible) { Self.put(UInt32.max, &impossible, at: central + 24) }
        #expect {
            _ = try NPZFile(data: Data(impossible)).tensor(named: "w", as: Float.self)
        } throws: { error in
            guard case .malformedHeader("npz", .npzMember("w", "(memory)", .beyondDeflate))? = error as? TensorIOError else { return false }
            return "\(error)".contains("more than deflate can produce")
        }
    }

    /// A fuzzer finding: a zip64 member claiming 2⁶⁴ − 1 compressed bytes (the ratio check overflowed).
    @Test func npzZip64SizesNearTheLimitThrow() throws {
        let archive = try NPZFile(contentsOf: fixtures.appendingPathComponent("fuzz_zip64_sizes.npz"))
        #expect(archive.names == ["weight"])
        for name in archive.names {
            #expect(throws: TensorIOError.self) { try archive.tensor(named: name, as: Float.self) }
        }
    }

    /// 10,000 variants of archives with stored, deflated, repeated and path-traversal member names:
    /// truncation, flipped bytes, rewritten CRCs and sizes. Each opens and reads every member or
    /// throws `TensorIOError`; whatever reads must equal the original member (the CRC sees the rest).
    @Test func mutatedNPZArchivesReadCorrectlyOrThrow() throws {
        let members: [String: [Float]] = ["w": (0..<24).map { Float($0) / 8 - 1.25 }, "b": [1, 2, 3], "../../escape": [7, 8]]
        let bases = [
            try Self.zip([("w.npy", Self.npy(members["w"]!, shape: [2, 3, 4]), false), ("b.npy", Self.npy(members["b"]!), true)]),
            try Self.zip([("w.npy", Self.npy([9, 9]), true), ("w.npy", Self.npy(members["w"]!, shape: [2, 3, 4]), true),
                          ("../../escape.npy", Self.npy(members["../../escape"]!), false)]),
        ].map { [UInt8]($0) }
        var generator = SeededGenerator(seed: 2024)
        var opened = 0, thrown = 0, reads = 0
        for _ in 0..<10_000 {
            var bytes = bases[Int(generator.next() % 2)]
            let centrals = Self.offsets(of: Self.centralSignature, in: bytes)
            switch generator.next() % 6 {
            case 0: bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            case 1:
                for _ in 0..<(1 + generator.next() % 4) {
                    bytes[Int(generator.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: 1 << (generator.next() % 8))
                }
            case 2:  // a CRC rewritten
                let central = centrals[Int(generator.next() % UInt64(centrals.count))]
                Self.put(UInt32(truncatingIfNeeded: generator.next()), &bytes, at: central + 16)
            case 3:  // compressed or uncompressed sizes rewritten, small or huge
                let central = centrals[Int(generator.next() % UInt64(centrals.count))]
                let value = generator.next() % 2 == 0 ? UInt32(generator.next() % 4096) : UInt32(truncatingIfNeeded: generator.next())
                Self.put(value, &bytes, at: central + (generator.next() % 2 == 0 ? 20 : 24))
            case 4:  // a name byte changed (may create or break duplicates)
                let central = centrals[Int(generator.next() % UInt64(centrals.count))]
                bytes[central + 46 + Int(generator.next() % 3)] = [UInt8(ascii: "w"), UInt8(ascii: "b"), UInt8(ascii: "/")][Int(generator.next() % 3)]
            default:  // a data byte flipped somewhere after the first local header
                bytes[30 + Int(generator.next() % UInt64(bytes.count - 30))] ^= 0xFF
            }
            do {
                let archive = try NPZFile(data: Data(bytes))
                opened += 1
                for name in archive.names {
                    do {
                        let x = try archive.tensor(named: name, as: Float.self)
                        reads += 1
                        if let expected = members[name], x.scalarCount == expected.count {
                            #expect(Array(x.scalars) == expected, "\(name) read back as other numbers")
                        }
                    } catch is TensorIOError {}
                }
            } catch is TensorIOError {
                thrown += 1
            }
        }
        #expect(opened + thrown == 10_000)
        #expect(opened > 1000 && thrown > 100 && reads > 1000, "opened \(opened), thrown \(thrown), reads \(reads)")
    }

    // MARK: safetensors: empty tensors (5), header memory (13), writer (12)

    @Test func emptyTensorsAreValidAtAnyOffsetInsideTheData() throws {
        let header = #"{"empty":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"# +
            #""tail":{"dtype":"F64","shape":[2,0],"data_offsets":[16,16]},"mid":{"dtype":"I64","shape":[0,3],"data_offsets":[8,8]}}"#
        let file = try SafetensorsFile(data: Self.safetensors(header: header, dataSize: 16))
        #expect(Set(file.names) == ["empty", "w", "tail", "mid"])
        #expect(try file.tensor(named: "empty", as: Float.self).shape == [0])
        #expect(try file.tensor(named: "tail", as: Double.self).shape == [2, 0])
        #expect(try file.tensor(named: "w", as: Float.self).scalars == [0, 0, 0, 0])
        // Outside the data section, an empty tensor is still an error.
        let outside = #"{"empty":{"dtype":"F32","shape":[0],"data_offsets":[17,17]},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        #expect(throws: TensorIOError.self) { try SafetensorsFile(data: Self.safetensors(header: outside, dataSize: 16)) }
        // Round trip through our writer.
        var writer = SafetensorsWriter()
        try writer.add("a", Tensor<Float>(shape: [0, 5], scalars: []))
        try writer.add("b", Tensor<Float>(shape: [2], scalars: [1, 2]))
        let back = try SafetensorsFile(data: writer.encoded())
        #expect(try back.tensor(named: "a", as: Float.self).shape == [0, 5])
        #expect(try back.tensor(named: "b", as: Float.self).scalars == [1, 2])
    }

    @Test func headersAboveTheLimitAreRefusedBeforeReading() throws {
        var bytes = [UInt8](repeating: 0x20, count: 64)
        withUnsafeBytes(of: UInt64(100 * 1024 * 1024 + 1).littleEndian) { for k in 0..<8 { bytes[k] = $0[k] } }
        #expect {
            _ = try SafetensorsFile(data: Data(bytes))
        } throws: { error in
            "\(error)".contains("exceeds the limit of 104857600 bytes")
        }
        // .npy: NumPy's 10,000-byte limit.
        var npy = [UInt8](try Self.npy([1]))
        npy[6] = 2; npy[7] = 0   // version 2: a 4-byte length
        npy.insert(contentsOf: [0, 0], at: 10)
        Self.put(20_000, &npy, at: 8)
        #expect {
            _ = try Tensor<Float>(npyData: Data(npy + [UInt8](repeating: 0x20, count: 20_000)))
        } throws: { error in
            "\(error)".contains("exceeds the limit of 10000 bytes")
        }
    }

    @Test func headerParserHandlesEscapesUnknownMembersAndRejectsDuplicates() throws {
        let header = #"{"__metadata__":{"k\"ey":"v\u00e9\n","e":"\ud83d\ude00"},"na\/me":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":[{"a":[1,2.5e3,true,null]}]}}"#
        let file = try SafetensorsFile(data: Self.safetensors(header: header, dataSize: 4))
        #expect(file.metadata == ["k\"ey": "vé\n", "e": "😀"])
        #expect(file.names == ["na/me"])
        for bad in [
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x"#,
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":"\ud800"}}"#,
            #"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":" + String(repeating: "[", count: 100) + "}}",
        ] {
            #expect(throws: TensorIOError.self, "\(bad)") { try SafetensorsFile(data: Self.safetensors(header: bad, dataSize: 4)) }
        }
    }

    @Test func manyTensorsWriteAndReadInLinearTime() throws {
        // 200,000 tensors: a quadratic duplicate check would take minutes here.
        var writer = SafetensorsWriter()
        let one = try Tensor<Float>(shape: [1], scalars: [1])
        for k in 0..<200_000 { try writer.add("t.\(k)", one) }
        #expect(throws: TensorIOError.self) { try writer.add("t.17", one) }
        let file = try SafetensorsFile(data: try writer.encoded())
        #expect(file.names.count == 200_000)
        #expect(try file.tensor(named: "t.199999", as: Float.self).scalars == [1])
    }

    // MARK: Output files (7–10)

    let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("outputs-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    @Test func outputFilesRefuseWhatIsNotARegularFile() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        for path in ["/dev/null", "/dev/full", directory.path, directory.path + "/new/", directory.path + "/missing/x.safetensors"] {
            #expect(throws: TensorIOError.self, "\(path)") { try OutputFile(path: path) }
        }
        var status = stat()
        #expect(stat("/dev/null", &status) == 0 && (status.st_mode & S_IFMT) == S_IFCHR, "/dev/null is still a device")
        let dangling = directory.appendingPathComponent("dangling").path
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: directory.appendingPathComponent("nowhere").path)
        #expect(throws: TensorIOError.self) { try OutputFile(path: dangling) }
    }

    @Test func outputFilesFollowSymlinksKeepModesAndRemoveStaleTemporaries() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("target.bin").path
        let link = directory.appendingPathComponent("link.bin").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: target))
        chmod(target, 0o600)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        // A temporary left by a killed process (a PID that no longer runs) and one of a live process.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        let stale = directory.appendingPathComponent(".target.bin.tensor-compress-\(process.processIdentifier)-1.tmp").path
        let live = directory.appendingPathComponent(".target.bin.tensor-compress-\(getpid())-2.tmp").path
        for path in [stale, live] { try Data(count: 10).write(to: URL(fileURLWithPath: path)) }

        try OutputFile.write([(try OutputFile(path: link), Data("new".utf8))])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == target, "the link stays a link")
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("new".utf8))
        var status = stat()
        #expect(stat(target, &status) == 0 && status.st_mode & 0o777 == 0o600, "mode \(String(status.st_mode & 0o777, radix: 8))")
        #expect(!FileManager.default.fileExists(atPath: stale), "the dead process's temporary is removed")
        #expect(FileManager.default.fileExists(atPath: live), "a running process's temporary is left alone")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers == [URL(fileURLWithPath: live).lastPathComponent])
    }

    @Test func outputFilesAreWrittenTogetherOrNotAtAll() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = directory.appendingPathComponent("model.safetensors").path
        let subdirectory = directory.appendingPathComponent("reports")
        try FileManager.default.createDirectory(at: subdirectory, withIntermediateDirectories: true)
        let a = try OutputFile(path: first)
        let b = try OutputFile(path: subdirectory.appendingPathComponent("report.md").path)
        // The second file's directory disappears between the check and the write.
        try FileManager.default.removeItem(at: subdirectory)
        #expect(throws: TensorIOError.self) { try OutputFile.write([(a, Data("model".utf8)), (b, Data("report".utf8))]) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty, "neither file nor temporary is left")
        // Two spellings of one file (a hard link) are one file.
        try Data("x".utf8).write(to: URL(fileURLWithPath: first))
        let hard = directory.appendingPathComponent("hard.safetensors").path
        #expect(link(first, hard) == 0)
        #expect(try OutputFile(path: hard).isSameFile(as: "\(directory.path)/./model.safetensors"))
        #expect(throws: TensorIOError.self) { try OutputFile.write([(a, Data()), (try OutputFile(path: hard), Data())]) }
        // Two spellings of one file that does not exist yet, through a symlinked directory.
        let alias = directory.appendingPathComponent("alias").path
        try FileManager.default.createSymbolicLink(atPath: alias, withDestinationPath: directory.path)
        let plain = try OutputFile(path: directory.appendingPathComponent("new.md").path)
        let linked = try OutputFile(path: alias + "/./new.md")
        #expect(plain.target == linked.target)
        #expect(throws: TensorIOError.self) { try OutputFile.write([(plain, Data("a".utf8)), (linked, Data("b".utf8))]) }
        #expect(!FileManager.default.fileExists(atPath: plain.target.path))
    }
}
