"""The suite itself: every test starts from the same random state, so that a failure reproduces."""

from __future__ import annotations

import random

import numpy as np
import tensorflow as tf

from tests.helpers.seeds import seed_random_generators


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.random()), float(tf.random.uniform([]))


def test_a_test_starts_from_the_suites_seed():
    first = _draws()  # conftest's autouse fixture seeded the generators before this test
    seed_random_generators()
    assert _draws() == first
