"""Tests of training/distribute.py: strategy choice, batch checks, and MirroredStrategy == one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest
import tensorflow as tf

from ebgan_tf.training.distribute import check_global_batch, configure_cpu_replicas, make_strategy
from tests.helpers.tiny import REPO_ROOT

# One training step from identical weights on the same global batch, on one device and on 2 logical CPUs.
# Logical devices must be configured before TensorFlow initialises, hence a fresh process.
MIRRORED_VS_ONE_DEVICE = r"""
import dataclasses, json
import numpy as np
from ebgan_tf.training.distribute import make_strategy, configure_cpu_replicas
configure_cpu_replicas(2)
import keras, tensorflow as tf
from ebgan_tf.config import get_preset
from ebgan_tf.models.trainer import build_trainer
from tests.helpers.tiny import TINY_CONFIG, make_batch

preset = dataclasses.replace(get_preset("synthetic64"), model=TINY_CONFIG)
regions = ("mouth",)
n = len(preset.attributes_for(regions))
batch = make_batch(size=32, batch_size=8, num_attributes=n, seed=0)

def one_step(strategy, initial):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        trainer = build_trainer(preset, "att_ebgan", regions)
        trainer.build_all()
        trainer.compile(jit_compile=False)
        if initial is not None:
            for variable, value in zip(trainer.weights, initial):
                variable.assign(value)
    start = [variable.numpy() for variable in trainer.weights]
    history = trainer.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, epochs=1,
                          verbose=0, shuffle=False).history
    networks = [trainer.encoder, trainer.generator, trainer.discriminator, trainer.classifier]
    after = [variable.numpy() for network in networks for variable in network.weights]
    return start, after, {name: float(np.mean(values[-1])) for name, values in history.items()}

mirrored = make_strategy("mirrored", 2)
start, one_after, one_logs = one_step(make_strategy("one_device"), None)
_, mirrored_after, mirrored_logs = one_step(mirrored, start)
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync,
    "max_relative_difference": max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))
                                   for a, b in zip(mirrored_after, one_after)),
    "one_device_logs": one_logs, "mirrored_logs": mirrored_logs}))
"""


def test_check_global_batch_accepts_multiples_and_names_the_replicas():
    three = types.SimpleNamespace(num_replicas_in_sync=3)
    assert check_global_batch(6, three) == 2
    with pytest.raises(ValueError, match=r"--batch_size=8 .* multiple of the 3 replica.*--batch_size=9"):
        check_global_batch(8, three)
    with pytest.raises(ValueError, match="positive multiple"):
        check_global_batch(0, three)


def test_make_strategy_rejects_unknown_names_and_one_device_with_cpu_replicas():
    with pytest.raises(ValueError, match="Unknown strategy 'tpu'; valid strategies: auto, one_device, mirrored"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="one_device uses one CPU device per machine"):
        make_strategy("one_device", cpu_replicas=2)
    with pytest.raises(ValueError, match="at least 1"):
        configure_cpu_replicas(0)


def test_one_device_and_auto_without_replicas_use_one_replica():
    assert isinstance(make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    assert make_strategy("auto").num_replicas_in_sync == 1


def test_cpu_split_after_tensorflow_initialised_is_a_clear_error():
    tf.config.list_logical_devices()  # initialises the devices
    with pytest.raises(RuntimeError, match="already initialised its devices"):
        configure_cpu_replicas(5)


@pytest.mark.slow
def test_mirrored_on_two_cpus_matches_one_device_after_one_step():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_VS_ONE_DEVICE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["max_relative_difference"] < 1e-4
    for name, value in report["one_device_logs"].items():
        if name.startswith("spread"):  # a statistic of each replica's own half batch, not a loss: it may differ
            continue
        assert report["mirrored_logs"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
