"""Tests of ebgan_tf/editing.py (Editor, ModelInfo) on the contract fixture model (tests/helpers/contract_model.py).

The exporter's own models (and TFLite files) are tested through the Editor in tests/export/test_export.py.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.data.masks import region_mask
from ebgan_tf.editing import CropEditor, Editor, ModelInfo
from tests.helpers.contract_model import (
    ATTRIBUTES,
    assert_same_reading,
    export_contract_model,
    random_inputs,
    template_landmarks,
)
from tests.helpers.crop_editors import crop_editor_mismatches

SIZE = 16


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """variant -> SavedModel path of the contract fixture; "older": an Att-EBGAN export without classify."""
    base = str(tmp_path_factory.mktemp("exports"))
    paths = {
        variant: export_contract_model(base, name=variant, image_size=SIZE, variant=variant)
        for variant in ("att_ebgan", "ebgan")
    }
    paths["older"] = export_contract_model(base, name="older", image_size=SIZE, classify=False)  # no classify
    return paths


@pytest.fixture(scope="module")
def editor(models) -> Editor:
    return Editor.load(models["att_ebgan"])


def info(variant: str = "att_ebgan") -> ModelInfo:
    return ModelInfo(ATTRIBUTES if variant == "att_ebgan" else (), SIZE, variant, template_landmarks(SIZE))


@pytest.mark.slow
def test_model_info_reads_the_metadata_signature(editor, models):
    assert editor.info.attribute_names == ATTRIBUTES
    assert editor.info.image_size == SIZE and editor.info.variant == "att_ebgan"
    np.testing.assert_allclose(editor.info.landmark_template, template_landmarks(SIZE))
    assert Editor.load(models["ebgan"]).info.variant == "ebgan"


def test_attributes_from_drop_and_keep():
    assert info().attributes_from() is None
    np.testing.assert_array_equal(info().attributes_from(drop=["Mustache"]), [0, 1, 1])
    np.testing.assert_array_equal(info().attributes_from(drop=["Mustache", "Wearing_Lipstick"]), [0, 1, 0])
    np.testing.assert_array_equal(info().attributes_from(keep=["Smiling"]), [0, 1, 0])
    np.testing.assert_array_equal(info().attributes_from(keep=[]), [0, 0, 0])
    assert info().attributes_from(drop=["Smiling"]).dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, variant, message",
    [
        (
            dict(drop=["Beard"]),
            "att_ebgan",
            "Unknown attribute.*'Beard'.*valid attributes: Mustache, Smiling, Wearing_Lipstick",
        ),
        (dict(keep=["Smiling", "Bald"]), "att_ebgan", "Unknown attribute.*'Bald'"),
        (dict(drop=["Mustache"], keep=["Smiling"]), "att_ebgan", "--drop or --keep, not both"),
        (dict(drop=["Mustache"]), "ebgan", "ebgan model: it has no attribute filtering.*att_ebgan"),
        (dict(keep=["Mustache"]), "ebgan", "ebgan model: it has no attribute filtering"),
    ],
)
def test_attributes_from_errors(kwargs, variant, message):
    with pytest.raises(ValueError, match=message):
        info(variant).attributes_from(**kwargs)


def test_region_mask_is_placed_on_the_landmark_template():
    mask = info().region_mask("mouth")
    assert mask.shape == (SIZE, SIZE, 1) and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, region_mask(template_landmarks(SIZE), ["mouth"], SIZE).numpy())
    assert 0 < mask.sum() < SIZE * SIZE
    assert info().region_mask(["mouth", "eyes"]).sum() > mask.sum()


@pytest.mark.slow
def test_edit_equals_the_signatures_output(editor, models):
    inputs = random_inputs(3, SIZE, len(ATTRIBUTES), seed=1)
    signatures = tf.saved_model.load(models["att_ebgan"]).signatures
    plain = signatures["edit"](**{k: tf.constant(v) for k, v in inputs.items() if k != "attributes"})["edited"]
    filtered = signatures["edit_filtered"](**{k: tf.constant(v) for k, v in inputs.items()})["edited"]
    np.testing.assert_array_equal(editor.edit(inputs["source"], inputs["exemplar"], inputs["mask"]), plain.numpy())
    np.testing.assert_array_equal(
        editor.edit(inputs["source"], inputs["exemplar"], inputs["mask"], inputs["attributes"]), filtered.numpy()
    )
    one = editor.edit(inputs["source"][1], inputs["exemplar"][1], inputs["mask"][1])  # a single image
    assert one.shape == (SIZE, SIZE, 3) and one.dtype == np.uint8
    np.testing.assert_array_equal(one, plain.numpy()[1])


def test_one_attribute_vector_applies_to_the_whole_batch(editor):
    inputs = random_inputs(2, SIZE, seed=2)
    attributes = np.array([0.0, 1.0, 1.0], np.float32)
    together = editor.edit(inputs["source"], inputs["exemplar"], inputs["mask"], attributes)
    for index in range(2):
        alone = editor.edit(inputs["source"][index], inputs["exemplar"][index], inputs["mask"][index], attributes[None])
        np.testing.assert_array_equal(together[index], alone)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda i: i.update(source=i["source"][:, :8, :8]), r"source has shape \(8, 8, 3\); this model takes 16x16x3"),
        (
            lambda i: i.update(exemplar=i["exemplar"][..., :1]),
            r"exemplar has shape \(16, 16, 1\); this model takes 16x16x3",
        ),
        (lambda i: i.update(mask=i["mask"][..., 0]), r"mask has shape \(2, 16, 16\); this model takes 16x16x1"),
        (lambda i: i.update(source=i["source"].astype(np.float32)), "source must be uint8 pixels, got float32"),
        (lambda i: i.update(exemplar=i["exemplar"].astype(np.int32)), "exemplar must be uint8 pixels, got int32"),
        (lambda i: i.update(exemplar=i["exemplar"][:1]), "same number of images"),
        (lambda i: i["mask"].__setitem__(1, 0.0), r"Empty mask for image\(s\) \[1\]: nothing to edit"),
        (lambda i: i.update(mask=np.full_like(i["mask"], 0.5)), r"Empty mask for image\(s\) \[0, 1\]"),
        (
            lambda i: i.update(attributes=np.ones(2, np.float32)),
            r"attributes has shape \(2,\); this model takes \[3\] or \[N,3\].*Mustache, Smiling, Wearing_Lipstick",
        ),
        (lambda i: i.update(attributes=np.ones((3, 3), np.float32)), r"attributes has shape \(3, 3\)"),
    ],
)
def test_edit_rejects_bad_inputs_with_a_clear_message(editor, change, message):
    inputs = random_inputs(2, SIZE, seed=3)
    inputs["attributes"] = None
    change(inputs)
    with pytest.raises(ValueError, match=message):
        editor.edit(inputs["source"], inputs["exemplar"], inputs["mask"], inputs["attributes"])


def test_attributes_on_an_ebgan_model_is_an_error(models):
    inputs = random_inputs(1, SIZE)
    ebgan = Editor.load(models["ebgan"])
    with pytest.raises(ValueError, match="ebgan model: it has no attribute filtering"):
        ebgan.edit(inputs["source"], inputs["exemplar"], inputs["mask"], np.ones(3, np.float32))
    assert ebgan.edit(inputs["source"], inputs["exemplar"], inputs["mask"]).shape == (1, SIZE, SIZE, 3)


def test_load_errors_name_the_problem(tmp_path, models):
    with pytest.raises(FileNotFoundError, match="Model not found: .*missing"):
        Editor.load(str(tmp_path / "missing"))
    base = os.path.dirname(models["ebgan"])
    assert Editor.load(base).path == models["ebgan"]  # a model base loads its highest version, as TF Serving does
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="directory without saved_model.pb.*exports/ebgan/1, or its base"):
        Editor.load(str(tmp_path / "empty"))
    other = tmp_path / "model.onnx"
    other.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a SavedModel directory nor a .tflite file"):
        Editor.load(str(other))


def test_a_model_base_loads_its_highest_numeric_version(tmp_path, models):
    base = tmp_path / "base"
    for version in ("1", "2", "10"):  # 10 is the highest: not the lowest (1), nor the last by name (2)
        shutil.copytree(models["ebgan"], base / version)
    assert Editor.load(str(base)).path == str(base / "10")
    shutil.rmtree(base / "10")
    assert Editor.load(str(base)).path == str(base / "2")


def test_classify_equals_the_signatures_output(editor, models):
    inputs = random_inputs(3, SIZE, seed=4)
    expected = (
        tf.saved_model.load(models["att_ebgan"])
        .signatures["classify"](image=tf.constant(inputs["exemplar"]))["probabilities"]
        .numpy()
    )
    assert editor.classifies
    reading = editor.classify(inputs["exemplar"])
    assert reading.shape == (3, len(ATTRIBUTES)) and reading.dtype == np.float32
    np.testing.assert_array_equal(reading, expected)
    assert_same_reading(editor.classify(inputs["exemplar"][2]), expected[2])
    assert (reading > 0.5).any() and (reading < 0.5).any(), reading  # the fixture reads both kinds


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros([2, 8, 8, 3], np.uint8), r"image has shape \(8, 8, 3\); this model takes 16x16x3"),
        (np.zeros([SIZE, SIZE], np.uint8), r"image has shape \(16, 16\); this model takes 16x16x3"),
        (np.zeros([1, SIZE, SIZE, 3], np.float32), "image must be uint8 pixels, got float32"),
    ],
)
def test_classify_rejects_bad_images_with_a_clear_message(editor, image, message):
    with pytest.raises(ValueError, match=message):
        editor.classify(image)


def test_classify_on_an_ebgan_model_or_an_older_export_is_a_clear_error_and_editing_still_works(models):
    inputs = random_inputs(1, SIZE, len(ATTRIBUTES))
    for name, message in (
        ("ebgan", "This is an ebgan model: it has no attribute classifier"),
        ("older", "This export has no classify signature .*export the model again"),
    ):
        model = Editor.load(models[name])
        assert not model.classifies
        with pytest.raises(ValueError, match=message):
            model.classify(inputs["exemplar"])
        assert model.edit(inputs["source"], inputs["exemplar"], inputs["mask"]).shape == (1, SIZE, SIZE, 3)
    older = Editor.load(models["older"])
    assert older.edit(inputs["source"], inputs["exemplar"], inputs["mask"], inputs["attributes"]).dtype == np.uint8


def test_editor_is_a_crop_editor_and_the_check_can_fail(editor):
    assert crop_editor_mismatches(editor) == []

    class OldNames:  # the switch's earlier name
        info = editor.info

        def edit(self, source, exemplar, mask, transfer=None): ...

        def edit_composed(self, source, exemplars, masks, strengths=None, transfers=None): ...

        def classify(self, images): ...

    class NoClassifier:
        info = editor.info

        def edit(self, source, exemplar, mask, attributes=None): ...

        def edit_composed(self, source, exemplars, masks, strengths=None, attributes=None): ...

    assert [problem.split(":")[0] for problem in crop_editor_mismatches(OldNames())] == [
        "OldNames.edit('source', 'exemplar', 'mask', 'transfer')",
        "OldNames.edit_composed('source', 'exemplars', 'masks', 'strengths', 'transfers')",
    ]
    assert not isinstance(NoClassifier(), CropEditor)
    assert crop_editor_mismatches(NoClassifier()) == ["NoClassifier lacks classify"]
