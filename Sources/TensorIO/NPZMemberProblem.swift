/// What is wrong with one member of an `.npz` archive: the payload of
/// ``HeaderProblem/npzMember(_:archive:_:)``, which names the member and the archive.
public enum NPZMemberProblem: Sendable, Equatable, CustomStringConvertible {
    /// A deflated member whose zip entry claims `declared` bytes from `compressed` bytes, more
    /// than deflate's largest expansion (1032 : 1) can produce.
    case beyondDeflate(declared: UInt64, compressed: UInt64)
    /// A stored (not deflated) member whose zip entry gives `stored` bytes but claims `declared`.
    case storedSize(stored: UInt64, declared: UInt64)
    /// A member whose zip entry claims `declared` bytes where its `.npy` header declares `header`.
    case headerSize(declared: UInt64, header: Int)
    /// A member whose stream inflates past the `limit` bytes its `.npy` header declares.
    case inflatesPast(limit: Int)
    /// A member whose CRC-32 is not the one stored in the archive.
    case badChecksum(computed: UInt32, stored: UInt32)
    /// A member that ZIPFoundation cannot extract (its error's description).
    case unreadable(underlying: String)

    /// The problem in one line, after "member NAME.npy of PATH".
    public var description: String {
        switch self {
        case let .beyondDeflate(declared, compressed):
            return "claims \(declared) bytes from \(compressed) compressed bytes, more than deflate can produce"
        case let .storedSize(stored, declared): return "is stored with \(stored) bytes but claims \(declared)"
        case let .headerSize(declared, header): return "claims \(declared) bytes where its .npy header declares \(header)"
        case let .inflatesPast(limit): return "inflates past the \(limit) bytes its .npy header declares"
        case let .badChecksum(computed, stored): return "has a bad CRC-32 (computed \(hex(computed)), stored \(hex(stored)))"
        case let .unreadable(underlying): return "cannot be read (\(underlying))"
        }
    }

    /// Eight lower-case hexadecimal digits, as `%08x` writes them.
    private func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
