"""ebgan-ablate: a named configuration trained, scored per region and appended to the results table."""

from __future__ import annotations

import os

import pytest

from ebgan_tf.cli import run_in_process
from ebgan_tf.config import ATT_EBGAN
from ebgan_tf.runs import read_config
from ebgan_tf.training import ablate
from ebgan_tf.training.ablations import ABLATIONS, PARTS, RECIPE, Ablation
from tests.helpers.tiny import TINY_MODEL


def test_every_named_ablation_is_a_valid_run():
    for name, ablation in ABLATIONS.items():
        config = ablate.run_config(name, ablation, 600, 16, 0, "data", "runs").resolved()
        assert config.epochs * config.steps_per_epoch == 600 and config.batch_size == 16
        assert config.regions == ABLATIONS[name].regions and config.model_dir == os.path.join("runs", f"{name}-600")
        for field, value in ablation.model.items():
            assert getattr(config.model_config(), field) == value, (name, field)
        for field, value in ablation.losses.items():
            assert getattr(config.loss_weights, field) == value, (name, field)


def test_plus_merges_settings_and_keeps_the_base():
    more = PARTS.plus("more", losses={"hole_rec_l2": 5.0}, variant="ebgan")
    assert more.model == {"code_pooling": "parts"} and more.losses == {**RECIPE.losses, "hole_rec_l2": 5.0}
    assert more.variant == "ebgan" and PARTS.variant == ATT_EBGAN and PARTS.losses == RECIPE.losses
    assert RECIPE.model == {"code_pooling": "global"} and more.regions == RECIPE.regions


@pytest.mark.slow
def test_an_ablation_trains_scores_and_appends_a_row_then_rescoring_does_not_train_again(
    data_dir, tmp_path, monkeypatch
):
    tiny = Ablation(
        "tiny per-part codes",
        model={**TINY_MODEL, "code_pooling": "parts"},
        losses={"exemplar_mask": "own"},
        train={"ema_decay": 0.9, "lr_decay_fraction": 0.5},
    )
    monkeypatch.setitem(ABLATIONS, "tiny", tiny)
    results = tmp_path / "results.md"
    argv = [
        "ebgan-ablate",
        "--ablation=tiny",
        "--steps=100",
        "--batch_size=4",
        "--num_pairs=6",
        "--eval_regions=components,mouth",
        f"--data_dir={data_dir}",
        f"--runs_dir={tmp_path / 'runs'}",
        f"--results={results}",
    ]
    assert run_in_process(ablate.main, ablate.define_flags, argv) == 0
    run = tmp_path / "runs" / "tiny-100"
    assert read_config(str(run))["model"]["code_pooling"] == "parts"
    assert (run / "eval" / "report.md").exists() and (run / "final.weights.h5").exists()
    lines = results.read_text().splitlines()
    assert lines[0].startswith("| ablation | steps | min | components transfer (gain) | mouth transfer (gain) |")
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:2] == ["tiny", "100"] and float(cells[2]) > 0
    transfer, gain = cells[3].split(" (")
    assert 5.0 < float(transfer) < 60.0 and gain.endswith(")")
    reconstruction, zero_code, paste = (float(value) for value in cells[5].split(" / "))
    assert all(5.0 < value < 60.0 for value in (reconstruction, zero_code, paste))
    assert "ebgan-ablate --ablation=tiny --steps=100" in cells[-1] and "--eval_regions=components,mouth`" in cells[-1]
    modified = os.path.getmtime(run / "final.weights.h5")
    assert run_in_process(ablate.main, ablate.define_flags, argv) == 0  # scored again, not trained again
    assert os.path.getmtime(run / "final.weights.h5") == modified
    assert len(results.read_text().splitlines()) == 4
    assert results.read_text().splitlines()[3].split("|")[3] == lines[2].split("|")[3]  # the same minutes


def test_a_row_scored_on_other_regions_starts_a_table_of_its_own(tmp_path):
    path = str(tmp_path / "results.md")
    first, second = "| ablation | steps | mouth transfer (gain) |", "| ablation | steps | face transfer (gain) |"
    ablate.append_row(path, first, "| a | 100 | 20.00 (+1.00) |")
    ablate.append_row(path, first, "| b | 100 | 21.00 (+2.00) |")
    ablate.append_row(path, second, "| c | 100 | 19.00 (+3.00) |")
    ablate.append_row(path, second, "| d | 100 | 18.00 (+4.00) |")
    assert (tmp_path / "results.md").read_text().splitlines() == [
        first,
        "|---|---|---|",
        "| a | 100 | 20.00 (+1.00) |",
        "| b | 100 | 21.00 (+2.00) |",
        "",
        second,
        "|---|---|---|",
        "| c | 100 | 19.00 (+3.00) |",
        "| d | 100 | 18.00 (+4.00) |",
    ]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--ablation=bigger", "Unknown ablation(s) 'bigger'; valid: preset, recipe"),
        ("--steps=150", "--steps must be a positive multiple of 100, got 150."),
    ],
)
def test_bad_flags_are_refused_before_anything_runs(flag, message, tmp_path, capsys):
    argv = ["ebgan-ablate", "--ablation=recipe", flag, f"--runs_dir={tmp_path}"]
    assert run_in_process(ablate.main, ablate.define_flags, argv) != 0
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)
