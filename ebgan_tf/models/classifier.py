"""The attribute classifier C (Att-EBGAN only): image -> one logit per attribute."""

from __future__ import annotations

import math

import keras
from keras import layers

from ebgan_tf.config import ModelConfig
from ebgan_tf.models.encoder import DownsamplingStack, level_widths

FINAL_SIZE = 4  # spatial size of the last feature map before the dense layer


class Classifier(keras.Model):
    """C(x) -> logits [N, n] (float32); sigmoid(logit_i) is the probability that attribute i is present.

    Downsamples to 4x4 and flattens (no global pooling), so the dense layer knows where a feature is: the
    attributes live in particular face regions.
    """

    def __init__(self, config: ModelConfig, num_attributes: int, **kwargs):
        super().__init__(**kwargs)
        levels = max(1, math.ceil(math.log2(config.image_size / FINAL_SIZE)))
        self.features = DownsamplingStack(level_widths(config.classifier_width, config.max_width, levels))
        self.flatten = layers.Flatten()
        self.to_logits = layers.Dense(num_attributes, dtype="float32")

    def call(self, images):
        return self.to_logits(self.flatten(self.features(images)[-1]))
