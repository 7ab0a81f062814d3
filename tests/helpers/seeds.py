"""The suite's random seed: every test starts from it (tests/conftest.py), so that a failure reproduces."""

from __future__ import annotations

import os

import keras

# Set EBGAN_TEST_SEED to run the suite from another seed.
TEST_SEED = int(os.environ.get("EBGAN_TEST_SEED", "0"))


def seed_random_generators() -> None:
    """Seeds Python's random, NumPy's and TensorFlow's global generators (so Keras' weight initialisers too)."""
    keras.utils.set_random_seed(TEST_SEED)
