"""The tiny training set-up shared by the training, export and fault-tolerance tests: a 32 px model and data set."""

from __future__ import annotations

import numpy as np

from ebgan_tf.runs import RunConfig

IMAGE_SIZE = 32
SPLIT_SIZES = {"num_train": 32, "num_validation": 8, "num_test": 16}
TINY_MODEL = {"image_size": IMAGE_SIZE, "base_width": 8, "max_width": 16, "code_downsamplings": 2,
              "code_channels_per_attribute": 2, "ebgan_code_channels": 8, "discriminator_width": 8,
              "classifier_width": 8}
TINY_MODEL_FLAG = ",".join(f"{name}={value}" for name, value in TINY_MODEL.items())


def tiny_config(model_dir, data_dir, **overrides) -> RunConfig:
    """6 steps (2 epochs of 3) of a tiny Att-EBGAN at 32 px, batch 4; checkpoints at steps 2, 4, 6."""
    settings = dict(model_dir=str(model_dir), data_dir=str(data_dir), batch_size=4, epochs=2, steps_per_epoch=3,
                    checkpoint_every=2, keep_checkpoints=2, log_every=1, image_every=2, image_rows=2,
                    validation_steps=1, model_overrides=TINY_MODEL)
    settings.update(overrides)
    return RunConfig(**settings)


def network_weights(trainer) -> list[np.ndarray]:
    networks = (trainer.encoder, trainer.generator, trainer.discriminator, trainer.classifier)
    return [variable.numpy() for network in networks if network is not None for variable in network.weights]
