"""The one timing loop: a warm-up, then the median of runs (the protocol of the Swift
benchmarks' `medianSeconds` in Benchmarks/Sources/BenchmarkSupport/Timing.swift)."""
import statistics
import time


def median_seconds(bodies, runs, minimum=0.0):
    """The median seconds of one call of each of `bodies` (functions of no argument).

    Each body is called once to warm up. With `minimum` > 0, each is then called once more to
    time it, and every timing repeats it enough times to last `minimum` seconds (the time of one
    call is the timing divided by the repeats). Then `runs` rounds, the bodies interleaved within
    a round so that drift of the machine affects them alike; returns one median per body.
    """
    for body in bodies:
        body()
    repeats = [1] * len(bodies)
    if minimum > 0:
        for k, body in enumerate(bodies):
            start = time.perf_counter()
            body()
            repeats[k] = max(1, int(minimum / max(time.perf_counter() - start, 1e-9)))
    times = [[] for _ in bodies]
    for _ in range(runs):
        for k, body in enumerate(bodies):
            start = time.perf_counter()
            for _ in range(repeats[k]):
                body()
            times[k].append((time.perf_counter() - start) / repeats[k])
    return [statistics.median(t) for t in times]
