"""The generator: G_enc(A * (1 - M), M) -> context features, G_dec(Z^A, Z^B') -> A^b; the gate and the composite."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from ebgan_tf.config import ModelConfig
from ebgan_tf.models.encoder import DownsamplingStack, area_downsample, conv, level_widths


def gate_code(code: tf.Tensor, labels: tf.Tensor, num_attributes: int, ungated_channels: int = 0) -> tf.Tensor:
    """Att-EBGAN's label gating Z' = [b_1 * y_1, ..., b_n * y_n, u].

    The first channels of `code` ([N, h, w, n * c + u], or [N, P, n * c + u] per part) split into n blocks of c
    channels, block i belonging to attribute i; `labels` [N, n] multiplies block i by y_i (0 zeroes the block, 1
    keeps it unchanged). The last `ungated_channels` (u, what no label names) always pass.
    """
    gated_channels = code.shape[-1] - ungated_channels
    if gated_channels <= 0 or gated_channels % num_attributes:
        raise ValueError(
            f"Code channels ({code.shape[-1]} with {ungated_channels} ungated) do not split into "
            f"{num_attributes} attribute blocks."
        )
    gates = tf.repeat(tf.cast(labels, code.dtype), gated_channels // num_attributes, axis=-1)
    if ungated_channels:
        gates = tf.concat([gates, tf.ones([tf.shape(gates)[0], ungated_channels], code.dtype)], axis=-1)
    return code * tf.reshape(gates, [tf.shape(gates)[0]] + [1] * (code.shape.rank - 2) + [code.shape[-1]])


def composite(generated: tf.Tensor, source: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """y = A^b * M + A * (1 - M): generated pixels inside the mask, the source's (exactly) outside."""
    return generated * mask + source * (1.0 - mask)


def spread_part_codes(code, layout, size: int):
    """Per-part codes [N, P, C] laid out on the (masked) part layout [N, S, S, P] at size x size -> [N, size, size, C]:
    each cell gets its parts' codes weighted by their share of it (0 where the layout is 0)."""
    return ops.einsum("nhwp,npc->nhwc", area_downsample(ops.cast(layout, code.dtype), size), code)


class CodeModulation(layers.Layer):
    """x * (1 + gamma(Z)) + beta(Z): the exemplar code modulating decoder features (SPADE-style, per pixel).

    gamma and beta come from one 1x1 convolution of the code at the code's resolution, then are repeated up to the
    features' size (a global code [N, 1, 1, C] modulates every pixel alike). Per-part codes [N, P, C] give one
    gamma and beta per part, laid out on the source's masked part layout.
    """

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.to_scale_shift = layers.Conv2D(2 * width, 1, kernel_initializer="zeros")

    def call(self, features, code, layout=None):
        code = ops.cast(code, features.dtype)
        if layout is not None:  # per-part codes: a row of P cells through the 1x1 convolution
            scale_shift = spread_part_codes(self.to_scale_shift(code[:, None])[:, 0], layout, features.shape[1])
        else:
            scale_shift = self.to_scale_shift(code)
            factor = features.shape[1] // scale_shift.shape[1]
            if factor > 1 and scale_shift.shape[1] > 1:
                scale_shift = ops.repeat(ops.repeat(scale_shift, factor, axis=1), factor, axis=2)
        scale, shift = scale_shift[..., : self.width], scale_shift[..., self.width :]
        return features * (1.0 + scale) + shift


def _code_map(code, features, layout):
    """The code as a map over the features' h x w: per-part codes laid out on `layout`, a global code [N, 1, 1, C]
    repeated, a code map as it is."""
    if layout is not None:
        return spread_part_codes(code, layout, features.shape[1])
    if code.shape[1] == 1 and features.shape[1] != 1:
        return ops.broadcast_to(code, (ops.shape(features)[0], features.shape[1], features.shape[2], code.shape[-1]))
    return code


class Generator(keras.Model):
    """A U-Net: G_enc reads the masked source, G_dec fills it from Z^A (plus skips) and the exemplar code.

    encode(source, mask) masks the source itself (the generator never sees the pixels it must fill) and returns the
    features of every level, finest first; the last one is Z^A. decode(features, code, layout) returns A^b (tanh,
    float32). The code is concatenated to Z^A and, with `code_injection="all_scales"`, also modulates every decoder
    level. Per-part codes [N, P, C] need `layout`: the source's part layout times its mask [N, S, S, P], so each
    part's code acts only inside the source's mask of that part. `generator="paper"` drops the mask channel and
    the skips (the paper's G_enc and G_dec).
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        widths = level_widths(config.base_width, config.max_width, config.code_downsamplings)
        self.skips = config.generator == "unet"
        self.context = DownsamplingStack(widths)
        self.fuse = [conv(widths[-1]), conv(widths[-1])]
        self.upsample = layers.UpSampling2D(2)
        self.up_convs = [conv(width) for width in reversed(widths[:-1])]
        self.merges = [conv(width) for width in reversed(widths[:-1])]
        self.modulations = (
            [CodeModulation(width) for width in reversed(widths[:-1])] if config.code_injection == "all_scales" else []
        )
        self.to_image = layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float32")

    def encode(self, source, mask) -> list:
        """G_enc(A * (1 - M), M): features of every level of the masked source, finest first (last = Z^A)."""
        masked = source * (1.0 - mask)
        return self.context(ops.concatenate([masked, mask], axis=-1) if self.skips else masked)

    def decode(self, features: list, code, layout=None):
        """G_dec(Z^A, Z^B'): the completed image A^b in [-1, 1], float32."""
        code = ops.cast(code, features[-1].dtype)
        x = ops.concatenate([features[-1], _code_map(code, features[-1], layout)], axis=-1)
        for fuse in self.fuse:
            x = fuse(x)
        for level, (skip, up_conv, merge) in enumerate(zip(reversed(features[:-1]), self.up_convs, self.merges)):
            x = up_conv(self.upsample(x))
            if self.modulations:
                x = self.modulations[level](x, code, layout)
            x = merge(ops.concatenate([x, skip], axis=-1) if self.skips else x)
        return self.to_image(x)

    def call(self, source, mask, code, layout=None):
        return self.decode(self.encode(source, mask), code, layout)
