r"""ebgan-curve: edit quality against training time, from the checkpoints of one or more runs.

  ebgan-curve --model_dir=runs/paper,runs/recipe --labels="paper's method,recipe" --data_dir=demo/data \
      --classifier_dir=runs/eval_classifier --region=mouth --num_pairs=100 --output_dir=runs/curve

Scores every checkpoint (or every --every-th, and the last) of each run on the same test pairs with ebgan-eval's
scoring: transfer PSNR, exemplar gain, attribute transfer accuracy (with --classifier_dir), code spread and
reconstruction PSNR, at the checkpoint's training minutes (wall clock since the run's start). Writes curve.json
(the cache: a rerun measures only checkpoints not in it), curve.png (three panels against minutes, one line per
run) and curve.md (a table) into --output_dir.
"""

from __future__ import annotations

import os

from absl import flags

from ebgan_tf.cli import (
    check_at_least_one,
    check_no_arguments,
    define_data_dir_flag,
    reports_errors,
    require_flags,
    run_main,
)
from ebgan_tf.evaluation.curve import CURVE_FILES, X_AXES, quality_curve


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_list(
        "model_dir",
        [],
        "Model directories written by ebgan-train, comma-separated: one line each in "
        "the plot. Each needs its checkpoints/ (the runs must share one image size). Required.",
    )
    flags.DEFINE_list(
        "labels",
        [],
        "Comma-separated names of the runs in the legend and the table, one per "
        "--model_dir. Default: the directories' names.",
    )
    define_data_dir_flag()
    flags.DEFINE_string(
        "classifier_dir",
        None,
        "Directory of the evaluation classifier (ebgan-eval-classifier "
        "--output_dir). Without it, the attribute accuracy is not measured.",
    )
    flags.DEFINE_string(
        "region",
        None,
        "The one region to edit: mouth, eyes, brows, nose, components or face. Default: the first run's first region.",
    )
    flags.DEFINE_integer(
        "num_pairs", 100, "Number of test faces (source/exemplar pairs), the same for every checkpoint."
    )
    flags.DEFINE_integer("every", 1, "Score every k-th checkpoint of each run (from the first), and the last.")
    flags.DEFINE_integer("batch_size", 32, "Pairs per model call.")
    flags.DEFINE_enum(
        "x_axis",
        "minutes",
        list(X_AXES),
        "What curve.png's horizontal axis counts: minutes (wall clock since the run's start, counting any time a "
        "resumed run was stopped) or steps (the checkpoints' training steps).",
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        f"Directory for {', '.join(CURVE_FILES)}; a curve.json there from an "
        "earlier call with the same settings is reused. Required.",
    )


FLAGS = flags.FLAGS


@reports_errors("ebgan-curve", ValueError, OSError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    require_flags("model_dir", "output_dir")
    check_at_least_one({"every": FLAGS.every, "batch_size": FLAGS.batch_size})
    quality_curve(
        FLAGS.model_dir,
        os.path.expanduser(FLAGS.data_dir),
        FLAGS.classifier_dir,
        FLAGS.output_dir,
        labels=FLAGS.labels,
        region=FLAGS.region,
        num_pairs=FLAGS.num_pairs,
        every=FLAGS.every,
        batch_size=FLAGS.batch_size,
        x_axis=FLAGS.x_axis,
    )
    print(f"Wrote {', '.join(CURVE_FILES)} to {FLAGS.output_dir}.")
    return 0


def run() -> None:
    """Console-script entry point (`ebgan-curve`)."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
