/// What is wrong with the data offsets of a safetensors file: the payload of
/// ``TensorIOError/invalidOffsets(name:problem:)``, which names the tensor.
public enum OffsetProblem: Sendable, Equatable, CustomStringConvertible {
    /// Offsets `[start, end]` that are reversed or reach beyond the `dataSize`-byte data section.
    case outsideData(start: Int, end: Int, dataSize: Int)
    /// Offsets `[start, end]` that begin before `previousEnd`, where the previous tensor ends.
    case overlap(start: Int, end: Int, previousEnd: Int)
    /// `bytes` bytes that no tensor holds, before this tensor.
    case hole(bytes: Int)
    /// Tensors that cover `covered` of the `dataSize` bytes of the data section.
    case coverage(covered: Int, dataSize: Int)

    /// The problem in one line.
    public var description: String {
        switch self {
        case let .outsideData(start, end, dataSize): return "[\(start), \(end)] lies outside the \(dataSize)-byte data section"
        case let .overlap(start, end, previousEnd): return "[\(start), \(end)] overlaps the previous tensor, which ends at \(previousEnd)"
        case let .hole(bytes): return "a hole of \(bytes) bytes precedes it"
        case let .coverage(covered, dataSize): return "the tensors cover \(covered) of \(dataSize) data bytes"
        }
    }
}
