"""Tests of ebgan-eval-classifier (training/eval_classifier.py): training to high accuracy on a small synthetic
set, the checkpoint round trip, CelebA, and the command line's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ebgan_tf.cli import run_in_process
from ebgan_tf.data import synthetic, synthetic_faces
from ebgan_tf.data.celeba_fixture import make_celeba_fixture
from ebgan_tf.evaluation.classifier import (
    CONFIG_FILE,
    EvalClassifierConfig,
    default_attributes,
    load_eval_classifier,
    train_eval_classifier,
)
from ebgan_tf.training import eval_classifier

IMAGE_SIZE = 32
NUM_TEST = 60
# Attributes drawn large enough to read at 32 px after a few hundred steps.
ATTRIBUTES = ("Eyeglasses", "Mustache", "Bangs", "Smiling")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("data"))
    synthetic_faces.prepare_synthetic_faces(
        path, image_size=IMAGE_SIZE, num_train=300, num_validation=4, num_test=NUM_TEST
    )
    return path


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("classifier"))
    config = EvalClassifierConfig(
        image_size=IMAGE_SIZE, attribute_names=ATTRIBUTES, steps=450, batch_size=32, learning_rate=2e-3
    )
    return train_eval_classifier(config, data_dir, output_dir, verbose=False), output_dir


@pytest.mark.slow
def test_trains_to_high_accuracy_on_real_renders(trained):
    classifier, _ = trained
    accuracy = classifier.test_accuracy
    assert accuracy["count"] == NUM_TEST
    assert set(accuracy["per_attribute"]) == set(ATTRIBUTES)
    assert accuracy["mean"] >= 0.9, accuracy
    faces = [synthetic.sample_face(seed) for seed in range(5_000, 5_020)]  # faces of no split
    rendered = np.stack([synthetic.render_face(face, IMAGE_SIZE).image for face in faces])
    labels = np.array([[face.attributes[name] for name in ATTRIBUTES] for face in faces])
    assert np.mean(classifier.predict(rendered) == labels) >= 0.85


@pytest.mark.slow
def test_checkpoint_round_trips(trained, data_dir):
    classifier, output_dir = trained
    loaded = load_eval_classifier(output_dir)
    assert loaded.attribute_names == ATTRIBUTES and loaded.image_size == IMAGE_SIZE
    assert loaded.config == classifier.config and loaded.test_accuracy == classifier.test_accuracy
    pixels = np.random.default_rng(0).integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.logits(pixels), classifier.logits(pixels))
    with open(f"{output_dir}/{CONFIG_FILE}", encoding="utf-8") as stream:
        assert json.load(stream)["dataset"] == "synthetic_faces"


def test_default_attributes_cover_every_region():
    names = default_attributes("synthetic_faces")
    assert {"Mustache", "Eyeglasses", "Bushy_Eyebrows", "Big_Nose", "Male", "Bangs"} <= set(names)
    assert "No_Beard" in default_attributes("celeb_a")


def test_loading_a_directory_without_a_classifier_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="No evaluation classifier in .*train one with `ebgan-eval-classifier"):
        load_eval_classifier(str(tmp_path))


@pytest.mark.slow
def test_trains_on_celeba_training_split(tmp_path):
    make_celeba_fixture(str(tmp_path / "celeba"), num_images=20)
    config = EvalClassifierConfig(
        dataset="celeb_a",
        image_size=IMAGE_SIZE,
        attribute_names=("Smiling", "Male"),
        steps=2,
        batch_size=4,
        width=4,
        max_width=8,
    )
    classifier = train_eval_classifier(config, str(tmp_path / "celeba"), str(tmp_path / "out"), verbose=False)
    assert classifier.test_accuracy["count"] == 2  # 10% of 20 images are test images
    assert load_eval_classifier(str(tmp_path / "out")).config.dataset == "celeb_a"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data_dir={data}"], "ebgan-eval-classifier: error: --output_dir is required."),
        (["--data_dir={data}", "--output_dir={out}", "--dataset=mnist"], "Unknown dataset 'mnist'; valid datasets:"),
        (["--data_dir={data}", "--output_dir={out}", "--attributes=Mustache,Wings"], "Unknown attribute(s) 'Wings'"),
        (["--data_dir={data}", "--output_dir={out}", "--steps=0"], "--steps must be at least 1, got 0."),
        (["--data_dir={data}", "--output_dir={out}"], "does not exist"),
    ],
)
def test_cli_errors_exit_1_with_one_line(argv, message, tmp_path, capsys):
    argv = [arg.format(data=tmp_path / "missing", out=tmp_path / "out") for arg in argv]
    assert run_in_process(eval_classifier.main, eval_classifier.define_flags, ["ebgan-eval-classifier", *argv]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("ebgan-eval-classifier: error:")
    assert not (tmp_path / "out").exists()
