"""The generator: G_enc(A * (1 - M), M) -> context features, G_dec(Z^A, Z^B') -> A^b; the gate and the composite."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from ebgan_tf.config import ModelConfig
from ebgan_tf.models.encoder import DownsamplingStack, conv, level_widths


def gate_code(code: tf.Tensor, labels: tf.Tensor, num_attributes: int) -> tf.Tensor:
    """Att-EBGAN's label gating Z' = [b_1 * y_1, ..., b_n * y_n].

    `code` [N, h, w, n * c] is split along channels into n blocks of c channels, block i belonging to attribute i;
    `labels` [N, n] multiplies block i by y_i (0 zeroes the block, 1 keeps it unchanged).
    """
    channels = code.shape[-1]
    if channels % num_attributes:
        raise ValueError(f"Code channels ({channels}) do not split into {num_attributes} attribute blocks.")
    gates = tf.repeat(tf.cast(labels, code.dtype), channels // num_attributes, axis=-1)
    return code * gates[:, None, None, :]


def composite(generated: tf.Tensor, source: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """y = A^b * M + A * (1 - M): generated pixels inside the mask, the source's (exactly) outside."""
    return generated * mask + source * (1.0 - mask)


class Generator(keras.Model):
    """A U-Net: G_enc reads the masked source, G_dec fills it from Z^A (plus skips) and the exemplar code.

    encode(source, mask) masks the source itself (the generator never sees the pixels it must fill) and returns the
    features of every level, finest first; the last one is Z^A. decode(features, code) returns A^b (tanh, float32).
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        widths = level_widths(config.base_width, config.max_width, config.code_downsamplings)
        self.context = DownsamplingStack(widths)
        self.fuse = [conv(widths[-1]), conv(widths[-1])]
        self.upsample = layers.UpSampling2D(2)
        self.up_convs = [conv(width) for width in reversed(widths[:-1])]
        self.merges = [conv(width) for width in reversed(widths[:-1])]
        self.to_image = layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float32")

    def encode(self, source, mask) -> list:
        """G_enc(A * (1 - M), M): features of every level of the masked source, finest first (last = Z^A)."""
        return self.context(ops.concatenate([source * (1.0 - mask), mask], axis=-1))

    def decode(self, features: list, code):
        """G_dec(Z^A, Z^B'): the completed image A^b in [-1, 1], float32."""
        x = ops.concatenate([features[-1], ops.cast(code, features[-1].dtype)], axis=-1)
        for fuse in self.fuse:
            x = fuse(x)
        for skip, up_conv, merge in zip(reversed(features[:-1]), self.up_convs, self.merges):
            x = merge(ops.concatenate([up_conv(self.upsample(x)), skip], axis=-1))
        return self.to_image(x)

    def call(self, source, mask, code):
        return self.decode(self.encode(source, mask), code)
