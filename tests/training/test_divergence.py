"""The divergence guard: a run whose reconstruction loss jumps stops with a clear message before saving."""

from __future__ import annotations

import pytest

from ebgan_tf.training import callbacks, train_lib
from ebgan_tf.training.distribute import make_strategy
from tests.helpers.tiny import tiny_config


def test_detector_arms_after_the_warm_up_and_fires_on_a_jump():
    detector = callbacks.DivergenceDetector(factor=4.0, warmup_steps=3)
    assert not any(detector.update(value) for value in (5.0, 9.0, 7.0))  # warm-up: wild values are ignored
    assert not any(detector.update(value) for value in (0.30, 0.10, 0.12, 0.39))  # below 4x the lowest (0.10)
    assert detector.update(0.41)
    assert detector.lowest == pytest.approx(0.10)


def test_factor_zero_never_fires():
    detector = callbacks.DivergenceDetector(factor=0.0, warmup_steps=0)
    assert not any(detector.update(value) for value in (0.01, 100.0, 1e9))


class _Manager:
    def __init__(self):
        self.saved: list[int] = []

    def save(self, checkpoint_number: int) -> None:
        self.saved.append(checkpoint_number)


class _Trainer:
    trainable_weights: list = []


def test_checkpoint_callback_stops_before_saving_a_diverged_step():
    counter, manager = callbacks.StepCounter(), _Manager()
    guard = callbacks.CheckpointCallback(
        _Trainer(), manager, every=2, counter=counter, saved_step=None, divergence_factor=4.0
    )
    guard._divergence = callbacks.DivergenceDetector(4.0, warmup_steps=1)
    losses = [1.0, 0.06, 0.05, 0.055, 1.08]  # the shape of the lr 1e-3 run that diverged after step 1100
    with pytest.raises(callbacks.DivergenceError) as raised:
        for rec in losses:
            counter.on_train_batch_end(0)
            guard.on_train_batch_end(0, {"rec": [rec]})
    assert manager.saved == [2, 4]  # step 5 diverged and was not saved
    message = str(raised.value)
    assert "Diverged: reconstruction loss 1.08" in message and "step 5" in message
    assert "last good checkpoint is step 4" in message and "--learning_rate" in message


@pytest.mark.slow  # one training step of the tiny model
def test_the_run_configs_divergence_factor_reaches_the_checkpoint_guard(data_dir, tmp_path, monkeypatch):
    """RunConfig.divergence_factor travels through train_lib and CheckpointCallback into the guard's detector."""
    factors: list[float] = []

    class RecordingDetector(callbacks.DivergenceDetector):
        def __init__(self, factor: float, warmup_steps: int = callbacks.DIVERGENCE_WARMUP_STEPS):
            factors.append(factor)
            super().__init__(factor, warmup_steps)

    monkeypatch.setattr(callbacks, "DivergenceDetector", RecordingDetector)
    config = tiny_config(tmp_path / "run", data_dir, epochs=1, steps_per_epoch=1, divergence_factor=7.5)
    train_lib.train(config, make_strategy("one_device"))
    assert factors == [7.5]
