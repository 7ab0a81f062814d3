"""Tests of --mixed_precision and --xla on CPU: finite losses close to float32 after a few steps, the loss-scale
optimiser in place, checkpoints interchangeable with float32 runs, and XLA refused with several replicas."""

from __future__ import annotations

import dataclasses
import types

import keras
import numpy as np
import pytest

from ebgan_tf.config import get_preset
from ebgan_tf.runs import ConfigError
from ebgan_tf.training import train_lib
from ebgan_tf.training.distribute import make_strategy
from tests.helpers.tiny import network_weights, tiny_config
from tests.helpers.train_fixtures import load_tiny_examples, prepare_tiny_data

SCHEDULE = dict(epochs=1, steps_per_epoch=3, validation_steps=0, checkpoint_every=3, image_every=3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = prepare_tiny_data(str(tmp_path_factory.mktemp("data")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ebgan_tf.data.pipeline.load_examples", load_tiny_examples)
        yield path


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory, data_dir):
    return train_lib.train(
        tiny_config(tmp_path_factory.mktemp("float32") / "model", data_dir, **SCHEDULE), make_strategy("one_device")
    )


def assert_losses_close(got: dict[str, list[float]], want: dict[str, list[float]], rtol: float) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        if name.startswith("spread"):  # a diagnostic ratio (std / mean of the codes), not a loss
            continue
        assert np.all(np.isfinite(got[name])), name
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=1e-3, err_msg=name)


@pytest.mark.slow
def test_mixed_precision_trains_in_float16_close_to_float32_and_resumes_in_float32(
    float32_run, data_dir, tmp_path, capsys
):
    _, float32_history = float32_run
    config = tiny_config(tmp_path / "model", data_dir, mixed_precision=True, **SCHEDULE)
    trainer, history = train_lib.train(config, make_strategy("one_device"))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert trainer.generator.to_image.dtype_policy.name == "float32"  # the output layers stay float32
    assert trainer.generator.up_convs[0].compute_dtype == "float16"
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert_losses_close(history, float32_history, rtol=3e-2)  # the hole L1, over a few pixels, moves most (2.4 %)
    assert all(np.isfinite(weight).all() for weight in network_weights(trainer))

    capsys.readouterr()
    resumed, _ = train_lib.train(
        tiny_config(tmp_path / "model", data_dir, **{**SCHEDULE, "epochs": 2}), make_strategy("one_device")
    )
    assert "Resuming from step 3" in capsys.readouterr().out  # a mixed-precision checkpoint resumes in float32
    assert not isinstance(resumed.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert resumed.g_optimizer.iterations.numpy() > trainer.g_optimizer.iterations.numpy()


@pytest.mark.slow
def test_xla_gives_the_float32_result(data_dir, tmp_path):
    # Gate dropout draws its random switches with TensorFlow's stateless RNG, whose numbers differ under XLA; the
    # comparison is of the deterministic computation, so both runs here train without it.
    no_dropout = dataclasses.replace(get_preset("synthetic64").train.loss_weights, gate_dropout=0.0)
    reference = train_lib.train(
        tiny_config(tmp_path / "float32", data_dir, loss_weights=no_dropout, **SCHEDULE), make_strategy("one_device")
    )
    float32_trainer, float32_history = reference
    trainer, history = train_lib.train(
        tiny_config(tmp_path / "model", data_dir, xla=True, loss_weights=no_dropout, **SCHEDULE),
        make_strategy("one_device"),
    )
    assert trainer.jit_compile
    assert_losses_close(history, float32_history, rtol=1e-4)
    for got, want in zip(network_weights(trainer), network_weights(float32_trainer), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=3e-5)  # seen: 1.9e-5 on a weight of 2e-3


def test_xla_with_several_replicas_is_refused_before_anything_is_written(tmp_path):
    two_replicas = types.SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(ConfigError, match="--xla compiles the training step for one device, but the strategy has 2"):
        train_lib.train(tiny_config(tmp_path / "model", tmp_path, xla=True), two_replicas)
    assert not (tmp_path / "model").exists()
