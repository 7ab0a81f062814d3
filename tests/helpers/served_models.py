"""SavedModels for the hostile-client tests: an untrained tiny Att-EBGAN written by export/saved_model.py (so the
graph's own input checks are under test), the same with per-part codes (edit_composed), and a model that computes for
as long as it is asked to."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from ebgan_tf.export.saved_model import export_saved_model
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer
from ebgan_tf.runs import load_trained
from tests.helpers.contract_model import template_landmarks
from tests.helpers.tiny import IMAGE_SIZE, LANDMARK_TEMPLATE, TINY_MODEL, tiny_config, write_untrained_run


def export_untrained_att_ebgan(export_base: str, name: str = "ebgan") -> str:
    """`<export_base>/<name>/1/`: the tiny Att-EBGAN of tests.helpers.tiny, untrained, exported like ebgan-export."""
    config = tiny_config(os.path.join(export_base, ".run"), os.path.join(export_base, ".data")).resolved()
    trainer = build_trainer(config.preset_object(), config.variant, config.regions, config.loss_weights)
    trainer.build_all()
    return export_saved_model(trainer, export_base, name, template_landmarks(IMAGE_SIZE), version=1)


def composing_trainer(root: str) -> EBGANTrainer:
    """An untrained tiny Att-EBGAN with per-part codes (32 px), its run written to `<root>/model` and loaded."""
    run = write_untrained_run(
        os.path.join(root, "model"), os.path.join(root, "data"), model_overrides={**TINY_MODEL, "code_pooling": "parts"}
    )
    return load_trained(run)


def export_composing_model(root: str, name: str = "parts") -> str:
    """`composing_trainer(root)` exported by the project's exporter to `<root>/exports/<name>/`: it has
    edit_composed (the contract fixture models do not)."""
    return export_saved_model(composing_trainer(root), os.path.join(root, "exports"), name, LANDMARK_TEMPLATE)


class _Spin(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")])
    def spin(self, seconds):
        """Busy for max(seconds) seconds, then returns `seconds`."""
        start = tf.timestamp()
        wanted = tf.cast(tf.reduce_max(tf.concat([seconds, [0.0]], 0)), tf.float64)
        tf.while_loop(lambda step: tf.timestamp() - start < wanted, lambda step: step + 1, [tf.constant(0)])
        return {"seconds": tf.identity(seconds)}


def export_slow_model(base_path: str, name: str = "slow") -> str:
    """`<base_path>/<name>/1/`: signature serving_default, seconds float32 [N] -> seconds, busy that long."""
    module = _Spin()
    path = os.path.join(base_path, name, "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.spin})
    return path


def tiny_inputs(count: int, num_attributes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid edit_filtered inputs at the tiny model's size (a centred square mask)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros([count, IMAGE_SIZE, IMAGE_SIZE, 1], np.float32)
    mask[:, IMAGE_SIZE // 4 : 3 * IMAGE_SIZE // 4, IMAGE_SIZE // 4 : 3 * IMAGE_SIZE // 4] = 1.0
    return {
        "source": rng.integers(0, 256, [count, IMAGE_SIZE, IMAGE_SIZE, 3], dtype=np.uint8),
        "exemplar": rng.integers(0, 256, [count, IMAGE_SIZE, IMAGE_SIZE, 3], dtype=np.uint8),
        "mask": mask,
        "attributes": np.ones([count, num_attributes], np.float32),
    }
