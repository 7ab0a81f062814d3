"""Tests of the networks (ebgan_tf/models/{encoder,generator,discriminator,classifier}.py) and the losses."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.config import get_preset
from ebgan_tf.data.masks import CODE_PARTS, part_layout
from ebgan_tf.models import losses
from ebgan_tf.models.classifier import Classifier
from ebgan_tf.models.discriminator import Discriminator
from ebgan_tf.models.encoder import Encoder, level_widths
from ebgan_tf.models.generator import Generator, composite, gate_code
from ebgan_tf.models.landmarks import TYPICAL_LANDMARKS

# ATTRIBUTES is re-exported for test_trainer.py, which imports these names from this module.
from tests.helpers.tiny import ATTRIBUTES, TINY_CONFIG as TINY, make_batch  # noqa: F401


@pytest.mark.parametrize("preset_name", ["synthetic64", "celeba128"])
def test_every_network_has_the_documented_shapes_for_the_presets(preset_name):
    config = get_preset(preset_name).model
    size, levels = config.image_size, config.code_downsamplings
    channels = 5 * config.code_channels_per_attribute
    images, mask = tf.zeros([2, size, size, 3]), tf.ones([2, size, size, 1])
    landmarks = np.array(TYPICAL_LANDMARKS, np.float32) * size
    layout = tf.stack([part_layout(landmarks, size)] * 2) if config.code_pooling == "parts" else None
    code = Encoder(config, channels)(images, mask, layout)
    if config.code_pooling == "parts":
        assert code.shape == (2, len(CODE_PARTS), channels)
    else:
        code_size = 1 if config.code_pooling == "global" else size // 2**levels
        assert code.shape == (2, code_size, code_size, channels)
    generator = Generator(config)
    features = generator.encode(images, mask)
    widths = level_widths(config.base_width, config.max_width, levels)
    assert [tuple(f.shape) for f in features] == [(2, size // 2**i, size // 2**i, w) for i, w in enumerate(widths)]
    generated = generator.decode(features, code, layout)
    assert generated.shape == (2, size, size, 3) and generated.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(generated))) <= 1.0
    assert Discriminator(config)(images).shape == (2,)
    assert Classifier(config, 5)(images).shape == (2, 5)


def test_discriminator_has_six_stride_two_convolutions_and_a_dense_layer():
    discriminator = Discriminator(TINY)
    discriminator(tf.zeros([1, 32, 32, 3]))
    assert [layer.strides for layer in discriminator.downsamples] == [(2, 2)] * 6
    assert discriminator.to_logit.units == 1


def test_gate_code_zeroes_exactly_the_blocks_whose_label_is_zero():
    rng = np.random.default_rng(1)
    code = tf.constant(rng.normal(size=[2, 4, 4, 6]).astype(np.float32) + 3.0)  # no zeros of its own
    labels = tf.constant([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    gated = gate_code(code, labels, 3).numpy()
    for example, row in enumerate(labels.numpy()):
        for attribute, label in enumerate(row):
            block = slice(2 * attribute, 2 * attribute + 2)
            expected = code.numpy()[example, ..., block] if label else 0.0
            np.testing.assert_array_equal(gated[example, ..., block], expected)


def test_gate_code_rejects_a_code_that_does_not_split_into_blocks():
    with pytest.raises(ValueError, match="do not split into 4"):
        gate_code(tf.zeros([1, 2, 2, 6]), tf.ones([1, 4]), 4)


def test_composite_keeps_pixels_outside_the_mask_exactly():
    batch = make_batch()
    generated = tf.constant(np.random.default_rng(2).uniform(-1, 1, batch["source"].shape).astype(np.float32))
    result = composite(generated, batch["source"], batch["mask"]).numpy()
    outside, inside = batch["mask"][..., 0] == 0, batch["mask"][..., 0] == 1
    np.testing.assert_array_equal(result[outside], batch["source"][outside])
    np.testing.assert_array_equal(result[inside], generated.numpy()[inside])


def test_encoder_sees_only_the_masked_region_and_generator_only_the_rest():
    batch = make_batch()
    mask, noise = batch["mask"], np.random.default_rng(3).uniform(-1, 1, batch["source"].shape).astype(np.float32)
    encoder, generator = Encoder(TINY, 6), Generator(TINY)
    changed_outside = batch["exemplar"] * mask + noise * (1 - mask)
    np.testing.assert_array_equal(encoder(batch["exemplar"], mask), encoder(changed_outside, mask))
    changed_inside = batch["source"] * (1 - mask) + noise * mask
    for before, after in zip(generator.encode(batch["source"], mask), generator.encode(changed_inside, mask)):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(encoder(batch["exemplar"], mask), encoder(noise, mask))


def test_outputs_do_not_depend_on_the_rest_of_the_batch():
    batch = make_batch()
    networks = {"discriminator": Discriminator(TINY), "classifier": Classifier(TINY, 3)}
    for name, network in networks.items():
        together = network(batch["source"]).numpy()
        alone = network(batch["source"][:1]).numpy()
        np.testing.assert_allclose(alone, together[:1], rtol=1e-5, atol=1e-6, err_msg=name)


def test_final_outputs_are_float32_under_a_mixed_precision_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        batch = make_batch()
        encoder, generator = Encoder(TINY, 6), Generator(TINY)
        code = encoder(batch["exemplar"], batch["mask"])
        generated = generator(batch["source"], batch["mask"], code)
        assert encoder.features.stem.compute_dtype == "bfloat16"
        assert code.dtype == generated.dtype == tf.float32
        assert Discriminator(TINY)(batch["source"]).dtype == tf.float32
        assert Classifier(TINY, 3)(batch["source"]).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_l1_losses_are_per_example_means_of_absolute_differences():
    target = tf.zeros([2, 4, 4, 3])
    prediction = tf.concat([tf.fill([1, 4, 4, 3], 0.5), tf.fill([1, 4, 4, 3], -2.0)], axis=0)
    np.testing.assert_allclose(losses.reconstruction_loss(target, prediction), [0.5, 2.0])
    np.testing.assert_allclose(losses.cycle_loss(tf.ones([2, 2, 2, 4]), tf.zeros([2, 2, 2, 4])), [1.0, 1.0])


def test_classification_loss_is_binary_cross_entropy_summed_over_attributes():
    labels = tf.constant([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    logits = tf.constant([[0.0, 0.0, 0.0], [2.0, -1.0, 100.0]])
    sigmoid = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    expected = [3 * math.log(2.0), -math.log(1 - sigmoid(2.0)) - math.log(1 - sigmoid(-1.0)) + 100.0]
    np.testing.assert_allclose(losses.classification_loss(labels, logits), expected, rtol=1e-5)


def test_adversarial_losses_match_the_paper_with_a_sigmoid_discriminator():
    real, fake = tf.constant([0.0, 3.0, 200.0]), tf.constant([0.0, -1.0, -200.0])
    sigmoid = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    expected_d = [-math.log(sigmoid(r)) - math.log(1 - sigmoid(f)) for r, f in zip([0.0, 3.0], [0.0, -1.0])]
    d_loss = losses.discriminator_loss(real, fake).numpy()
    np.testing.assert_allclose(d_loss[:2], expected_d, rtol=1e-5)
    assert 0.0 <= d_loss[2] < 1e-6  # a confident, correct discriminator: no overflow, loss ~ 0
    g_loss = losses.generator_adversarial_loss(fake).numpy()
    np.testing.assert_allclose(g_loss[:2], [math.log(2.0), -math.log(sigmoid(-1.0))], rtol=1e-5)
    np.testing.assert_allclose(g_loss[2], 200.0, rtol=1e-5)  # -log(sigmoid(-200)), finite
