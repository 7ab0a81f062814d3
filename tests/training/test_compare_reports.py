"""compare_reports: the differences between an old and a new ebgan-eval report (make models)."""

from __future__ import annotations

import copy
import json

from ebgan_tf.cli import run_in_process
from ebgan_tf.training import compare_reports


def _report(psnr: float, met: bool) -> dict:
    scores = {
        "role": "model",
        "variant": "ebgan",
        "reconstruction": None,
        "code_spread": None,
        "attribute_transfer": None,
        "filtering": None,
        "outside_max_diff": 0.0,
        "transfer": {"psnr": psnr, "exemplar_gain": 3.5},
    }
    return {
        "regions": {"mouth": {"methods": {"EBGAN": scores}, "ground_truth": None}},
        "targets": [
            {
                "region": "mouth",
                "method": "EBGAN",
                "target": "transfer PSNR >= 24 dB",
                "value": psnr,
                "threshold": 24.0,
                "met": met,
                "margin": psnr - 24.0,
            }
        ],
    }


def test_prints_the_numbers_and_targets_that_changed(tmp_path, capsys):
    for name, report in (("old", _report(24.5, True)), ("new", _report(23.25, False))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report))
    argv = ["compare_reports", f"--old={tmp_path / 'old'}", f"--new={tmp_path / 'new'}"]
    assert run_in_process(compare_reports.main, compare_reports.define_flags, argv) == 0
    out = capsys.readouterr().out
    assert "| mouth/EBGAN/transfer_psnr | 24.5000 | 23.2500 | -1.2500 |" in out
    assert "| mouth | EBGAN | transfer PSNR >= 24 dB | met | missed |" in out
    assert "mouth/EBGAN/transfer_exemplar_gain" not in out  # unchanged numbers are counted, not listed
    assert out.rstrip().endswith("1 numbers changed, 2 unchanged; 1 target results changed.")


def test_the_same_report_has_no_differences():
    report = _report(24.5, True)
    assert compare_reports.compare(report, copy.deepcopy(report)) == (
        "0 numbers changed, 3 unchanged; 0 target results changed."
    )


def test_a_missing_report_is_a_one_line_error(tmp_path, capsys):
    argv = ["compare_reports", f"--old={tmp_path}", f"--new={tmp_path}"]
    assert run_in_process(compare_reports.main, compare_reports.define_flags, argv) == 1
    assert capsys.readouterr().err == f"compare_reports: error: No report.json in {tmp_path}.\n"
