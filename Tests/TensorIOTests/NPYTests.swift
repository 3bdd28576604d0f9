import Foundation
import Testing
import TensorModule
import TensorIO

/// The fixtures folder beside this file (written by `Fixtures/make_fixtures.py` with NumPy).
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

@Suite("NPY files")
struct NPYTests {
    static let floatFixtures = ["arange_le_f2", "arange_be_f2", "arange_le_f4", "arange_be_f4", "arange_le_f8", "arange_be_f8",
                                "arange_fortran_f8", "arange_v2_f4", "arange_v3_f4"]
    static let integerFixtures = ["arange_le_i2", "arange_be_i4", "arange_le_i8", "arange_i1"]

    func checkFloatFixture<S: BLASScalar>(_: S.Type, _ name: String) throws {
        let x = try Tensor<S>(contentsOfNPY: fixtures.appendingPathComponent(name + ".npy"))
        #expect(x.shape == [2, 3, 4])
        for (i, value) in x.scalars.enumerated() { #expect(value == S(i) / 8 - 1.25, "\(name) element \(i)") }
    }

    @Test(arguments: floatFixtures)
    func readsNumPyFloatFiles(name: String) throws {
        try checkFloatFixture(Float.self, name)
        try checkFloatFixture(Double.self, name)
    }

    @Test(arguments: integerFixtures + ["arange_u1", "arange_le_u2"])
    func convertsNumPyIntegerFiles(name: String) throws {
        let x = try Tensor<Double>(contentsOfNPY: fixtures.appendingPathComponent(name + ".npy"))
        let offset = name.contains("u") ? 0.0 : 7.0
        #expect(x.shape == [2, 3, 4])
        for (i, value) in x.scalars.enumerated() { #expect(value == Double(i) - offset, "\(name) element \(i)") }
    }

    @Test func readsBoolScalarAndEmptyArrays() throws {
        let b = try Tensor<Float>(contentsOfNPY: fixtures.appendingPathComponent("arange_bool.npy"))
        #expect(b.scalars == ContiguousArray((0..<24).map { $0 % 3 == 0 ? 1 : 0 }))
        let s = try Tensor<Double>(contentsOfNPY: fixtures.appendingPathComponent("scalar_f8.npy"))
        #expect(s.shape == [] && s.scalars == [3.5])
        let e = try Tensor<Float>(contentsOfNPY: fixtures.appendingPathComponent("empty_f4.npy"))
        #expect(e.shape == [0, 3] && e.scalarCount == 0)
    }

    func checkRoundTrip<S: BLASScalar>(_: S.Type) throws {
        for shape in [[], [5], [3, 4], [2, 3, 4, 5], [0, 2]] {
            let x = Tensor<S>.randomNormal(shape: shape, seed: 3)
            for dtype in [DType.float32, .float64] {
                let y = try Tensor<S>(npyData: x.npyData(dtype: dtype))
                #expect(y.shape == x.shape)
                if dtype == DType.of(S.self) || S.self == Float.self { #expect(y == x, "\(shape) as \(dtype)") }
                else { #expect(y.isApproximatelyEqual(to: x, relativeTolerance: 1e-6)) }
            }
            let half = try Tensor<S>(npyData: x.npyData(dtype: .float16))
            #expect(try x.scalarCount == 0 || half.relativeError(to: x) < 1e-3)
            #expect(try (x.npyData().count - x.scalarCount * MemoryLayout<S>.size) % 64 == 0, "data starts on a 64-byte boundary")
        }
    }

    @Test func roundTrips() throws {
        try checkRoundTrip(Float.self)
        try checkRoundTrip(Double.self)
    }

    @Test func writesAtomicallyAndNumPyReadsIt() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("x.npy")
        let x = Tensor<Float>.randomNormal(shape: [3, 4], seed: 1)
        try x.writeNPY(to: url)
        #expect(try Tensor<Float>(contentsOfNPY: url) == x)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["x.npy"], "no temporary file left")
        // A failed write (integer dtype) leaves no file at all.
        let bad = directory.appendingPathComponent("bad.npy")
        #expect(throws: TensorIOError.self) { try x.writeNPY(to: bad, dtype: .int32) }
        #expect(!FileManager.default.fileExists(atPath: bad.path))
    }

    func header(_ dict: String, version: UInt8 = 1) -> [UInt8] {
        let bytes = Array(dict.utf8)
        return [0x93] + Array("NUMPY".utf8) + [version, 0, UInt8(bytes.count & 0xFF), UInt8(bytes.count >> 8)] + bytes
    }

    @Test func malformedFilesThrowNamedErrors() throws {
        func load(_ bytes: [UInt8]) throws -> Tensor<Float> { try Tensor<Float>(npyData: Data(bytes)) }
        #expect(throws: TensorIOError.badMagic(format: "npy")) { try load(Array("NOTNUMPY".utf8) + [0, 0, 0, 0]) }
        #expect(throws: TensorIOError.unsupportedVersion(format: "npy", version: "9.0")) {
            try load(header("{}", version: 9))
        }
        #expect(throws: TensorIOError.headerLengthOutOfRange(format: "npy", length: 9999, fileSize: 12)) {
            try load([0x93] + Array("NUMPY".utf8) + [1, 0, 0x0F, 0x27, 0x7B, 0x7D])
        }
        #expect(throws: TensorIOError.self) { try load(header("{'descr': '<f4', 'fortran_order': False}")) }
        #expect(throws: TensorIOError.unsupportedDType(format: "npy", dtype: "<c8")) {
            try load(header("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }"))
        }
        #expect(throws: TensorIOError.truncatedData(format: "npy", expectedBytes: 24, actualBytes: 4)) {
            try load(header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") + [0, 0, 0, 0])
        }
        #expect(throws: TensorIOError.invalidShape(format: "npy", shape: [-2, 3])) {
            try load(header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }"))
        }
        #expect(throws: TensorIOError.invalidShape(format: "npy", shape: [4_294_967_296, 4_294_967_296])) {
            try load(header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"))
        }
        #expect(throws: TensorIOError.self) { try load(header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }")) }
        #expect(throws: TensorIOError.self) { try load(header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }")) }
        #expect("\(TensorIOError.truncatedData(format: "npy", expectedBytes: 24, actualBytes: 4))"
                == "npy: data is truncated: 4 bytes where the shape and dtype need 24")
    }

    /// 10,000 corrupted variants of valid files: each loads or throws, none crashes.
    @Test func mutatedFilesLoadOrThrow() throws {
        var generator = SeededGenerator(seed: 2026)
        let sources = try (Self.floatFixtures + Self.integerFixtures + ["scalar_f8", "empty_f4"]).map {
            try [UInt8](Data(contentsOf: fixtures.appendingPathComponent($0 + ".npy")))
        }
        var loaded = 0, thrown = 0
        for round in 0..<10_000 {
            var bytes = sources[round % sources.count]
            switch generator.next() % 5 {
            case 0: bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            case 1:
                for _ in 0..<(1 + generator.next() % 4) {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
            case 2:  // absurd header length
                bytes[8] = UInt8(truncatingIfNeeded: generator.next())
                bytes[9] = UInt8(truncatingIfNeeded: generator.next())
            case 3:  // rewrite the shape with huge or negative numbers
                let text = String(decoding: bytes, as: UTF8.self)
                if let range = text.range(of: "'shape': (") {
                    let offset = text.utf8.distance(from: text.startIndex, to: range.upperBound)
                    let junk = Array(["99999999999", "-1", "4294967296, 4294967296", "0", ")"][Int(generator.next() % 5)].utf8)
                    for (k, c) in junk.enumerated() where offset + k < bytes.count { bytes[offset + k] = c }
                }
            default:  // flip bytes in the header only
                let index = 8 + Int(generator.next() % UInt64(min(120, bytes.count - 8)))
                bytes[index] ^= UInt8(truncatingIfNeeded: 1 << (generator.next() % 8))
            }
            do {
                let x = try Tensor<Float>(npyData: Data(bytes))
                #expect(x.scalarCount == x.shape.reduce(1, *))
                loaded += 1
            } catch is TensorIOError {
                thrown += 1
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        #expect(loaded + thrown == 10_000)
        #expect(thrown > 1000 && loaded > 100)
    }
}

@Suite("NPZ archives")
struct NPZTests {
    func check<S: BLASScalar>(_: S.Type, _ file: String) throws {
        let archive = try NPZFile(contentsOf: fixtures.appendingPathComponent(file))
        #expect(Set(archive.names) == ["weight", "bias"])
        let w = try archive.tensor(named: "weight", as: S.self)
        #expect(w.shape == [2, 3, 4])
        for (i, value) in w.scalars.enumerated() { #expect(value == S(i) / 8 - 1.25) }
        #expect(try archive.tensor(named: "bias", as: S.self).scalars == [0, 1, 2])
        #expect(throws: TensorIOError.self) { try archive.tensor(named: "missing", as: S.self) }
    }

    @Test(arguments: ["arrays_stored.npz", "arrays_deflated.npz"])
    func readsStoredAndDeflatedMembers(file: String) throws {
        try check(Float.self, file)
        try check(Double.self, file)
    }

    @Test func corruptArchivesThrow() throws {
        #expect(throws: TensorIOError.self) { try NPZFile(contentsOf: fixtures.appendingPathComponent("scalar_f8.npy")) }
        #expect(throws: TensorIOError.self) { try NPZFile(contentsOf: URL(fileURLWithPath: "/nonexistent.npz")) }
        // Flip bytes inside the deflated data: the member fails its CRC or inflate, or loads; never a crash.
        var bytes = try [UInt8](Data(contentsOf: fixtures.appendingPathComponent("arrays_deflated.npz")))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("npz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = SeededGenerator(seed: 5)
        for round in 0..<200 {
            var copy = bytes
            for _ in 0..<3 { copy[Int(generator.next() % UInt64(copy.count))] ^= UInt8(truncatingIfNeeded: generator.next() | 1) }
            let url = directory.appendingPathComponent("\(round).npz")
            try Data(copy).write(to: url)
            do {
                let archive = try NPZFile(contentsOf: url)
                for name in archive.names { _ = try? archive.tensor(named: name, as: Float.self) }
            } catch is TensorIOError {}
        }
        bytes.removeAll()
    }
}
