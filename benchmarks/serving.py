"""Benchmark: serving latency (p50/p99) and throughput, in-process vs. over gRPC with and without batching.

Model: the contract fixture (tests/helpers/contract_model.py: a few convolutions behind the exported-model contract,
att_ebgan, 64 px), called through its `edit` signature with one image per request. `ebgan-serve` runs as a separate
process on loopback (once with batching off, once with serving/configs/batching_parameters.txt); the clients are
threads of this process, each with its own channel. Run alone with `python -m benchmarks.serving`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from benchmarks import results as measured
from ebgan_tf.config import ATT_EBGAN
from ebgan_tf.serving.client import EditClient
from ebgan_tf.serving.errors import ServingError
from tests.helpers.contract_model import export_contract_model, random_inputs

IMAGE_SIZE = 64
SINGLE_REQUESTS = 200  # in-process and one client
CLIENTS = 8
REQUESTS_PER_CLIENT = 40
WARMUP_REQUESTS = 10
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHING_FILE = os.path.join(REPO, "serving", "configs", "batching_parameters.txt")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _measure(call: Callable[[int], object], threads: int, requests_per_thread: int) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) of `call(thread_index)` issued sequentially by each of `threads` threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        mine = []
        for _ in range(requests_per_thread):
            started = time.perf_counter()
            call(index)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(np.asarray(latencies) * 1000.0, [50, 99])
    return float(p50), float(p99), len(latencies) / elapsed


class _ServerProcess:
    """`python -m ebgan_tf.serving.main` on a free loopback port, stopped on exit."""

    def __init__(self, model_base: str, batching: bool):
        self.address = f"127.0.0.1:{_free_port()}"
        command = [
            sys.executable,
            "-m",
            "ebgan_tf.serving.main",
            f"--model_base_path={model_base}",
            f"--port={self.address.split(':')[1]}",
            "--file_system_poll_wait_seconds=0",
        ]
        if batching:
            command += ["--enable_batching", f"--batching_parameters_file={BATCHING_FILE}"]
        self._process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )

    def __enter__(self) -> str:
        deadline = time.monotonic() + 180
        with EditClient(self.address, timeout=5) as client:
            while True:
                try:
                    client.model_info("ebgan")
                    return self.address
                except ServingError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("ebgan-serve did not start") from None
                    time.sleep(0.5)

    def __exit__(self, *exc_info) -> None:
        self._process.terminate()
        self._process.wait(timeout=60)


def _over_grpc(address: str, inputs: dict[str, np.ndarray], threads: int, requests: int) -> tuple[float, ...]:
    clients = [EditClient(address, timeout=60) for _ in range(threads)]  # one channel per client thread
    try:
        for client in clients:  # connect and warm up every channel
            for _ in range(WARMUP_REQUESTS // threads + 1):
                client.predict(inputs, "ebgan", "edit")
        return _measure(lambda index: clients[index].predict(inputs, "ebgan", "edit"), threads, requests)
    finally:
        for client in clients:
            client.close()


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    inputs = random_inputs(1, IMAGE_SIZE)
    results = {}
    with tempfile.TemporaryDirectory() as base:
        path = export_contract_model(base, "ebgan", 1, IMAGE_SIZE, ATT_EBGAN)
        edit = tf.saved_model.load(path).signatures["edit"]
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        for _ in range(WARMUP_REQUESTS):
            edit(**tensors)
        results["in-process SavedModel"] = _measure(lambda _: edit(**tensors)["edited"].numpy(), 1, SINGLE_REQUESTS)
        with _ServerProcess(os.path.join(base, "ebgan"), batching=False) as address:
            results["1 client, gRPC"] = _over_grpc(address, inputs, 1, SINGLE_REQUESTS)
            results[f"{CLIENTS} clients, gRPC, batching off"] = _over_grpc(
                address, inputs, CLIENTS, REQUESTS_PER_CLIENT
            )
        with _ServerProcess(os.path.join(base, "ebgan"), batching=True) as address:
            results[f"{CLIENTS} clients, gRPC, batching on"] = _over_grpc(address, inputs, CLIENTS, REQUESTS_PER_CLIENT)
    rows = [
        (
            "serving benchmark model",
            f"tests/helpers/contract_model.py fixture (att_ebgan, {IMAGE_SIZE} px, "
            "signature edit, 1 image per request; ebgan-serve in its own process on "
            "loopback)",
        )
    ]
    for name, (p50, p99, rate) in results.items():
        rows.append((f"serving {name}: p50 / p99 latency", f"{p50:.2f} ms / {p99:.2f} ms"))
        rows.append((f"serving {name}: throughput", f"{rate:.0f} requests/s"))
    on, off = results[f"{CLIENTS} clients, gRPC, batching on"], results[f"{CLIENTS} clients, gRPC, batching off"]
    rows.append((f"serving {CLIENTS} clients throughput ratio batching on / off", f"{on[2] / off[2]:.2f}"))
    single = results["1 client, gRPC"]
    measured.MEASURED["serving_batched_over_one_client"] = on[2] / single[2]
    rows.append((f"serving throughput ratio {CLIENTS} clients batching on / 1 client", f"{on[2] / single[2]:.2f}"))
    rows.append(
        (
            "serving 1 client p50 latency / in-process p50",
            f"{results['1 client, gRPC'][0] / results['in-process SavedModel'][0]:.2f}",
        )
    )
    for measure, value in rows:
        print(f"{measure}: {value}")
    return rows


if __name__ == "__main__":
    run()
