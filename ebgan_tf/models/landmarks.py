"""The landmark estimator L (models with per-part codes): image -> its five landmarks, so that an edit given no
landmarks (an exported model's signatures take only pixels and a mask) still places each face part where it is."""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from ebgan_tf.config import ModelConfig
from ebgan_tf.models.classifier import FINAL_SIZE
from ebgan_tf.models.encoder import DownsamplingStack, level_widths

NUM_LANDMARKS = 5


class LandmarkEstimator(keras.Model):
    """L(x) -> landmarks [N, 5, 2] (x, y) in pixels of the S x S image (float32), in CelebA's order.

    Downsamples to 4x4 and flattens (like the classifier), then one dense layer predicts the offsets from the
    image's centre in units of the image size.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.image_size = config.image_size
        levels = max(1, math.ceil(math.log2(config.image_size / FINAL_SIZE)))
        self.features = DownsamplingStack(level_widths(config.classifier_width, config.max_width, levels))
        self.flatten = layers.Flatten()
        self.to_offsets = layers.Dense(2 * NUM_LANDMARKS, kernel_initializer="zeros", dtype="float32")

    def call(self, images):
        offsets = ops.reshape(self.to_offsets(self.flatten(self.features(images)[-1])), (-1, NUM_LANDMARKS, 2))
        return (0.5 + offsets) * float(self.image_size)
