"""The method's options beside the paper: code pooling and injection, hole reconstruction, detached cycle target,
ungated code block, gate dropout, and the code-spread collapse detector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.config import LossWeights, ModelConfig
from ebgan_tf.models import losses
from ebgan_tf.models.encoder import Encoder
from ebgan_tf.models.generator import Generator, gate_code
from ebgan_tf.models.trainer import EBGANTrainer
from tests.helpers.tiny import ATTRIBUTES as NAMES, TINY_CONFIG as TINY


def _images(count: int, seed: int = 0) -> tf.Tensor:
    return tf.random.stateless_uniform([count, 32, 32, 3], [seed, 1], -1.0, 1.0)


def _mask(count: int) -> tf.Tensor:
    mask = np.zeros([count, 32, 32, 1], np.float32)
    mask[:, 16:28, 8:24] = 1.0
    return tf.constant(mask)


def test_code_spread_is_zero_for_a_constant_code_and_large_for_independent_codes():
    constant = tf.ones([8, 4, 4, 6]) * 0.3
    np.testing.assert_allclose(losses.code_spread(constant).numpy(), [0.0], atol=1e-6)
    independent = tf.random.stateless_normal([64, 4, 4, 6], [1, 2])
    assert losses.code_spread(independent).numpy()[0] > 1.0


def test_code_spread_is_per_block():
    varying = tf.random.stateless_normal([16, 2, 2, 2], [3, 4])
    code = tf.concat([tf.ones([16, 2, 2, 2]), varying], axis=-1)  # block 0 constant, block 1 varies
    spread = losses.code_spread(code, num_blocks=2).numpy()
    assert spread.shape == (2,)
    assert spread[0] < 1e-6 < 0.5 < spread[1]


def test_hole_reconstruction_loss_averages_over_the_mask_only():
    source = tf.zeros([2, 4, 4, 3])
    reconstruction = tf.concat([tf.ones([2, 2, 4, 3]), 5.0 * tf.ones([2, 2, 4, 3])], axis=1)
    mask = tf.concat([tf.ones([2, 2, 4, 1]), tf.zeros([2, 2, 4, 1])], axis=1)
    np.testing.assert_allclose(losses.hole_reconstruction_loss(source, reconstruction, mask).numpy(), [1.0, 1.0])
    empty = losses.hole_reconstruction_loss(source, reconstruction, tf.zeros_like(mask)).numpy()
    np.testing.assert_allclose(empty, [0.0, 0.0])


def test_gate_code_passes_the_ungated_channels_whatever_the_labels():
    code = tf.ones([1, 2, 2, 2 * 3 + 4])
    gated = gate_code(code, tf.zeros([1, 3]), 3, ungated_channels=4).numpy()
    assert np.all(gated[..., :6] == 0.0) and np.all(gated[..., 6:] == 1.0)
    with pytest.raises(ValueError, match="do not split"):
        gate_code(tf.ones([1, 2, 2, 9]), tf.ones([1, 3]), 3, ungated_channels=1)


def test_global_code_is_one_vector_that_ignores_pixels_outside_the_mask():
    encoder = Encoder(dataclasses.replace(TINY, code_pooling="global"), 6)
    images, mask = _images(2), _mask(2)
    code = encoder(images, mask)
    assert code.shape == (2, 1, 1, 6)
    changed_outside = images * mask + (1.0 - mask) * _images(2, seed=9)
    np.testing.assert_allclose(encoder(changed_outside, mask).numpy(), code.numpy(), atol=1e-6)


@pytest.mark.parametrize("pooling", ["spatial", "global"])
def test_all_scales_generator_reads_the_code(pooling):
    config = dataclasses.replace(TINY, code_pooling=pooling, code_injection="all_scales")
    encoder, generator = Encoder(config, 6), Generator(config)
    images, mask = _images(2), _mask(2)
    code = encoder(images, mask)
    output = generator(images, mask, code)
    assert output.shape == (2, 32, 32, 3)
    assert len(generator.modulations) == config.code_downsamplings
    for modulation in generator.modulations:  # zero-initialised: give them weights to see their effect
        modulation.to_scale_shift.kernel.assign(tf.random.stateless_normal(modulation.to_scale_shift.kernel.shape,
                                                                           [5, 6]))
    different = generator(images, mask, code * 3.0).numpy()
    assert np.abs(different - generator(images, mask, code).numpy()).max() > 1e-3


def test_unknown_code_options_are_rejected():
    with pytest.raises(ValueError, match="code_pooling"):
        ModelConfig(code_pooling="max")
    with pytest.raises(ValueError, match="code_injection"):
        ModelConfig(code_injection="everywhere")


def _trainer(**loss_options) -> EBGANTrainer:
    config = dataclasses.replace(TINY, ungated_code_channels=2)
    trainer = EBGANTrainer(config, NAMES, "att_ebgan", dataclasses.replace(LossWeights(), **loss_options))
    trainer.compile()
    return trainer


def test_gate_dropout_switches_off_only_present_attributes_and_changes_with_the_step():
    trainer = _trainer(gate_dropout=0.5)
    labels = tf.constant(np.tile([[1.0, 0.0, 1.0]], [64, 1]), tf.float32)
    first = trainer._transfer_labels(labels).numpy()
    assert np.all(first[:, 1] == 0.0) and np.all(first <= labels.numpy())
    assert 0.3 < first[:, [0, 2]].mean() < 0.7
    trainer.g_optimizer.iterations.assign_add(1)
    assert not np.array_equal(trainer._transfer_labels(labels).numpy(), first)
    np.testing.assert_array_equal(_trainer()._transfer_labels(labels).numpy(), labels.numpy())


def _batch(count: int = 4) -> dict[str, tf.Tensor]:
    labels = tf.constant(np.eye(count, len(NAMES)), tf.float32)
    return {"source": _images(count, 1), "exemplar": _images(count, 2), "mask": _mask(count),
            "source_attributes": labels, "exemplar_attributes": tf.roll(labels, 1, axis=0),
            "source_landmarks": tf.zeros([count, 5, 2])}


def test_train_step_logs_the_code_spread_per_attribute_and_the_hole_loss():
    trainer = _trainer(hole_rec=10.0, detach_cycle_target=True, gate_dropout=0.3)
    logs = trainer.train_step(_batch())
    for name in ("spread", "hole_rec", *(f"spread_{attribute}" for attribute in NAMES)):
        assert logs[name].shape == (1,) and np.isfinite(logs[name].numpy()).all()
    assert logs["spread"].numpy()[0] > 0.0


def test_detached_cycle_target_sends_no_cycle_gradient_through_the_exemplar_code():
    batch = _batch()

    def encoder_gradient_norm(detach: bool) -> float:
        trainer = _trainer(rec=0.0, adv=0.0, cls=0.0, cyc=1.0, detach_cycle_target=detach)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(trainer._per_example_losses(batch)["g_loss"])
        gradients = tape.gradient(loss, trainer.encoder.trainable_variables)
        return float(tf.linalg.global_norm([g for g in gradients if g is not None]))

    tf.keras.utils.set_random_seed(0)
    attached = encoder_gradient_norm(False)
    tf.keras.utils.set_random_seed(0)
    detached = encoder_gradient_norm(True)
    assert detached != pytest.approx(attached, rel=1e-3)


def test_a_cycle_loss_that_does_not_train_the_encoder_leaves_it_unchanged_and_trains_the_generator():
    trainer = _trainer(rec=0.0, adv=0.0, cls=0.0, cyc=1.0, cycle_trains_encoder=False)
    encoder_before = [v.numpy() for v in trainer.encoder.trainable_variables]
    generator_before = [v.numpy() for v in trainer.generator.trainable_variables]
    trainer.train_step(_batch())
    for before, after in zip(encoder_before, trainer.encoder.trainable_variables):
        np.testing.assert_allclose(after.numpy(), before, atol=1e-7)
    assert any(not np.array_equal(before, after.numpy())
               for before, after in zip(generator_before, trainer.generator.trainable_variables))
