"""Tests of the paper's figures (ebgan_tf/evaluation/figures.py, training/figures.py = ebgan-figures) on tiny
untrained models: the grids' layout, the filter figure's choice of exemplars, and the errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ebgan_tf import images
from ebgan_tf.cli import run_in_process
from ebgan_tf.evaluation.figures import (
    COMPOSED_FIGURE,
    COMPOSED_PARTS,
    COMPOSED_STRENGTHS,
    DISPLAY_SIZE,
    composed_figure,
    filter_figure,
    transfer_figure,
)
from ebgan_tf.evaluation.methods import Method
from ebgan_tf.evaluation.pairs import SwapTruth, load_pairs, region_masks
from ebgan_tf.export.saved_model import export_saved_model
from ebgan_tf.runs import load_trained
from ebgan_tf.training import figures
from tests.helpers.tiny import IMAGE_SIZE, LANDMARK_TEMPLATE, write_untrained_run

CELL = DISPLAY_SIZE  # 32 px faces are shown 4x


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("runs")
    return {
        variant: write_untrained_run(root / variant, data_dir, variant=variant) for variant in ("ebgan", "att_ebgan")
    }


@pytest.fixture(scope="module")
def pairs(data_dir):
    return load_pairs("synthetic_faces", data_dir, IMAGE_SIZE, num_pairs=16)


def _cells(grid: np.ndarray) -> tuple[int, int]:
    """(rows, columns) of a grid of CELL px cells with 2 px padding and a label band on top."""
    return (grid.shape[0] - 2) // (CELL + 2), (grid.shape[1] - 2) // (CELL + 2)


def test_transfer_figure_shows_the_truth_and_each_method(pairs):
    truth = SwapTruth(pairs, IMAGE_SIZE)
    oracle_rows = []

    def oracle(source, exemplar, mask, attributes):  # returns the ground truth of the rows it is shown
        oracle_rows.append(len(source))
        return images.to_float(truth.render("mouth", range(len(source))))

    paste = Method("paste", lambda s, e, m, t: e * m + s * (1 - m))
    grid = transfer_figure([Method("oracle", oracle), paste], pairs, truth, "mouth", range(3))
    assert oracle_rows == [3] and _cells(grid) == (3, 6)  # source, exemplar, mask, truth, two methods
    truth_cell = grid[-(CELL + 2) : -2, 3 * (CELL + 2) + 2 : 4 * (CELL + 2)]
    oracle_cell = grid[-(CELL + 2) : -2, 4 * (CELL + 2) + 2 : 5 * (CELL + 2)]
    np.testing.assert_array_equal(truth_cell, oracle_cell)  # the last row: the oracle's edit is its truth


def test_filter_figure_uses_exemplars_that_have_the_attribute(pairs):
    truth = SwapTruth(pairs, IMAGE_SIZE)
    seen = []

    def record(source, exemplar, mask, attributes):
        seen.append(None if attributes is None else np.asarray(attributes).copy())
        return source

    holders = np.flatnonzero(pairs.labels(["Smiling"], exemplar=True)[:, 0])
    assert holders.size > 0
    method = Method("M", record, attribute_names=("Mustache", "Smiling"), variant="att_ebgan")
    grid = filter_figure(method, pairs, truth, "mouth", "Smiling", count=2)
    assert _cells(grid) == (min(2, holders.size), 7)
    assert seen[0] is None and (seen[1][:, 1] == 0).all() and (seen[1][:, 0] == 1).all()
    nobody = dataclasses.replace(pairs, attributes={**pairs.attributes, "Smiling": np.zeros(len(pairs), bool)})
    with pytest.raises(ValueError, match="No exemplar among the 16 test pairs has Smiling"):
        filter_figure(method, nobody, truth, "mouth", "Smiling", count=2)


def test_composed_figure_composes_each_sources_parts_from_the_next_faces_at_each_strength(pairs):
    calls = []

    class Recorder:  # an editor that returns the source with each strength written into it
        def edit_composed(self, source, exemplars, masks, strengths):
            calls.append((source, exemplars, masks, strengths))
            return np.broadcast_to(np.uint8(strengths[:, :1, None, None] * 200), source.shape).copy()

    grid = composed_figure(Recorder(), pairs, range(3))
    parts = len(COMPOSED_PARTS)
    assert _cells(grid) == (3, 1 + parts + 1 + len(COMPOSED_STRENGTHS))
    assert [float(call[3][0, 0]) for call in calls] == list(COMPOSED_STRENGTHS)
    source, exemplars, masks, strengths = calls[-1]
    np.testing.assert_array_equal(source, pairs.sources[:3])
    assert exemplars.shape == (3, parts, IMAGE_SIZE, IMAGE_SIZE, 3) and strengths.shape == (3, parts)
    for part, (region, offset) in enumerate(COMPOSED_PARTS):
        donors = [(row + offset) % len(pairs) for row in range(3)]
        np.testing.assert_array_equal(exemplars[:, part], pairs.sources[donors])
        np.testing.assert_array_equal(masks[:, part], region_masks(pairs.landmarks[:3], region, IMAGE_SIZE))
    last_cell = grid[-(CELL + 2) : -2, -(CELL + 2) : -2]
    assert (last_cell == 200).all()  # the strength-1 column shows the strength-1 call's output


def test_cli_writes_every_figure(runs, data_dir, tmp_path, capsys):
    argv = [
        "ebgan-figures",
        f"--model={runs['ebgan']},{runs['att_ebgan']}",
        f"--data_dir={data_dir}",
        f"--output_dir={tmp_path}",
        "--rows=2",
        "--filter_attribute=Smiling",
    ]
    assert run_in_process(figures.main, figures.define_flags, argv) == 0
    names = ["fig5_mouth.png", "fig6_components.png", "fig7_face.png", "fig8_filter_smiling.png"]
    assert capsys.readouterr().out.splitlines() == [f"Wrote {tmp_path / name}" for name in names]
    assert _cells(images.load_image(str(tmp_path / "fig5_mouth.png"))) == (2, 6)  # EBGAN and Att-EBGAN columns
    assert _cells(images.load_image(str(tmp_path / "fig8_filter_smiling.png")))[1] == 7


def test_cli_draws_the_composed_figure_with_an_export(runs, data_dir, tmp_path, capsys):
    export = export_saved_model(load_trained(runs["att_ebgan"]), str(tmp_path / "exports"), "model", LANDMARK_TEMPLATE)
    argv = [
        "ebgan-figures",
        f"--model={runs['ebgan']},{export}",
        f"--data_dir={data_dir}",
        f"--output_dir={tmp_path / 'out'}",
        "--rows=2",
        "--regions=mouth",
        "--filter_attribute=Smiling",
    ]
    assert run_in_process(figures.main, figures.define_flags, argv) == 0
    written = capsys.readouterr().out.splitlines()
    assert written[-1] == f"Wrote {tmp_path / 'out' / COMPOSED_FIGURE}"
    assert _cells(images.load_image(str(tmp_path / "out" / COMPOSED_FIGURE))) == (2, 10)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--regions=ears"], "Unknown region(s) 'ears'"),
        (["--regions=eyes"], "No paper figure for region(s) eyes"),
        (["--filter_attribute=Tail"], "has no attribute 'Tail'"),
        (["--rows=0"], "--rows must be at least 1"),
    ],
)
def test_cli_errors_exit_1_with_one_line(runs, data_dir, tmp_path, capsys, extra, message):
    argv = [
        "ebgan-figures",
        f"--model={runs['att_ebgan']}",
        f"--data_dir={data_dir}",
        f"--output_dir={tmp_path / 'out'}",
        *extra,
    ]
    assert run_in_process(figures.main, figures.define_flags, argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ebgan-figures: error:") and message in lines[0]
    assert not (tmp_path / "out").exists()
