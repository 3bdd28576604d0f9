import Foundation
import Synchronization
import TensorModule

/// How many layers are decomposed at once, and the BLAS threads each one gets.
///
/// Decomposing a layer is a chain of BLAS and LAPACK calls, many of them too small (QR of thin
/// blocks, SVDs of a few hundred columns, reductions) for several BLAS threads to help. On this
/// project's 2-core machines, two layers at a time with one BLAS thread each measured 1.56–1.62×
/// faster than one layer at a time with two BLAS threads on all-MiniLM-L6-v2, which in turn was
/// barely faster than one core (`Documentation/Performance.md`, "Large checkpoints and both
/// cores"), so that is the automatic choice whenever there are two layers or more.
enum LayerWorkers {
    /// The number of workers for `count` layers: `jobs` when given, else the active cores; never
    /// more than `count`.
    static func count(layers count: Int, jobs: Int?) -> Int {
        Swift.max(1, Swift.min(count, jobs ?? ProcessInfo.processInfo.activeProcessorCount))
    }

    /// `body(i)` for every `i` in `0..<count`, on `workers` threads taking the next index as they
    /// finish (large and small layers mix), with one BLAS thread each when `workers > 1`. The
    /// results come back in index order. An error stops the workers from taking more work; the
    /// error of the lowest index is rethrown, as a sequential loop would have thrown it (indices
    /// are taken in order, so every lower one ran).
    static func map<T: Sendable>(_ count: Int, workers: Int, _ body: @Sendable (Int) throws -> T) throws -> [T] {
        if workers <= 1 || count <= 1 { return try (0..<count).map(body) }
        let state = Mutex(State<T>(results: Array(repeating: nil, count: count)))
        BLASThreads.withCount(1) {
            DispatchQueue.concurrentPerform(iterations: Swift.min(workers, count)) { _ in
                while true {
                    let index: Int? = state.withLock { s in
                        guard s.error == nil, s.next < count else { return nil }
                        defer { s.next += 1 }
                        return s.next
                    }
                    guard let index else { return }
                    do {
                        let value = try body(index)
                        state.withLock { $0.results[index] = value }
                    } catch {
                        state.withLock { s in if s.error.map({ index < $0.index }) ?? true { s.error = (index, error) } }
                    }
                }
            }
        }
        return try state.withLock { s in
            if let error = s.error { throw error.error }
            return s.results.map { $0! }
        }
    }

    struct State<T: Sendable>: Sendable {
        var results: [T?]
        var next = 0
        var error: (index: Int, error: any Error)?
    }
}
