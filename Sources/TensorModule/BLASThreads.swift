internal import CLinearAlgebra

/// The number of threads OpenBLAS uses.
///
/// OpenBLAS reads `OPENBLAS_NUM_THREADS` when the process starts; on small machines
/// `OPENBLAS_NUM_THREADS=1` gives the least noisy timings. Benchmarks print this value.
///
/// The count is process-wide. Work that runs several independent BLAS calls at once (one layer
/// per core, say) runs them single-threaded inside ``withCount(_:_:)``, so that the threads do
/// not oversubscribe the cores:
///
/// ```swift
/// try BLASThreads.withCount(1) {
///     DispatchQueue.concurrentPerform(iterations: 2) { i in work(i) }
/// }
/// ```
public enum BLASThreads {
    /// The current OpenBLAS thread count.
    public static var count: Int { Int(openblas_get_num_threads()) }

    /// Runs `body` with OpenBLAS limited to `count` threads, then restores the previous count.
    ///
    /// - Precondition: `count ≥ 1`.
    public static func withCount<Result>(_ count: Int, _ body: () throws -> Result) rethrows -> Result {
        precondition(count >= 1, "BLASThreads.withCount: \(count) threads; at least 1 is needed")
        let previous = Self.count
        if previous == count { return try body() }
        openblas_set_num_threads(Int32(count))
        defer { openblas_set_num_threads(Int32(previous)) }
        return try body()
    }
}
