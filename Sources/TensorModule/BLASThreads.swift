internal import CLinearAlgebra

/// The number of threads OpenBLAS uses.
///
/// OpenBLAS reads `OPENBLAS_NUM_THREADS` when the process starts; on small machines
/// `OPENBLAS_NUM_THREADS=1` gives the least noisy timings. Benchmarks print this value.
public enum BLASThreads {
    /// The current OpenBLAS thread count.
    public static var count: Int { Int(openblas_get_num_threads()) }
}
