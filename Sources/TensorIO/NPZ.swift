import Foundation
import TensorModule
import ZIPFoundation

/// A NumPy `.npz` archive (`np.savez`, stored members; `np.savez_compressed`, deflated members),
/// read with ZIPFoundation. Each member is a `.npy` file decoded on request.
///
/// ```swift
/// let archive = try NPZFile(contentsOf: url)
/// let w = try archive.tensor(named: "weight", as: Float.self)
/// ```
///
/// Reading is checked as NumPy checks it, and bounded:
/// - every member's CRC-32 is verified (NumPy raises "Bad CRC-32" too);
/// - a name stored twice reads as its **last** member, as NumPy's `np.load` does (Python's
///   `zipfile` keeps the last entry of a name); ``names`` lists it once;
/// - a member is inflated only up to the byte count its `.npy` header declares: a member whose
///   zip entry claims more, or whose stream inflates past it, or whose claimed size is beyond what
///   deflate can produce from its compressed bytes (1032 : 1) throws before the memory is spent.
public struct NPZFile {
    /// Array names, without the `.npy` suffix, in archive order (a repeated name once).
    public let names: [String]
    let archive: Archive
    let members: [String: Entry]
    var path: String

    /// Deflate's largest possible expansion ratio (RFC 1951: 258 bytes from 2 bits, ≈ 1032 : 1).
    static let maximumDeflateRatio: UInt64 = 1032

    /// Opens an archive.
    ///
    /// - Throws: ``TensorIOError`` for a missing file or one that is not a zip archive.
    public init(contentsOf url: URL) throws {
        try InputFile.checkRegular(url.path)
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw TensorIOError.malformedHeader(format: "npz", problem: .notZipArchive(underlying: "\(error)"))
        }
        self.init(archive: archive, path: url.path)
    }

    /// Opens an archive held in memory.
    ///
    /// The bytes go through an unlinked temporary file: ZIPFoundation's in-memory archives trap on
    /// a seek past the end of malformed input (ZIPFoundation 0.9.20, `MemoryFile.readData`), while
    /// its file-backed ones read through `fread`, which stops at the end.
    ///
    /// - Throws: ``TensorIOError`` for bytes that are not a zip archive.
    public init(data: Data) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("npz-\(getpid())-\(UUID().uuidString).npz")
        do { try data.write(to: url) } catch {
            throw TensorIOError.fileSystem(path: url.path, problem: .foundation(.writeTemporaryCopy, description: error.localizedDescription))
        }
        defer { try? FileManager.default.removeItem(at: url) }   // the open archive keeps the inode
        try self.init(contentsOf: url)
        self.path = "(memory)"
    }

    init(archive: Archive, path: String) {
        var members: [String: Entry] = [:]
        var names: [String] = []
        for entry in archive where entry.type == .file && entry.path.hasSuffix(".npy") {
            let name = String(entry.path.dropLast(4))
            if members.updateValue(entry, forKey: name) == nil { names.append(name) }
        }
        (self.archive, self.members, self.names, self.path) = (archive, members, names, path)
    }

    /// The array `name`, decoded as a `.npy` member.
    ///
    /// - Throws: ``TensorIOError/unknownTensor(name:available:)`` for a missing member, and the
    ///   errors of ``TensorModule/Tensor/init(npyData:)``; a corrupt member (bad CRC, bad deflate
    ///   stream, sizes that disagree with its header) throws ``TensorIOError/malformedHeader(format:problem:)``
    ///   with ``HeaderProblem/npzMember(_:archive:_:)``.
    public func tensor<Scalar: BLASScalar>(named name: String, as _: Scalar.Type = Scalar.self) throws -> Tensor<Scalar> {
        try Tensor(npyData: memberData(named: name))
    }

    /// The bytes of member `name + ".npy"`, inflated within the limits described on the type.
    /// The `.npy` header of member `name` (dtype, shape, order), read by inflating the member.
    ///
    /// - Throws: the errors of ``tensor(named:as:)``.
    public func header(named name: String) throws -> NPYHeader {
        let data = try memberData(named: name)
        return try data.withUnsafeBytes { try NPYHeader(parsing: $0) }
    }

    func memberData(named name: String) throws -> Data {
        guard let entry = members[name] else { throw TensorIOError.unknownTensor(name: name, available: names) }
        func corrupt(_ problem: NPZMemberProblem) -> TensorIOError {
            TensorIOError.malformedHeader(format: "npz", problem: .npzMember(name, archive: path, problem))
        }
        let declared = entry.uncompressedSize
        if entry.isCompressed {
            // declared ≤ compressed · 1032 + 1024, without overflow for zip64 sizes near 2⁶⁴.
            guard declared <= 1024 || (declared - 1024) / Self.maximumDeflateRatio <= entry.compressedSize else {
                throw corrupt(.beyondDeflate(declared: declared, compressed: entry.compressedSize))
            }
        } else if declared != entry.compressedSize {
            throw corrupt(.storedSize(stored: entry.compressedSize, declared: declared))
        }
        // Until the header has arrived, the header parser bounds the bytes (it refuses a header
        // above NPYHeader.maximumHeaderLength); from then on, the size it declares does.
        var limit = 0
        var headerRead = false
        var data = Data()
        let checksum: CRC32
        do {
            checksum = try archive.extract(entry, skipCRC32: false) { chunk in
                if headerRead && data.count + chunk.count > limit {
                    throw corrupt(.inflatesPast(limit: limit))
                }
                data.append(chunk)
                if !headerRead, let needed = try Self.declaredSize(of: data) {
                    headerRead = true
                    limit = needed
                    guard declared == UInt64(needed) else {
                        throw corrupt(.headerSize(declared: declared, header: needed))
                    }
                    data.reserveCapacity(needed)
                    guard data.count <= limit else { throw corrupt(.inflatesPast(limit: limit)) }
                }
            }
        } catch let error as TensorIOError {
            throw error
        } catch {
            throw corrupt(.unreadable(underlying: "\(error)"))
        }
        guard headerRead else {
            // Too short for its header: let the .npy reader say what is missing.
            return data
        }
        guard checksum == entry.checksum else {
            throw corrupt(.badChecksum(computed: checksum, stored: entry.checksum))
        }
        return data
    }

    /// The whole size (preamble, header and data) that the `.npy` bytes received so far declare,
    /// or `nil` while the header is incomplete.
    static func declaredSize(of data: Data) throws -> Int? {
        guard data.count >= 12 else { return nil }
        let header: NPYHeader
        do {
            header = try data.withUnsafeBytes { try NPYHeader(parsing: $0) }
        } catch TensorIOError.headerLengthOutOfRange {
            return nil   // the header has not fully arrived
        }
        let bytes = try validatedByteCount(shape: header.shape, dtype: header.dtype, format: "npy")
        let (total, overflow) = header.dataOffset.addingReportingOverflow(bytes)
        guard !overflow else { throw TensorIOError.invalidShape(format: "npy", shape: header.shape) }
        return total
    }
}
