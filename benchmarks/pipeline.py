"""Benchmark: input pipeline throughput (examples/s) at 64 and 128 px on synthetic faces.

Prepares a small synthetic_faces data set per size in a temporary directory, then times `make_dataset` batches
(decode, masks with jitter, pairing) after a warm-up, and compares it with what training consumes (the fastest
training images/s the training section measured in this run at the same size). Run alone with
`python -m benchmarks.pipeline`.
"""

from __future__ import annotations

import tempfile
import time

from benchmarks import results
from ebgan_tf.config import get_preset
from ebgan_tf.data import pipeline

SIZES: tuple[int, ...] = (64, 128)
NUM_TRAIN = 256
BATCH_SIZE = 32
WARMUP_BATCHES = 5
TIMED_BATCHES = 40
REGIONS = ("mouth", "eyes", "components")


def examples_per_second(data_dir: str, image_size: int) -> float:
    """Pipeline throughput for training batches of synthetic faces at `image_size`, after a warm-up."""
    from ebgan_tf.data import synthetic_faces  # pylint: disable=import-outside-toplevel

    synthetic_faces.prepare_synthetic_faces(
        data_dir, image_size=image_size, num_train=NUM_TRAIN, num_validation=BATCH_SIZE, num_test=BATCH_SIZE
    )
    examples = pipeline.load_examples("synthetic_faces", data_dir, "train", image_size)
    batches = pipeline.make_dataset(
        examples,
        image_size=image_size,
        regions=REGIONS,
        attribute_names=get_preset("synthetic64").attributes_for(REGIONS),
        batch_size=BATCH_SIZE,
        seed=0,
    )
    iterator = iter(batches)
    for _ in range(WARMUP_BATCHES):
        next(iterator)
    started = time.perf_counter()
    for _ in range(TIMED_BATCHES):
        next(iterator)
    return TIMED_BATCHES * BATCH_SIZE / (time.perf_counter() - started)


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    rates = {}
    for image_size in SIZES:
        with tempfile.TemporaryDirectory() as data_dir:
            rates[image_size] = examples_per_second(data_dir, image_size)
    rows = [
        (
            f"pipeline examples/s at {size} px (batch {BATCH_SIZE}, {len(REGIONS)} regions, jittered masks)",
            f"{rate:.0f}",
        )
        for size, rate in rates.items()
    ]
    for size, rate in rates.items():
        consumed = [
            value for key, value in results.MEASURED.items() if key.startswith(f"train_images_per_second_{size}_")
        ]
        if consumed:
            results.MEASURED[f"pipeline_over_training_{size}"] = rate / max(consumed)
            rows.append(
                (
                    f"pipeline at {size} px / training consumption at {size} px ({max(consumed):.1f} images/s)",
                    f"{rate / max(consumed):.0f}x",
                )
            )
    small, large = SIZES
    rows.append((f"pipeline throughput ratio {small} px / {large} px", f"{rates[small] / rates[large]:.2f}"))
    for measure, value in rows:
        print(f"{measure}: {value}")
    return rows


if __name__ == "__main__":
    run()
