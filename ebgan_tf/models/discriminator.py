"""The discriminator D: six stride-2 convolutions, a fully connected layer, one logit per image."""

from __future__ import annotations

import keras
from keras import layers, ops

from ebgan_tf.config import ModelConfig
from ebgan_tf.models.encoder import conv, level_widths

NUM_DOWNSAMPLINGS = 6  # the paper's six down-sampling convolutional layers


class Discriminator(keras.Model):
    """D(x) -> logits [N] (float32): real image vs composite.

    The paper ends D with a sigmoid; here D returns the logit and the losses apply the sigmoid inside a
    numerically stable log-sigmoid (softplus), which is the same function without overflow for large logits.
    Works for any image size: 'same' padding takes 64 px to 1x1 and 128 px to 2x2 before the dense layer.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        widths = level_widths(config.discriminator_width, config.max_width, NUM_DOWNSAMPLINGS - 1)
        self.downsamples = [conv(width, 4, 2) for width in widths]
        self.flatten = layers.Flatten()
        self.to_logit = layers.Dense(1, dtype="float32")

    def call(self, images):
        x = images
        for downsample in self.downsamples:
            x = downsample(x)
        return ops.squeeze(self.to_logit(self.flatten(x)), axis=-1)
