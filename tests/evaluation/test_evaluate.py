"""Tests of ebgan-eval (training/evaluate.py, ebgan_tf/evaluation/): the evaluation logic on fake models with known
answers, the report files, the command line and one end-to-end run on tiny trained models."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from ebgan_tf import images, metrics
from ebgan_tf.cli import run_in_process
from ebgan_tf.config import SYNTHETIC_REGION_ATTRIBUTES
from ebgan_tf.data import masks, synthetic, synthetic_faces
from ebgan_tf.data.celeba_fixture import make_celeba_fixture
from ebgan_tf.evaluation import scoring, targets
from ebgan_tf.evaluation.classifier import EvalClassifierConfig, train_eval_classifier
from ebgan_tf.evaluation.evaluate import load_evaluation_set
from ebgan_tf.evaluation.methods import NAIVE_PASTE, Method, model_method, zero_code_method
from ebgan_tf.evaluation.pairs import EvalPairs, SwapTruth, load_pairs, region_masks, unseen_pairs
from ebgan_tf.evaluation.report import REPORT_FILES, write_report
from ebgan_tf.export.saved_model import export_saved_model
from ebgan_tf.models.trainer import build_trainer
from ebgan_tf.runs import RunConfig, load_trained
from ebgan_tf.training import evaluate
from tests.helpers.tiny import LANDMARK_TEMPLATE, TINY_MODEL, write_untrained_run

IMAGE_SIZE = 32
NUM_PAIRS = 10
REGION = "mouth"
ATTRIBUTES = SYNTHETIC_REGION_ATTRIBUTES[REGION]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """A tiny synthetic_faces data set at 32 px (the only one in its directory, so pipeline.load_examples finds it)."""
    path = str(tmp_path_factory.mktemp("data"))
    synthetic_faces.prepare_synthetic_faces(
        path, image_size=IMAGE_SIZE, num_train=24, num_validation=4, num_test=NUM_PAIRS
    )
    return path


@pytest.fixture(scope="module")
def pairs(data_dir) -> EvalPairs:
    return load_pairs("synthetic_faces", data_dir, IMAGE_SIZE, num_pairs=100)


@pytest.fixture(scope="module")
def truth(pairs) -> SwapTruth:
    return SwapTruth(pairs, IMAGE_SIZE)


def faces(pairs):
    """(A, B) FaceParams of every pair, from the seeds."""
    sources = [synthetic.sample_face(int(seed)) for seed in pairs.seeds]
    return sources, sources[1:] + sources[:1]


class OracleReader:
    """A perfect 'classifier': looks the image up among the images whose labels the test knows (others: none)."""

    def __init__(self, attribute_names=ATTRIBUTES):
        self.attribute_names = attribute_names
        self.known: dict[bytes, np.ndarray] = {}

    def add(self, image: np.ndarray, labels: np.ndarray) -> None:
        self.known[image.tobytes()] = np.asarray(labels, bool)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        unknown = np.zeros(len(self.attribute_names), bool)
        return np.stack([self.known.get(image.tobytes(), unknown) for image in pixels])


@pytest.fixture(scope="module")
def oracle(pairs) -> OracleReader:
    """Knows the sources, their mouth swaps and the swaps with each mouth attribute forced off."""
    reader = OracleReader()
    for a, b in zip(*faces(pairs)):
        reader.add(synthetic.render_face(a, IMAGE_SIZE).image, [a.attributes[name] for name in ATTRIBUTES])
        for drop in [()] + [(name,) for name in ATTRIBUTES if b.attributes[name]]:
            labels = [b.attributes[name] and name not in drop for name in ATTRIBUTES]  # the mouth comes from B
            reader.add(synthetic.render_swap(a, b, REGION, IMAGE_SIZE, drop=drop).image, labels)
    return reader


def copy_source(source, exemplar, mask, attributes):
    """A 'model' that returns A unchanged."""
    return source


def truth_method(pairs, truth) -> Method:
    """A 'model' that returns the renderer's swap of the given source and exemplar exactly (attributes switched off
    are forced off), and whose codes differ for every exemplar."""
    index = {image.tobytes(): i for i, image in enumerate(pairs.sources)}
    faces_ = [synthetic.sample_face(int(seed)) for seed in pairs.seeds]

    def edit(source, exemplar, mask, attributes):
        rows = [index[image.tobytes()] for image in images.to_uint8(source)]
        given = [index[image.tobytes()] for image in images.to_uint8(exemplar)]
        drops = (
            [[] for _ in rows]
            if attributes is None
            else [[name for name, on in zip(ATTRIBUTES, switches) if not on] for switches in attributes]
        )
        return np.stack(
            [
                images.to_float(
                    synthetic.render_swap(faces_[row], faces_[other], REGION, IMAGE_SIZE, drop=tuple(drop)).image
                )
                for row, other, drop in zip(rows, given, drops)
            ]
        )

    def code(exemplar, mask):
        return np.reshape(np.asarray(exemplar, np.float32) * mask, [len(exemplar), 1, 1, -1])

    return Method("truth", edit, attribute_names=ATTRIBUTES, code=code)


def test_load_pairs_reads_the_test_split_with_seeds(pairs):
    assert len(pairs) == NUM_PAIRS and pairs.sources.shape == (NUM_PAIRS, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert sorted(pairs.seeds.tolist()) == list(range(2_000_000_000, 2_000_000_000 + NUM_PAIRS))  # tfds order
    np.testing.assert_array_equal(pairs.exemplars[0], pairs.sources[1])
    np.testing.assert_array_equal(pairs.exemplars[-1], pairs.sources[0])
    a, b = faces(pairs)
    np.testing.assert_array_equal(pairs.labels(["Smiling"], exemplar=True)[:, 0], [f.attributes["Smiling"] for f in b])


def test_unseen_pairs_are_faces_of_no_split_as_the_data_set_would_store_them(pairs):
    unseen = unseen_pairs(IMAGE_SIZE, NUM_PAIRS)
    split_ranges = [
        range(offset, offset + synthetic_faces.MAX_SPLIT_SIZE) for offset in synthetic_faces.SPLIT_SEED_OFFSETS.values()
    ]
    assert len(unseen) == NUM_PAIRS and not any(int(seed) in split for seed in unseen.seeds for split in split_ranges)
    first = synthetic.render_face(synthetic.sample_face(int(unseen.seeds[0])), IMAGE_SIZE)
    np.testing.assert_array_equal(unseen.sources[0], first.image)
    np.testing.assert_array_equal(unseen.landmarks[0], np.round(first.landmarks))
    assert set(unseen.attributes) == set(pairs.attributes)
    SwapTruth(unseen, IMAGE_SIZE)  # the renderer's ground truth covers them


def test_unseen_faces_of_celeba_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Unseen faces are rendered synthetic faces; celeb_a has only its test"):
        load_evaluation_set("celeb_a", IMAGE_SIZE, [REGION], str(tmp_path), None, 8, faces="unseen")
    with pytest.raises(ValueError, match="Unknown faces 'train'; valid: test, unseen"):
        load_evaluation_set("synthetic_faces", IMAGE_SIZE, [REGION], str(tmp_path), None, 8, faces="train")


def test_a_model_that_copies_the_source_scores_as_badly_as_it_should(pairs, truth, oracle):
    results, _ = scoring.evaluate(
        [Method("copy", copy_source)], pairs, {REGION: ATTRIBUTES}, oracle, truth, batch_size=4
    )
    scores = results["regions"][REGION]["methods"]["copy"]
    sources, exemplars = faces(pairs)
    mask = np.stack([masks.region_mask(landmarks, REGION, IMAGE_SIZE).numpy() for landmarks in pairs.landmarks])
    swaps = np.stack([synthetic.render_swap(a, b, REGION, IMAGE_SIZE).image for a, b in zip(sources, exemplars)])
    naive_psnr = np.mean(metrics.masked_psnr(pairs.sources, swaps, mask, 255.0, scoring.MAX_PSNR))
    assert scores["transfer"]["psnr"] == pytest.approx(naive_psnr)
    assert scores["transfer"]["psnr"] < 40.0 and scores["transfer"]["ssim"] < 1.0 and scores["transfer"]["l1"] > 0
    same = np.array([[a.attributes[n] == b.attributes[n] for n in ATTRIBUTES] for a, b in zip(sources, exemplars)])
    assert scores["attribute_transfer"]["mean"] == pytest.approx(np.mean(same.mean(axis=0)))
    assert scores["attribute_transfer"]["mean"] < 1.0
    assert scores["reconstruction"] == {"psnr": scoring.MAX_PSNR, "ssim": pytest.approx(1.0), "l1": 0.0}
    assert scores["outside_max_diff"] == 0.0
    assert scores["filtering"] is None  # no attribute switches
    assert scores["transfer"]["exemplar_gain"] == 0.0  # the exemplar does not matter to it
    assert scores["transfer"]["colour_share"] == 0.0  # the source's colours are kept
    assert scores["code_spread"] is None  # it has no exemplar code


def test_a_constant_encoder_scores_zero_spread_and_an_exemplar_blind_model_zero_gain(pairs, truth):
    constant = Method("constant", copy_source, code=lambda exemplar, mask: np.full([len(exemplar), 2, 2, 4], 0.3))
    results, _ = scoring.evaluate([constant], pairs, {REGION: ATTRIBUTES}, None, truth, batch_size=4)
    scores = results["regions"][REGION]["methods"]["constant"]
    assert scores["code_spread"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert scores["transfer"]["exemplar_gain"] == 0.0
    assert scores["attribute_transfer"] is None and results["regions"][REGION]["ground_truth"] is None
    checks = {check["target"]: check for check in results["targets"]}
    assert not checks["code spread >= 0.2"]["met"] and not checks["exemplar gain >= +3 dB"]["met"]


def test_a_model_that_returns_the_ground_truth_scores_perfectly(pairs, truth, oracle):
    methods = [truth_method(pairs, truth), NAIVE_PASTE]
    results, grid = scoring.evaluate(methods, pairs, {REGION: ATTRIBUTES}, oracle, truth, batch_size=4, grid_rows=3)
    region = results["regions"][REGION]
    scores = region["methods"]["truth"]
    transfer = scores["transfer"]
    assert {key: transfer[key] for key in ("psnr", "ssim", "l1")} == {
        "psnr": scoring.MAX_PSNR,
        "ssim": pytest.approx(1.0),
        "l1": 0.0,
    }
    assert transfer["other_exemplar_psnr"] < 40.0  # another face's mouth is not this exemplar's
    assert transfer["exemplar_gain"] == pytest.approx(scoring.MAX_PSNR - transfer["other_exemplar_psnr"])
    assert transfer["colour_share"] == pytest.approx(1.0)
    # The truth from the wrong face is what this method returns for the other face: the same figure both ways.
    assert region["other_truth_psnr"] == pytest.approx(transfer["other_exemplar_psnr"])
    assert scores["code_spread"]["mean"] > 0.2  # the exemplars' own pixels differ
    assert scores["attribute_transfer"]["mean"] == region["ground_truth"]["attribute_transfer"]["mean"] == 1.0
    filtering = scores["filtering"]
    holders = sum(b.attributes[name] for b in faces(pairs)[1] for name in ATTRIBUTES)
    assert filtering["edits"] == holders > 0
    assert filtering["leak_rate"]["mean"] == 0.0 and filtering["kept_agreement"]["mean"] == 1.0
    assert filtering["psnr"] == scoring.MAX_PSNR
    assert set(filtering["psnr_per_attribute"].values()) == {scoring.MAX_PSNR}
    assert scores["unfiltered_psnr_per_attribute"] is None  # it filters
    paste = region["methods"]["naive paste"]
    # Pasting the exemplar's mouth keeps the attribute that the filtered render lacks.
    assert max(paste["unfiltered_psnr_per_attribute"].values()) < scoring.MAX_PSNR
    assert paste["reconstruction"] is None and paste["outside_max_diff"] == 0.0
    assert paste["transfer"]["psnr"] < scoring.MAX_PSNR
    checks = {check["target"]: check for check in results["targets"] if check["method"] == "truth"}
    assert checks["transfer PSNR above every baseline"]["met"] and checks["exemplar gain >= +3 dB"]["met"]
    assert checks["code spread >= 0.2"]["met"]
    assert checks["attribute transfer accuracy >= 90%"]["met"] and checks["filter leak rate <= 10%"]["met"]
    assert grid.dtype == np.uint8 and grid.shape[0] >= 3 * IMAGE_SIZE and grid.shape[1] >= 6 * IMAGE_SIZE


def _checks(region: str, result: dict) -> list[dict]:
    """The project's target checks of a one-region result of 64 pairs."""
    return targets.target_checks(targets.load_targets(), region, result, num_pairs=64)


def _region_result(model: dict, baselines: dict[str, dict]) -> dict:
    """A one-region result with a model named "M" (Att-EBGAN) and baselines, as scoring.evaluate returns it."""
    empty = {
        "reconstruction": None,
        "code_spread": None,
        "attribute_transfer": None,
        "filtering": None,
        "unfiltered_psnr_per_attribute": None,
    }
    methods = {"M": {**empty, "role": "model", "variant": "att_ebgan", **model}}
    methods.update({name: {**empty, "role": "baseline", "variant": "", **scores} for name, scores in baselines.items()})
    return {"methods": methods}


@pytest.mark.parametrize("psnr, met", [(23.5, True), (22.5, False)])
def test_composite_regions_must_beat_every_baseline_by_3_db(psnr, met):
    transfer = {"psnr": psnr, "exemplar_gain": 4.0}
    result = _region_result(
        {"transfer": transfer},
        {"naive paste": {"transfer": {"psnr": 15.0}}, "zero exemplar code (M)": {"transfer": {"psnr": 20.0}}},
    )
    for region in ("components", "face"):
        checks = {check["target"]: check for check in _checks(region, result)}
        check = checks["transfer PSNR >= every baseline + 3 dB"]
        assert check["threshold"] == 23.0 and check["met"] is met
        assert "transfer PSNR above every baseline" not in checks and "transfer PSNR >= 22 dB" not in checks
    mouth = {check["target"] for check in _checks("mouth", result)}
    assert {"transfer PSNR >= 22 dB", "transfer PSNR above every baseline"} <= mouth
    # Another model's zero-code baseline is not this model's.
    result["methods"]["zero exemplar code (N)"] = {**result["methods"]["naive paste"], "transfer": {"psnr": 30.0}}
    checks = {check["target"]: check for check in _checks("face", result)}
    assert checks["transfer PSNR >= every baseline + 3 dB"]["threshold"] == 23.0


@pytest.mark.parametrize("leak, filtered_psnr, met", [(0.04, 21.0, (True, True)), (0.06, 19.0, (False, False))])
def test_mustache_filter_targets(leak, filtered_psnr, met):
    rates = {"per_attribute": {"Mustache": leak, "Smiling": 0.5}, "mean": 0.3}
    filtering = {
        "leak_rate": rates,
        "kept_agreement": rates,
        "psnr": 20.0,
        "psnr_per_attribute": {"Mustache": filtered_psnr},
        "edits": 10,
    }
    result = _region_result(
        {"transfer": None, "filtering": filtering},
        {"zero exemplar code (M)": {"transfer": None, "unfiltered_psnr_per_attribute": {"Mustache": 20.0}}},
    )
    checks = {check["target"]: check for check in _checks("mouth", result)}
    assert (
        checks["Mustache leak rate <= 5%"]["met"],
        checks["PSNR without Mustache above the zero-code baseline's"]["met"],
    ) == met


def test_leak_and_kept_agreement_of_a_model_that_ignores_the_switches(pairs, truth, oracle):
    method = truth_method(pairs, truth)
    deaf = Method("deaf", lambda s, e, m, t: method.edit(s, e, m, None), attribute_names=ATTRIBUTES)
    results, _ = scoring.evaluate([deaf], pairs, {REGION: ATTRIBUTES}, oracle, truth, batch_size=4)
    filtering = results["regions"][REGION]["methods"]["deaf"]["filtering"]
    assert filtering["leak_rate"]["mean"] == 1.0  # every switched-off attribute still appears
    assert filtering["kept_agreement"]["mean"] == 1.0
    assert filtering["psnr"] < scoring.MAX_PSNR
    check = next(c for c in results["targets"] if c["target"] == "filter leak rate <= 10%")
    assert not check["met"] and check["margin"] == pytest.approx(-0.9)


def test_celeba_reports_reconstruction_and_attribute_transfer_without_ground_truth(tmp_path):
    make_celeba_fixture(str(tmp_path), num_images=40)
    pairs = load_pairs("celeb_a", str(tmp_path), IMAGE_SIZE, num_pairs=100)
    assert len(pairs) == 4 and pairs.seeds is None  # 10% of 40 images are test images
    names = ("Smiling", "Mustache")
    reader = OracleReader(names)
    for image, labels in zip(pairs.sources, pairs.labels(names)):
        reader.add(image, labels)
    results, grid = scoring.evaluate(
        [Method("copy", copy_source)], pairs, {REGION: names}, reader, truth=None, batch_size=3
    )
    region = results["regions"][REGION]
    scores = region["methods"]["copy"]
    assert scores["reconstruction"]["psnr"] == scoring.MAX_PSNR and scores["transfer"] is None
    same = pairs.labels(names) == pairs.labels(names, exemplar=True)
    assert scores["attribute_transfer"]["mean"] == pytest.approx(np.mean(same.mean(axis=0)))
    assert region["ground_truth"] is None
    assert grid.shape[1] >= 4 * IMAGE_SIZE  # source, exemplar, mask, copy; no ground-truth column


def test_classifier_without_the_region_attributes_is_refused(pairs, truth, oracle):
    with pytest.raises(ValueError, match="does not read Eyeglasses"):
        scoring.evaluate([NAIVE_PASTE], pairs, {"eyes": ("Eyeglasses",)}, oracle, truth)


def test_zero_code_baseline_is_att_ebgan_without_ungated_block_with_every_attribute_switched_off(pairs):
    # With an ungated block (the preset's recipe), switching every attribute off still transfers that block.
    config = RunConfig(model_dir="unused", model_overrides={**TINY_MODEL, "ungated_code_channels": 0}).resolved()
    trainer = build_trainer(config.preset_object(), "att_ebgan", ("mouth",))
    trainer.build_all()
    source, exemplar = images.to_float(pairs.sources[:3]), images.to_float(pairs.exemplars[:3])
    mask = region_masks(pairs.landmarks[:3], REGION, IMAGE_SIZE)
    switched_off = trainer.edit(source, exemplar, mask, np.zeros([3, len(trainer.attribute_names)])).numpy()
    zero_code = zero_code_method(trainer, "zero").edit(source, exemplar, mask, None)
    np.testing.assert_allclose(zero_code, switched_off, atol=1e-6)
    model = model_method(trainer, "model")
    assert model.attribute_names == trainer.attribute_names
    np.testing.assert_allclose(
        model.edit(source, exemplar, mask, None), trainer.edit(source, exemplar, mask).numpy(), atol=1e-6
    )


def summaries(directory: str) -> dict[str, event_pb2.Summary.Value]:
    found = {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            for value in event_pb2.Event.FromString(record.numpy()).summary.value:
                found[value.tag] = value
    return found


def test_report_files_are_written_and_complete(pairs, truth, oracle, tmp_path):
    methods = [truth_method(pairs, truth), Method("copy", copy_source), NAIVE_PASTE]
    results, grid = scoring.evaluate(methods, pairs, {REGION: ATTRIBUTES}, oracle, truth, batch_size=4)
    report = {"dataset": "synthetic_faces", "num_pairs": len(pairs), "image_size": IMAGE_SIZE, **results}
    write_report(str(tmp_path), report, grid, step=7)
    assert sorted(os.listdir(tmp_path)) == sorted(REPORT_FILES + ("logs",))

    saved = json.loads((tmp_path / "report.json").read_text())
    region = saved["regions"][REGION]
    assert region["attributes"] == list(ATTRIBUTES)
    for name in ("truth", "copy", "naive paste"):
        scores = region["methods"][name]
        assert set(scores) == {
            "role",
            "variant",
            "reconstruction",
            "transfer",
            "code_spread",
            "attribute_transfer",
            "filtering",
            "unfiltered_psnr_per_attribute",
            "outside_max_diff",
        }
        assert set(scores["attribute_transfer"]["per_attribute"]) == set(ATTRIBUTES)
        assert set(scores["transfer"]) == {"psnr", "ssim", "l1", "other_exemplar_psnr", "exemplar_gain", "colour_share"}
    assert set(region["methods"]["truth"]["filtering"]) == {
        "leak_rate",
        "kept_agreement",
        "psnr",
        "psnr_per_attribute",
        "edits",
    }
    assert set(region["ground_truth"]) == {"attribute_transfer", "filtering"}
    assert 5.0 < region["other_truth_psnr"] < 60.0
    assert {check["target"] for check in saved["targets"]} == {
        "reconstruction PSNR >= 28 dB",
        "transfer PSNR above every baseline",
        "attribute transfer accuracy >= 90%",
        "filter leak rate <= 10%",
        "exemplar gain >= +3 dB",
        "code spread >= 0.2",
        "Mustache leak rate <= 5%",
    }

    text = (tmp_path / "report.md").read_text()
    for expected in (
        "## Region: mouth",
        "| truth |",
        "| copy |",
        "| naive paste |",
        "ground truth (classifier ceiling)",
        "Attribute transfer accuracy per attribute",
        "Leak rate per attribute",
        "## Targets",
        "exemplar gain",
        f"scores {region['other_truth_psnr']:.2f} dB against the ground truth with the exemplar's",
        *ATTRIBUTES,
    ):
        assert expected in text, expected
    np.testing.assert_array_equal(images.load_image(str(tmp_path / "grid.png")), grid)

    logged = summaries(str(tmp_path / "logs"))
    assert tf.make_ndarray(logged["mouth/copy/transfer_psnr"].tensor) == pytest.approx(
        region["methods"]["copy"]["transfer"]["psnr"]
    )
    assert "mouth/truth/leak_rate" in logged and "grid" in logged


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "ebgan-eval: error: --model_dir is required."),
        (["--model_dir={missing}"], "ebgan-eval: error: --output_dir is required."),
        (["--model_dir={missing}", "--classifier_dir=c", "--output_dir={out}"], "Model not found"),
        (
            ["--model_dir={out_parent}", "--output_dir={out}"],
            "is neither a training run (no config.json) nor an exported",
        ),
        (
            ["--model_dir={missing}", "--classifier_dir=c", "--output_dir={out}", "--regions=mouth,ears"],
            "ebgan-eval: error: Unknown region(s) 'ears'; valid regions: mouth, eyes",
        ),
        (
            ["--model_dir={missing}", "--classifier_dir=c", "--output_dir={out}", "--dataset=mnist"],
            "ebgan-eval: error: Unknown dataset 'mnist'; valid datasets: synthetic_faces, celeb_a.",
        ),
    ],
)
def test_cli_errors_exit_1_with_one_line(argv, message, tmp_path, capsys):
    argv = [arg.format(missing=tmp_path / "missing", out=tmp_path / "out", out_parent=tmp_path) for arg in argv]
    assert run_in_process(evaluate.main, evaluate.define_flags, ["ebgan-eval", *argv]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("ebgan-eval: error:")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> dict[str, str]:
    """Model directories of a tiny EBGAN and Att-EBGAN (initial weights: the evaluation does not care how well they
    edit) as ebgan-train writes them, and a tiny evaluation classifier trained for 10 steps."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {}
    for variant in ("ebgan", "att_ebgan"):
        dirs[variant] = write_untrained_run(root / variant, data_dir, variant=variant)
    dirs["classifier"] = str(root / "classifier")
    train_eval_classifier(
        EvalClassifierConfig(image_size=IMAGE_SIZE, steps=10, width=4, max_width=8),
        data_dir,
        dirs["classifier"],
        verbose=False,
    )
    return dirs


def test_cli_refuses_a_directory_without_a_classifier(trained, data_dir, tmp_path, capsys):
    argv = [
        "ebgan-eval",
        f"--model_dir={trained['att_ebgan']}",
        f"--data_dir={data_dir}",
        f"--classifier_dir={tmp_path}",
        f"--output_dir={tmp_path / 'out'}",
    ]
    assert run_in_process(evaluate.main, evaluate.define_flags, argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "No evaluation classifier in" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_compares_ebgan_and_att_ebgan_with_the_baselines(trained, data_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        "ebgan-eval",
        f"--model_dir={trained['ebgan']},{trained['att_ebgan']}",
        f"--data_dir={data_dir}",
        f"--classifier_dir={trained['classifier']}",
        f"--output_dir={out}",
        "--num_pairs=6",
        "--batch_size=4",
        "--grid_rows=2",
    ]
    assert run_in_process(evaluate.main, evaluate.define_flags, argv) == 0
    printed = capsys.readouterr().out
    assert "## Region: mouth" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["num_pairs"] == 6 and [m["variant"] for m in report["models"]] == ["ebgan", "att_ebgan"]
    methods = report["regions"]["mouth"]["methods"]
    # A progress line as each method is scored, before the report.
    progress = [line for line in printed.splitlines() if line.startswith("mouth (region 1 of 1): ")]
    assert [line.split(": ", 1)[1].split(" scored on 6 pairs in ")[0] for line in progress] == list(methods)
    assert printed.index(progress[-1]) < printed.index("## Region: mouth")
    assert list(methods) == [
        "EBGAN",
        "Att-EBGAN",
        "naive paste",
        "zero exemplar code (EBGAN)",
        "zero exemplar code (Att-EBGAN)",
    ]
    assert methods["EBGAN"]["filtering"] is None and methods["Att-EBGAN"]["filtering"] is not None
    for name, scores in methods.items():
        assert scores["outside_max_diff"] == 0.0, name  # pixels outside the mask are the source's
        assert np.isfinite(scores["transfer"]["psnr"]) and 0 < scores["transfer"]["psnr"] < scoring.MAX_PSNR
    grid = images.load_image(str(out / "grid.png"))
    assert grid.shape[0] >= 2 * IMAGE_SIZE and grid.shape[1] >= 9 * IMAGE_SIZE  # 4 + 5 methods columns


@pytest.fixture(scope="module")
def exported_att_ebgan(trained, tmp_path_factory) -> str:
    """The tiny Att-EBGAN of `trained`, exported as a SavedModel (a TF Serving base directory)."""
    base = str(tmp_path_factory.mktemp("exports"))
    export_saved_model(load_trained(trained["att_ebgan"]), base, "shipped", LANDMARK_TEMPLATE.astype(np.float32))
    return os.path.join(base, "shipped")


@pytest.mark.slow
def test_an_export_scores_as_its_run_through_its_signatures(trained, exported_att_ebgan, data_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        "ebgan-eval",
        f"--model_dir={trained['att_ebgan']},{exported_att_ebgan}",
        f"--data_dir={data_dir}",
        f"--output_dir={out}",
        "--num_pairs=6",
        "--batch_size=4",
        "--grid_rows=1",
    ]
    assert run_in_process(evaluate.main, evaluate.define_flags, argv) == 0
    assert "exported model, through its signatures" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [model["step"] for model in report["models"]] == [0, None]
    methods = report["regions"]["mouth"]["methods"]
    assert list(methods) == [
        "Att-EBGAN (att_ebgan)",
        "Att-EBGAN (shipped)",
        "naive paste",
        "zero exemplar code (Att-EBGAN (att_ebgan))",
    ]  # an export has no zero-code baseline
    run, export = methods["Att-EBGAN (att_ebgan)"], methods["Att-EBGAN (shipped)"]
    assert export["code_spread"] is None and run["code_spread"] is not None
    assert export["outside_max_diff"] == 0.0 and export["filtering"] is not None
    # The same weights: only the export's uint8 rounding of the inputs and output separates the two.
    assert abs(export["transfer"]["psnr"] - run["transfer"]["psnr"]) < 0.5
    assert abs(export["transfer"]["exemplar_gain"] - run["transfer"]["exemplar_gain"]) < 0.5


def test_exports_alone_need_the_dataset_and_regions(exported_att_ebgan, data_dir, tmp_path, capsys):
    argv = [
        "ebgan-eval",
        f"--model_dir={exported_att_ebgan}",
        f"--data_dir={data_dir}",
        f"--output_dir={tmp_path / 'out'}",
    ]
    assert run_in_process(evaluate.main, evaluate.define_flags, argv) == 1
    assert "give --dataset and --regions" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
