"""Benchmark: the machine's float32 matrix-multiply peak (GFLOP/s), the reference of every "share of peak".

Two float32 GEMM kernels, all cores each: a tf.function that multiplies fixed 1024 x 1024 matrices
MATMULS_PER_CALL times (each product feeds the next, so none can be skipped), and NumPy's matmul (OpenBLAS) of
2048 x 2048 matrices, which is the faster of the two on this machine. The peak is the best call of either (TRIALS
calls each after a warm-up): the machine is shared, and the least disturbed call is the closest to what the cores
can do; the higher of two kernels makes every share of peak the conservative one.
The load of a shared machine changes during a run, so the sections that compute shares of peak measure it again
next to their own timings (`observe_peak`); `peak_gflops()` is the best figure seen so far in this process, and
the targets section, last, states every share against the best of the whole run (the conservative choice).
Run alone with `python -m benchmarks.peak`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

MATRIX_SIZE = 1024
NUMPY_MATRIX_SIZE = 2048
MATMULS_PER_CALL = 8
TRIALS = 10


def best_seconds(call: Callable[[], object], trials: int) -> float:
    """Best wall time of `trials` calls of `call` after one warm-up call (which traces and compiles)."""
    call()
    best = float("inf")
    for _ in range(trials):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def matmul_gflops(size: int = MATRIX_SIZE, matmuls: int = MATMULS_PER_CALL, trials: int = TRIALS) -> float:
    """Best GFLOP/s of `matmuls` chained float32 [size, size] products (2 * size**3 FLOPs each)."""
    left = tf.random.stateless_uniform([size, size], seed=[0, 1]) / size
    right = tf.random.stateless_uniform([size, size], seed=[0, 2])

    @tf.function
    def chained(x: tf.Tensor) -> tf.Tensor:
        for _ in range(matmuls):
            x = tf.matmul(x, right)
        return tf.reduce_sum(x)

    return 2 * size**3 * matmuls / best_seconds(lambda: chained(left).numpy(), trials) / 1e9


def numpy_matmul_gflops(size: int = NUMPY_MATRIX_SIZE, trials: int = TRIALS) -> float:
    """Best GFLOP/s of NumPy float32 [size, size] products (2 * size**3 FLOPs each)."""
    matrix = np.random.default_rng(0).random([size, size], dtype=np.float32)
    return 2 * size**3 / best_seconds(lambda: np.matmul(matrix, matrix), trials) / 1e9


_best_seen: list[float] = []


def observe_peak(trials: int = TRIALS) -> float:
    """Measures both kernels again (`trials` calls each) and returns the best figure seen so far in this process."""
    _best_seen.extend([matmul_gflops(trials=trials), numpy_matmul_gflops(trials=trials)])
    return peak_gflops()


def peak_gflops() -> float:
    """The best matmul GFLOP/s measured so far in this process (measured now if never)."""
    return max(_best_seen) if _best_seen else observe_peak()


def share_of_peak(gflops: float) -> str:
    """`gflops` as a percentage of the measured peak, e.g. '41 %'."""
    return f"{100 * gflops / peak_gflops():.0f} %"


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    tensorflow, numpy = matmul_gflops(), numpy_matmul_gflops()
    _best_seen.extend([tensorflow, numpy])
    rows = [
        (f"float32 tf.matmul {MATRIX_SIZE}x{MATRIX_SIZE}, all cores, best of {TRIALS} (GFLOP/s)", f"{tensorflow:.1f}"),
        (
            f"float32 NumPy matmul {NUMPY_MATRIX_SIZE}x{NUMPY_MATRIX_SIZE}, all cores, best of {TRIALS} (GFLOP/s)",
            f"{numpy:.1f}",
        ),
        ("float32 matmul peak so far (the higher; re-measured by later sections)", f"{peak_gflops():.1f}"),
    ]
    for measure, value in rows:
        print(f"{measure}: {value}", flush=True)
    return rows


if __name__ == "__main__":
    run()
