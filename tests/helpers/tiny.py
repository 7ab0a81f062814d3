"""The tiny set-up shared by the tests: one 32 px model config, a tiny data set's sizes, a random training batch."""

from __future__ import annotations

import os

import numpy as np

from ebgan_tf.config import ModelConfig
from ebgan_tf.models.trainer import build_trainer
from ebgan_tf.runs import RunConfig, save_final_weights, write_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SIZE = 32
SPLIT_SIZES = {"num_train": 32, "num_validation": 8, "num_test": 16}
# The one tiny network size of the suite: as a ModelConfig, as RunConfig overrides and as an --model_config flag.
TINY_MODEL = {
    "image_size": IMAGE_SIZE,
    "base_width": 8,
    "max_width": 16,
    "code_downsamplings": 2,
    "code_channels_per_attribute": 2,
    "ebgan_code_channels": 8,
    "discriminator_width": 8,
    "classifier_width": 8,
}
TINY_CONFIG = ModelConfig(**TINY_MODEL)
TINY_MODEL_FLAG = ",".join(f"{name}={value}" for name, value in TINY_MODEL.items())
ATTRIBUTES = ("Mustache", "Smiling", "Wearing_Lipstick")


# The tiny run's schedule: 6 steps (2 epochs of 3) at batch 4; checkpoints at steps 2, 4, 6.
TINY_RUN = dict(
    batch_size=4,
    epochs=2,
    steps_per_epoch=3,
    checkpoint_every=2,
    keep_checkpoints=2,
    log_every=1,
    image_every=2,
    image_rows=2,
    validation_steps=1,
)


def tiny_config(model_dir, data_dir, **overrides) -> RunConfig:
    """The tiny run (TINY_RUN) of a tiny Att-EBGAN at 32 px."""
    settings = dict(model_dir=str(model_dir), data_dir=str(data_dir), **TINY_RUN, model_overrides=TINY_MODEL)
    settings.update(overrides)
    return RunConfig(**settings)


# Five landmarks (x, y) of an aligned 32 px face, as ebgan-train records them for the export.
LANDMARK_TEMPLATE = np.array([[0.39, 0.51], [0.61, 0.51], [0.5, 0.64], [0.4, 0.74], [0.59, 0.74]]) * IMAGE_SIZE


def write_untrained_run(model_dir, data_dir, variant: str = "att_ebgan", **overrides) -> str:
    """A model_dir of an untrained tiny model (config.json with a landmark template, and final weights), as
    ebgan-train writes them; returns it."""
    config = tiny_config(model_dir, data_dir, variant=variant, **overrides).resolved()
    identity = {**config.identity(), "landmark_template": LANDMARK_TEMPLATE.tolist()}
    trainer = build_trainer(config.preset_object(), config.variant, config.regions, config.loss_weights)
    trainer.build_all()
    write_config(str(model_dir), identity)
    save_final_weights(trainer, str(model_dir))
    return str(model_dir)


def network_weights(trainer) -> list[np.ndarray]:
    networks = (trainer.encoder, trainer.generator, trainer.discriminator, trainer.classifier)
    return [variable.numpy() for network in networks if network is not None for variable in network.weights]


def make_batch(size: int = 32, batch_size: int = 4, num_attributes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """A training batch in the batch schema (docs/data.md): random images in [-1, 1], a rectangle mask per example
    (the exemplar's shifted by a pixel), random 0/1 labels, random landmarks."""
    rng = np.random.default_rng(seed)
    mask = np.zeros([batch_size, size, size, 1], np.float32)
    for index in range(batch_size):
        top, left = rng.integers(0, size // 2, size=2)
        mask[index, top : top + size // 3, left : left + size // 2] = 1.0
    return {
        "source": rng.uniform(-1, 1, [batch_size, size, size, 3]).astype(np.float32),
        "exemplar": rng.uniform(-1, 1, [batch_size, size, size, 3]).astype(np.float32),
        "mask": mask,
        "exemplar_mask": np.roll(mask, 1, axis=2),
        "source_attributes": rng.integers(0, 2, [batch_size, num_attributes]).astype(np.float32),
        "exemplar_attributes": rng.integers(0, 2, [batch_size, num_attributes]).astype(np.float32),
        "source_landmarks": rng.uniform(0, size, [batch_size, 5, 2]).astype(np.float32),
        "exemplar_landmarks": rng.uniform(0, size, [batch_size, 5, 2]).astype(np.float32),
    }
