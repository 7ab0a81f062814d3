"""Tests of ebgan-curve (training/curve.py, ebgan_tf/evaluation/curve.py) on a tiny EBGAN run with three
checkpoints, and of loading one checkpoint of a run by its path (ebgan_tf.runs.load_trained)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from ebgan_tf import images
from ebgan_tf.cli import run_in_process
from ebgan_tf.evaluation import curve as curve_lib
from ebgan_tf.evaluation.classifier import EvalClassifierConfig, train_eval_classifier
from ebgan_tf.runs import CONFIG_FILE, checkpoint_paths, load_trained
from ebgan_tf.training import curve, train_lib
from ebgan_tf.training.distribute import make_strategy
from tests.helpers.tiny import IMAGE_SIZE, network_weights, tiny_config

STEPS = [2, 4, 6]  # tiny_config's checkpoints


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> str:
    """A tiny EBGAN trained for 6 steps, keeping its checkpoints of steps 2, 4 and 6."""
    model_dir = tmp_path_factory.mktemp("runs") / "tiny_ebgan"
    train_lib.train(tiny_config(model_dir, data_dir, variant="ebgan", keep_checkpoints=3), make_strategy("one_device"))
    return str(model_dir)


@pytest.fixture(scope="module")
def classifier_dir(data_dir, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("classifier"))
    train_eval_classifier(
        EvalClassifierConfig(image_size=IMAGE_SIZE, steps=10, width=4, max_width=8), data_dir, path, verbose=False
    )
    return path


def run_curve(*argv: str) -> int:
    return run_in_process(curve.main, curve.define_flags, ["ebgan-curve", *argv])


@pytest.mark.slow  # trains the tiny run of run_dir (6 steps)
def test_load_trained_reads_the_checkpoint_it_is_given(run_dir):
    paths = checkpoint_paths(run_dir)
    assert [int(path.rsplit("-", 1)[1]) for path in paths] == STEPS
    first, last = (network_weights(load_trained(run_dir, checkpoint=path)) for path in (paths[0], paths[-1]))
    final = network_weights(load_trained(run_dir))  # the final weights: those of the last checkpoint
    assert any(not np.array_equal(a, b) for a, b in zip(first, last))
    assert all(np.array_equal(a, b) for a, b in zip(last, final))
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_trained(run_dir, checkpoint=os.path.join(run_dir, "checkpoints", "ckpt-5"))


def test_select_checkpoints_takes_every_kth_and_the_last():
    paths = [f"ckpt-{step}" for step in range(1, 8)]
    assert curve_lib.select_checkpoints(paths, 1) == paths
    assert curve_lib.select_checkpoints(paths, 3) == ["ckpt-1", "ckpt-4", "ckpt-7"]
    assert curve_lib.select_checkpoints(paths, 4) == ["ckpt-1", "ckpt-5", "ckpt-7"]
    assert curve_lib.select_checkpoints(paths, 10) == ["ckpt-1", "ckpt-7"]


@pytest.mark.slow  # trains the tiny run of run_dir (6 steps)
def test_the_command_scores_every_checkpoint_and_a_rerun_uses_the_cache(
    run_dir, classifier_dir, data_dir, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "curve"
    argv = [
        f"--model_dir={run_dir}",
        f"--data_dir={data_dir}",
        f"--classifier_dir={classifier_dir}",
        f"--output_dir={out}",
        "--num_pairs=8",
        "--batch_size=4",
        "--labels=tiny run",
    ]
    assert run_curve(*argv) == 0
    printed = capsys.readouterr().out
    assert "tiny run: 3 checkpoints, 0 measured before, 3 to measure." in printed
    assert "[3/3] tiny run step 6" in printed

    measured = json.loads((out / "curve.json").read_text())
    assert measured["settings"]["region"] == "mouth" and measured["settings"]["num_pairs"] == 8
    (run,) = measured["runs"]
    assert run["label"] == "tiny run" and run["variant"] == "ebgan"
    points = run["points"]
    assert [point["step"] for point in points] == STEPS
    minutes = [point["minutes"] for point in points]
    assert 0 <= minutes[0] <= minutes[1] <= minutes[2] < 30  # a few seconds of tiny training
    for point in points:
        assert 0 < point["transfer_psnr"] < 100 and 0 < point["reconstruction_psnr"] < 100
        assert np.isfinite(point["exemplar_gain"]) and point["code_spread"] >= 0
        assert 0 <= point["attribute_accuracy"] <= 1
    assert 0 <= measured["classifier_ceiling"] <= 1

    plot = images.load_image(str(out / "curve.png"))
    assert plot.ndim == 3 and plot.shape[1] > 3 * plot.shape[0] / 2  # three panels side by side
    table = (out / "curve.md").read_text()
    assert table.count("| tiny run |") == 3 and "| tiny run | 6 |" in table

    def no_loading(*args, **kwargs):
        raise AssertionError("a cached checkpoint was loaded again")

    monkeypatch.setattr(curve_lib, "load_trained", no_loading)
    assert run_curve(*argv[:-1], "--labels=renamed") == 0
    assert "renamed: 3 checkpoints, 3 measured before, 0 to measure." in capsys.readouterr().out
    again = json.loads((out / "curve.json").read_text())
    assert again["runs"][0]["points"] == points and again["runs"][0]["label"] == "renamed"

    minutes_plot = (out / "curve.png").read_bytes()
    assert run_curve(*argv[:-1], "--labels=renamed", "--x_axis=steps") == 0  # the same points, against steps
    assert (out / "curve.png").read_bytes() != minutes_plot
    assert json.loads((out / "curve.json").read_text())["runs"][0]["points"] == points

    assert run_curve(*argv[:-2], "--num_pairs=5") == 1  # other settings: the cache is not silently replaced
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "was measured with other settings (num_pairs: 8 there, 5 now)" in lines[0]
    assert json.loads((out / "curve.json").read_text()) == again


@pytest.mark.slow  # trains the tiny run of run_dir (6 steps)
def test_without_a_classifier_the_attribute_accuracy_is_not_measured(run_dir, data_dir, tmp_path):
    out = tmp_path / "curve"
    assert (
        run_curve(
            f"--model_dir={run_dir}",
            f"--data_dir={data_dir}",
            f"--output_dir={out}",
            "--num_pairs=4",
            "--every=5",
            "--region=eyes",
        )
        == 0
    )
    measured = json.loads((out / "curve.json").read_text())
    assert measured["settings"]["region"] == "eyes" and measured["classifier_ceiling"] is None
    points = measured["runs"][0]["points"]
    assert [point["step"] for point in points] == [2, 6] and measured["runs"][0]["label"] == "tiny_ebgan"
    assert all(point["attribute_accuracy"] is None and point["transfer_psnr"] > 0 for point in points)


@pytest.fixture
def bad_runs(run_dir, tmp_path) -> dict[str, str]:
    """A run directory without checkpoints and a copy of the tiny run that claims another image size."""
    without = tmp_path / "no_checkpoints"
    without.mkdir()
    shutil.copy(os.path.join(run_dir, CONFIG_FILE), without)
    larger = tmp_path / "larger"
    shutil.copytree(run_dir, larger)
    config = json.loads((larger / CONFIG_FILE).read_text())
    config["model"]["image_size"] = 2 * IMAGE_SIZE
    (larger / CONFIG_FILE).write_text(json.dumps(config))
    return {"without": str(without), "larger": str(larger), "run": run_dir}


@pytest.mark.slow  # trains the tiny run of run_dir (6 steps)
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model_dir={without}"], "has no checkpoints"),
        (["--model_dir={run},{run}", "--labels=one"], "Got 1 labels for 2 runs"),
        (["--model_dir={run},{larger}"], "The models differ in image size (32, 64 px)"),
        (["--model_dir={run}", "--region=ears"], "Unknown region(s) 'ears'"),
        (["--model_dir={run}", "--region=mouth,eyes"], "Unknown region(s) 'mouth,eyes'"),
        (["--model_dir={run}", "--every=0"], "--every must be at least 1"),
        (["--model_dir={run},{run}", "--labels=a,a"], "The labels must differ"),
    ],
)
def test_errors_exit_1_with_one_line(argv, message, bad_runs, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [arg.format(**bad_runs) for arg in argv] + [f"--data_dir={data_dir}", f"--output_dir={out}"]
    assert run_curve(*argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ebgan-curve: error:") and message in lines[0], lines
    assert not out.exists()
