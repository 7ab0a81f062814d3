"""Keras callbacks of `ebgan-train`: step counting, checkpoints with a non-finite guard, TensorBoard scalars and the
edit grid, all keyed by the global step.

The global step counts training steps (global batches) in a variable that checkpoints save and restore, so logs
and checkpoints of a resumed run continue where the interrupted run stopped. It is not the optimisers'
`iterations`: under mixed precision the loss-scale optimiser skips updates whose gradients overflowed, yet the
batch was consumed.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from ebgan_tf.summaries import write_image, write_scalar
from ebgan_tf.visualize import edit_grid


class NonFiniteError(RuntimeError):
    """A loss or a weight became NaN or infinite; training stopped without saving it."""


class DivergenceError(RuntimeError):
    """The reconstruction loss rose far above its best value (finite divergence); training stopped without saving."""


DIVERGENCE_WARMUP_STEPS = 100  # steps of a process before the divergence guard arms (early losses swing widely)


class DivergenceDetector:
    """Says when a loss rises above `factor` times the lowest value it had since the warm-up (factor 0: never)."""

    def __init__(self, factor: float, warmup_steps: int = DIVERGENCE_WARMUP_STEPS):
        self.factor = factor
        self._warmup = warmup_steps
        self._seen = 0
        self.lowest = float("inf")

    def update(self, value: float) -> bool:
        """Records one step's value; True when it diverged."""
        self._seen += 1
        if not self.factor or self._seen <= self._warmup:
            return False
        if value > self.factor * self.lowest:
            return True
        self.lowest = min(self.lowest, value)
        return False


class StepCounter(keras.callbacks.Callback):
    """Counts training steps in `variable` (int64, saved in checkpoints). Must come first among the callbacks."""

    def __init__(self):
        super().__init__()
        self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")

    @property
    def step(self) -> int:
        """Training steps taken so far."""
        return int(self.variable.numpy())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.variable.assign_add(1)


def non_finite(logs: Mapping[str, object]) -> dict[str, float]:
    """The entries of `logs` that are NaN or infinite, as floats."""
    values = {name: float(np.mean(np.asarray(value))) for name, value in logs.items()}
    return {name: value for name, value in values.items() if not np.isfinite(value)}


def weights_are_finite(trainer: keras.Model) -> bool:
    """True when no trainable weight of the trainer's networks is NaN or infinite."""
    return all(bool(tf.reduce_all(tf.math.is_finite(weight)).numpy()) for weight in trainer.trainable_weights)


class CheckpointCallback(keras.callbacks.Callback):
    """Saves models + optimisers + step every `every` steps, numbered by the global step (the manager keeps the
    last K), and guards them: a non-finite loss (checked every step) or non-finite weights (checked before each
    save) raise NonFiniteError, and a reconstruction loss above `divergence_factor` times its lowest value raises
    DivergenceError, naming the losses and the step, so the latest checkpoint stays the last good one.
    """

    def __init__(
        self,
        trainer: keras.Model,
        manager: tf.train.CheckpointManager,
        every: int,
        counter: StepCounter,
        saved_step: int | None,
        divergence_factor: float = 0.0,
    ):
        super().__init__()
        self._trainer = trainer
        self._manager = manager
        self._every = every
        self._counter = counter
        self._saved_step = saved_step
        self._divergence = DivergenceDetector(divergence_factor)

    def _stop(self, problem: str, error: type[RuntimeError] = NonFiniteError) -> None:
        last = (
            f"the last good checkpoint is step {self._saved_step}; a rerun resumes from it"
            if self._saved_step is not None
            else "no checkpoint was saved"
        )
        raise error(
            f"{problem} at step {self._counter.step}: training stopped without saving it ({last}). "
            "Try a lower --learning_rate, or check the input data."
        )

    def save(self) -> None:
        """Saves a checkpoint of the current step unless one exists already (NonFiniteError for bad weights)."""
        step = self._counter.step
        if step == self._saved_step:
            return
        if not weights_are_finite(self._trainer):
            self._stop("Non-finite weights")
        self._manager.save(checkpoint_number=step)
        self._saved_step = step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        bad = non_finite(logs or {})
        if bad:
            self._stop("Non-finite loss " + ", ".join(f"{name}={value}" for name, value in bad.items()))
        if logs and "rec" in logs:
            rec = float(np.mean(np.asarray(logs["rec"])))
            if self._divergence.update(rec):
                self._stop(
                    f"Diverged: reconstruction loss {rec:.4g} is above {self._divergence.factor:g} times its "
                    f"lowest value {self._divergence.lowest:.4g}",
                    DivergenceError,
                )
        if self._counter.step % self._every == 0:
            self.save()


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the training losses every `every` steps and the validation losses after each epoch to TensorBoard."""

    def __init__(self, counter: StepCounter, train_writer, validation_writer, every: int):
        super().__init__()
        self._counter = counter
        self._train_writer = train_writer
        self._validation_writer = validation_writer
        self._every = every

    @staticmethod
    def _write(writer, logs: Mapping[str, object], step: int) -> None:
        with writer.as_default():
            for name, value in logs.items():
                write_scalar(name, float(np.mean(np.asarray(value))), step)
        writer.flush()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = self._counter.step
        if logs and step % self._every == 0:
            self._write(self._train_writer, logs, step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        validation = {name[len("val_") :]: value for name, value in (logs or {}).items() if name.startswith("val_")}
        if validation:
            self._write(self._validation_writer, validation, self._counter.step)


class EditGridSummaries(keras.callbacks.Callback):
    """Writes `edit_grid` of a fixed batch to TensorBoard (image 'edits') every `every` steps."""

    def __init__(self, trainer: keras.Model, counter: StepCounter, writer, batch: Mapping[str, np.ndarray], every: int):
        super().__init__()
        self._trainer = trainer
        self._counter = counter
        self._writer = writer
        self._batch = batch
        self._every = every
        self._written_step: int | None = None

    def write(self) -> None:
        """Writes the grid of the current step unless it was written already."""
        step = self._counter.step
        if step == self._written_step:
            return
        with self._writer.as_default():
            write_image("edits", edit_grid(self._trainer, self._batch), step)
        self._writer.flush()
        self._written_step = step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._counter.step % self._every == 0:
            self.write()
