"""Quality over training time (the library behind `ebgan-curve`): the checkpoints of some runs scored on the same
test pairs with `scoring.evaluate`, cached in curve.json, drawn in curve.png and tabled in curve.md.

Training minutes of a checkpoint = the modification time of its `.index` file minus the run's start. The start is the
time in the name of the run's first TensorBoard event file (`logs/train/events.out.tfevents.<seconds>...`, opened
by ebgan-train just before its first step, after the data and the models are set up), or config.json's
modification time for a run without logs. It is wall-clock time: a run that was stopped and resumed counts the
time it was stopped as well, and copying a run without keeping file times (`cp` without `-p`) spoils it.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

from ebgan_tf.config import validate_regions
from ebgan_tf.evaluation.evaluate import EvaluationSet, load_evaluation_set, open_models
from ebgan_tf.evaluation.methods import model_method
from ebgan_tf.evaluation.report import decimal, percent, signed, table
from ebgan_tf.evaluation.scoring import evaluate
from ebgan_tf.files import write_atomically, write_text_atomically
from ebgan_tf.runs import (
    CONFIG_FILE,
    LOG_DIR,
    RunConfig,
    checkpoint_paths,
    checkpoint_step,
    load_trained,
    run_config_from_dir,
)

CURVE_JSON, CURVE_PNG, CURVE_MD = "curve.json", "curve.png", "curve.md"
CURVE_FILES = (CURVE_JSON, CURVE_PNG, CURVE_MD)
# What curve.png's horizontal axis counts: a point's key in curve.json, and the axis label.
X_AXES = {"minutes": ("minutes", "training minutes (wall clock)"), "steps": ("step", "training steps")}
# The measures of a point; the first three are the plot's panels.
PANELS = {
    "transfer_psnr": "transfer PSNR (dB)",
    "exemplar_gain": "exemplar gain (dB)",
    "attribute_accuracy": "attribute transfer accuracy",
}


def run_start(model_dir: str) -> float:
    """When the run's training began, in seconds since the epoch (see the module docstring)."""
    events = glob.glob(os.path.join(model_dir, LOG_DIR, "train", "events.out.tfevents.*"))
    if events:  # events.out.tfevents.<seconds>.<host>...: the time the writer opened the file
        return min(float(os.path.basename(path).split(".")[3]) for path in events)
    return os.path.getmtime(os.path.join(model_dir, CONFIG_FILE))


def curve_point(scores: dict, step: int, minutes: float, saved_at: float) -> dict:
    """One checkpoint's entry of curve.json from its `scoring.evaluate` scores on one region (None = not measured)."""
    transfer = scores["transfer"] or {}
    return {
        "step": step,
        "minutes": minutes,
        "saved_at": saved_at,  # the checkpoint's .index mtime: a rewritten checkpoint is measured again
        "transfer_psnr": transfer.get("psnr"),
        "exemplar_gain": transfer.get("exemplar_gain"),
        "colour_share": transfer.get("colour_share"),
        "attribute_accuracy": (scores["attribute_transfer"] or {}).get("mean"),
        "code_spread": (scores["code_spread"] or {}).get("mean"),
        "reconstruction_psnr": (scores["reconstruction"] or {}).get("psnr"),
    }


def select_checkpoints(paths: Sequence[str], every: int) -> list[str]:
    """Every `every`-th of `paths` from the first, and the last."""
    chosen = list(paths[::every])
    return chosen if not paths or chosen[-1] == paths[-1] else chosen + [paths[-1]]


def _read_cache(output_dir: str, settings: dict) -> dict:
    """The curve.json of an earlier call with the same settings ({} if there is none)."""
    path = os.path.join(output_dir, CURVE_JSON)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as stream:
        cached = json.load(stream)
    differences = [
        f"{key}: {cached['settings'].get(key)!r} there, {value!r} now"
        for key, value in settings.items()
        if cached["settings"].get(key) != value
    ]
    if differences:
        raise ValueError(
            f"{path} was measured with other settings ({'; '.join(differences)}); use another "
            "--output_dir or the same settings."
        )
    return cached


def _run_entry(model_dir: str, label: str, config: RunConfig, cached_points: Sequence[dict]) -> dict:
    return {
        "label": label,
        "model_dir": model_dir,
        "preset": config.preset,
        "variant": config.variant,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "start": datetime.datetime.fromtimestamp(run_start(model_dir), datetime.timezone.utc).isoformat(),
        "points": list(cached_points),
    }


def _describe(point: dict) -> str:
    return (
        f"transfer PSNR {decimal(point['transfer_psnr'], 2)} dB, exemplar gain {signed(point['exemplar_gain'])}, "
        f"colour share {decimal(point.get('colour_share'), 2)}, "
        f"attribute accuracy {percent(point['attribute_accuracy'])}, code spread "
        f"{decimal(point['code_spread'], 3)}"
    )


def quality_curve(
    model_dirs: Sequence[str],
    data_dir: str,
    classifier_dir: str | None,
    output_dir: str,
    labels: Sequence[str] | None = None,
    region: str | None = None,
    num_pairs: int = 100,
    every: int = 1,
    batch_size: int = 32,
    x_axis: str = "minutes",
    log: Callable[[str], None] = print,
) -> dict:
    """`ebgan-curve`: scores every `every`-th checkpoint (and the last) of each run on the same `num_pairs` test pairs
    of `region` (default: the first run's first region), writes curve.json, curve.png and curve.md into `output_dir`
    and returns the curve. Checkpoints already in `output_dir`'s curve.json are not measured again; curve.json is
    rewritten after each new checkpoint, so an interrupted call loses at most the checkpoint in progress.

    Raises ValueError / OSError for user errors (no run, a run without checkpoints, a label count that does not
    match, runs of different image sizes, an unknown region, a classifier of another data set, curve.json of other
    settings), before anything is written.
    """
    if not model_dirs:
        raise ValueError("No model directory given.")
    if x_axis not in X_AXES:
        raise ValueError(f"Unknown x axis {x_axis!r}; give one of {', '.join(X_AXES)}.")
    labels = list(labels) if labels else [os.path.basename(os.path.normpath(path)) for path in model_dirs]
    if len(labels) != len(model_dirs):
        raise ValueError(f"Got {len(labels)} labels for {len(model_dirs)} runs: give one label per --model_dir.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"The labels must differ, got {', '.join(labels)}.")
    if region is not None:
        validate_regions([region])
    model_dirs = [os.path.abspath(path) for path in model_dirs]
    configs = [run_config_from_dir(path) for path in model_dirs]
    checkpoints = [checkpoint_paths(path) for path in model_dirs]
    for path, paths in zip(model_dirs, checkpoints):
        if not paths:
            raise ValueError(
                f"{path} has no checkpoints (ebgan-curve scores a run's checkpoints: train with --checkpoint_every)."
            )
    assert configs[0].regions is not None, "run_config_from_dir resolves"
    region = region or configs[0].regions[0]
    _, image_size, dataset, _ = open_models(model_dirs, None, [region])
    evaluation = load_evaluation_set(dataset, image_size, [region], data_dir, classifier_dir, num_pairs)
    settings = {
        "dataset": evaluation.dataset,
        "data_dir": os.path.abspath(data_dir),
        "region": region,
        "num_pairs": len(evaluation.pairs),
        "image_size": evaluation.image_size,
        "classifier_dir": os.path.abspath(classifier_dir) if classifier_dir else None,
    }
    cached = _read_cache(output_dir, settings)
    cached_runs = {run["model_dir"]: run["points"] for run in cached.get("runs", [])}
    curve: dict[str, Any] = {
        "settings": settings,
        "classifier_ceiling": cached.get("classifier_ceiling"),
        "runs": [
            _run_entry(path, label, config, cached_runs.get(path, []))
            for path, label, config in zip(model_dirs, labels, configs)
        ],
    }

    todo = []
    for run, paths in zip(curve["runs"], checkpoints):
        start, known = run_start(run["model_dir"]), {point["step"]: point for point in run["points"]}
        for path in select_checkpoints(paths, every):
            saved_at = os.path.getmtime(f"{path}.index")
            point = known.get(checkpoint_step(path))
            if point is None or point["saved_at"] != saved_at:
                todo.append((run, path, (saved_at - start) / 60, saved_at))
        log(
            f"{run['label']}: {len(paths)} checkpoints, {len(run['points'])} measured before, "
            f"{sum(entry[0] is run for entry in todo)} to measure."
        )
    for count, (run, path, minutes, saved_at) in enumerate(todo, 1):
        began = time.monotonic()
        point, ceiling = _measure(run, path, minutes, saved_at, evaluation, region, batch_size)
        run["points"] = sorted(
            [p for p in run["points"] if p["step"] != point["step"]] + [point], key=lambda p: p["step"]
        )
        curve["classifier_ceiling"] = ceiling
        write_text_atomically(os.path.join(output_dir, CURVE_JSON), json.dumps(curve, indent=2) + "\n")
        log(
            f"[{count}/{len(todo)}] {run['label']} step {point['step']} ({minutes:.1f} min): {_describe(point)} "
            f"({time.monotonic() - began:.0f} s)"
        )
    write_text_atomically(os.path.join(output_dir, CURVE_JSON), json.dumps(curve, indent=2) + "\n")
    plot_curve(curve, os.path.join(output_dir, CURVE_PNG), x_axis)
    write_text_atomically(os.path.join(output_dir, CURVE_MD), curve_markdown(curve))
    return curve


def _measure(
    run: dict, path: str, minutes: float, saved_at: float, evaluation: EvaluationSet, region: str, batch_size: int
) -> tuple[dict, float | None]:
    """The curve point of checkpoint `path` of `run`, and the classifier's accuracy on the ground truth."""
    trainer = load_trained(run["model_dir"], checkpoint=path)
    results, _ = evaluate(
        [model_method(trainer, run["label"])],
        evaluation.pairs,
        evaluation.region_attributes,
        evaluation.classifier,
        evaluation.truth,
        batch_size,
        grid_rows=1,
    )
    result = results["regions"][region]
    truth = result["ground_truth"]
    ceiling = truth["attribute_transfer"]["mean"] if truth else None
    return curve_point(result["methods"][run["label"]], checkpoint_step(path), minutes, saved_at), ceiling


def plot_curve(curve: dict, path: str, x_axis: str = "minutes") -> None:
    """curve.png: one panel per measure of PANELS against training minutes or steps (`x_axis`, see X_AXES), one
    line per run."""
    x_key, x_label = X_AXES[x_axis]
    figure = Figure(figsize=(15, 4.2), layout="constrained")
    settings = curve["settings"]
    figure.suptitle(
        f"Quality over training time: {settings['region']}, {settings['num_pairs']} test pairs of "
        f"{settings['dataset']} at {settings['image_size']} px"
    )
    for axis, (key, title) in zip(figure.subplots(1, len(PANELS)), PANELS.items()):
        for run in curve["runs"]:
            measured = [(point[x_key], point[key]) for point in run["points"] if point[key] is not None]
            if measured:
                axis.plot(*zip(*measured), marker="o", markersize=3, label=run["label"])
        if key == "attribute_accuracy" and curve["classifier_ceiling"] is not None:
            axis.axhline(
                curve["classifier_ceiling"], color="grey", linestyle="--", label="classifier on the ground truth"
            )
        if not axis.lines:
            axis.text(
                0.5,
                0.5,
                "not measured" + ("\n(no --classifier_dir)" if key == "attribute_accuracy" else "\n(no ground truth)"),
                ha="center",
                va="center",
                transform=axis.transAxes,
            )
        else:
            axis.legend(fontsize=8)
        axis.set_title(title)
        axis.set_xlabel(x_label)
        axis.grid(alpha=0.3)
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))


def curve_markdown(curve: dict) -> str:
    """curve.md: the settings and one table row per measured checkpoint."""
    settings = curve["settings"]
    lines = [
        f"# Quality over training time: {settings['region']}",
        "",
        f"{settings['num_pairs']} test pairs of {settings['dataset']} at {settings['image_size']} px; "
        f"evaluation classifier: {settings['classifier_dir'] or 'none'}"
        + (
            f" (on the ground truth: {percent(curve['classifier_ceiling'])})"
            if curve["classifier_ceiling"] is not None
            else ""
        )
        + ".",
        "",
    ]
    rows = [
        [
            run["label"],
            str(point["step"]),
            f"{point['minutes']:.1f}",
            decimal(point["transfer_psnr"], 2),
            signed(point["exemplar_gain"]),
            decimal(point.get("colour_share"), 2),
            percent(point["attribute_accuracy"]),
            decimal(point["code_spread"], 3),
            decimal(point["reconstruction_psnr"], 2),
        ]
        for run in curve["runs"]
        for point in run["points"]
    ]
    lines += table(
        [
            "run",
            "step",
            "minutes",
            "transfer PSNR (dB)",
            "exemplar gain",
            "colour share",
            "attribute acc.",
            "code spread",
            "rec. PSNR (dB)",
        ],
        rows,
    )
    runs = [
        f"- {run['label']}: {run['model_dir']} ({run['preset']}, {run['variant']}, batch {run['batch_size']}, "
        f"lr {run['learning_rate']:g}; started {run['start']})"
        for run in curve["runs"]
    ]
    return "\n".join(lines + ["", "Runs:", *runs]) + "\n"
