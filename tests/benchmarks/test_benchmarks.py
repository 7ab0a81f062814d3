"""Pure helpers of the benchmarks: FLOP counting against counts worked out from shapes, target rows, the report."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import results, run
from benchmarks.flops import convolution_flops, function_flops, profiler_float_ops
from benchmarks.training import batch_specs, random_batch
from ebgan_tf.config import RECIPE_LOSSES
from ebgan_tf.models.trainer import EBGANTrainer
from tests.helpers.tiny import ATTRIBUTES, TINY_CONFIG

IMAGE = tf.TensorSpec([2, 8, 8, 3])


def tiny_model() -> keras.Sequential:
    """3x3 conv 3->4 at 8x8, 4x4 stride-2 conv 4->6 to 4x4, flatten, dense 96->5."""
    model = keras.Sequential(
        [
            keras.Input([8, 8, 3]),
            keras.layers.Conv2D(4, 3, padding="same"),
            keras.layers.Conv2D(6, 4, strides=2, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    return model


# 2 x multiply-accumulates, batch 2: conv1 2*8*8*4 outputs x 3*3*3; conv2 2*4*4*6 outputs x 4*4*4; dense 2*5 x 96.
CONV1, CONV2, DENSE = 2 * (2 * 8 * 8 * 4) * 27, 2 * (2 * 4 * 4 * 6) * 64, 2 * (2 * 5) * 96


def test_convolution_flops_formula():
    assert convolution_flops([2, 8, 8, 4], [3, 3, 3, 4]) == CONV1


@pytest.mark.slow
def test_forward_flops_of_a_tiny_model():
    model = tiny_model()
    assert function_flops(model, IMAGE) == CONV1 + CONV2 + DENSE


@pytest.mark.slow
def test_tf_profiler_agrees_on_the_forward_graph_up_to_bias_adds():
    model = tiny_model()
    bias_adds = 2 * 8 * 8 * 4 + 2 * 4 * 4 * 6 + 2 * 5
    assert profiler_float_ops(model, IMAGE) == CONV1 + CONV2 + DENSE + bias_adds


@pytest.mark.slow
def test_training_step_counts_both_gradients():
    model = tiny_model()

    def step(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(images))
        return loss, tape.gradient(loss, model.trainable_variables)

    # Every layer: forward + weight gradient; every layer but the first also needs the gradient of its input (the
    # first one's is built by the tape but pruned, so not counted).
    assert function_flops(step, IMAGE) == 3 * (CONV1 + CONV2 + DENSE) - CONV1


def test_unknown_shapes_are_an_error():
    with pytest.raises(ValueError, match="fixed shapes"):
        function_flops(tiny_model(), tf.TensorSpec([None, 8, 8, 3]))


def _recipe_trainer(**model) -> EBGANTrainer:
    trainer = EBGANTrainer(dataclasses.replace(TINY_CONFIG, **model), ATTRIBUTES, "ebgan", RECIPE_LOSSES)
    trainer.compile()
    return trainer


def test_random_batch_follows_the_training_contract():
    batch = random_batch(batch_specs(_recipe_trainer(code_pooling="parts"), batch_size=2))
    assert batch["source"].shape == [2, 32, 32, 3] and batch["mask"].shape == [2, 32, 32, 1]
    assert batch["source_attributes"].shape == [2, len(ATTRIBUTES)]
    assert set(tf.unique(tf.reshape(batch["mask"], [-1]))[0].numpy()) <= {0.0, 1.0}
    assert float(tf.reduce_min(batch["source"])) >= -1.0 and float(tf.reduce_max(batch["source"])) <= 1.0
    landmarks = batch["exemplar_landmarks"].numpy()
    assert landmarks.min() >= 0.0 and landmarks.max() <= 31.0
    np.testing.assert_array_equal(tf.reduce_sum(batch["source_layout"], axis=-1), np.ones([2, 32, 32]))


@pytest.mark.parametrize(
    "model",
    [
        dict(code_pooling="parts"),  # the presets'
        dict(code_pooling="spatial", exemplar_alignment="eyes_mouth", exemplar_resampling="bicubic"),  # shipped
    ],
)
def test_random_batch_has_every_field_a_recipe_training_step_reads(model):
    trainer = _recipe_trainer(**model)
    assert ("source_layout" in batch_specs(trainer, 2)) is (model["code_pooling"] == "parts")
    losses = trainer.train_step(random_batch(batch_specs(trainer, batch_size=2)))
    assert {"g_loss", "hole_rec", "d_loss"} <= set(losses)
    assert all(np.isfinite(np.asarray(value)).all() for value in losses.values())


def test_target_rows():
    assert results.target_row("x", 0.5, 0.4) == ("target: x >= 0.4", "0.50 (met)")
    assert results.target_row("x", 0.5, 0.4, at_most=True)[1] == "0.50 (MISSED)"
    assert "not measured" in results.target_row("x", None, 2)[1]


def test_record_replaces_only_the_marked_block(tmp_path):
    path = str(tmp_path / "BENCHMARKS.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# Benchmarks\n\nhand-written notes\n")
    run.record(run.markdown([("peak", "matmul", "50.0")]), path)
    run.record(run.markdown([("peak", "matmul", "60.0")]), path)
    text = open(path, encoding="utf-8").read()
    assert text.startswith("# Benchmarks\n\nhand-written notes\n")
    assert text.count(run.BEGIN) == 1 and "| peak | matmul | 60.0 |" in text and "50.0" not in text
