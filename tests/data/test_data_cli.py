"""Tests of the `ebgan-data` command line (training/data.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ebgan_tf import images
from ebgan_tf.cli import run_in_process
from ebgan_tf.data import pipeline
from ebgan_tf.training import data
from tests.helpers.examples import make_examples
from tests.helpers.tiny import REPO_ROOT


def run_subprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebgan_tf.training.data", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def run_main(*args: str) -> int:
    """Parses `args` like the command line and runs main() in this process."""
    return run_in_process(data.main, data.define_flags, ["ebgan-data", *args])


@pytest.mark.slow
def test_help_explains_every_flag_and_the_subcommands():
    result = run_subprocess("--help")
    for word in (
        "prepare",
        "preview",
        "--dataset",
        "--data_dir",
        "--image_size",
        "--num_train",
        "--num_validation",
        "--num_test",
        "--region",
        "--num:",
        "--out",
        "--split",
        "synthetic_faces",
        "celeb_a",
        "mouth",
    ):
        assert word in result.stdout, word


@pytest.mark.parametrize(
    "args, message",
    [
        (["fetch", "--data_dir=/tmp"], "Expected one subcommand, prepare or preview (got: fetch)"),
        ([], "Expected one subcommand"),
        (["preview", "--dataset=mnist", "--data_dir=/tmp", "--out=a.png"], "valid datasets: synthetic_faces, celeb_a"),
        (["preview", "--region=chin", "--data_dir=/tmp", "--out=a.png"], "'chin'; valid regions: mouth, eyes"),
        (["preview", "--data_dir=/does/not/exist", "--out=a.png"], "'/does/not/exist' does not exist"),
        (["preview", "--data_dir=/tmp"], "--out is required"),
        (["prepare", "--dataset=celeb_a", "--data_dir=/tmp", "--num_train=5"], "synthetic_faces only"),
    ],
)
@pytest.mark.slow
def test_errors_print_one_line_and_exit_1(args, message):
    result = run_subprocess(*args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"ebgan-data: error: {result.stderr.split('error: ', 1)[1].strip()}"]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unwritable_out(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run_main("preview", f"--data_dir={tmp_path}", f"--out={tmp_path / 'file' / 'grid.png'}") == 1
    assert "cannot be written" in capsys.readouterr().err
    assert run_main("preview", f"--data_dir={tmp_path}", f"--out={tmp_path}") == 1
    assert "is a directory" in capsys.readouterr().err


def test_celeba_prepare_says_what_is_missing(tmp_path, capsys):
    assert run_main("prepare", "--dataset=celeb_a", f"--data_dir={tmp_path}") == 1
    error = capsys.readouterr().err
    assert "list_attr_celeba.txt" in error and "Traceback" not in error


@pytest.mark.slow
def test_preview_writes_a_labelled_grid(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_load(dataset, data_dir, split, image_size):
        calls.append((dataset, data_dir, split, image_size))
        return make_examples(12, 48, 48)

    monkeypatch.setattr(pipeline, "load_examples", fake_load)
    out = tmp_path / "out" / "grid.png"
    assert (
        run_main(
            "preview", f"--data_dir={tmp_path}", "--region=mouth,eyes", "--num=5", "--image_size=32", f"--out={out}"
        )
        == 0
    )
    assert calls == [("synthetic_faces", str(tmp_path), "train", 32)]
    grid = images.load_image(out)
    assert 5 * (32 + 2) <= grid.shape[0] <= 5 * 80 and 2 * (32 + 2) < grid.shape[1] < 2 * 32 + 300  # labels: 5 lines
    assert (grid[..., 0].astype(int) - grid[..., 1] > 100).any()  # the red mask overlay is there
    assert f"Wrote {out}" in capsys.readouterr().out


@pytest.mark.slow
def test_preview_with_too_few_examples(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "load_examples", lambda *args: make_examples(3, 32, 32))
    assert run_main("preview", f"--data_dir={tmp_path}", "--num=4", f"--out={tmp_path / 'g.png'}") == 1
    assert "fewer than --num=4 examples" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_prepare_and_preview_through_the_real_builder(tmp_path, capsys):
    pytest.importorskip("ebgan_tf.data.synthetic_faces")
    data_dir = tmp_path / "data"
    assert (
        run_main(
            "prepare",
            f"--data_dir={data_dir}",
            "--image_size=32",
            "--num_train=6",
            "--num_validation=1",
            "--num_test=4",
        )
        == 0
    )
    assert "train 6, validation 1, test 4 faces" in capsys.readouterr().out
    out = tmp_path / "preview.png"
    assert (
        run_main(
            "preview",
            f"--data_dir={data_dir}",
            "--image_size=32",
            "--split=test",
            "--num=4",
            "--region=eyes",
            f"--out={out}",
        )
        == 0
    )
    grid = images.load_image(out)
    assert 4 * (32 + 2) <= grid.shape[0] <= 4 * 80 and 2 * (32 + 2) < grid.shape[1]
    assert (
        run_main("preview", f"--data_dir={data_dir}", "--image_size=32", "--split=test", "--num=5", f"--out={out}") == 1
    )
    assert "fewer than --num=5" in capsys.readouterr().err
    assert run_main("preview", f"--data_dir={data_dir}", "--image_size=48", f"--out={out}") == 1
    assert "No synthetic_faces data set at 48 px" in capsys.readouterr().err
