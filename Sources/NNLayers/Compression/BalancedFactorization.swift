/// `n` split into `count` factors as equal as possible (prime factors, largest first, each to the
/// smallest bucket); factors of 1 pad when `n` has fewer prime factors. Sorted ascending.
public func balancedFactorization(_ n: Int, count: Int) -> [Int] {
    precondition(n >= 1 && count >= 1, "balancedFactorization(\(n), count: \(count)) needs positive arguments")
    var primes: [Int] = []
    var rest = n, p = 2
    while p * p <= rest {
        while rest % p == 0 { primes.append(p); rest /= p }
        p += 1
    }
    if rest > 1 { primes.append(rest) }
    var buckets = [Int](repeating: 1, count: count)
    for prime in primes.sorted(by: >) {
        let smallest = buckets.indices.min { buckets[$0] < buckets[$1] }!
        buckets[smallest] *= prime
    }
    return buckets.sorted()
}
