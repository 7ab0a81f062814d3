"""The method's options beside the paper: code pooling (per-part codes included) and injection, the paper's
generator, hole reconstruction (L1 and L2), detached cycle target, ungated code block, gate dropout, the exemplar's
own mask, the exemplar aligned to the source, the recoloured reconstruction, the classification loss's labels by
region and its reading of the composite, the weight average and learning-rate decay, and the code-spread collapse
detector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.config import LossWeights, ModelConfig, get_preset
from ebgan_tf.data.masks import CODE_PARTS
from ebgan_tf.models import losses
from ebgan_tf.models.alignment import affine_transforms, align, random_similarities, similarity_transforms, warp
from ebgan_tf.models.composing import compose
from ebgan_tf.models.encoder import Encoder, part_means
from ebgan_tf.models.generator import CodeModulation, Generator, composite, gate_code
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer
from ebgan_tf.runs import DecayAtTheEnd
from tests.helpers.tiny import ATTRIBUTES as NAMES, LANDMARK_TEMPLATE, TINY_CONFIG as TINY


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
        modulation.to_scale_shift.kernel.assign(
            tf.random.stateless_normal(modulation.to_scale_shift.kernel.shape, [5, 6])
        )
    different = generator(images, mask, code * 3.0).numpy()
    assert np.abs(different - generator(images, mask, code).numpy()).max() > 1e-3


def test_unknown_code_options_are_rejected():
    with pytest.raises(ValueError, match="code_pooling"):
        ModelConfig(code_pooling="max")
    with pytest.raises(ValueError, match="code_injection"):
        ModelConfig(code_injection="everywhere")


def _trainer(teacher_edit=None, **loss_options) -> EBGANTrainer:
    config = dataclasses.replace(TINY, ungated_code_channels=2)
    weights = dataclasses.replace(LossWeights(), **loss_options)
    trainer = EBGANTrainer(config, NAMES, "att_ebgan", weights, teacher_edit=teacher_edit)
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
    return {
        "source": _images(count, 1),
        "exemplar": _images(count, 2),
        "mask": _mask(count),
        "source_attributes": labels,
        "exemplar_attributes": tf.roll(labels, 1, axis=0),
        "source_landmarks": tf.zeros([count, 5, 2]),
    }


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
    assert any(
        not np.array_equal(before, after.numpy())
        for before, after in zip(generator_before, trainer.generator.trainable_variables)
    )


def _layout(count: int, split: int = 16) -> tf.Tensor:
    """A part layout [N, 32, 32, P]: the eyes above row `split`, the mouth from there (the rest of CODE_PARTS
    empty)."""
    layout = np.zeros([count, 32, 32, len(CODE_PARTS)], np.float32)
    layout[:, :split, :, CODE_PARTS.index("eyes")] = 1.0
    layout[:, split:, :, CODE_PARTS.index("mouth")] = 1.0
    return tf.constant(layout)


def test_part_means_average_each_part_over_its_cells_of_the_mask():
    values = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])  # cell (i, j) holds 4 i + j
    mask = np.zeros([1, 32, 32, 1], np.float32)
    mask[:, :, :16] = 1.0  # the left half
    means = part_means(values, tf.constant(mask), _layout(1)).numpy()
    assert means.shape == (1, len(CODE_PARTS), 1)
    eyes, mouth = CODE_PARTS.index("eyes"), CODE_PARTS.index("mouth")
    np.testing.assert_allclose(means[0, eyes, 0], np.mean([0, 1, 4, 5]))  # rows 0-1, columns 0-1
    np.testing.assert_allclose(means[0, mouth, 0], np.mean([8, 9, 12, 13]))
    assert means[0, CODE_PARTS.index("nose"), 0] == 0.0  # a part without cells in the mask: zeros


def test_part_pooled_encoder_gives_one_code_per_part_and_needs_a_layout():
    encoder = Encoder(dataclasses.replace(TINY, code_pooling="parts"), 6)
    code = encoder(_images(2), _mask(2), _layout(2))
    assert code.shape == (2, len(CODE_PARTS), 6)
    with pytest.raises(ValueError, match="part layout"):
        encoder(_images(2), _mask(2))


def test_a_part_code_modulates_only_the_cells_of_its_part():
    modulation = CodeModulation(4)
    features = tf.ones([1, 32, 32, 4])
    modulation(features, tf.zeros([1, len(CODE_PARTS), 6]), _layout(1))
    modulation.to_scale_shift.kernel.assign(tf.ones(modulation.to_scale_shift.kernel.shape))
    code = np.zeros([1, len(CODE_PARTS), 6], np.float32)
    code[0, CODE_PARTS.index("mouth")] = 1.0
    layout = _layout(1).numpy()
    layout[:, :, 20:] = 0.0  # the mask: the left 20 columns
    out = modulation(features, tf.constant(code), tf.constant(layout)).numpy()
    np.testing.assert_array_equal(out[0, :16], 1.0)  # the eyes' code is zero: unchanged
    np.testing.assert_array_equal(out[0, :, 20:], 1.0)  # outside the mask: unchanged
    np.testing.assert_allclose(out[0, 16:, :20], 1.0 * (1.0 + 6.0) + 6.0)  # the mouth's scale and shift


def test_the_papers_generator_has_no_mask_channel_and_no_skips():
    config = dataclasses.replace(TINY, generator="paper")
    generator = Generator(config)
    images, mask = _images(2), _mask(2)
    code = tf.zeros([2, 8, 8, 6])
    features = generator.encode(images, mask)
    assert generator.context.stem.kernel.shape[2] == 3  # the masked source only
    changed = [feature * 0.0 for feature in features[:-1]] + [features[-1]]
    np.testing.assert_array_equal(generator.decode(features, code).numpy(), generator.decode(changed, code).numpy())
    with pytest.raises(ValueError, match="generator"):
        ModelConfig(generator="resnet")


def _parts_trainer(**loss_options) -> EBGANTrainer:
    config = dataclasses.replace(TINY, code_pooling="parts", code_injection="all_scales", ungated_code_channels=2)
    trainer = EBGANTrainer(
        config,
        NAMES,
        "att_ebgan",
        dataclasses.replace(LossWeights(), **loss_options),
        attribute_parts=("mouth", "mouth", "eyes"),
    )
    trainer.compile(ema_decay=0.5)
    return trainer


def _parts_batch(count: int = 4) -> dict[str, tf.Tensor]:
    landmarks = tf.constant(np.repeat(LANDMARK_TEMPLATE[None], count, axis=0), tf.float32)
    return {
        **_batch(count),
        "exemplar_mask": tf.roll(_mask(count), 1, axis=1),
        "source_layout": _layout(count),
        "exemplar_layout": _layout(count),
        "source_landmarks": landmarks,
    }


def test_train_step_with_part_codes_own_masks_recolouring_and_the_l2_hole_term():
    trainer = _parts_trainer(hole_rec=10.0, hole_rec_l2=10.0, exemplar_mask="own", reconstruction_colour_jitter=0.3)
    logs = trainer.train_step(_parts_batch())
    for name in ("g_loss", "hole_rec", "hole_rec_l2", "rec", "cyc", "landmark_error"):
        assert logs[name].shape == (1,) and np.isfinite(logs[name].numpy()).all(), name
    with pytest.raises(ValueError, match="exemplar_mask"):
        LossWeights(exemplar_mask="theirs")


def test_swap_back_loss_is_the_hole_l1_of_the_round_trip_and_trains_encoder_and_generator():
    trainer = _parts_trainer(swap_back=10.0, exemplar_mask="own")
    batch = {**_parts_batch(), "exemplar_layout": _layout(4, split=20)}  # the exemplar's parts placed otherwise
    with tf.GradientTape() as tape:
        values = trainer._per_example_losses(batch)
    gradients = tape.gradient(values["swap_back"], trainer._generator_variables())
    # By hand: A's region drawn into the exemplar's mask by A's code, then read back from there into A's hole.
    source, exemplar, mask, own = batch["source"], batch["exemplar"], batch["mask"], batch["exemplar_mask"]
    source_layout, exemplar_layout, labels = (
        batch["source_layout"],
        batch["exemplar_layout"],
        batch["source_attributes"],
    )
    generator = trainer.generator
    source_code = gate_code(
        trainer.exemplar_code(source, mask, source_layout),
        labels,
        len(NAMES),
        trainer.model_config.ungated_code_channels,
    )
    drawn = composite(
        generator.decode(generator.encode(exemplar, own), source_code, exemplar_layout * own), exemplar, own
    )
    back_code = gate_code(
        trainer.exemplar_code(drawn, own, exemplar_layout),
        labels,
        len(NAMES),
        trainer.model_config.ungated_code_channels,
    )
    back = generator.decode(generator.encode(source, mask), back_code, source_layout * mask)
    np.testing.assert_allclose(
        values["swap_back"].numpy(), losses.hole_reconstruction_loss(source, back, mask).numpy(), rtol=1e-5
    )
    assert all(value > 0 for value in values["swap_back"].numpy())
    encoder_count = len(trainer.encoder.trainable_variables)
    assert any(g is not None and np.abs(g.numpy()).max() > 0 for g in gradients[:encoder_count])
    assert any(g is not None and np.abs(g.numpy()).max() > 0 for g in gradients[encoder_count:])
    trainer.loss_weights = dataclasses.replace(trainer.loss_weights, swap_back=0.0)
    without = trainer._per_example_losses(batch)
    assert "swap_back" not in without
    np.testing.assert_allclose(
        values["g_loss"].numpy() - without["g_loss"].numpy(), 10.0 * values["swap_back"].numpy(), rtol=1e-4
    )
    trainer.loss_weights = dataclasses.replace(trainer.loss_weights, swap_back=10.0)
    logs = trainer.train_step(batch)
    assert logs["swap_back"].shape == (1,) and np.isfinite(logs["swap_back"].numpy()).all()


def test_teacher_loss_is_the_hole_l1_between_the_unfiltered_edit_and_the_teachers_and_trains_only_the_student():
    teacher = EBGANTrainer(TINY, NAMES, "ebgan")
    teacher.build_all()
    teacher_weights = [variable.numpy() for variable in teacher.weights]
    trainer = _trainer(teacher_edit=teacher.edit, teacher=10.0, gate_dropout=0.999)  # every present attribute off
    batch = {**_batch(), "exemplar_landmarks": tf.zeros([4, 5, 2])}
    with tf.GradientTape() as tape:
        values = trainer._per_example_losses(batch, training=True)
    gradients = tape.gradient(values["teacher"], trainer._generator_variables())
    # By hand: the exemplar's code gated by its own labels (not the dropped-out ones the transfer saw), decoded into
    # the source's hole, against the teacher's edit of the pair.
    source, mask = batch["source"], batch["mask"]
    generator = trainer.generator
    unfiltered = generator.decode(
        generator.encode(source, mask),
        gate_code(trainer.exemplar_code(batch["exemplar"], mask), batch["exemplar_attributes"], len(NAMES), 2),
    )
    taught = teacher.edit(source, batch["exemplar"], mask)
    want = losses.hole_reconstruction_loss(taught, unfiltered, mask).numpy()
    np.testing.assert_allclose(values["teacher"].numpy(), want, rtol=1e-5)
    assert all(value > 0 for value in want)
    encoder_count = len(trainer.encoder.trainable_variables)
    assert any(g is not None and np.abs(g.numpy()).max() > 0 for g in gradients[:encoder_count])
    assert any(g is not None and np.abs(g.numpy()).max() > 0 for g in gradients[encoder_count:])
    # The teacher is neither trained nor part of the student's weights.
    logs = trainer.train_step(batch)
    assert logs["teacher"].shape == (1,) and np.isfinite(logs["teacher"].numpy()).all()
    for got, want_weight in zip(teacher.weights, teacher_weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), want_weight)
    assert len(trainer.weights) == len(_trainer().weights)
    without = _trainer(gate_dropout=0.999)
    without.set_weights(trainer.get_weights())
    np.testing.assert_allclose(
        trainer._per_example_losses(batch)["g_loss"].numpy() - without._per_example_losses(batch)["g_loss"].numpy(),
        10.0 * trainer._per_example_losses(batch)["teacher"].numpy(),
        rtol=1e-4,
    )


def test_part_codes_carry_an_attributes_block_only_in_its_part():
    trainer = _parts_trainer()
    code = trainer.exemplar_code(_images(2), tf.ones([2, 32, 32, 1]), _layout(2)).numpy()
    block = TINY.code_channels_per_attribute
    mouth, eyes = CODE_PARTS.index("mouth"), CODE_PARTS.index("eyes")
    assert np.all(code[:, eyes, : 2 * block] == 0.0) and np.all(code[:, mouth, 2 * block : 3 * block] == 0.0)
    assert np.abs(code[:, mouth, : 2 * block]).max() > 0 and np.abs(code[:, eyes, 2 * block : 3 * block]).max() > 0
    assert np.abs(code[:, eyes, 3 * block :]).max() > 0  # the ungated block is in every part


def test_part_code_edits_place_the_parts_by_the_given_or_the_estimated_landmarks():
    trainer = _parts_trainer()
    images, exemplars, mask = _images(2), _images(2, 5), _mask(2)
    estimated = trainer.edit(images, exemplars, mask).numpy()
    np.testing.assert_allclose(
        trainer.edit(images, exemplars, mask, None, trainer.landmarks(images), trainer.landmarks(exemplars)).numpy(),
        estimated,
        atol=1e-6,
    )
    elsewhere = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32) + 6.0, 2, axis=0)
    assert np.abs(trainer.edit(images, exemplars, mask, None, elsewhere, elsewhere).numpy() - estimated).max() > 0
    assert trainer.zero_code_edit(images, mask).shape == (2, 32, 32, 3)


def test_the_landmark_estimator_learns_the_sources_landmarks():
    trainer = _parts_trainer()
    batch = _parts_batch()
    first = trainer.train_step(batch)["landmark_error"].numpy()[0]
    for _ in range(30):
        logs = trainer.train_step(batch)
    assert logs["landmark_error"].numpy()[0] < 0.8 * first
    assert _trainer().landmarks is None  # only models with per-part codes have one


def test_the_weight_average_replaces_the_weights_only_where_the_run_keeps_one():
    trainer = _parts_trainer()
    for _ in range(3):
        trainer.train_step(_parts_batch())
    last = [variable.numpy() for variable in trainer.generator.trainable_variables]
    assert trainer.use_averaged_weights()
    averaged = [variable.numpy() for variable in trainer.generator.trainable_variables]
    assert any(not np.allclose(a, b) for a, b in zip(last, averaged))
    plain = _trainer()
    plain.train_step(_batch())
    assert not plain.use_averaged_weights()


def test_learning_rate_decays_linearly_over_the_last_fraction_of_the_run():
    schedule = DecayAtTheEnd(1e-3, total_steps=1000, fraction=0.2)
    values = [float(schedule(step)) for step in (0, 800, 900, 1000, 1200)]
    np.testing.assert_allclose(values, [1e-3, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)


def test_a_cycle_loss_with_the_encoder_fixed_in_e_of_the_edit_trains_it_only_through_the_exemplar_code():
    def step(fixed: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
        tf.keras.utils.set_random_seed(3)
        trainer = _trainer(
            rec=0.0,
            adv=0.0,
            cls=0.0,
            cyc=1.0,
            detach_cycle_target=True,
            cycle_trains_encoder=False,
            cycle_fixed_encoder=fixed,
        )
        encoder_before = [v.numpy() for v in trainer.encoder.trainable_variables]
        trainer.train_step(_batch())
        changes = [after.numpy() - before for before, after in zip(encoder_before, trainer.encoder.trainable_variables)]
        return changes, [v.numpy() for v in trainer.generator.trainable_variables]

    whole_changes, whole_generator = step(False)
    fixed_changes, fixed_generator = step(True)
    assert max(np.abs(change).max() for change in whole_changes) < 1e-7  # no L_cyc in E at all
    assert max(np.abs(change).max() for change in fixed_changes) > 1e-5  # L_cyc through Z^B -> G -> A^b
    for whole, fixed in zip(whole_generator, fixed_generator):  # the generator's update is the same
        np.testing.assert_allclose(fixed, whole, atol=1e-6)


def test_face_adv_weighs_the_adversarial_loss_of_the_face_rows_only():
    trainer = EBGANTrainer(TINY, NAMES, "att_ebgan", LossWeights(face_adv=0.0), regions=("mouth", "face"))
    trainer.compile()
    batch = {**_batch(), "mask_region": tf.constant([0, 1, 0, 1], tf.int32)}
    without_face = trainer._per_example_losses(batch)
    trainer.loss_weights = LossWeights()  # the adversarial loss in every row
    everywhere = trainer._per_example_losses(batch)
    difference = (everywhere["g_loss"] - without_face["g_loss"]).numpy()
    np.testing.assert_allclose(
        difference, [0.0, everywhere["adv_g"][1], 0.0, everywhere["adv_g"][3]], rtol=1e-4, atol=1e-5
    )
    assert everywhere["adv_g"].numpy()[[1, 3]].min() > 0.0
    trainer.loss_weights = LossWeights(face_adv=0.0)
    with pytest.raises(ValueError, match="mask_region"):
        trainer._per_example_losses(_batch())
    mouth_only = EBGANTrainer(TINY, NAMES, "att_ebgan", LossWeights(face_adv=0.0), regions=("mouth",))
    assert mouth_only._adversarial_weights(_batch()) == 1.0  # no face rows: the plain weight, no region needed
    # The shipped presets take it, and build_trainer hands the trainer the run's regions in the batches' order.
    shipped = build_trainer(get_preset("synthetic64"), "att_ebgan", ("components", "face"))
    assert shipped.regions == ("components", "face") and shipped.loss_weights.face_adv == 0.0


def test_region_cls_labels_take_the_exemplars_labels_on_the_regions_attributes_and_the_sources_elsewhere():
    shows = {"mouth": NAMES[:1], "face": NAMES}
    weights = LossWeights(cls_labels="region")
    trainer = EBGANTrainer(TINY, NAMES, "att_ebgan", weights, regions=("mouth", "face"), region_attributes=shows)
    batch = {**_batch(), "mask_region": tf.constant([0, 1, 0, 1], tf.int32)}
    source, exemplar = batch["source_attributes"].numpy(), batch["exemplar_attributes"].numpy()
    expected = exemplar.copy()
    expected[[0, 2], 1:] = source[[0, 2], 1:]  # mouth rows: the exemplar's Mustache, the source's others
    assert not np.array_equal(expected, exemplar)  # the batch tells the two forms apart
    np.testing.assert_array_equal(trainer._edit_labels(batch, batch["exemplar_attributes"]).numpy(), expected)
    # L_cls_g reads them: it differs from the paper's exactly in the rows whose labels changed (a mouth row).
    changed = (expected != exemplar).any(axis=1)
    region = trainer._per_example_losses(batch)["cls_g"].numpy()
    trainer.loss_weights = LossWeights()
    paper = trainer._per_example_losses(batch)["cls_g"].numpy()
    np.testing.assert_allclose(region[~changed], paper[~changed], rtol=1e-5)
    assert np.abs(region[changed] - paper[changed]).min() > 1e-3
    trainer.loss_weights = weights
    with pytest.raises(ValueError, match="mask_region"):
        trainer._per_example_losses(_batch())
    with pytest.raises(ValueError, match="cls_labels 'source'"):
        LossWeights(cls_labels="source")
    with pytest.raises(ValueError, match="the attributes each one shows"):
        EBGANTrainer(TINY, NAMES, "att_ebgan", weights, regions=("mouth", "face"))
    # build_trainer gives the trainer the preset's table: a brows row reads the exemplar's brows only.
    built = build_trainer(get_preset("synthetic64"), "att_ebgan", ("mouth", "brows"))
    brows = dict(zip(built.attribute_names, built.region_shows.numpy()[1]))
    assert {name for name, shown in brows.items() if shown} == {"Bushy_Eyebrows", "Arched_Eyebrows"}


@pytest.mark.parametrize("on_composite", [False, True])
def test_cls_on_composite_has_the_classifier_read_the_edit_with_the_sources_pixels_outside_the_mask(on_composite):
    trainer = EBGANTrainer(TINY, NAMES, "att_ebgan", LossWeights(cls_on_composite=on_composite))
    batch, read = _batch(), []
    classifier = trainer.classifier

    def recording(images):
        read.append(images)
        return classifier(images)

    object.__setattr__(trainer, "classifier", recording)
    values = trainer._per_example_losses(batch)
    source, mask = batch["source"].numpy(), batch["mask"].numpy() > 0
    edits = [image.numpy() for image in read if not np.array_equal(image.numpy(), source)]
    assert len(edits) == 1  # C reads the source for L_C and the edit for L_cls_g
    outside = np.broadcast_to(~mask, source.shape)
    assert np.array_equal(edits[0][outside], source[outside]) == on_composite
    assert not np.array_equal(edits[0][~outside], source[~outside])
    np.testing.assert_allclose(
        values["cls_g"].numpy(),
        losses.classification_loss(batch["exemplar_attributes"], classifier(tf.constant(edits[0]))).numpy(),
        rtol=1e-5,
    )


def test_alignment_moves_each_landmark_onto_the_target_by_a_similarity():
    landmarks = np.array([[[10.0, 12.0], [22.0, 12.0], [16.0, 17.0], [12.0, 22.0], [20.0, 22.0]]], np.float32)
    angle, scale, shift = 0.2, 1.1, np.array([2.0, -1.5], np.float32)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    target = (landmarks - 16.0) @ rotation.T + 16.0 + shift
    image = np.zeros([1, 32, 32, 1], np.float32)
    x, y = landmarks[0, 2].astype(int)
    image[0, y, x] = 1.0  # a dot on the nose
    moved = align(image, landmarks, target).numpy()[0, ..., 0]
    row, column = np.unravel_index(np.argmax(moved), moved.shape)
    assert abs(column - target[0, 2, 0]) <= 1.0 and abs(row - target[0, 2, 1]) <= 1.0
    np.testing.assert_allclose(align(image, landmarks, landmarks).numpy(), image, atol=1e-5)  # same pose: unchanged


def _tensorflow_warp(images, transforms) -> np.ndarray:
    """`images` resampled by TensorFlow's own projective transform (bilinear, edges repeated): `warp`'s reference."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=images.shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    ).numpy()


def test_eyes_mouth_alignment_puts_the_eyes_and_the_mouths_centre_exactly_on_the_target():
    rng = np.random.default_rng(1)
    landmarks = rng.uniform(6.0, 26.0, [3, 5, 2]).astype(np.float32)
    target = landmarks @ np.array([[1.1, 0.1], [-0.05, 0.9]], np.float32) + rng.normal(0.0, 1.0, [3, 5, 2]).astype(
        np.float32
    )
    transforms = affine_transforms(landmarks, target).numpy()  # output (target) pixel -> input pixel

    def anchors(points):
        return np.concatenate([points[:, :2], points[:, 3:].mean(axis=1, keepdims=True)], axis=1)

    x, y = anchors(target)[..., 0], anchors(target)[..., 1]
    mapped = np.stack(
        [
            transforms[:, 0, None] * x + transforms[:, 1, None] * y + transforms[:, 2, None],
            transforms[:, 3, None] * x + transforms[:, 4, None] * y + transforms[:, 5, None],
        ],
        axis=-1,
    )
    np.testing.assert_allclose(mapped, anchors(landmarks), atol=1e-3)
    # The nose and the mouth's width are not anchors: a similarity fitted to all five would not be exact here.
    assert np.abs(similarity_transforms(landmarks, target).numpy() - transforms).max() > 1e-2
    images = rng.uniform(-1.0, 1.0, [3, 32, 32, 3]).astype(np.float32)
    reference = _tensorflow_warp(images, transforms)
    np.testing.assert_allclose(align(images, landmarks, target, "eyes_mouth").numpy(), reference, atol=1e-5)


def test_a_random_similarity_moves_the_landmarks_with_the_face():
    landmarks = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32), 3, axis=0)
    transforms, moved = random_similarities(landmarks, 32, 0.08, tf.constant([3, 4]))
    image = np.zeros([3, 32, 32, 1], np.float32)
    x, y = np.round(landmarks[0, 2]).astype(int)
    image[:, y, x] = 1.0  # a dot on the nose
    warped = warp(image, transforms).numpy()
    reference = _tensorflow_warp(image, transforms)
    np.testing.assert_allclose(warped, reference, atol=1e-5)
    for face in range(3):
        row, column = np.unravel_index(np.argmax(warped[face, ..., 0]), (32, 32))
        expected = moved[face, 2].numpy() + ([x, y] - landmarks[face, 2])  # the dot sat at the rounded nose
        assert abs(column - expected[0]) <= 1.0 and abs(row - expected[1]) <= 1.0
    assert np.abs(moved.numpy() - landmarks).max() > 0.5  # the draws moved the faces
    unmoved, same = random_similarities(landmarks, 32, 0.0, tf.constant([3, 4]))
    np.testing.assert_allclose(same.numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(warp(image, unmoved).numpy(), image, atol=1e-5)


def test_landmark_jitter_trains_the_estimator_on_moved_faces_and_is_off_outside_training():
    config = dataclasses.replace(TINY, code_injection="all_scales", exemplar_alignment="landmarks")
    trainer = EBGANTrainer(config, NAMES, "ebgan", LossWeights(hole_rec=10.0, landmark_jitter=0.05))
    trainer.compile()
    faces = _images(4)
    landmarks = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32), 4, axis=0)
    plain = np.linalg.norm(trainer.landmarks(faces).numpy() - landmarks, axis=-1).mean(axis=-1)
    np.testing.assert_allclose(trainer._landmark_error(faces, landmarks, training=False).numpy(), plain, rtol=1e-5)
    jittered = trainer._landmark_error(faces, landmarks, training=True).numpy()
    assert jittered.shape == (4,) and np.abs(jittered - plain).max() > 0.1
    batch = _parts_batch()
    logs = trainer.train_step({**batch, "exemplar_landmarks": batch["source_landmarks"]})
    assert np.isfinite(logs["landmark_error"].numpy()).all()
    with pytest.raises(ValueError, match="landmark_jitter"):
        LossWeights(landmark_jitter=-0.1)


def _aligned_trainer(kind: str = "landmarks", resampling: str = "bilinear") -> EBGANTrainer:
    config = dataclasses.replace(
        TINY, code_injection="all_scales", exemplar_alignment=kind, exemplar_resampling=resampling
    )
    trainer = EBGANTrainer(config, NAMES, "ebgan", LossWeights(hole_rec=10.0))
    trainer.compile()
    return trainer


@pytest.mark.parametrize("kind", ["landmarks", "eyes_mouth"])
def test_an_aligned_exemplar_is_coded_in_the_sources_pose_by_the_given_or_the_estimated_landmarks(kind):
    trainer = _aligned_trainer(kind)
    images, exemplars, mask = _images(2), _images(2, 5), _mask(2)
    source_landmarks = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32), 2, axis=0)
    exemplar_landmarks = source_landmarks * 0.9 + 3.0
    edited = trainer.edit(images, exemplars, mask, None, source_landmarks, exemplar_landmarks).numpy()
    code = trainer.encoder(align(exemplars, exemplar_landmarks, source_landmarks, kind), mask)
    np.testing.assert_allclose(edited, trainer._fill(images, mask, code, None).numpy(), atol=1e-5)
    unaligned = trainer._fill(images, mask, trainer.encoder(exemplars, mask), None).numpy()
    assert np.abs(edited - unaligned).max() > 1e-3
    estimated = trainer.edit(images, exemplars, mask, None, trainer.landmarks(images), trainer.landmarks(exemplars))
    np.testing.assert_allclose(trainer.edit(images, exemplars, mask).numpy(), estimated.numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", ["landmarks", "eyes_mouth"])
def test_training_with_an_aligned_exemplar_learns_the_landmarks_and_rejects_per_part_codes(kind):
    moved = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32) + 2.0, 4, axis=0)
    batch = {**_parts_batch(), "exemplar_landmarks": tf.constant(moved)}
    logs = _aligned_trainer(kind).train_step(batch)
    for name in ("g_loss", "hole_rec", "cyc", "landmark_error"):
        assert logs[name].shape == (1,) and np.isfinite(logs[name].numpy()).all(), name
    with pytest.raises(ValueError, match="exemplar_alignment"):
        ModelConfig(code_pooling="parts", exemplar_alignment=kind)
    with pytest.raises(ValueError, match="exemplar_alignment"):
        ModelConfig(exemplar_alignment="eyes")


def test_alignment_samples_as_tensorflows_projective_transform():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1.0, 1.0, [3, 32, 32, 3]).astype(np.float32)
    landmarks = rng.uniform(8.0, 24.0, [3, 5, 2]).astype(np.float32)
    target = landmarks * 1.1 + rng.normal(0.0, 1.0, [3, 5, 2]).astype(np.float32)
    reference = _tensorflow_warp(images, similarity_transforms(landmarks, target))
    aligned = align(images, landmarks, target).numpy()
    np.testing.assert_allclose(aligned, reference, atol=1e-5)
    assert np.abs(aligned - images).mean() > 0.1


def test_bicubic_resampling_is_keys_cubic_convolution_and_keeps_a_thin_lines_contrast():
    # Keys' kernel (a = -0.5) reproduces every quadratic exactly inside the image; bilinear only the linear ones.
    rows, columns = np.mgrid[0:32, 0:32].astype(np.float32)
    quadratic = (0.01 * (columns - 12.0) ** 2 - 0.02 * (rows - 20.0) * columns + 0.005 * rows**2)[None, ..., None]
    transform = np.array([1.04, 0.06, 0.8, -0.05, 0.97, 1.3, 0.0, 0.0], np.float32)
    x = transform[0] * columns + transform[1] * rows + transform[2]
    y = transform[3] * columns + transform[4] * rows + transform[5]
    exact = 0.01 * (x - 12.0) ** 2 - 0.02 * (y - 20.0) * x + 0.005 * y**2
    inside = (slice(2, 26), slice(2, 26))  # where every tap lies in the image
    for resampling in ("bicubic", "bilinear"):
        warped = warp(quadratic, transform[None], resampling).numpy()[0, ..., 0]
        reproduced = np.abs(warped[inside] - exact[inside]).max() < 1e-4  # the bilinear misses by about 4e-3
        assert reproduced == (resampling == "bicubic"), resampling
    # A one-pixel line moved by a quarter pixel: both kernels keep its mass; the cubic keeps more of its peak.
    line = np.zeros([1, 16, 16, 1], np.float32)
    line[0, :, 8] = 1.0
    quarter = np.array([[1.0, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0, 0.0]], np.float32)
    peaks = {}
    for resampling in ("bilinear", "bicubic"):
        moved = warp(line, quarter, resampling).numpy()[0, 8, :, 0]
        np.testing.assert_allclose(moved.sum(), 1.0, atol=1e-5)
        peaks[resampling] = moved.max()
        whole = np.array([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]], np.float32)
        np.testing.assert_allclose(warp(line, whole, resampling).numpy()[0, 8, :, 0], np.roll(line[0, 8, :, 0], -1))
    assert peaks["bilinear"] == pytest.approx(0.75) and peaks["bicubic"] == pytest.approx(0.8672, abs=1e-3)
    with pytest.raises(ValueError, match="Unknown resampling 'lanczos'"):
        warp(line, quarter, "lanczos")
    with pytest.raises(ValueError, match="exemplar_resampling"):
        ModelConfig(exemplar_resampling="lanczos", exemplar_alignment="eyes_mouth")
    with pytest.raises(ValueError, match="needs an exemplar_alignment"):
        ModelConfig(exemplar_resampling="bicubic")


def test_a_bicubic_model_aligns_its_exemplar_bicubically_in_an_edit_and_trains():
    trainer = _aligned_trainer("eyes_mouth", "bicubic")
    moved = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32) + 0.5, 4, axis=0)
    sources = tf.random.stateless_uniform([4, 32, 32, 3], [5, 6], -1.0, 1.0)
    template = np.repeat(LANDMARK_TEMPLATE[None].astype(np.float32), 4, axis=0)
    aligned = trainer.aligned_exemplar(sources, sources, template, moved).numpy()
    expected = align(sources, moved, template, "eyes_mouth", "bicubic").numpy()
    np.testing.assert_allclose(aligned, expected, atol=1e-6)
    assert np.abs(aligned - align(sources, moved, template, "eyes_mouth").numpy()).max() > 1e-2
    batch = {**_parts_batch(), "exemplar_landmarks": tf.constant(moved)}
    logs = trainer.train_step(batch)
    assert np.isfinite(logs["g_loss"].numpy()).all()


def test_a_composed_edit_of_one_part_at_full_strength_aligns_the_exemplar_as_the_edit_does():
    trainer = _aligned_trainer()
    images, exemplars, mask = _images(2), _images(2, 5), _mask(2)
    composed = compose(trainer, images, exemplars[:, None], mask[:, None], tf.ones([2, 1]))
    np.testing.assert_allclose(composed.numpy(), trainer.edit(images, exemplars, mask).numpy(), atol=1e-5)
