"""Benchmark: CelebA input throughput (examples/s) from the extracted folder, at 128 px.

Writes a CelebA-format fixture of synthetic faces (178x218 JPEGs and the annotation files) to a temporary
directory, then times, after a warm-up and in batches of 32: plain read + JPEG decode of the files (the ceiling),
the reader (`celeba.load_examples`: decode, labels in the schema, the guard that skips corrupt JPEGs), and
training batches from `pipeline.make_dataset` (crop, resize to 128, masks, pairing). Run alone with
`python -m benchmarks.celeba`.
"""

from __future__ import annotations

import os
import tempfile
import time

import tensorflow as tf

from ebgan_tf.config import get_preset
from ebgan_tf.data import celeba, pipeline
from ebgan_tf.data.celeba_fixture import make_celeba_fixture

NUM_IMAGES = 400
IMAGE_SIZE = 128
BATCH_SIZE = 32
REGIONS = ("mouth",)
WARMUP_BATCHES = 5
TIMED_BATCHES = 40
TRIALS = 3  # the three measures are taken in turn this many times; the best of each is reported (busy machines)


def _examples_per_second(iterator) -> float:
    """Examples/s of an iterator over batches of BATCH_SIZE."""
    started = time.perf_counter()
    for _ in range(TIMED_BATCHES):
        next(iterator)
    return TIMED_BATCHES * BATCH_SIZE / (time.perf_counter() - started)


def _best_rates(datasets: dict[str, tf.data.Dataset]) -> dict[str, float]:
    """Best examples/s of each data set of batches over TRIALS turns, after a warm-up."""
    iterators = {name: iter(dataset.prefetch(tf.data.AUTOTUNE)) for name, dataset in datasets.items()}
    for iterator in iterators.values():
        for _ in range(WARMUP_BATCHES):
            next(iterator)
    rates = {name: 0.0 for name in iterators}
    for _ in range(TRIALS):
        for name, iterator in iterators.items():
            rates[name] = max(rates[name], _examples_per_second(iterator))
    return rates


def _decoded_images(data_dir: str) -> tf.data.Dataset:
    """The fixture's JPEGs read and decoded with a plain parallel map: the ceiling of any reader."""
    paths = sorted(tf.io.gfile.glob(os.path.join(data_dir, celeba.IMAGE_DIR, "*.jpg")))
    return tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: tf.io.decode_jpeg(tf.io.read_file(path), channels=3), num_parallel_calls=tf.data.AUTOTUNE
    )


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    with tempfile.TemporaryDirectory() as data_dir:
        make_celeba_fixture(data_dir, num_images=NUM_IMAGES)
        examples = celeba.load_examples(data_dir, "train+validation")
        datasets = {
            "decode": _decoded_images(data_dir).repeat().batch(BATCH_SIZE),
            "reader": examples.repeat().batch(BATCH_SIZE),
            "pipeline": pipeline.make_dataset(
                examples,
                image_size=IMAGE_SIZE,
                regions=REGIONS,
                attribute_names=get_preset("celeba128").attributes_for(REGIONS),
                batch_size=BATCH_SIZE,
                crop=pipeline.default_crop("celeb_a"),
                seed=0,
            ),
        }
        rates = _best_rates(datasets)  # returns after its iterators (and their prefetching) are gone
    decode, reader, training = rates["decode"], rates["reader"], rates["pipeline"]
    rows = [
        ("CelebA plain read + decode examples/s (178x218 JPEGs, extracted folder)", f"{decode:.0f}"),
        ("CelebA reader examples/s (decode, 40 attributes + 5 landmarks, corrupt-JPEG guard)", f"{reader:.0f}"),
        (
            f"CelebA pipeline examples/s at {IMAGE_SIZE} px (crop, resize, {'+'.join(REGIONS)} masks, pairing, "
            f"batch {BATCH_SIZE})",
            f"{training:.0f}",
        ),
        ("CelebA reader / plain decode (throughput ratio)", f"{reader / decode:.2f}"),
        (f"CelebA pipeline at {IMAGE_SIZE} px / reader (throughput ratio)", f"{training / reader:.2f}"),
    ]
    for measure, value in rows:
        print(f"{measure}: {value}")
    return rows


if __name__ == "__main__":
    run()
