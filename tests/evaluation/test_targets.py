"""The targets table (ebgan_tf/evaluation/targets.json) and `ebgan-eval --targets`."""

from __future__ import annotations

import json

import pytest

from ebgan_tf.cli import run_in_process
from ebgan_tf.evaluation import report, targets
from ebgan_tf.training import evaluate


def _result(
    variant: str, psnr: float, gain: float, paste: float, zero_code: float, accuracy: float = 0.95, leak: float = 0.02
) -> dict:
    """A one-region result: a model "M" of `variant` with its transfer, attribute and filtering scores, the naive
    paste and its zero-code baseline."""
    rates = {"mean": leak, "per_attribute": {"Smiling": leak}}
    model = {
        "role": "model",
        "variant": variant,
        "reconstruction": None,
        "code_spread": None,
        "transfer": {"psnr": psnr, "exemplar_gain": gain},
        "attribute_transfer": {"mean": accuracy, "per_attribute": {}},
        "filtering": {"leak_rate": rates, "kept_agreement": rates, "psnr": psnr, "psnr_per_attribute": {}, "edits": 10},
    }
    baseline = {
        "role": "baseline",
        "variant": "",
        "reconstruction": None,
        "code_spread": None,
        "attribute_transfer": None,
        "filtering": None,
        "unfiltered_psnr_per_attribute": None,
    }
    return {
        "methods": {
            "M": model,
            "naive paste": {**baseline, "transfer": {"psnr": paste}},
            "zero exemplar code (M)": {**baseline, "transfer": {"psnr": zero_code}},
        }
    }


def _shipped(region: str, result: dict, num_pairs: int = 500) -> dict[str, dict]:
    checks = targets.target_checks(targets.load_targets(), region, result, num_pairs)
    return {check["target"]: check for check in checks if check["target"].endswith("[shipped]")}


@pytest.mark.parametrize(
    "variant, region, floor",
    [
        ("att_ebgan", "mouth", 24.0),
        ("att_ebgan", "components", 22.0),
        ("att_ebgan", "face", 22.0),
        ("ebgan", "mouth", 23.0),
        ("ebgan", "components", 22.0),
        ("ebgan", "face", 22.0),
    ],
)
def test_the_shipped_models_targets_per_region(variant, region, floor):
    checks = _shipped(region, _result(variant, psnr=floor + 0.5, gain=3.5, paste=floor - 4.0, zero_code=floor - 3.0))
    expected = {
        f"transfer PSNR >= {floor:g} dB [shipped]",
        "exemplar gain >= +3 dB [shipped]",
        "transfer PSNR >= naive paste + 3 dB [shipped]",
        "transfer PSNR >= zero-code baseline + 3 dB [shipped]",
    }
    if variant == "att_ebgan":
        expected |= {"attribute transfer accuracy >= 90% [shipped]", "filter leak rate <= 5% [shipped]"}
    assert set(checks) == expected
    assert all(check["met"] for check in checks.values())
    assert checks["transfer PSNR >= zero-code baseline + 3 dB [shipped]"]["threshold"] == floor
    assert checks["transfer PSNR >= naive paste + 3 dB [shipped]"]["margin"] == pytest.approx(1.5)
    missed = _shipped(
        region,
        _result(
            variant, psnr=floor - 0.1, gain=2.9, paste=floor - 4.0, zero_code=floor - 3.0, accuracy=0.89, leak=0.06
        ),
    )
    assert [name for name, check in missed.items() if check["met"]] == ["transfer PSNR >= naive paste + 3 dB [shipped]"]


def test_the_shipped_targets_need_500_pairs_and_single_parts_a_gain_of_2_db():
    result = _result("ebgan", psnr=20.0, gain=2.5, paste=15.0, zero_code=15.0)
    assert _shipped("mouth", result, num_pairs=499) == {}
    for region in ("eyes", "brows", "nose", "mouth"):
        checks = {
            check["target"]: check for check in targets.target_checks(targets.load_targets(), region, result, 500)
        }
        assert checks["exemplar gain >= +2 dB [shipped, single part]"]["met"]
        assert checks["exemplar gain >= +3 dB"]["met"] is False  # the project's own target still applies
    face = targets.target_checks(targets.load_targets(), "face", result, 500)
    assert not [check for check in face if "single part" in check["target"]]


def test_the_report_says_how_far_a_leak_a_hair_above_its_bound_misses():
    leak = _shipped("face", _result("att_ebgan", psnr=25.0, gain=9.0, paste=18.0, zero_code=15.0, leak=0.0504))
    check = leak["filter leak rate <= 5% [shipped]"]
    assert check["met"] is False
    text = report.markdown({"regions": {}, "targets": [check]})
    assert "| 5.0% | missed by 0.04 points |" in text


def test_another_table_replaces_the_projects(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps(
            {
                "sets": [
                    {
                        "name": "mine",
                        "targets": [
                            {"metric": "transfer_psnr", "min": 30.0, "regions": ["mouth"]},
                            {"metric": "leak_rate", "max": 0.01, "variants": ["att_ebgan"]},
                        ],
                    }
                ]
            }
        )
    )
    checks = targets.target_checks(
        targets.load_targets(str(path)),
        "mouth",
        _result("att_ebgan", psnr=29.0, gain=3.0, paste=1.0, zero_code=1.0, leak=0.0),
        64,
    )
    assert [(check["target"], check["met"]) for check in checks] == [
        ("transfer PSNR >= 30 dB", False),
        ("filter leak rate <= 1%", True),
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"targets": []}', 'must be a JSON object with a list "sets"'),
        (
            '{"sets": [{"name": "x", "targets": [{"metric": "beauty", "min": 1}]}]}',
            r"set 1 \(x\), target 1: unknown metric 'beauty' \(known: code_spread, ",
        ),
        (
            '{"sets": [{"name": "x", "targets": [{"metric": "exemplar_gain"}]}]}',
            'exactly one of "min", "max" and "over"',
        ),
        ('{"sets": [{"name": "x", "targets": [{"metric": "exemplar_gain", "min": "3"}]}]}', '"min" must be a number'),
        (
            '{"sets": [{"name": "x", "targets": [{"metric": "transfer_psnr", "over": "paste"}]}]}',
            "unknown baseline 'paste'",
        ),
        (
            '{"sets": [{"name": "x", "targets": [{"metric": "exemplar_gain", "min": 3, "regions": ["ear"]}]}]}',
            "unknown region 'ear'",
        ),
        (
            '{"sets": [{"name": "x", "targets": [{"metric": "exemplar_gain", "min": 3, "region": ["mouth"]}]}]}',
            "unknown key 'region'",
        ),
    ],
)
def test_a_malformed_table_is_refused_with_its_file_and_entry(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"Targets file {path}.*{message}"):
        targets.load_targets(str(path))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.json", None, "Targets file not found: {path}"),
        ("bad.json", "[1, 2", "Targets file {path} is not valid JSON: "),
    ],
)
def test_ebgan_eval_refuses_a_missing_or_malformed_targets_file_in_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    argv = [
        "ebgan-eval",
        f"--model_dir={tmp_path / 'no_model'}",
        f"--output_dir={tmp_path / 'out'}",
        f"--targets={path}",
    ]
    assert run_in_process(evaluate.main, evaluate.define_flags, argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("ebgan-eval: error: " + message.format(path=path)) and error.count("\n") == 1, error
    assert not (tmp_path / "out").exists()
