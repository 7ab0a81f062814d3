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
# Where the five landmarks of an aligned face lie, as fractions of the image (x, y; the synthetic faces' mean): the
# estimator's starting point, so that its first layouts already keep the parts apart (all five at the centre would
# give parts of zero size).
TYPICAL_LANDMARKS = ((0.37, 0.41), (0.62, 0.41), (0.5, 0.56), (0.39, 0.67), (0.6, 0.67))


class LandmarkEstimator(keras.Model):
    """L(x) -> landmarks [N, 5, 2] (x, y) in pixels of the S x S image (float32), in CelebA's order.

    Downsamples to 4x4 and flattens (like the classifier), then one dense layer predicts each landmark's offset from
    its place on a typical aligned face (`TYPICAL_LANDMARKS`) in units of the image size.
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
        return (ops.convert_to_tensor(TYPICAL_LANDMARKS, "float32") + offsets) * float(self.image_size)
