"""Tests of the export (export/saved_model.py, tflite.py, verify.py, main.py = ebgan-export) against the
exported model contract (docs/export.md, "The exported model contract"), on a tiny Att-EBGAN trained for two steps
and a tiny untrained EBGAN.

The Att-EBGAN model is exported once per module through the ebgan-export command (SavedModel, the four TFLite
variants, int8 calibrated on CALIBRATION_EXAMPLES training examples, and --verify); the other tests read that export.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow_serving.apis import prediction_log_pb2

from ebgan_tf import metrics
from ebgan_tf.cli import VERBOSE_VARIABLE
from ebgan_tf.data.synthetic import render_face, sample_face
from ebgan_tf.editing import Editor
from ebgan_tf.export.saved_model import classify_function, edit_function, export_saved_model, next_version
from ebgan_tf.export.tflite import (
    INT8,
    TFLITE_VARIANTS,
    calibration_data,
    calibration_data_of_run,
    export_tflite,
    integer_ops,
)
from ebgan_tf.export.verify import (
    MAX_LEVEL_DIFFERENCE,
    MAX_PROBABILITY_DIFFERENCE,
    PSNR_FLOORS,
    probability_difference,
    verification_inputs,
    verify_export,
)
from ebgan_tf.images import load_image, save_image
from ebgan_tf.models.trainer import build_trainer
from ebgan_tf.runs import load_trained, read_config, run_config_from_dir
from ebgan_tf.serving.edit import PhotoOptions, edit_files
from ebgan_tf.training import train_lib
from ebgan_tf.training.distribute import make_strategy
from tests.helpers.export_fixtures import export_cli
from tests.helpers.tiny import IMAGE_SIZE, REPO_ROOT, TINY_MODEL, tiny_config, write_untrained_run

SAVED_MODEL_CLI = os.path.join(REPO_ROOT, ".venv", "bin", "saved_model_cli")
SIZE = IMAGE_SIZE
CALIBRATION_EXAMPLES = 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
    """A tiny Att-EBGAN trained for 2 steps, exported with `ebgan-export --tflite=float32,float16,dynamic,int8
    --calibration_examples=24 --data_dir=<the tiny data set> --verify`.

    Returns a dict: model_dir, trainer (the Keras model), base (--export_base), saved (SavedModel path),
    tflite (variant -> path), status, out, err (of the command).
    """
    model_dir = str(tmp_path_factory.mktemp("run") / "model")
    config = tiny_config(model_dir, data_dir, epochs=1, steps_per_epoch=2, validation_steps=0, image_every=2)
    train_lib.train(config, make_strategy("one_device"))
    base = str(tmp_path_factory.mktemp("exports"))
    status, out, err = export_cli(
        f"--model_dir={model_dir}",
        f"--export_base={base}",
        "--name=ebgan",
        f"--tflite={','.join(TFLITE_VARIANTS)}",
        f"--calibration_examples={CALIBRATION_EXAMPLES}",
        f"--data_dir={data_dir}",
        "--verify",
    )
    tflite = {
        variant: os.path.join(base, "ebgan-tflite", "1", f"model_{variant}.tflite") for variant in TFLITE_VARIANTS
    }
    return dict(
        model_dir=model_dir,
        trainer=load_trained(model_dir),
        base=base,
        saved=os.path.join(base, "ebgan", "1"),
        tflite=tflite,
        status=status,
        out=out,
        err=err,
    )


@pytest.fixture(scope="module")
def loaded(exported):
    """The exported SavedModel, loaded once."""
    return tf.saved_model.load(exported["saved"])


@pytest.fixture(scope="module")
def ebgan_model_dir(tmp_path_factory, data_dir) -> str:
    """A model_dir of an untrained tiny EBGAN (config.json + final weights, as ebgan-train writes them)."""
    return write_untrained_run(tmp_path_factory.mktemp("ebgan") / "model", data_dir, variant="ebgan")


def faces(count: int, seed: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic sources and exemplars at the model's size."""
    images = np.stack([render_face(sample_face(seed + index), SIZE).image for index in range(2 * count)])
    return images[:count], images[count:]


def saved_model_cli_signatures(path: str) -> dict[str, dict[str, dict[str, tuple[str, str]]]]:
    """signature -> {"inputs"/"outputs": {name: (dtype, shape)}}, parsed from `saved_model_cli show --all`."""
    result = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--all", "--dir", path],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
        check=True,
    )
    signatures: dict = {}
    pattern = re.compile(
        r"signature_def\['(\w+)'\]:|(inputs|outputs)\['(\w+)'\] tensor_info:\s*dtype: (\w+)\s*"
        r"shape: ([^\n]+)"
    )
    current = None
    for match in pattern.finditer(result.stdout.split("Concrete Functions:")[0]):
        if match.group(1):
            current = signatures.setdefault(match.group(1), {"inputs": {}, "outputs": {}})
        else:
            current[match.group(2)][match.group(3)] = (match.group(4), match.group(5).strip())
    return signatures


@pytest.mark.slow  # trains and exports the module's model (2 steps, SavedModel, four TFLite conversions)
def test_cli_writes_the_saved_model_tflite_files_and_passes_verify(exported):
    assert exported["status"] == 0, exported["err"]
    out = exported["out"]
    assert (
        f"SavedModel: {exported['saved']}  signatures: edit (serving_default), edit_filtered, classify, "
        "edit_composed, metadata"
    ) in out
    for variant, path in exported["tflite"].items():
        assert f"TFLite {variant}: {path} (" in out and os.path.getsize(path) > 0
    assert f"int8 calibration: {CALIBRATION_EXAMPLES} training examples (mouth in turn)" in out
    assert re.search(r"int8 edit: \d+ of \d+ ops in integer", out), out
    checks = [line for line in out.splitlines() if " vs SavedModel (" in line]
    # edit, edit_filtered, edit_composed, classify: Keras + each TFLite
    assert len(checks) == 4 * (1 + len(TFLITE_VARIANTS))
    assert all(line.endswith("ok") for line in checks), checks
    assert os.path.exists(os.path.join(exported["saved"], "saved_model.pb"))
    assert sorted(os.listdir(os.path.join(exported["base"], "ebgan"))) == ["1"]  # no temporary directory left


@pytest.mark.slow  # runs saved_model_cli in a process of its own
def test_saved_model_cli_shows_the_contract(exported):
    signatures = saved_model_cli_signatures(exported["saved"])
    n = len(exported["trainer"].attribute_names)
    images = {
        "source": ("DT_UINT8", f"(-1, {SIZE}, {SIZE}, 3)"),
        "exemplar": ("DT_UINT8", f"(-1, {SIZE}, {SIZE}, 3)"),
        "mask": ("DT_FLOAT", f"(-1, {SIZE}, {SIZE}, 1)"),
    }
    edited = {"edited": ("DT_UINT8", f"(-1, {SIZE}, {SIZE}, 3)")}
    assert {"edit", "serving_default", "edit_filtered", "classify", "metadata"} <= set(signatures)
    assert signatures["edit"] == {"inputs": images, "outputs": edited}
    assert signatures["serving_default"] == signatures["edit"]
    assert signatures["edit_filtered"] == {
        "inputs": {**images, "attributes": ("DT_FLOAT", f"(-1, {n})")},
        "outputs": edited,
    }
    assert signatures["classify"] == {
        "inputs": {"image": ("DT_UINT8", f"(-1, {SIZE}, {SIZE}, 3)")},
        "outputs": {"probabilities": ("DT_FLOAT", f"(-1, {n})")},
    }
    assert signatures["metadata"] == {
        "inputs": {},
        "outputs": {
            "attribute_names": ("DT_STRING", f"({n})"),
            "image_size": ("DT_INT32", "()"),
            "variant": ("DT_STRING", "()"),
            "landmark_template": ("DT_FLOAT", "(5, 2)"),
        },
    }


def test_metadata_assets_and_warmup_requests(exported, loaded):
    trainer, saved = exported["trainer"], exported["saved"]
    template = np.asarray(read_config(exported["model_dir"])["landmark_template"], np.float32)
    for path in [saved, *exported["tflite"].values()]:
        info = Editor.load(path).info
        assert info.attribute_names == trainer.attribute_names and len(info.attribute_names) > 1
        assert (info.image_size, info.variant) == (SIZE, "att_ebgan")
        np.testing.assert_allclose(info.landmark_template, template)
    with open(os.path.join(saved, "assets", "attributes.txt")) as handle:
        assert handle.read().splitlines() == list(trainer.attribute_names)

    records = list(tf.data.TFRecordDataset(os.path.join(saved, "assets.extra", "tf_serving_warmup_requests")))
    assert len(records) == 1
    request = prediction_log_pb2.PredictionLog.FromString(records[0].numpy()).predict_log.request
    assert request.model_spec.signature_name == "edit"
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    assert sorted(inputs) == ["exemplar", "mask", "source"]
    assert inputs["source"].shape == (1, SIZE, SIZE, 3) and inputs["source"].dtype == np.uint8
    assert inputs["mask"].shape == (1, SIZE, SIZE, 1) and inputs["mask"].dtype == np.float32
    edited = loaded.signatures["edit"](**inputs)["edited"].numpy()  # the request runs
    np.testing.assert_array_equal(edited, inputs["source"])  # its mask is empty


def test_saved_model_stores_each_edit_weight_once(exported):
    trainer = exported["trainer"]
    reader = tf.train.load_checkpoint(os.path.join(exported["saved"], "variables", "variables"))
    stored = sum(
        int(np.prod(shape))
        for name, shape in reader.get_variable_to_shape_map().items()
        if name.endswith("VARIABLE_VALUE")
    )
    edit_networks = [trainer.encoder, trainer.generator, trainer.classifier, trainer.landmarks]
    assert trainer.landmarks is not None  # the preset's per-part codes place the parts by estimated landmarks
    # Neither the discriminator nor a second copy of the edit networks' weights (the archive tracks nothing).
    assert stored == sum(network.count_params() for network in edit_networks)


def test_parity_keras_saved_model_and_tflite(exported):
    saved = Editor.load(exported["saved"])
    source, exemplar, mask = verification_inputs(saved, count=3, seed=7)
    drop = saved.info.attributes_from(drop=[saved.info.attribute_names[0]])
    for attributes in (None, drop):
        reference = saved.edit(source, exemplar, mask, attributes)
        extra = () if attributes is None else (np.tile(attributes, (3, 1)),)
        keras_result = edit_function(exported["trainer"], attributes is not None, validate=True)(
            source, exemplar, mask, *extra
        )["edited"].numpy()
        assert np.abs(keras_result.astype(int) - reference).max() <= MAX_LEVEL_DIFFERENCE
        for variant, path in exported["tflite"].items():
            result = Editor.load(path).edit(source, exemplar, mask, attributes)
            assert result.shape == reference.shape and result.dtype == np.uint8
            if variant == "float32":
                assert np.abs(result.astype(int) - reference).max() <= MAX_LEVEL_DIFFERENCE
            else:
                psnr = metrics.masked_psnr(result, reference, mask, max_psnr=100.0)
                assert np.mean(psnr) >= PSNR_FLOORS[variant], (variant, psnr)


def test_verify_export_reports_every_check_and_catches_a_wrong_model(exported, ebgan_model_dir):
    checks = verify_export(exported["trainer"], exported["saved"], exported["tflite"], count=2)
    assert [check.name for check in checks][:2] == ["Keras vs SavedModel (edit)", "TFLite float32 vs SavedModel (edit)"]
    assert len(checks) == 4 * (1 + len(TFLITE_VARIANTS)) and all(check.passed for check in checks)
    classify = {check.name: check for check in checks if check.name.endswith("(classify)")}
    assert sorted(classify) == sorted(
        ["Keras vs SavedModel (classify)"]
        + [f"TFLite {variant} vs SavedModel (classify)" for variant in TFLITE_VARIANTS]
    )
    assert classify["TFLite dynamic vs SavedModel (classify)"].bound == MAX_PROBABILITY_DIFFERENCE["dynamic"]
    assert classify["TFLite int8 vs SavedModel (classify)"].measure == "99% probability diff"
    psnr = {check.name: check for check in checks if check.measure == "PSNR in mask (dB)"}
    assert psnr["TFLite dynamic vs SavedModel (edit)"].bound == PSNR_FLOORS["dynamic"]
    assert psnr["TFLite int8 vs SavedModel (edit_composed)"].bound == PSNR_FLOORS["int8"]
    config = run_config_from_dir(exported["model_dir"])
    other = build_trainer(config.preset_object(), config.variant, config.regions)  # same architecture, new weights
    other.build_all()
    wrong = verify_export(other, exported["saved"], count=2)
    assert not all(check.passed for check in wrong) and "FAILED" in str(wrong[0])


def test_the_int8_classify_bound_tolerates_a_rare_outlier_but_not_a_broken_conversion():
    reference = np.full([8, 16], 0.1)
    one_off = reference.copy()
    one_off[3, 5] = 0.6  # one face's logit moved far, as 8-bit activations now and then do
    assert probability_difference("int8", one_off, reference) <= MAX_PROBABILITY_DIFFERENCE["int8"]
    assert probability_difference("dynamic", one_off, reference) == pytest.approx(0.5)  # other files: every one
    broken = reference.copy()
    broken[:2, :2] = 0.6  # 4 of 128 probabilities off: a conversion that is wrong, not an outlier
    assert probability_difference("int8", broken, reference) > MAX_PROBABILITY_DIFFERENCE["int8"]


def test_classify_is_the_sigmoid_of_the_classifier_on_the_scaled_image(exported, loaded):
    trainer = exported["trainer"]
    source, exemplar = faces(3, seed=40)
    probabilities = loaded.signatures["classify"](image=tf.constant(exemplar))["probabilities"].numpy()
    logits = trainer.classifier(tf.cast(exemplar, tf.float32) / 127.5 - 1.0).numpy()
    assert probabilities.shape == (3, len(trainer.attribute_names)) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), atol=1e-5)
    np.testing.assert_allclose(
        classify_function(trainer, validate=True)(exemplar)["probabilities"], probabilities, atol=1e-6
    )
    for variant, path in exported["tflite"].items():  # batch 1 files, run image by image by the Editor
        assert set(Interpreter(model_path=path).get_signature_list()) == {
            "edit",
            "edit_filtered",
            "classify",
            "edit_composed",
            "metadata",
        }
        result = Editor.load(path).classify(exemplar)
        assert result.shape == probabilities.shape
        assert probability_difference(variant, result, probabilities) <= MAX_PROBABILITY_DIFFERENCE[variant], variant


def test_the_reading_is_what_the_edits_gate_transfers(exported):
    """Switching off what the reading says is absent (probability <= 0.5) changes nothing, and keeping only that
    equals switching every attribute off: the reading is the gate of `edit`."""
    editor = Editor.load(exported["saved"])
    source, exemplar = faces(4, seed=60)
    mask = np.broadcast_to(editor.info.region_mask("mouth"), (4, SIZE, SIZE, 1)).copy()
    present = (editor.classify(exemplar) > 0.5).astype(np.float32)
    assert 0 < present.mean() < 1, present  # both kinds occur, so the comparison below can fail
    everything = editor.edit(source, exemplar, mask)
    nothing = editor.edit(source, exemplar, mask, np.zeros_like(present))
    np.testing.assert_array_equal(editor.edit(source, exemplar, mask, present), everything)
    np.testing.assert_array_equal(editor.edit(source, exemplar, mask, 1.0 - present), nothing)
    assert not np.array_equal(everything, nothing)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros([2, 16, 16, 3], np.uint8), rf"image must be \[N,{SIZE},{SIZE},3\]; got shape\] \[2 16 16 3\]"),
        (np.zeros([SIZE, SIZE, 3], np.uint8), rf"image must be \[N,{SIZE},{SIZE},3\]; got shape\] \[{SIZE} {SIZE} 3\]"),
        (
            np.zeros([1, SIZE, SIZE, 1], np.uint8),
            rf"image must be \[N,{SIZE},{SIZE},3\]; got shape\] \[1 {SIZE} {SIZE} 1\]",
        ),
        (np.zeros([1, SIZE, SIZE, 3], np.float32), "expected to be a uint8 tensor but is a float tensor"),
    ],
    ids=["16 px", "no batch axis", "one channel", "float"],
)
def test_bad_inputs_to_classify_are_readable_errors(loaded, image, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["classify"](image=tf.constant(image))


def test_editor_classify_checks_its_input(exported):
    editor = Editor.load(exported["tflite"]["float32"])
    source, _ = faces(1)
    assert editor.classifies and editor.classify(source[0]).shape == (len(exported["trainer"].attribute_names),)
    with pytest.raises(ValueError, match=rf"image has shape \(16, 16, 3\); this model takes {SIZE}x{SIZE}x3"):
        editor.classify(source[0, :16, :16])
    with pytest.raises(ValueError, match="image must be uint8 pixels, got float32"):
        editor.classify(source.astype(np.float32))


def test_pixels_outside_the_mask_are_the_source_exactly(exported):
    rng = np.random.default_rng(3)
    source = rng.integers(0, 256, [2, SIZE, SIZE, 3], dtype=np.uint8)
    exemplar = rng.integers(0, 256, [2, SIZE, SIZE, 3], dtype=np.uint8)
    mask = np.zeros([2, SIZE, SIZE, 1], np.float32)
    mask[:, 8:24, 4:20] = 1.0
    mask[:, 8:24, 20:28] = 0.4  # below 0.5: not edited
    mask[:, 2:6, 2:6] = 0.6  # above 0.5: edited
    inside = mask[..., 0] > 0.5
    for path in [exported["saved"], *exported["tflite"].values()]:
        editor = Editor.load(path)
        for attributes in (None, editor.info.attributes_from(drop=[editor.info.attribute_names[-1]])):
            edited = editor.edit(source, exemplar, mask, attributes)
            np.testing.assert_array_equal(edited[~inside], source[~inside], err_msg=path)
            assert np.mean(edited[inside] != source[inside]) > 0.5, path  # the region was generated


def test_dynamic_batch_and_signature_agreement(exported, loaded):
    signatures = loaded.signatures
    source, exemplar = faces(3)
    mask = np.broadcast_to(Editor.load(exported["saved"]).info.region_mask("mouth"), (3, SIZE, SIZE, 1)).copy()
    n = len(exported["trainer"].attribute_names)
    three = signatures["edit"](source=source, exemplar=exemplar, mask=mask)["edited"].numpy()
    assert three.shape == (3, SIZE, SIZE, 3) and three.dtype == np.uint8
    for index in range(3):
        one = signatures["edit"](
            source=source[index : index + 1], exemplar=exemplar[index : index + 1], mask=mask[index : index + 1]
        )["edited"].numpy()
        assert one.shape == (1, SIZE, SIZE, 3)
        assert np.abs(one[0].astype(int) - three[index]).max() <= MAX_LEVEL_DIFFERENCE
    default = signatures["serving_default"](source=source, exemplar=exemplar, mask=mask)["edited"].numpy()
    all_on = signatures["edit_filtered"](
        source=source, exemplar=exemplar, mask=mask, attributes=np.ones([3, n], np.float32)
    )["edited"].numpy()
    np.testing.assert_array_equal(default, three)
    np.testing.assert_array_equal(all_on, three)  # edit = edit_filtered with every attribute transferred


def _inputs(count: int = 2, size: int = SIZE, attributes: int | None = None) -> dict[str, np.ndarray]:
    inputs = {
        "source": np.zeros([count, size, size, 3], np.uint8),
        "exemplar": np.zeros([count, size, size, 3], np.uint8),
        "mask": np.ones([count, size, size, 1], np.float32),
    }
    if attributes is not None:
        inputs["attributes"] = np.ones([count, attributes], np.float32)
    return inputs


BAD_INPUTS = [
    (
        "source 16 px",
        lambda i: i.update(source=i["source"][:, :16, :16]),
        rf"source must be \[N,{SIZE},{SIZE},3\]; got shape\] \[2 16 16 3\]",
    ),
    (
        "exemplar 64 px",
        lambda i: i.update(exemplar=np.zeros([2, 64, 64, 3], np.uint8)),
        rf"exemplar must be \[N,{SIZE},{SIZE},3\]; got shape\] \[2 64 64 3\]",
    ),
    (
        "mask with 3 channels",
        lambda i: i.update(mask=np.ones([2, SIZE, SIZE, 3], np.float32)),
        rf"mask must be \[N,{SIZE},{SIZE},1\]; got shape\] \[2 {SIZE} {SIZE} 3\]",
    ),
    (
        "source without batch axis",
        lambda i: i.update(source=i["source"][0]),
        rf"source must be \[N,{SIZE},{SIZE},3\]; got shape\] \[{SIZE} {SIZE} 3\]",
    ),
    (
        "exemplar batch 1",
        lambda i: i.update(exemplar=i["exemplar"][:1]),
        "exemplar must have the same batch size N as source",
    ),
    (
        "mask batch 3",
        lambda i: i.update(mask=np.ones([3, SIZE, SIZE, 1], np.float32)),
        "mask must have the same batch size N as source",
    ),
    (
        "float source",
        lambda i: i.update(source=i["source"].astype(np.float32)),
        "expected to be a uint8 tensor but is a float tensor",
    ),
    (
        "uint8 mask",
        lambda i: i.update(mask=i["mask"].astype(np.uint8)),
        "expected to be a float tensor but is a uint8 tensor",
    ),
]


@pytest.mark.parametrize("signature", ["edit", "serving_default", "edit_filtered"])
@pytest.mark.parametrize("case, change, message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_to_each_edit_signature_are_readable_errors(exported, loaded, signature, case, change, message):
    n = len(exported["trainer"].attribute_names)
    inputs = _inputs(attributes=n if signature == "edit_filtered" else None)
    change(inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):  # tensors, as a server passes them
        loaded.signatures[signature](**{name: tf.constant(value) for name, value in inputs.items()})


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda n: np.ones([2, n - 1], np.float32),
            r"attributes must be \[N,{n}\] \(one value per attribute, N as source\); got shape\] \[2 {m}\]",
        ),
        (lambda n: np.ones([1, n], np.float32), r"attributes must be \[N,{n}\].*got shape\] \[1 {n}\]"),
        (lambda n: np.ones([2], np.float32), r"attributes must be \[N,{n}\].*got shape\] \[2\]"),
        (lambda n: np.ones([2, n], np.int32), "expected to be a float tensor but is a int32 tensor"),
    ],
    ids=["too few", "batch 1 for 2 images", "no batch axis", "int32"],
)
def test_bad_attributes_to_edit_filtered_are_readable_errors(exported, loaded, make, message):
    n = len(exported["trainer"].attribute_names)
    inputs = _inputs(attributes=n)
    inputs["attributes"] = make(n)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.format(n=n, m=n - 1)):
        loaded.signatures["edit_filtered"](**{name: tf.constant(value) for name, value in inputs.items()})


@pytest.mark.parametrize(
    "name, value",
    [
        ("attributes", np.nan),
        ("attributes", np.inf),
        ("attributes", 1e30),
        ("attributes", -0.5),
        ("mask", np.nan),
        ("mask", -np.inf),
        ("mask", 2.0),
    ],
)
def test_non_finite_or_out_of_range_masks_and_attributes_are_rejected(exported, loaded, name, value):
    n = len(exported["trainer"].attribute_names)
    inputs = _inputs(attributes=n)
    inputs[name].flat[1] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{name} values must be finite and in \[0, 1\]"):
        loaded.signatures["edit_filtered"](**{key: tf.constant(array) for key, array in inputs.items()})


def test_tflite_without_graph_checks_keeps_the_source_outside_the_mask_for_nan_attributes(exported):
    source, exemplar = faces(1)
    mask = np.zeros([1, SIZE, SIZE, 1], np.float32)
    mask[:, 8:24, 8:24] = 1.0
    attributes = np.full([1, len(exported["trainer"].attribute_names)], np.nan, np.float32)
    runner = Interpreter(model_path=exported["tflite"]["float32"]).get_signature_runner("edit_filtered")
    edited = runner(source=source, exemplar=exemplar, mask=mask, attributes=attributes)["edited"]
    outside = mask[..., 0] == 0
    np.testing.assert_array_equal(edited[outside], source[outside])


@pytest.mark.parametrize("variant", ["dynamic", INT8])
def test_editor_checks_inputs_before_a_tflite_runner_sees_them(exported, variant):
    editor = Editor.load(exported["tflite"][variant])
    source, exemplar = faces(1)
    mask = editor.info.region_mask("mouth")
    with pytest.raises(ValueError, match=rf"source has shape \(16, 16, 3\); this model takes {SIZE}x{SIZE}x3"):
        editor.edit(source[0, :16, :16], exemplar[0], mask)
    with pytest.raises(ValueError, match="exemplar must be uint8 pixels"):
        editor.edit(source[0], exemplar[0].astype(np.float32), mask)
    with pytest.raises(ValueError, match="Empty mask"):
        editor.edit(source[0], exemplar[0], np.zeros_like(mask))
    assert editor.edit(source, exemplar, np.stack([mask])).shape == (1, SIZE, SIZE, 3)


def test_ebgan_export_omits_edit_filtered_and_says_so(ebgan_model_dir, tmp_path):
    status, out, err = export_cli(
        f"--model_dir={ebgan_model_dir}", f"--export_base={tmp_path}", "--name=plain", "--tflite=float32"
    )
    assert status == 0, err
    assert "signatures: edit (serving_default), edit_composed, metadata" in out
    assert "This is an EBGAN model: no edit_filtered and no classify signature" in out
    path = str(tmp_path / "plain" / "1")
    assert set(tf.saved_model.load(path).signatures) == {
        "edit",
        "serving_default",
        "edit_composed",
        "metadata",
    }  # no classify
    tflite = str(tmp_path / "plain-tflite" / "1" / "model_float32.tflite")
    assert set(Interpreter(model_path=tflite).get_signature_list()) == {
        "edit",
        "edit_composed",
        "metadata",
    }  # no classify
    source, exemplar = faces(2)
    for model in (path, tflite):
        editor = Editor.load(model)
        assert editor.info.variant == "ebgan"
        mask = np.broadcast_to(editor.info.region_mask("mouth"), (2, SIZE, SIZE, 1))
        outside = mask[..., 0] <= 0.5
        np.testing.assert_array_equal(editor.edit(source, exemplar, mask)[outside], source[outside])
        with pytest.raises(ValueError, match="ebgan model: it has no attribute filtering"):
            editor.info.attributes_from(drop=["Smiling"])
        assert not editor.classifies
        with pytest.raises(ValueError, match="This is an ebgan model: it has no attribute classifier"):
            editor.classify(source)


def test_versions_next_free_explicit_existing_and_failed(ebgan_model_dir, tmp_path, monkeypatch):
    trainer = load_trained(ebgan_model_dir)
    template = np.asarray(read_config(ebgan_model_dir)["landmark_template"])
    base = tmp_path / "exports"
    assert next_version(str(base / "ebgan")) == 1
    for entry in ("1", "3", "notes", ".tmp-9-abc"):
        (base / "ebgan" / entry).mkdir(parents=True)
    assert next_version(str(base / "ebgan")) == 4

    assert export_saved_model(trainer, str(base), "ebgan", template) == str(base / "ebgan" / "4")
    assert export_saved_model(trainer, str(base), "ebgan", template, version=12) == str(base / "ebgan" / "12")
    assert next_version(str(base / "ebgan")) == 13
    with pytest.raises(FileExistsError, match=r"ebgan/3 already exists; choose another --version"):
        export_saved_model(trainer, str(base), "ebgan", template, version=3)
    with pytest.raises(ValueError, match="--version must be a positive integer, got 0"):
        export_saved_model(trainer, str(base), "ebgan", template, version=0)

    before = sorted(os.listdir(base / "ebgan"))

    def write_half_and_fail(path: str, image_size: int) -> None:  # the last file, after the SavedModel
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr("ebgan_tf.export.saved_model._write_warmup", write_half_and_fail)
    with pytest.raises(OSError, match="simulated"):
        export_saved_model(trainer, str(base), "ebgan", template)
    assert sorted(os.listdir(base / "ebgan")) == before  # no version 13, no staging directory left


def test_cli_errors_exit_1_with_one_line(exported, tmp_path):
    cases = [
        ([f"--model_dir={tmp_path / 'missing'}"], "config.json not found: .*missing is not a model directory"),
        (
            [f"--model_dir={exported['model_dir']}", "--tflite=float32,int4"],
            r"Unknown TFLite variant\(s\) int4; valid: float32, float16, dynamic, int8\.",
        ),
        (
            [f"--model_dir={exported['model_dir']}", "--tflite=int8", "--calibration_examples=0"],
            "--calibration_examples must be positive, got 0",
        ),
        (
            [f"--model_dir={exported['model_dir']}", "--tflite=int8", f"--data_dir={tmp_path / 'nodata'}"],
            r"No synthetic_faces data set .*in '.*nodata'",
        ),  # the tiny data set's loader (conftest.py) says so
        (
            [f"--model_dir={exported['model_dir']}", "--version=1", "--name=ebgan"],
            r"ebgan/1 already exists; choose another --version",
        ),
    ]
    for argv, message in cases:
        base = tmp_path / "exports" if "--version=1" not in argv else exported["base"]
        before = sorted(os.listdir(exported["base"]))
        status, out, err = export_cli(f"--export_base={base}", *argv)
        assert status == 1, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("ebgan-export: error: "), err
        assert re.search(message, err), err
        assert not (tmp_path / "exports").exists()
        assert sorted(os.listdir(exported["base"])) == before


def test_ebgan_edit_on_the_export(exported, tmp_path):
    """ebgan-edit's aligned-image path (ebgan_tf.serving.edit.edit_files) on the SavedModel and a TFLite file."""
    source, exemplar = faces(1, seed=300)
    save_image(str(tmp_path / "a.png"), source[0])
    save_image(str(tmp_path / "b.png"), exemplar[0])
    saved = Editor.load(exported["saved"])
    mask = saved.info.region_mask("mouth")
    drop = [saved.info.attribute_names[0]]
    for model in (exported["saved"], exported["tflite"]["float32"]):
        output = str(tmp_path / "out.png")
        edit_files(
            model,
            str(tmp_path / "a.png"),
            str(tmp_path / "b.png"),
            output,
            region="mouth",
            options=PhotoOptions(drop=drop),
        )
        edited = load_image(output)
        want = saved.edit(source[0], exemplar[0], mask, saved.info.attributes_from(drop=drop))
        assert np.abs(edited.astype(int) - want).max() <= MAX_LEVEL_DIFFERENCE
        np.testing.assert_array_equal(edited[mask[..., 0] <= 0.5], source[0][mask[..., 0] <= 0.5])
    with pytest.raises(ValueError, match="Unknown attribute.*'Beard'.*valid attributes:"):
        edit_files(
            exported["saved"],
            str(tmp_path / "a.png"),
            str(tmp_path / "b.png"),
            str(tmp_path / "x.png"),
            region="mouth",
            options=PhotoOptions(drop=["Beard"]),
        )
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow  # two fresh processes importing TensorFlow
def test_ebgan_edit_prints_only_its_own_line_unless_tensorflow_logs_are_asked_for(exported, tmp_path):
    source, exemplar = faces(1, seed=301)
    save_image(str(tmp_path / "a.png"), source[0])
    save_image(str(tmp_path / "b.png"), exemplar[0])
    output = tmp_path / "out.png"
    command = [
        sys.executable,
        "-m",
        "ebgan_tf.serving.edit",
        f"--model={exported['tflite']['dynamic']}",
        f"--source={tmp_path / 'a.png'}",
        f"--exemplar={tmp_path / 'b.png'}",
        "--region=mouth",
        f"--output={output}",
    ]
    user = {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE_VARIABLE)}
    quiet = subprocess.run(command, cwd=REPO_ROOT, env=user, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == (f"Wrote {output}\n", "")
    verbose = subprocess.run(
        command, cwd=REPO_ROOT, env={**user, VERBOSE_VARIABLE: "1"}, capture_output=True, text=True, timeout=300
    )
    assert verbose.returncode == 0 and verbose.stdout == f"Wrote {output}\n"
    assert "XNNPACK" in verbose.stderr  # LiteRT's own line, shown when asked for


def test_ebgan_serve_and_client_serve_the_export(exported):
    """The real exporter's output through ebgan-serve (gRPC, batching on) and the client equals the local Editor."""
    from ebgan_tf.serving import client, server, server_config

    config = f'model_config_list {{ config {{ name: "ebgan" base_path: "{exported["base"]}/ebgan" }} }}'
    options = server_config.ServerOptions(
        models=tuple(server_config.parse_model_config(config)),
        port=0,
        batching=server_config.BatchingOptions(max_batch_size=4, batch_timeout_micros=1000),
    )
    sources, exemplars = faces(2, seed=300)
    editor = Editor.load(exported["saved"])
    mask = np.stack([editor.info.region_mask(["mouth"])] * 2)
    attributes = editor.info.attributes_from(drop=[editor.info.attribute_names[0]])
    running = server.ModelServer(options).start()
    try:
        with client.EditClient(f"127.0.0.1:{running.port}", timeout=30) as connection:
            info = connection.model_info("ebgan")
            full = connection.edit(sources, exemplars, mask)
            filtered = connection.edit(sources, exemplars, mask, attributes, signature="edit_filtered")
    finally:
        running.stop()
    assert (info.attribute_names, info.image_size, info.variant) == (editor.info.attribute_names, SIZE, "att_ebgan")
    np.testing.assert_array_equal(full, editor.edit(sources, exemplars, mask))
    np.testing.assert_array_equal(filtered, editor.edit(sources, exemplars, mask, attributes))


def test_int8_file_has_every_signature_with_the_float_files_inputs_and_outputs(exported):
    float32, int8 = (Interpreter(model_path=exported["tflite"][variant]) for variant in ("float32", INT8))
    assert int8.get_signature_list() == float32.get_signature_list()
    for signature in ("edit", "edit_filtered", "classify"):
        for kind in ("get_input_details", "get_output_details"):
            want, got = (
                getattr(interpreter.get_signature_runner(signature), kind)() for interpreter in (float32, int8)
            )
            assert {name: (detail["dtype"], tuple(detail["shape"])) for name, detail in got.items()} == {
                name: (detail["dtype"], tuple(detail["shape"])) for name, detail in want.items()
            }, signature
    editor = Editor.load(exported["tflite"][INT8])
    assert (editor.info.attribute_names, editor.info.image_size) == (tuple(exported["trainer"].attribute_names), SIZE)


def test_int8_runs_its_network_in_integer_and_keeps_the_edges_float(exported):
    counts = integer_ops(exported["tflite"][INT8])
    assert set(counts) == {"edit", "edit_filtered", "classify", "edit_composed", "metadata"}
    for signature in ("edit", "edit_filtered"):
        count = counts[signature]
        assert not {"CONV_2D", "FULLY_CONNECTED", "LEAKY_RELU"} & set(count.float_ops), count  # the network: int8
        assert {"TANH", "ROUND", "SELECT_V2"} <= set(count.float_ops), count  # the tail: float on purpose
        assert {"ARG_MIN", "ONE_HOT", "DIV"} <= set(count.float_ops), count  # the part layout and areas, too
    assert set(counts["classify"].float_ops) <= {"CAST", "QUANTIZE", "DEQUANTIZE"}, counts["classify"]
    float32 = integer_ops(exported["tflite"]["float32"])["edit"]
    assert float32.integer < counts["edit"].integer


def test_calibration_data_draws_the_asked_count_from_the_training_regions(exported, data_dir):
    data = calibration_data_of_run(exported["model_dir"], data_dir, 5)
    assert len(data) == 5 and data.regions == ("mouth",)
    assert data.source.shape == data.exemplar.shape == (5, SIZE, SIZE, 3) and data.source.dtype == np.uint8
    assert data.mask.shape == (5, SIZE, SIZE, 1) and set(np.unique(data.mask)) == {0.0, 1.0}
    assert all(not np.array_equal(source, exemplar) for source, exemplar in zip(data.source, data.exemplar))
    names = exported["trainer"].attribute_names
    two = calibration_data("synthetic_faces", data_dir, SIZE, ("mouth", "face"), names, 5)
    assert len(two) == 5 and two.regions == ("mouth", "face")
    areas = two.mask.sum(axis=(1, 2, 3))
    assert areas[:3].max() < areas[3:].min()  # three mouths, then two faces
    with pytest.raises(
        ValueError, match=r"--calibration_examples must be at least the number of regions \(2: mouth, face\)"
    ):
        calibration_data("synthetic_faces", data_dir, SIZE, ("mouth", "face"), names, 1)


def test_int8_without_calibration_data_is_a_clear_error(exported, tmp_path):
    with pytest.raises(ValueError, match="The int8 TFLite variant needs calibration data"):
        export_tflite(exported["trainer"], np.zeros([5, 2]), str(tmp_path), (INT8,))
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "landmark_use",
    [
        {"code_pooling": "parts"},
        {"code_pooling": "spatial", "exemplar_alignment": "landmarks"},
        {"code_pooling": "spatial", "exemplar_alignment": "eyes_mouth"},
        {"code_pooling": "spatial", "exemplar_alignment": "eyes_mouth", "exemplar_resampling": "bicubic"},
    ],
    ids=["per_part_codes", "aligned_exemplar", "eyes_mouth_aligned_exemplar", "bicubic_aligned_exemplar"],
)
def test_a_model_that_uses_landmarks_exports_estimates_them_in_the_graph_and_keeps_the_contract(
    data_dir, tmp_path, landmark_use
):
    model_dir = write_untrained_run(
        tmp_path / "run", data_dir, model_overrides={**TINY_MODEL, "code_injection": "all_scales", **landmark_use}
    )
    status, out, err = export_cli(
        f"--model_dir={model_dir}",
        f"--export_base={tmp_path / 'exports'}",
        "--name=landmarked",
        "--tflite=dynamic,int8",
        f"--calibration_examples={CALIBRATION_EXAMPLES}",
        f"--data_dir={data_dir}",
        "--verify",
    )
    assert status == 0, err
    trainer = load_trained(model_dir)
    assert trainer.landmarks is not None
    sources, exemplars = faces(2, seed=300)
    mask = np.zeros([2, SIZE, SIZE, 1], np.float32)
    mask[:, 14:28, 6:26] = 1.0
    expected = trainer.edit(sources / 127.5 - 1.0, exemplars / 127.5 - 1.0, mask).numpy()
    expected = np.round((expected + 1.0) * 127.5).astype(np.uint8)
    inside = mask[..., 0] > 0.5
    tflite = tmp_path / "exports" / "landmarked-tflite" / "1"
    for path, floor in (
        (tmp_path / "exports" / "landmarked" / "1", 30.0),
        (tflite / "model_dynamic.tflite", 30.0),
        (tflite / "model_int8.tflite", PSNR_FLOORS[INT8]),
    ):
        edited = Editor.load(str(path)).edit(sources, exemplars, mask)
        np.testing.assert_array_equal(edited[~inside], sources[~inside])
        assert metrics.masked_psnr(edited, expected, mask, 255.0, 100.0).mean() > floor, path
    if trainer.alignment:  # the warp's samples (four bilinear, sixteen bicubic) stay float in the int8 file
        samples = {"bilinear": 4, "bicubic": 16}[trainer.resampling]
        assert integer_ops(str(tflite / "model_int8.tflite"))["edit"].float_ops.get("GATHER") == samples
