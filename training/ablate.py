r"""ebgan-ablate: train a named proxy configuration for a few hundred steps and append its scores to a results table.

  ebgan-ablate --ablation=parts --steps=600 --data_dir=runs/data64

Each ablation (training/ablations.py) trains one model on mouth, components and face in
<runs_dir>/<ablation>-<steps> (rerunning resumes or, when finished, only scores it again), then scores it on the first
--num_pairs test faces for every region of --eval_regions (ebgan-eval's report goes into the run's eval/ folder) and
appends one row to --results: transfer PSNR and exemplar gain per region, the reconstruction PSNR and the model's
zero-code baseline of the composite regions, the naive paste's, the training minutes and the command.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time

from absl import flags

from ebgan_tf.cli import check_no_arguments, define_data_dir_flag, reports_errors, run_main
from ebgan_tf.config import VARIANT_NAMES, get_preset, parse_regions
from ebgan_tf.evaluation.evaluate import evaluate_models
from ebgan_tf.files import write_text_atomically
from ebgan_tf.runs import RunConfig, trained_step
from ebgan_tf.training import train_lib
from ebgan_tf.training.ablations import ABLATIONS, Ablation
from ebgan_tf.training.distribute import make_strategy

STEPS_PER_EPOCH = 100
MINUTES_FILE = "ablation.json"  # training minutes of the run, summed over the invocations that trained it


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_list(
        "ablation",
        None,
        f"Names of the configurations to train and score, in turn: "
        f"{', '.join(ABLATIONS)} (training/ablations.py says what each sets).",
    )
    flags.DEFINE_integer("steps", 600, "Training steps of each run (a multiple of 100).")
    flags.DEFINE_integer("batch_size", 16, "Global batch size of every run (the same for all, so that runs compare).")
    flags.DEFINE_integer("seed", 0, "Seed of the weights and of the input pipeline.")
    define_data_dir_flag()
    flags.DEFINE_string("runs_dir", "runs/ablate", "Folder of the runs (one sub-folder per ablation and length).")
    flags.DEFINE_string(
        "eval_regions",
        "components,face,mouth,eyes,brows,nose",
        "Regions to score (the model trains on mouth, components and face; the single parts eyes, "
        "brows and nose measure each part of the components on its own).",
    )
    flags.DEFINE_integer("num_pairs", 100, "Test faces scored per region (the first ones of the test split).")
    flags.DEFINE_string(
        "results",
        "runs/ablate/results.md",
        "Markdown file the rows are appended to: under its last table when that one scores the same regions, "
        "else under a new table with its header (a new file too).",
    )
    flags.mark_flag_as_required("ablation")


FLAGS = flags.FLAGS


def run_config(
    name: str, ablation: Ablation, steps: int, batch_size: int, seed: int, data_dir: str, runs_dir: str
) -> RunConfig:
    """The training run of one ablation."""
    preset = get_preset(ablation.preset)
    return RunConfig(
        model_dir=os.path.join(runs_dir, f"{name}-{steps}"),
        preset=ablation.preset,
        variant=ablation.variant,
        regions=ablation.regions,
        data_dir=data_dir,
        epochs=steps // STEPS_PER_EPOCH,
        steps_per_epoch=STEPS_PER_EPOCH,
        batch_size=batch_size,
        loss_weights=dataclasses.replace(preset.train.loss_weights, **ablation.losses),
        model_overrides={key: str(value) for key, value in ablation.model.items()},
        seed=seed,
        checkpoint_every=STEPS_PER_EPOCH,
        keep_checkpoints=2,
        image_every=steps,
        validation_steps=0,
        **ablation.train,
    )


def train_minutes(config: RunConfig) -> float:
    """Trains (or resumes) the run; returns its training minutes over every invocation."""
    path = os.path.join(config.model_dir, MINUTES_FILE)
    minutes = 0.0
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            minutes = json.load(stream)["minutes"]
    if trained_step(config.model_dir) < config.epochs * config.steps_per_epoch:
        start = time.monotonic()
        train_lib.train(config, make_strategy("auto"))
        minutes += (time.monotonic() - start) / 60.0
        write_text_atomically(path, json.dumps({"minutes": minutes}) + "\n")
    return minutes


def _psnr(scores: dict | None, key: str = "psnr") -> float | None:
    return None if scores is None else scores.get(key)


def _cell(transfer: float | None, gain: float | None) -> str:
    return "—" if transfer is None else f"{transfer:.2f} ({gain:+.2f})"


def result_row(name: str, config: RunConfig, minutes: float, report: dict, command: str) -> dict:
    """The scores of one ablation: per region the model's transfer PSNR, gain and reconstruction PSNR, and the
    baselines' transfer PSNR."""
    model = VARIANT_NAMES[config.variant]
    regions = {}
    for region, result in report["regions"].items():
        methods = result["methods"]
        own, paste = methods[model], methods["naive paste"]
        zero = methods.get(f"zero exemplar code ({model})", {})
        regions[region] = {
            "transfer": _psnr(own["transfer"]),
            "gain": _psnr(own["transfer"], "exemplar_gain"),
            "reconstruction": _psnr(own["reconstruction"]),
            "zero_code": _psnr(zero.get("transfer")),
            "naive_paste": _psnr(paste["transfer"]),
        }
    return {
        "ablation": name,
        "variant": config.variant,
        "steps": trained_step(config.model_dir),
        "minutes": round(minutes, 1),
        "date": datetime.date.today().isoformat(),
        "regions": regions,
        "command": command,
    }


def markdown_row(row: dict, regions: list[str]) -> tuple[str, str]:
    """(header, row) of the results table."""
    composite = [region for region in ("components", "face") if region in regions]
    header = (
        ["ablation", "steps", "min"]
        + [f"{region} transfer (gain)" for region in regions]
        + [f"{region} rec. / zero code / paste" for region in composite]
        + ["date", "command"]
    )
    scores = row["regions"]
    cells = (
        [row["ablation"], str(row["steps"]), f"{row['minutes']:.1f}"]
        + [_cell(scores[region]["transfer"], scores[region]["gain"]) for region in regions]
        + [
            " / ".join(
                "—" if scores[region][key] is None else f"{scores[region][key]:.2f}"
                for key in ("reconstruction", "zero_code", "naive_paste")
            )
            for region in composite
        ]
        + [row["date"], f"`{row['command']}`"]
    )
    return "| " + " | ".join(header) + " |", "| " + " | ".join(cells) + " |"


def append_row(path: str, header: str, line: str) -> None:
    """Appends `line` to the last table in `path` when that table has `header`, else under a new table with it (a
    new file, or rows scored on other regions)."""
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    headers = [row for row in text.splitlines() if row.startswith("| ablation |")]
    if not headers or headers[-1] != header:
        text += ("\n" if text else "") + header + "\n" + "|" + "---|" * header.count(" | ") + "---|\n"
    write_text_atomically(path, text + line + "\n")


@reports_errors("ebgan-ablate", ValueError, OSError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    unknown = [name for name in FLAGS.ablation if name not in ABLATIONS]
    if unknown:
        raise ValueError(f"Unknown ablation(s) {', '.join(map(repr, unknown))}; valid: {', '.join(ABLATIONS)}.")
    if FLAGS.steps < STEPS_PER_EPOCH or FLAGS.steps % STEPS_PER_EPOCH:
        raise ValueError(f"--steps must be a positive multiple of {STEPS_PER_EPOCH}, got {FLAGS.steps}.")
    regions = list(parse_regions(FLAGS.eval_regions))
    data_dir = os.path.expanduser(FLAGS.data_dir)
    for name in FLAGS.ablation:
        ablation = ABLATIONS[name]
        config = run_config(name, ablation, FLAGS.steps, FLAGS.batch_size, FLAGS.seed, data_dir, FLAGS.runs_dir)
        print(f"ebgan-ablate: {name} ({ablation.description}): {FLAGS.steps} steps in {config.model_dir}.", flush=True)
        minutes = train_minutes(config)
        report = evaluate_models(
            [config.model_dir],
            data_dir,
            None,
            os.path.join(config.model_dir, "eval"),
            regions=regions,
            num_pairs=FLAGS.num_pairs,
        )
        command = (
            f"ebgan-ablate --ablation={name} --steps={FLAGS.steps} --batch_size={FLAGS.batch_size} "
            f"--seed={FLAGS.seed} --num_pairs={FLAGS.num_pairs}"
        )
        if FLAGS["eval_regions"].present:
            command += f" --eval_regions={','.join(regions)}"
        header, line = markdown_row(result_row(name, config, minutes, report, command), regions)
        append_row(FLAGS.results, header, line)
        print(line, flush=True)
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
