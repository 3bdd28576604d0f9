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
public struct NPZFile {
    /// Array names, without the `.npy` suffix, in archive order.
    public let names: [String]
    let archive: Archive
    let path: String

    /// Opens an archive.
    ///
    /// - Throws: ``TensorIOError`` for a missing file or one that is not a zip archive.
    public init(contentsOf url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TensorIOError.fileSystem(path: url.path, reason: "no such file")
        }
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw TensorIOError.malformedHeader(format: "npz", reason: "not a readable zip archive (\(error))")
        }
        path = url.path
        names = archive.makeIterator().compactMap { entry in
            entry.type == .file && entry.path.hasSuffix(".npy") ? String(entry.path.dropLast(4)) : nil
        }
    }

    /// The array `name`, decoded as a `.npy` member.
    ///
    /// - Throws: ``TensorIOError/unknownTensor(name:available:)`` for a missing member, and the
    ///   errors of ``TensorModule/Tensor/init(npyData:)``; a corrupt member (bad CRC, bad deflate stream) throws
    ///   ``TensorIOError/malformedHeader(format:reason:)``.
    public func tensor<Scalar: BLASScalar>(named name: String, as _: Scalar.Type = Scalar.self) throws -> Tensor<Scalar> {
        guard let entry = archive[name + ".npy"] else { throw TensorIOError.unknownTensor(name: name, available: names) }
        var data = Data()
        do {
            _ = try archive.extract(entry) { chunk in data.append(chunk) }
        } catch {
            throw TensorIOError.malformedHeader(format: "npz", reason: "member \(name).npy of \(path) cannot be read (\(error))")
        }
        return try Tensor(npyData: data)
    }
}
