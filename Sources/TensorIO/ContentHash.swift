import Foundation

/// 16 hexadecimal digits of a 64-bit hash of `data` (FNV-1a over 8-byte words, then a
/// splitmix64 finaliser): a name that changes with the content, not a cryptographic digest.
package func contentHash(_ data: Data) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(data.count)
    data.withUnsafeBytes { bytes in
        let words = bytes.count / 8
        for k in 0..<words {
            hash = (hash ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self))) &* 0x100_0000_01b3
        }
        for k in (8 * words)..<bytes.count { hash = (hash ^ UInt64(bytes[k])) &* 0x100_0000_01b3 }
    }
    hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
    hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
    hash ^= hash >> 31
    let digits = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
