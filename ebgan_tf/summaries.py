"""TensorBoard summaries written with `tf.summary.write` and TensorBoard's plugin metadata, in the exact format of
`tf.summary.scalar` / `tf.summary.image`, so training and evaluation do not need the `tensorboard` package (only
viewing does)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


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
