"""Tests of the `edit_composed` signature (docs/export.md, "edit_composed"): one source, K exemplars, each filling its
own mask at its own strength, in the SavedModel and the TFLite file of an untrained tiny model with per-part codes
(one generator pass, Att-EBGAN) and one with a global code (part by part, EBGAN).

The claim that each part follows its own exemplar's ground truth needs a trained model: tests/shipped checks it on the
shipped models.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from ebgan_tf.data import synthetic
from ebgan_tf.data.masks import region_mask
from ebgan_tf.export.saved_model import export_saved_model
from ebgan_tf.export.tflite import export_tflite
from ebgan_tf.models.composing import part_layouts
from ebgan_tf.models.generator import spread_part_codes
from ebgan_tf.runs import load_trained
from tests.helpers.tiny import IMAGE_SIZE, LANDMARK_TEMPLATE, TINY_MODEL, write_untrained_run

SIZE = IMAGE_SIZE
CODE_GAIN = 200.0
MODELS = {
    "parts": ("att_ebgan", {**TINY_MODEL, "code_pooling": "parts"}),
    "global": ("ebgan", {**TINY_MODEL, "code_pooling": "global"}),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request, tmp_path_factory) -> dict:
    """An untrained tiny model exported to a SavedModel (loaded) and a float32 TFLite file: dict with trainer,
    signatures (SavedModel), tflite (Interpreter), attributes (n). The encoder's last layer is scaled up so that the
    untrained code visibly moves the edit (at its initial scale an exemplar changes the fill by a tenth of a level)."""
    variant, overrides = MODELS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    trainer = load_trained(
        write_untrained_run(root / "model", root / "data", variant=variant, model_overrides=overrides)
    )
    kernel = trainer.encoder.to_code.kernel
    kernel.assign(kernel * CODE_GAIN)
    saved = export_saved_model(trainer, str(root / "exports"), "model", LANDMARK_TEMPLATE)
    tflite = export_tflite(trainer, LANDMARK_TEMPLATE, str(root / "tflite"), ("float32",))["float32"]
    return dict(
        kind=request.param,
        trainer=trainer,
        signatures=tf.saved_model.load(saved).signatures,
        tflite=Interpreter(model_path=tflite),
        attributes=len(trainer.attribute_names),
    )


def faces(count: int, seed: int) -> np.ndarray:
    return np.stack([synthetic.render_face(synthetic.sample_face(seed + index), SIZE).image for index in range(count)])


def masks_of(*regions: str, count: int = 1) -> np.ndarray:
    """float32 [count, K, S, S, 1]: one region of the landmark template per part."""
    parts = np.stack([region_mask(LANDMARK_TEMPLATE, region, SIZE).numpy() for region in regions])
    return np.broadcast_to(parts, (count, *parts.shape)).astype(np.float32).copy()


def composed_inputs(
    model: dict,
    count: int = 1,
    regions: tuple[str, ...] = ("eyes", "mouth"),
    strengths: float | np.ndarray = 1.0,
    seed: int = 10,
) -> dict[str, np.ndarray]:
    parts = len(regions)
    images = faces(count * (1 + parts), seed)
    return {
        "source": images[:count],
        "exemplars": images[count:].reshape(count, parts, SIZE, SIZE, 3),
        "masks": masks_of(*regions, count=count),
        "strengths": np.broadcast_to(np.float32(strengths), (count, parts)).astype(np.float32).copy(),
        "attributes": np.ones([count, parts, model["attributes"]], np.float32),
    }


def run(model: dict, signature: str, inputs: dict[str, np.ndarray], tflite: bool = False) -> np.ndarray:
    if tflite:
        return model["tflite"].get_signature_runner(signature)(**inputs)["edited"]
    return model["signatures"][signature](**{key: tf.constant(value) for key, value in inputs.items()})[
        "edited"
    ].numpy()


def level_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def test_the_signature_has_the_contracts_inputs_and_output(model):
    function = model["signatures"]["edit_composed"]
    n = model["attributes"]
    specs = {name: (spec.dtype, spec.shape.as_list()) for name, spec in function.structured_input_signature[1].items()}
    assert specs == {
        "source": (tf.uint8, [None, SIZE, SIZE, 3]),
        "exemplars": (tf.uint8, [None, None, SIZE, SIZE, 3]),
        "masks": (tf.float32, [None, None, SIZE, SIZE, 1]),
        "strengths": (tf.float32, [None, None]),
        "attributes": (tf.float32, [None, None, n]),
    }
    output = function.structured_outputs["edited"]
    assert (output.dtype, output.shape.as_list()) == (tf.uint8, [None, SIZE, SIZE, 3])
    assert "edit_composed" in model["tflite"].get_signature_list()


@pytest.mark.parametrize("tflite", [False, True], ids=["saved_model", "tflite"])
def test_outside_the_union_of_the_masks_the_output_is_the_source_bit_for_bit(model, tflite):
    rng = np.random.default_rng(0)
    inputs = composed_inputs(model, regions=("eyes", "mouth", "nose"), strengths=rng.random([1, 3]))
    inputs["masks"] = (rng.random(inputs["masks"].shape) < 0.2).astype(np.float32)  # scattered pixels
    edited = run(model, "edit_composed", inputs, tflite)
    outside = ~np.any(inputs["masks"][..., 0] > 0.5, axis=1)
    np.testing.assert_array_equal(edited[outside], inputs["source"][outside])
    assert level_difference(edited, inputs["source"]) > 0  # the masked pixels were edited


@pytest.mark.parametrize("tflite", [False, True], ids=["saved_model", "tflite"])
def test_one_part_at_full_strength_is_the_plain_edit(model, tflite):
    inputs = composed_inputs(model, regions=("mouth",))
    plain = run(
        model,
        "edit",
        {"source": inputs["source"], "exemplar": inputs["exemplars"][:, 0], "mask": inputs["masks"][:, 0]},
        tflite,
    )
    assert level_difference(run(model, "edit_composed", inputs, tflite), plain) <= 2


def test_one_part_with_attributes_filtered_is_edit_filtered(model):
    if model["trainer"].classifier is None:
        pytest.skip("EBGAN has no edit_filtered (it ignores attributes)")
    inputs = composed_inputs(model, count=2, regions=("mouth",))
    inputs["attributes"][:, 0, ::2] = 0.0
    filtered = run(
        model,
        "edit_filtered",
        {
            "source": inputs["source"],
            "exemplar": inputs["exemplars"][:, 0],
            "mask": inputs["masks"][:, 0],
            "attributes": inputs["attributes"][:, 0],
        },
    )
    assert level_difference(run(model, "edit_composed", inputs), filtered) <= 2


@pytest.mark.parametrize("tflite", [False, True], ids=["saved_model", "tflite"])
def test_strength_zero_gives_the_sources_own_region(model, tflite):
    inputs = composed_inputs(model, regions=("mouth",), strengths=0.0)
    own = run(
        model, "edit", {"source": inputs["source"], "exemplar": inputs["source"], "mask": inputs["masks"][:, 0]}, tflite
    )
    assert level_difference(run(model, "edit_composed", inputs, tflite), own) <= 2
    # Two parts on the same mask at strength 0: the same region, whatever the exemplars.
    twice = {
        **inputs,
        "exemplars": faces(2, 90)[None],
        "masks": np.repeat(inputs["masks"], 2, axis=1),
        "strengths": np.zeros([1, 2], np.float32),
        "attributes": np.repeat(inputs["attributes"], 2, axis=1),
    }
    assert level_difference(run(model, "edit_composed", twice, tflite), own) <= 2


def test_the_edit_moves_monotonically_from_strength_zero_towards_strength_one(model):
    strengths = np.linspace(0.0, 1.0, 6)
    inputs = composed_inputs(model, count=2, regions=("eyes", "mouth"))
    edits = [
        run(model, "edit_composed", {**inputs, "strengths": np.full([2, 2], value, np.float32)}).astype(float)
        for value in strengths
    ]
    inside = np.any(inputs["masks"] > 0.5, axis=1)[..., 0]

    def distance(a, b):
        return float(np.mean(np.abs(a - b)[inside]))

    towards_one = [distance(edit, edits[-1]) for edit in edits]
    from_zero = [distance(edit, edits[0]) for edit in edits]
    assert towards_one[0] > 1.0, "the exemplars must make a visible difference for the test to mean anything"
    assert all(later <= earlier + 0.05 for earlier, later in zip(towards_one, towards_one[1:])), towards_one
    assert all(later >= earlier - 0.05 for earlier, later in zip(from_zero, from_zero[1:])), from_zero


def test_each_part_is_filled_from_its_own_exemplar(model):
    """Eyes from B and mouth from C in one call: the eyes are nearer to the call taking both parts from B than to the
    one taking both from C, and the mouth the other way round (part by part; for the one pass of per-part codes, an
    untrained generator mixes the whole face: see the layout test below)."""
    if model["kind"] == "parts":
        pytest.skip("an untrained generator spreads every part's code over the face")
    inputs = composed_inputs(model, count=2, regions=("eyes", "mouth"))
    composed = run(model, "edit_composed", inputs).astype(float)
    for part in range(2):
        own = run(model, "edit_composed", {**inputs, "exemplars": inputs["exemplars"][:, [part, part]]})
        other = run(model, "edit_composed", {**inputs, "exemplars": inputs["exemplars"][:, [1 - part, 1 - part]]})
        inside = np.broadcast_to(inputs["masks"][:, part] > 0.5, composed.shape)
        to_own, to_other = (float(np.mean(np.abs(composed - edit)[inside])) for edit in (own, other))
        assert to_own < to_other / 2, (part, to_own, to_other)


def test_the_one_pass_lays_each_parts_code_on_its_own_mask():
    """Codes of part k reach exactly the pixels of mask k (divided where masks overlap), whatever K and P."""
    rng = np.random.default_rng(1)
    count, parts, size = 2, 3, 8
    layout = np.eye(5, dtype=np.float32)[rng.integers(0, 5, [count, size, size])]  # one part per pixel
    masks = (rng.random([count, parts, size, size, 1]) < 0.5).astype(np.float32)
    codes = rng.normal(size=[count, parts, 5, 4]).astype(np.float32)  # [N, K, P, C]
    spread = spread_part_codes(
        tf.constant(codes.reshape(count, parts * 5, 4)), part_layouts(tf.constant(layout), tf.constant(masks)), size
    ).numpy()
    coverage = np.maximum(masks.sum(axis=1), 1.0)
    expected = np.einsum("nhwp,nkhw,nkpc->nhwc", layout, masks[..., 0], codes) / coverage
    np.testing.assert_allclose(spread, expected, atol=1e-5)


def bad_inputs(model: dict) -> dict[str, tuple[dict[str, np.ndarray], str]]:
    good = composed_inputs(model, count=2)
    n = model["attributes"]
    nan_strengths, inf_masks = good["strengths"].copy(), good["masks"].copy()
    nan_strengths[1, 0], inf_masks[0, 1, 3, 3] = np.nan, np.inf
    return {
        "no parts": (
            {
                **good,
                "exemplars": good["exemplars"][:, :0],
                "masks": good["masks"][:, :0],
                "strengths": good["strengths"][:, :0],
                "attributes": good["attributes"][:, :0],
            },
            "at least one part",
        ),
        "batch of exemplars": ({**good, "exemplars": good["exemplars"][:1]}, "exemplars must be"),
        "parts of masks": ({**good, "masks": good["masks"][:, :1]}, "masks must be"),
        "parts of strengths": ({**good, "strengths": good["strengths"][:, :1]}, "strengths must be"),
        "attribute count": ({**good, "attributes": np.ones([2, 2, n + 1], np.float32)}, "attributes must be"),
        "mask size": ({**good, "masks": np.ones([2, 2, SIZE, SIZE, 3], np.float32)}, "masks must be"),
        "strength above 1": ({**good, "strengths": np.full([2, 2], 1.5, np.float32)}, "strengths values"),
        "negative strength": ({**good, "strengths": np.full([2, 2], -0.1, np.float32)}, "strengths values"),
        "NaN strength": ({**good, "strengths": nan_strengths}, "strengths values"),
        "Inf in a mask": ({**good, "masks": inf_masks}, "masks values"),
        "mask above 1": ({**good, "masks": good["masks"] * 2.0}, "masks values"),
        "attribute above 1": ({**good, "attributes": good["attributes"] * 3.0}, "attributes values"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no parts",
        "batch of exemplars",
        "parts of masks",
        "parts of strengths",
        "attribute count",
        "mask size",
        "strength above 1",
        "negative strength",
        "NaN strength",
        "Inf in a mask",
        "mask above 1",
        "attribute above 1",
    ],
)
def test_bad_inputs_are_invalid_argument_from_the_graph(model, case):
    inputs, message = bad_inputs(model)[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        run(model, "edit_composed", inputs)
