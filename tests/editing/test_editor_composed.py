"""Tests of Editor.edit_composed (ebgan_tf/editing.py) on an untrained tiny Att-EBGAN with per-part codes, exported
to a SavedModel and a float32 TFLite file (the signature itself: tests/export/test_composed.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.data import synthetic
from ebgan_tf.editing import Editor
from ebgan_tf.export.saved_model import export_saved_model
from ebgan_tf.export.tflite import export_tflite
from tests.helpers.contract_model import export_contract_model
from tests.helpers.served_models import composing_trainer
from tests.helpers.tiny import IMAGE_SIZE, LANDMARK_TEMPLATE

SIZE = IMAGE_SIZE


@pytest.fixture(scope="module")
def editors(tmp_path_factory) -> dict[str, Editor]:
    root = tmp_path_factory.mktemp("composed")
    trainer = composing_trainer(str(root))
    saved = export_saved_model(trainer, str(root / "exports"), "model", LANDMARK_TEMPLATE)
    tflite = export_tflite(trainer, LANDMARK_TEMPLATE, str(root / "tflite"), ("float32",))["float32"]
    return {"saved_model": Editor.load(saved), "tflite": Editor.load(tflite)}


def faces(count: int, seed: int = 20) -> np.ndarray:
    return np.stack([synthetic.render_face(synthetic.sample_face(seed + index), SIZE).image for index in range(count)])


def part_masks(editor: Editor, *regions: str) -> np.ndarray:
    return np.stack([editor.info.region_mask(region) for region in regions])


@pytest.mark.parametrize("kind", ["saved_model", "tflite"])
def test_edit_composed_runs_the_signature_single_and_batched(editors, kind):
    editor = editors[kind]
    images = faces(6)
    masks = part_masks(editor, "eyes", "mouth")
    drop = editor.info.attributes_from(drop=[editor.info.attribute_names[0]])
    single = editor.edit_composed(images[0], images[1:3], masks, [0.7, 1.0], [drop, None])
    assert single.shape == (SIZE, SIZE, 3) and single.dtype == np.uint8
    reference = editors["saved_model"]._run(
        "edit_composed",
        {
            "source": images[:1],
            "exemplars": images[None, 1:3],
            "masks": masks[None],
            "strengths": np.array([[0.7, 1.0]], np.float32),
            "attributes": np.stack([drop, np.ones_like(drop)])[None],
        },
    )["edited"][0]
    assert np.abs(single.astype(int) - reference).max() <= 1
    batched = editor.edit_composed(
        images[:2], np.stack([images[2:4], images[4:6]]), np.stack([masks, masks]), [[0.7, 1.0], [0.2, 0.5]]
    )
    assert batched.shape == (2, SIZE, SIZE, 3)
    alone = editor.edit_composed(images[1], images[4:6], masks, [0.2, 0.5])
    assert np.abs(batched[1].astype(int) - alone).max() <= 1


@pytest.mark.parametrize("kind", ["saved_model", "tflite"])
def test_one_part_at_default_strength_is_edit(editors, kind):
    editor = editors[kind]
    images = faces(2)
    mask = editor.info.region_mask("mouth")
    composed = editor.edit_composed(images[0], images[1:2], mask[None])
    assert np.abs(composed.astype(int) - editor.edit(images[0], images[1], mask)).max() <= 2


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(strengths=[1.2, 0.5]), r"strengths must be in \[0, 1\]"),
        (dict(strengths=[np.nan, 0.5]), r"strengths must be in \[0, 1\]"),
        (dict(strengths=[1.0]), "one value per part"),
        (dict(exemplars=np.zeros([0, SIZE, SIZE, 3], np.uint8)), "at least one part"),
        (dict(exemplars=np.zeros([3, SIZE, SIZE, 3], np.uint8)), "N and K must match"),
        (dict(exemplars=np.zeros([2, SIZE, SIZE, 3], np.float32)), "exemplars must be uint8"),
        (dict(masks=np.zeros([2, SIZE, SIZE, 1], np.float32)), r"Empty mask for part\(s\) \[0, 1\]"),
        (dict(masks=np.full([2, SIZE, SIZE, 1], 2.0, np.float32)), r"masks must be finite values in \[0, 1\]"),
        (dict(attributes=[None]), "one attribute vector"),
        (dict(attributes=[np.ones(2), None]), "attributes has shape"),
    ],
)
@pytest.mark.parametrize("kind", ["saved_model", "tflite"])
def test_bad_arguments_are_clear_errors(editors, kind, change, message):
    editor = editors[kind]
    images = faces(3)
    arguments = dict(
        exemplars=images[1:3], masks=part_masks(editor, "eyes", "mouth"), strengths=[0.5, 0.5], attributes=None
    )
    with pytest.raises(ValueError, match=message):
        editor.edit_composed(images[0], **{**arguments, **change})


def test_the_graph_refuses_what_the_editor_would_not_send(editors):
    """The SavedModel's own check (no Python in between): a strength above 1 is INVALID_ARGUMENT."""
    editor = editors["saved_model"]
    images = faces(3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="strengths values must be finite and in"):
        editor._run(
            "edit_composed",
            {
                "source": images[:1],
                "exemplars": images[None, 1:3],
                "masks": part_masks(editor, "eyes", "mouth")[None],
                "strengths": np.full([1, 2], 1.5, np.float32),
                "attributes": np.ones([1, 2, len(editor.info.attribute_names)], np.float32),
            },
        )


def test_an_export_without_edit_composed_says_to_export_again(tmp_path):
    older = Editor.load(export_contract_model(str(tmp_path), name="older", image_size=16))
    image = np.zeros([16, 16, 3], np.uint8)
    with pytest.raises(ValueError, match="no edit_composed signature .* export the model again"):
        older.edit_composed(image, image[None], np.ones([1, 16, 16, 1], np.float32))
