"""Fault tolerance of ebgan-train with real processes and real signals: SIGKILL at a random step and resume, SIGKILL
inside a checkpoint save, and a NaN loss that stops training while keeping the last good checkpoint."""

from __future__ import annotations

import os
import random
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.models.trainer import build_trainer
from ebgan_tf.runs import compile_as_trained, load_trained, make_checkpoint, run_config_from_dir
from ebgan_tf.training import callbacks, train_lib
from ebgan_tf.training.distribute import make_strategy
from tests.helpers.tiny import network_weights, tiny_config
from tests.helpers.train_fixtures import (
    killed_on_exit,
    load_tiny_examples,
    prepare_tiny_data,
    run_training,
    start_training,
    train_flags,
)

# 2 epochs of 4 steps, a checkpoint every 2 steps, every checkpoint kept (to compare them with the reference run).
SCHEDULE = dict(epochs=2, steps_per_epoch=4, checkpoint_every=2, keep_checkpoints=10, validation_steps=0, image_every=4)
TOTAL_STEPS = 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return prepare_tiny_data(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> str:
    """The model_dir of an uninterrupted run of SCHEDULE (trained in this process)."""
    model_dir = str(tmp_path_factory.mktemp("reference") / "model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ebgan_tf.data.pipeline.load_examples", load_tiny_examples)
        train_lib.train(tiny_config(model_dir, data_dir, **SCHEDULE), make_strategy("one_device"))
    return model_dir


def checkpoint_path(model_dir: str, step: int) -> str:
    return os.path.join(model_dir, "checkpoints", f"ckpt-{step}")


def restore(checkpoint: str) -> tuple[list[np.ndarray], int]:
    """Network weights and step of a checkpoint, restored with every object (networks, optimisers, step) matched."""
    config = run_config_from_dir(os.path.dirname(os.path.dirname(checkpoint)))
    trainer = build_trainer(config.preset_object(), config.variant, config.regions, config.loss_weights)
    compile_as_trained(trainer, config)
    step = tf.Variable(0, dtype=tf.int64)
    make_checkpoint(trainer, optimizers=True, step=step).restore(checkpoint).assert_existing_objects_matched()
    return network_weights(trainer), int(step.numpy())


def printed_steps(output: str) -> list[int]:
    return [int(step) for step in re.findall(r"^step (\d+)$", output, re.MULTILINE)]


def assert_same_weights(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sigkill_at_a_random_step_resumes_to_the_weights_of_an_uninterrupted_run(data_dir, reference, tmp_path):
    model_dir = str(tmp_path / "model")
    flags = train_flags(model_dir, data_dir, **SCHEDULE)
    kill_after = random.randint(3, TOTAL_STEPS - 1)  # after the first checkpoint (step 2), before the end
    log = tmp_path / "killed.log"
    with killed_on_exit([start_training(flags, str(log), EBGAN_TEST_PRINT_STEPS="1")]) as (process,):
        deadline = time.monotonic() + 600
        while not any(step >= kill_after for step in printed_steps(log.read_text())):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "training did not reach the step to kill at"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(60) == -signal.SIGKILL
    last_step = printed_steps(log.read_text())[-1]
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[1])
    assert 0 <= last_step - saved_step <= SCHEDULE["checkpoint_every"], (last_step, saved_step)

    status, output = run_training(flags, str(tmp_path / "resumed.log"), EBGAN_TEST_PRINT_STEPS="1")
    assert status == 0, output[-3000:]
    assert f"Resuming from step {saved_step} (checkpoint {latest})" in output
    assert printed_steps(output) == list(range(saved_step + 1, TOTAL_STEPS + 1))  # none lost, none repeated
    assert_same_weights(network_weights(load_trained(model_dir)), network_weights(load_trained(reference)))


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_save_keeps_the_previous_checkpoint_as_latest(data_dir, reference, tmp_path):
    model_dir = str(tmp_path / "model")
    status, output = run_training(
        train_flags(model_dir, data_dir, **SCHEDULE), str(tmp_path / "killed.log"), EBGAN_TEST_KILL_IN_SAVE="4"
    )
    assert status == -signal.SIGKILL, output[-3000:]
    assert os.path.exists(checkpoint_path(model_dir, 4) + ".index")  # its files were written, the state was not
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) == checkpoint_path(model_dir, 2)
    weights, step = restore(checkpoint_path(model_dir, 2))
    assert step == 2
    assert_same_weights(weights, restore(checkpoint_path(reference, 2))[0])
    # The next run removes what the killed save left (the unnamed checkpoint's files, a temporary folder and state
    # file, as TensorFlow leaves them when killed a moment later or earlier), says so, and trains to the end.
    directory = os.path.join(model_dir, "checkpoints")
    os.makedirs(os.path.join(directory, "ckpt-6_temp"))
    with open(os.path.join(directory, "checkpoint.tmp0123abcd"), "w") as stream:
        stream.write("partial")
    status, output = run_training(train_flags(model_dir, data_dir, **SCHEDULE), str(tmp_path / "resumed.log"))
    assert status == 0, output[-3000:]
    assert "Removed what a run killed while saving left in" in output
    for name in ("ckpt-4.index", "ckpt-6_temp", "checkpoint.tmp0123abcd"):
        assert name in output
    assert not any(name.endswith("_temp") or name.startswith("checkpoint.tmp") for name in os.listdir(directory))
    assert tf.train.latest_checkpoint(directory) == checkpoint_path(model_dir, TOTAL_STEPS)


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(data_dir, reference, tmp_path):
    model_dir = str(tmp_path / "model")
    status, output = run_training(
        train_flags(model_dir, data_dir, **SCHEDULE), str(tmp_path / "nan.log"), EBGAN_TEST_NAN_AT_BATCH="2"
    )  # the third batch of an epoch: step 3
    assert status == 1, output[-3000:]
    error = re.search(
        r"ebgan-train: error: Non-finite loss (.*) at step 3: training stopped without saving it "
        r"\(the last good checkpoint is step 2; a rerun resumes from it\)",
        output,
    )
    assert error, output[-3000:]
    assert {"g_loss=nan", "rec=nan"} <= set(error.group(1).split(", "))
    assert "Traceback" not in output
    assert not os.path.exists(os.path.join(model_dir, "final.weights.h5"))
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) == checkpoint_path(model_dir, 2)
    weights, _ = restore(checkpoint_path(model_dir, 2))
    assert all(np.isfinite(weight).all() for weight in weights)
    assert_same_weights(weights, restore(checkpoint_path(reference, 2))[0])


@pytest.mark.slow  # trains the reference run
def test_checkpoint_callback_refuses_to_save_non_finite_weights(reference, tmp_path):
    trainer = load_trained(reference)
    trainer.compile()
    counter = callbacks.StepCounter()
    counter.variable.assign(10)
    manager = tf.train.CheckpointManager(
        make_checkpoint(trainer, optimizers=True, step=counter.variable), str(tmp_path), max_to_keep=2
    )
    checkpoints = callbacks.CheckpointCallback(trainer, manager, every=5, counter=counter, saved_step=8)
    trainer.discriminator.weights[0].assign(tf.fill(trainer.discriminator.weights[0].shape, np.inf))
    with pytest.raises(
        callbacks.NonFiniteError, match="Non-finite weights at step 10: .*last good checkpoint is step 8"
    ):
        checkpoints.on_train_batch_end(9, {"g_loss": np.array([1.0])})
    with pytest.raises(callbacks.NonFiniteError, match=r"Non-finite loss d_loss=inf at step 10"):
        checkpoints.on_train_batch_end(9, {"g_loss": np.array([1.0]), "d_loss": np.array([np.inf])})
    assert manager.latest_checkpoint is None and os.listdir(tmp_path) == []
