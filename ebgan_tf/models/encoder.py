"""The exemplar encoder E(B, M) -> Z^B, and the downsampling stack it shares with G_enc and the classifier."""

from __future__ import annotations

import keras
from keras import layers, ops

from ebgan_tf.config import ModelConfig


def level_widths(base_width: int, max_width: int, levels: int) -> list[int]:
    """Channel widths at resolution levels 0..levels: `base_width` doubling per level, capped at `max_width`."""
    return [min(base_width * 2**level, max_width) for level in range(levels + 1)]


def conv(width: int, kernel: int = 3, stride: int = 1, **kwargs) -> layers.Conv2D:
    """A 'same'-padded convolution followed by LeakyReLU(0.2): the building block of every network here."""
    return layers.Conv2D(width, kernel, strides=stride, padding="same", activation="leaky_relu", **kwargs)


class DownsamplingStack(layers.Layer):
    """A 3x3 stem at full resolution, then per level a 4x4 stride-2 and a 3x3 convolution.

    Returns the features of every level, finest first (len(widths) tensors); the last one is the coarsest.
    """

    def __init__(self, widths: list[int], **kwargs):
        super().__init__(**kwargs)
        self.stem = conv(widths[0])
        self.downsamples = [conv(width, 4, 2) for width in widths[1:]]
        self.refines = [conv(width) for width in widths[1:]]

    def call(self, inputs):
        features = [self.stem(inputs)]
        for downsample, refine in zip(self.downsamples, self.refines):
            features.append(refine(downsample(features[-1])))
        return features


def area_downsample(maps, size: int):
    """Maps [N, H, W, K] averaged over blocks down to size x size (H a multiple of size)."""
    factor = maps.shape[1] // size
    return ops.average_pool(maps, factor, factor) if factor > 1 else maps


def masked_mean(values, mask):
    """Mean of `values` [N, h, w, C] over the cells of `mask` [N, H, W, 1] (area-downsampled to h x w) -> [N, 1, 1, C].

    An empty mask gives zeros."""
    weights = area_downsample(mask, values.shape[1])
    total = ops.sum(weights, axis=(1, 2), keepdims=True)
    return ops.sum(values * weights, axis=(1, 2), keepdims=True) / ops.maximum(total, 1e-6)


def part_means(values, mask, layout):
    """Per-part means of `values` [N, h, w, C] over the cells of mask [N, H, W, 1] x layout [N, H, W, P] -> [N, P, C].

    A part with no cell in the mask gives zeros."""
    weights = area_downsample(mask * layout, values.shape[1])
    totals = ops.sum(weights, axis=(1, 2))  # [N, P]
    sums = ops.einsum("nhwp,nhwc->npc", weights, values)
    return sums / ops.maximum(totals, 1e-6)[..., None]


class Encoder(keras.Model):
    """E(B, M): the code Z^B of the exemplar's masked region (float32, linear).

    The input is concat(B * M, M): the encoder sees only the region to transfer, and the mask channel tells
    "outside the region" apart from pixels that happen to be 0 (mid-grey in [-1, 1]). The code is the map
    [N, S/2**d, S/2**d, code_channels] (`code_pooling="spatial"`), its mean over the mask [N, 1, 1, code_channels]
    (`"global"`), or one mean per face part over the mask's cells of that part [N, P, code_channels] (`"parts"`, with
    the exemplar's part layout [N, S, S, P]: `ebgan_tf.data.masks.part_layout`).
    """

    def __init__(self, config: ModelConfig, code_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.code_channels = code_channels
        self.pooling = config.code_pooling
        self.features = DownsamplingStack(level_widths(config.base_width, config.max_width, config.code_downsamplings))
        self.to_code = layers.Conv2D(code_channels, 3, padding="same", dtype="float32")

    def call(self, image, mask, layout=None):
        code = self.to_code(self.features(ops.concatenate([image * mask, mask], axis=-1))[-1])
        mask = ops.cast(mask, code.dtype)
        if self.pooling == "parts":
            if layout is None:
                raise ValueError("An encoder with code_pooling='parts' needs the exemplar's part layout.")
            return part_means(code, mask, ops.cast(layout, code.dtype))
        return masked_mean(code, mask) if self.pooling == "global" else code
