"""The evaluation report: Markdown tables, report.json, grid.png and TensorBoard summaries."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from ebgan_tf import images, summaries
from ebgan_tf.evaluation.scoring import NO_CLASSIFIER_NOTE
from ebgan_tf.files import write_text_atomically

REPORT_FILES = ("report.md", "report.json", "grid.png")


def percent(value: float | None) -> str:
    """A share as "93.5%" ("—" for None)."""
    return "—" if value is None else f"{100 * value:.1f}%"


def decimal(value: float | None, digits: int) -> str:
    """A number with `digits` decimals ("—" for None)."""
    return "—" if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(report: dict) -> str:
    """The report as Markdown: set-up, one table per region, per-attribute tables, the targets."""
    classifier = report.get("classifier", {})
    accuracy = classifier.get("test_accuracy") or {}
    lines = ["# Edit-quality report", ""]
    lines += [
        f"- data: {report.get('dataset')} {report.get('split', 'test')} split, {report.get('num_pairs')} "
        f"pairs (exemplar of face i = face i+1), {report.get('image_size')} px, masks from the source's "
        "landmarks (unjittered)"
    ]
    for model in report.get("models", []):
        trained = (
            f"regions {','.join(model['regions'])}, step {model['step']}"
            if model.get("step") is not None
            else "exported model, through its signatures"
        )
        lines.append(f"- {model['name']}: `{model['model_dir']}` ({model['variant']}, {trained})")
    if classifier:
        lines.append(
            f"- evaluation classifier: `{classifier.get('dir')}`, test accuracy on real images "
            f"{percent(accuracy.get('mean'))} mean, {percent(accuracy.get('min'))} min"
        )
    if report.get("date"):
        lines.append(f"- date: {report['date']}")
    lines += [
        "",
        "PSNR in dB (capped at 100), L1 in 0..255 pixel units, all inside the mask; attribute metrics "
        "read by the evaluation classifier; filtering drops one attribute at a time.",
        "",
    ]
    if not classifier:
        lines += [NO_CLASSIFIER_NOTE, ""]
    lines += [
        "Exemplar gain: transfer PSNR minus the PSNR of the same sources edited with another face as exemplar "
        "(0 dB: the exemplar does not help). Code spread: std of E(B, M) over the exemplars / mean |E(B, M)| "
        "(0: one code for every face). Colour share: how far the region's mean colour moved from the source's "
        "toward the ground truth's (1: all the way, 0: the source's colour kept).",
        "",
    ]
    header = [
        "method",
        "rec. PSNR",
        "rec. SSIM",
        "rec. L1",
        "transfer PSNR",
        "transfer SSIM",
        "transfer L1",
        "exemplar gain",
        "colour share",
        "code spread",
        "attribute acc.",
        "leak rate",
        "kept agreement",
        "filtered PSNR",
        "max diff outside",
    ]
    for region, result in report["regions"].items():
        lines += [f"## Region: {region}", ""]
        rows = []
        for name, scores in result["methods"].items():
            rec, transfer, filtering = scores["reconstruction"] or {}, scores["transfer"] or {}, scores["filtering"]
            spread = scores.get("code_spread") or {}
            rows.append(
                [
                    name,
                    decimal(rec.get("psnr"), 2),
                    decimal(rec.get("ssim"), 3),
                    decimal(rec.get("l1"), 2),
                    decimal(transfer.get("psnr"), 2),
                    decimal(transfer.get("ssim"), 3),
                    decimal(transfer.get("l1"), 2),
                    signed(transfer.get("exemplar_gain")),
                    decimal(transfer.get("colour_share"), 2),
                    decimal(spread.get("mean"), 3),
                    percent(_mean(scores["attribute_transfer"])),
                    percent(_mean(filtering and filtering["leak_rate"])),
                    percent(_mean(filtering and filtering["kept_agreement"])),
                    decimal(filtering["psnr"], 2) if filtering else "—",
                    f"{scores['outside_max_diff']:g}",
                ]
            )
        truth = result["ground_truth"]
        if truth:
            filtering = truth["filtering"]
            rows.append(
                [
                    "ground truth (classifier ceiling)",
                    *["—"] * 9,
                    percent(truth["attribute_transfer"]["mean"]),
                    percent(filtering["leak_rate"]["mean"]) if filtering else "—",
                    percent(filtering["kept_agreement"]["mean"]) if filtering else "—",
                    "—",
                    "—",
                ]
            )
        lines += table(header, rows) + [""]
        if result.get("other_truth_psnr") is not None:
            lines += [
                f"The ground truth with the other face's {region} (face i + 2's, the exemplar gain's) scores "
                f"{decimal(result['other_truth_psnr'], 2)} dB against the ground truth with the exemplar's: the "
                "transfer PSNR of a perfect edit from the wrong face.",
                "",
            ]
        attributes = result["attributes"]
        per_attribute = [
            [name, *(percent(scores["attribute_transfer"]["per_attribute"][a]) for a in attributes)]
            for name, scores in result["methods"].items()
            if scores["attribute_transfer"]
        ]
        if truth:
            per_attribute.append(
                ["ground truth", *(percent(truth["attribute_transfer"]["per_attribute"][a]) for a in attributes)]
            )
        if per_attribute:
            lines += ["Attribute transfer accuracy per attribute:", ""]
            lines += table(["method", *attributes], per_attribute)
        leaks = [
            [name, *(percent(scores["filtering"]["leak_rate"]["per_attribute"][a]) for a in attributes)]
            for name, scores in result["methods"].items()
            if scores["filtering"] and scores["filtering"]["leak_rate"]
        ]
        if truth and truth["filtering"]:
            leaks.append(
                ["ground truth", *(percent(truth["filtering"]["leak_rate"]["per_attribute"][a]) for a in attributes)]
            )
        if leaks:
            lines += ["", "Leak rate per attribute (switched off for exemplars that have it):", ""]
            lines += table(["method", *attributes], leaks)
        lines.append("")
    if report["targets"]:
        lines += ["## Targets", ""]
        rows = [
            [
                check["region"],
                check["method"],
                check["target"],
                _format_target_value(check),
                "met" if check["met"] else f"missed by {_format_margin(check)}",
            ]
            for check in report["targets"]
        ]
        lines += table(["region", "method", "target", "value", "result"], rows) + [""]
    return "\n".join(lines)


def signed(value: float | None) -> str:
    """A difference in dB with its sign, "+3.25 dB" ("—" for None)."""
    return "—" if value is None else f"{value:+.2f} dB"


def _mean(rates: dict | None) -> float | None:
    return rates["mean"] if rates else None


def _format_target_value(check: dict) -> str:
    if "PSNR" in check["target"]:
        return f"{check['value']:.2f} dB" + (
            f" (needs {check['threshold']:.2f} dB)"
            if "baseline" in check["target"] or "paste" in check["target"]
            else ""
        )
    if "gain" in check["target"]:
        return signed(check["value"])
    if "spread" in check["target"]:
        return f"{check['value']:.3f}"
    return percent(check["value"])


def _format_margin(check: dict) -> str:
    if "PSNR" in check["target"] or "gain" in check["target"]:
        return f"{abs(check['margin']):.2f} dB"
    if "spread" in check["target"]:
        return f"{abs(check['margin']):.3f}"
    return f"{100 * abs(check['margin']):.2f} points"


def scalars(report: dict) -> dict[str, float]:
    """Every number of the region tables, keyed "region/method/section_metric" (for TensorBoard)."""
    values = {}
    for region, result in report["regions"].items():
        rows = dict(result["methods"])
        if result["ground_truth"]:
            rows["ground truth"] = result["ground_truth"]
        for name, scores in rows.items():
            prefix = f"{region}/{name.replace(' ', '_')}"
            for section in ("reconstruction", "transfer"):
                for metric, value in (scores.get(section) or {}).items():
                    values[f"{prefix}/{section}_{metric}"] = value
            values[f"{prefix}/attribute_accuracy"] = _mean(scores.get("attribute_transfer"))
            if scores.get("code_spread"):
                values[f"{prefix}/code_spread"] = scores["code_spread"]["mean"]
            filtering = scores.get("filtering")
            if filtering:
                values[f"{prefix}/leak_rate"] = _mean(filtering["leak_rate"])
                values[f"{prefix}/kept_agreement"] = _mean(filtering["kept_agreement"])
                values[f"{prefix}/filtered_psnr"] = filtering["psnr"]
            if "outside_max_diff" in scores:
                values[f"{prefix}/outside_max_diff"] = scores["outside_max_diff"]
    return {tag: value for tag, value in values.items() if value is not None}


def write_report(output_dir: str, report: dict, grid: np.ndarray, step: int = 0) -> None:
    """Writes report.md, report.json and grid.png (each atomically) and the TensorBoard summaries in logs/."""
    os.makedirs(output_dir, exist_ok=True)
    write_text_atomically(os.path.join(output_dir, "report.json"), json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text_atomically(os.path.join(output_dir, "report.md"), markdown(report))
    images.save_image(os.path.join(output_dir, "grid.png"), grid)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs"))
    with writer.as_default():
        for tag, value in scalars(report).items():
            summaries.write_scalar(tag, value, step)
        summaries.write_image("grid", grid, step)
    writer.close()
