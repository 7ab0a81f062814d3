"""Guards the fix of the exemplar-code collapse: a short run of the synthetic64 recipe on tiny data must keep its
exemplar codes apart (spread >= 0.05) and edit better with the right exemplar than with another face (gain > 0)."""

from __future__ import annotations

import dataclasses

import keras
import pytest

from ebgan_tf.config import get_preset
from ebgan_tf.data import pipeline
from ebgan_tf.evaluation.methods import model_method
from ebgan_tf.evaluation.pairs import SwapTruth, load_pairs
from ebgan_tf.evaluation.scoring import evaluate
from ebgan_tf.models.trainer import build_trainer
from tests.helpers.tiny import IMAGE_SIZE, TINY_MODEL

REGION = "mouth"
STEPS = 150
BATCH = 8


@pytest.mark.slow
def test_a_short_run_of_the_recipe_keeps_the_code_apart_and_uses_the_exemplar(data_dir):
    preset = get_preset("synthetic64")
    model = dataclasses.replace(preset.model, **{**TINY_MODEL, "base_width": 16, "max_width": 32})
    preset = dataclasses.replace(preset, model=model)
    keras.utils.set_random_seed(0)
    trainer = build_trainer(preset, "ebgan", [REGION])
    trainer.compile(learning_rate=preset.train.learning_rate)
    names = preset.attributes_for([REGION])
    batches = pipeline.make_dataset(
        pipeline.load_examples("synthetic_faces", data_dir, "train", IMAGE_SIZE),
        image_size=IMAGE_SIZE,
        regions=[REGION],
        attribute_names=names,
        batch_size=BATCH,
        seed=0,
        deterministic=True,
        part_layouts=preset.model.code_pooling == "parts",
    )
    trainer.fit(batches, epochs=1, steps_per_epoch=STEPS, verbose=0)

    pairs = load_pairs("synthetic_faces", data_dir, IMAGE_SIZE, num_pairs=16)
    results, _ = evaluate([model_method(trainer, "recipe")], pairs, {REGION: names}, None, SwapTruth(pairs, IMAGE_SIZE))
    scores = results["regions"][REGION]["methods"]["recipe"]
    assert scores["code_spread"]["mean"] >= 0.05, scores["code_spread"]
    assert scores["transfer"]["exemplar_gain"] > 0.0, scores["transfer"]
