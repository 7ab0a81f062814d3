"""Keras callbacks of `ebgan-train`: checkpoints, TensorBoard scalars and the edit grid, all keyed by the global step.

The global step is the generator optimiser's `iterations`, which checkpoints save and restore, so logs and
checkpoints of a resumed run continue where the interrupted run stopped.

Summaries are written with `tf.summary.write` and TensorBoard's plugin metadata, in the exact format of
`tf.summary.scalar` / `tf.summary.image`, so training does not need the `tensorboard` package (only viewing does).
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from tensorflow.core.framework import summary_pb2

from ebgan_tf import images, visualize


def _plugin(name: str) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=name))


def write_scalar(name: str, value: float, step: int) -> None:
    """A TensorBoard scalar to the default summary writer."""
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_plugin("scalars"))


def write_image(name: str, image: np.ndarray, step: int) -> None:
    """A TensorBoard image (uint8 [H, W, 3], stored as PNG) to the default summary writer."""
    height, width = image.shape[:2]
    encoded = tf.stack([tf.as_string(width), tf.as_string(height), tf.image.encode_png(image)])
    tf.summary.write(name, encoded, step=step, metadata=_plugin("images"))


def global_step(trainer: keras.Model) -> int:
    """Optimisation steps taken so far (restored with the optimisers)."""
    return int(trainer.g_optimizer.iterations.numpy())


def checkpoint_step(path: str) -> int:
    """The step of a checkpoint saved by `CheckpointCallback` (paths end in '-<step>')."""
    return int(path.rsplit("-", 1)[1])


def exemplar_labels(attributes: np.ndarray, attribute_names: tuple[str, ...]) -> str:
    """One line per attribute that is on, e.g. 'Mustache\\nSmiling', or '(none)'."""
    return "\n".join(name for name, on in zip(attribute_names, attributes) if on > 0.5) or "(none)"


def edit_grid(trainer: keras.Model, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """uint8 grid, one row per example: source, exemplar, mask (over the source), result and, for Att-EBGAN,
    the result with the first attribute (e.g. Mustache) filtered out. Rows are labelled with the exemplar's labels.
    """
    source, exemplar, mask = (np.asarray(batch[key]) for key in ("source", "exemplar", "mask"))
    columns = [images.to_uint8(source), images.to_uint8(exemplar)]
    columns.append(np.stack([visualize.overlay_mask(image, m) for image, m in zip(columns[0], mask)]))
    columns.append(images.to_uint8(np.asarray(trainer.edit(source, exemplar, mask))))
    labels = ["source", "exemplar", "mask", "result"]
    names = tuple(trainer.attribute_names)
    if trainer.variant == "att_ebgan":
        transfer = np.ones([len(source), len(names)], np.float32)
        transfer[:, 0] = 0.0
        columns.append(images.to_uint8(np.asarray(trainer.edit(source, exemplar, mask, transfer))))
        labels = ["source", "exemplar", "mask", "result\n(all on)", f"without\n{names[0]}"]
    rows = [[column[i] for column in columns] for i in range(len(source))]
    row_labels = [exemplar_labels(attributes, names) for attributes in np.asarray(batch["exemplar_attributes"])]
    return visualize.image_grid(rows, row_labels=row_labels, col_labels=labels)


class CheckpointCallback(keras.callbacks.Callback):
    """Saves models + optimisers every `every` steps, numbered by the global step (the manager keeps the last K)."""

    def __init__(self, trainer: keras.Model, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self._trainer = trainer
        self._manager = manager
        self._every = every
        self._saved_step = checkpoint_step(manager.latest_checkpoint) if manager.latest_checkpoint else None

    def save(self) -> None:
        """Saves a checkpoint of the current step unless one exists already."""
        step = global_step(self._trainer)
        if step != self._saved_step:
            self._manager.save(checkpoint_number=step)
            self._saved_step = step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if global_step(self._trainer) % self._every == 0:
            self.save()


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the training losses every `every` steps and the validation losses after each epoch to TensorBoard."""

    def __init__(self, trainer: keras.Model, train_writer, validation_writer, every: int):
        super().__init__()
        self._trainer = trainer
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
        step = global_step(self._trainer)
        if logs and step % self._every == 0:
            self._write(self._train_writer, logs, step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        validation = {name[len("val_"):]: value for name, value in (logs or {}).items() if name.startswith("val_")}
        if validation:
            self._write(self._validation_writer, validation, global_step(self._trainer))


class EditGridSummaries(keras.callbacks.Callback):
    """Writes `edit_grid` of a fixed batch to TensorBoard (image 'edits') every `every` steps."""

    def __init__(self, trainer: keras.Model, writer, batch: Mapping[str, np.ndarray], every: int):
        super().__init__()
        self._trainer = trainer
        self._writer = writer
        self._batch = batch
        self._every = every
        self._written_step: int | None = None

    def write(self) -> None:
        """Writes the grid of the current step unless it was written already."""
        step = global_step(self._trainer)
        if step == self._written_step:
            return
        with self._writer.as_default():
            write_image("edits", edit_grid(self._trainer, self._batch), step)
        self._writer.flush()
        self._written_step = step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if global_step(self._trainer) % self._every == 0:
            self.write()
