"""Tests of ebgan_tf/models/trainer.py: the training step, logs, editing and weight round trips."""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.config import LossWeights, get_preset
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer
from tests.helpers.tiny import ATTRIBUTES, TINY_CONFIG as TINY, make_batch

TINY_PRESET = dataclasses.replace(get_preset("synthetic64"), model=TINY)
PAPER_LOGS = {"g_loss", "d_loss", "adv_g", "rec", "cyc", "adv_d", "spread"}
EBGAN_LOGS = PAPER_LOGS | {"hole_rec"}  # the preset's recipe adds the hole reconstruction term


def att_logs(attribute_names, base: set[str] = EBGAN_LOGS) -> set[str]:
    """Att-EBGAN's log names: EBGAN's, the classifier's losses and one code spread per attribute block."""
    return base | {"c_loss", "cls_g"} | {f"spread_{name}" for name in attribute_names}


ATT_LOGS = att_logs(TINY_PRESET.attributes_for(["mouth"]))


@dataclasses.dataclass
class Stepped:
    """A compiled trainer of TINY_PRESET (regions: mouth) after one train_step on `batch`."""

    trainer: EBGANTrainer
    batch: dict[str, np.ndarray]
    before: dict[str, list[np.ndarray]]  # each network's trainable variables before the step
    logs: dict[str, tf.Tensor]


@functools.cache
def stepped(variant: str) -> Stepped:
    """Shared by the tests of this module (building and stepping a trainer takes seconds on a busy CPU)."""
    keras.utils.set_random_seed(0)
    trainer = build_trainer(TINY_PRESET, variant, ["mouth"])
    trainer.compile()
    batch = make_batch(num_attributes=len(trainer.attribute_names))
    before = {network.name: [v.numpy() for v in network.trainable_variables] for network in networks(trainer)}
    return Stepped(trainer, batch, before, trainer.train_step(batch))


def networks(trainer: EBGANTrainer) -> list[keras.Model]:
    return [n for n in (trainer.encoder, trainer.generator, trainer.discriminator, trainer.classifier) if n is not None]


@pytest.mark.parametrize("variant, names", [("att_ebgan", ATT_LOGS), ("ebgan", EBGAN_LOGS)])
def test_one_train_step_updates_every_group_and_logs_finite_rank_one_losses(variant, names):
    run = stepped(variant)
    assert set(run.logs) == names
    for name, value in run.logs.items():
        assert value.shape == (1,) and np.isfinite(value.numpy()).all(), name
    for network in networks(run.trainer):
        old = run.before[network.name]
        assert any(not np.array_equal(o, v.numpy()) for o, v in zip(old, network.trainable_variables)), network.name
    assert int(run.trainer.g_optimizer.iterations) == int(run.trainer.d_optimizer.iterations) == 1


def test_test_step_reports_the_same_losses_without_updating():
    trainer, batch = stepped("att_ebgan").trainer, stepped("att_ebgan").batch
    weights = [v.numpy() for v in trainer.trainable_variables]
    trainer.reset_metrics()
    logs = trainer.test_step(batch)
    assert set(logs) == ATT_LOGS
    assert all(np.array_equal(w, v.numpy()) for w, v in zip(weights, trainer.trainable_variables))
    weights = trainer.loss_weights
    g_loss = (
        weights.adv * logs["adv_g"]
        + weights.rec * logs["rec"]
        + weights.cyc * logs["cyc"]
        + weights.cls * logs["cls_g"]
        + weights.hole_rec * logs["hole_rec"]
    )
    np.testing.assert_allclose(logs["g_loss"], g_loss, rtol=1e-5)


@pytest.mark.parametrize("adv", [1.0, 0.25, 0.0])
def test_loss_weights_shape_the_generator_loss(adv):
    keras.utils.set_random_seed(0)
    trainer = build_trainer(TINY_PRESET, "ebgan", ["mouth"], LossWeights(rec=1.0, cyc=0.0, cls=0.0, adv=adv))
    trainer.build_all()
    logs = trainer.test_step(make_batch(num_attributes=len(trainer.attribute_names)))
    assert float(logs["adv_g"][0]) > 0.0
    np.testing.assert_allclose(logs["g_loss"], adv * logs["adv_g"] + logs["rec"], rtol=1e-5)


def test_compile_builds_one_adam_per_group_with_the_paper_defaults_and_jit_off():
    trainer = stepped("att_ebgan").trainer
    pairs = [
        (trainer.g_optimizer, trainer.encoder.trainable_variables + trainer.generator.trainable_variables),
        (trainer.d_optimizer, trainer.discriminator.trainable_variables),
        (trainer.c_optimizer, trainer.classifier.trainable_variables),
    ]
    for optimizer, variables in pairs:
        assert isinstance(optimizer, keras.optimizers.Adam) and optimizer.built
        assert float(optimizer.learning_rate) == pytest.approx(1e-4) and float(optimizer.beta_1) == 0.5
        moments = {v.path.split("/")[-1] for v in optimizer.variables if v.path.endswith("_momentum")}
        assert len(moments) == len(variables)  # built against exactly its group's variables
    assert not trainer.jit_compile
    assert stepped("ebgan").trainer.c_optimizer is None


def test_fit_lowers_the_reconstruction_loss_and_history_holds_plain_numbers():
    keras.utils.set_random_seed(0)
    trainer = EBGANTrainer(TINY, ATTRIBUTES, "att_ebgan")
    trainer.compile(learning_rate=1e-3)
    batch = make_batch(batch_size=2)
    for key in ("source", "exemplar"):  # smooth images: a clear trend within 20 steps
        batch[key] = tf.image.resize(batch[key][:, ::8, ::8], [32, 32]).numpy()
    trainer.reset_metrics()
    before = float(trainer.test_step(batch)["rec"][0])
    history = trainer.fit(
        tf.data.Dataset.from_tensors(batch).repeat(), epochs=2, steps_per_epoch=10, verbose=0, shuffle=False
    ).history
    trainer.reset_metrics()
    after = float(trainer.test_step(batch)["rec"][0])
    assert after < 0.8 * before
    assert set(history) == att_logs(ATTRIBUTES, PAPER_LOGS)  # the paper's loss weights
    assert all(isinstance(value, float) and np.isfinite(value) for values in history.values() for value in values)
    assert history["rec"][1] < history["rec"][0]  # per-epoch means: the trackers were reset between epochs


def edit_args(run: Stepped) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return run.batch["source"], run.batch["exemplar"], run.batch["mask"]


def switches(run: Stepped, value: float) -> np.ndarray:
    return np.full([len(run.batch["source"]), len(run.trainer.attribute_names)], value, np.float32)


@pytest.mark.parametrize("variant", ["att_ebgan", "ebgan"])
def test_edit_keeps_pixels_outside_the_mask_exactly(variant):
    run = stepped(variant)
    source, _, mask = edit_args(run)
    edited = run.trainer.edit(*edit_args(run)).numpy()
    assert edited.shape == source.shape and edited.dtype == np.float32
    outside = mask[..., 0] == 0
    np.testing.assert_array_equal(edited[outside], source[outside])
    assert not np.array_equal(edited[~outside], source[~outside])


def test_ebgan_has_no_classifier_and_ignores_attributes():
    run = stepped("ebgan")
    assert run.trainer.classifier is None
    np.testing.assert_array_equal(
        run.trainer.edit(*edit_args(run)), run.trainer.edit(*edit_args(run), attributes=switches(run, 0.0))
    )


def test_att_ebgan_gate_is_attributes_times_the_classifier_reading_of_the_exemplar():
    run = stepped("att_ebgan")
    edit, args = run.trainer.edit, edit_args(run)
    bias = run.trainer.classifier.to_logits.bias
    trained_bias = bias.numpy()
    try:
        bias.assign(tf.fill(bias.shape, 50.0))  # C: every attribute present in every exemplar
        all_on = edit(*args).numpy()
        np.testing.assert_array_equal(edit(*args, attributes=switches(run, 1.0)), all_on)
        assert not np.allclose(edit(*args, attributes=switches(run, 0.0)), all_on)
        bias.assign(tf.fill(bias.shape, -50.0))  # C: no attribute present, so the attributes switch nothing on
        np.testing.assert_array_equal(
            edit(*args, attributes=switches(run, 1.0)), edit(*args, attributes=switches(run, 0.0))
        )
    finally:
        bias.assign(trained_bias)


def test_edit_runs_inside_a_tf_function_with_a_dynamic_batch():
    run = stepped("att_ebgan")
    image = tf.TensorSpec([None, 32, 32, 3], tf.float32)
    edit = tf.function(
        run.trainer.edit,
        input_signature=[
            image,
            image,
            tf.TensorSpec([None, 32, 32, 1], tf.float32),
            tf.TensorSpec([None, len(run.trainer.attribute_names)], tf.float32),
        ],
    )
    args = edit_args(run) + (switches(run, 1.0),)
    np.testing.assert_allclose(edit(*args), run.trainer.edit(*args), atol=1e-6)
    assert edit(*(arg[:1] for arg in args)).shape == (1, 32, 32, 3)


@pytest.mark.parametrize("variant", ["att_ebgan", "ebgan"])
def test_weights_round_trip_into_a_fresh_trainer(variant, tmp_path):
    run = stepped(variant)
    path = str(tmp_path / "model.weights.h5")
    run.trainer.save_weights(path)
    keras.utils.set_random_seed(1)
    fresh = build_trainer(TINY_PRESET, variant, ["mouth"])
    fresh.build_all()
    expected = run.trainer.edit(*edit_args(run))
    assert not np.array_equal(fresh.edit(*edit_args(run)), expected)
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.edit(*edit_args(run)), expected)
    assert fresh.attribute_names == TINY_PRESET.attributes_for(["mouth"]) and fresh.variant == variant


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ValueError, match="valid variants"):
        EBGANTrainer(TINY, ATTRIBUTES, "gan")
    with pytest.raises(ValueError, match="at least one attribute"):
        EBGANTrainer(TINY, (), "att_ebgan")
    with pytest.raises(ValueError, match="not divisible"):
        EBGANTrainer(dataclasses.replace(TINY, image_size=36, code_downsamplings=3), ATTRIBUTES, "ebgan")


def test_att_ebgan_training_gates_the_exemplar_code_with_the_exemplars_labels():
    """The training edit E(B) -> Z' is gated by the exemplar's labels: the losses of the edit (adversarial, cycle,
    classification of the edit) do not move when only the source's labels change, and do when the exemplar's do."""
    trainer = stepped("att_ebgan").trainer
    batch = make_batch(num_attributes=len(trainer.attribute_names), seed=1)
    batch["exemplar_attributes"] = 1.0 - batch["source_attributes"]  # every label differs between the two faces
    other_source = {**batch, "source_attributes": batch["exemplar_attributes"]}
    other_exemplar = {**batch, "exemplar_attributes": batch["source_attributes"]}
    edit_losses = ("adv_g", "cyc", "cls_g")

    def losses_of(examples: dict) -> dict[str, np.ndarray]:
        values = trainer._per_example_losses(examples, training=True)  # what train_step computes
        return {name: values[name].numpy() for name in edit_losses}

    base = losses_of(batch)
    for name, value in losses_of(other_source).items():
        np.testing.assert_allclose(value, base[name], rtol=1e-6, atol=1e-7, err_msg=name)
    changed = losses_of(other_exemplar)
    for name in ("cyc", "cls_g"):  # (one step has barely trained the discriminator: adv_g moves by 1e-5)
        assert np.abs(changed[name] - base[name]).max() > 1e-4, name
