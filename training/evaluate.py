r"""ebgan-eval: measure edit quality on the test split against ground truth and baselines.

  ebgan-eval --model_dir=runs/mouth --dataset=synthetic_faces --data_dir=demo/data --regions=mouth \
      --classifier_dir=runs/eval_classifier --output_dir=runs/mouth/eval

Per region: reconstruction (B = A), exemplar transfer against the renderer's ground-truth swap, the exemplar
gain (transfer PSNR minus the PSNR with another face as exemplar), the code spread of the exemplar encoder,
attribute transfer accuracy read by the evaluation classifier (`ebgan-eval-classifier`, optional), attribute
filtering (Att-EBGAN) and outside-mask preservation, for each model and for the baselines (naive paste,
exemplar-free inpainting).
Writes report.md, report.json, grid.png and TensorBoard summaries (logs/) into --output_dir.
"""

from __future__ import annotations

import functools
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
from ebgan_tf.data import pipeline
from ebgan_tf.evaluation.evaluate import EVALUATION_FACES, evaluate_models
from ebgan_tf.evaluation.report import REPORT_FILES, markdown


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_list(
        "model_dir",
        [],
        "Model directory written by ebgan-train, or an exported model (a SavedModel "
        "version or base directory, or a .tflite file, scored through its signatures); several, "
        "comma-separated, are compared in one table (e.g. an EBGAN and an Att-EBGAN run). Required.",
    )
    flags.DEFINE_string(
        "dataset",
        None,
        f"Data set to evaluate on: {' or '.join(pipeline.DATASETS)}. Default: the "
        "first training run's (required when only exports are given).",
    )
    define_data_dir_flag()
    flags.DEFINE_string(
        "regions",
        None,
        "Comma-separated regions to evaluate: mouth, eyes, brows, nose, components, "
        "face. Default: the first training run's (required when only exports are given).",
    )
    flags.DEFINE_string(
        "classifier_dir",
        None,
        "Directory of the evaluation classifier (ebgan-eval-classifier "
        "--output_dir). Without it, the report has the image metrics, the exemplar gain and the code "
        "spread, and says how to get the attribute metrics.",
    )
    flags.DEFINE_string("output_dir", None, "Directory for report.md, report.json, grid.png and logs/; required.")
    flags.DEFINE_integer("num_pairs", 500, "Number of test faces (source/exemplar pairs) to evaluate.")
    flags.DEFINE_enum(
        "faces",
        "test",
        EVALUATION_FACES,
        "The faces to evaluate on: test (the first --num_pairs of "
        "the data set's test split) or unseen (synthetic faces rendered from seeds that no split of any "
        "prepared data set uses; --data_dir is then not read).",
    )
    flags.DEFINE_integer("batch_size", 32, "Pairs per model call.")
    flags.DEFINE_integer("grid_rows", 4, "Pairs per region shown in grid.png.")
    flags.DEFINE_string(
        "targets",
        None,
        "JSON file of the targets the report checks the models against (the format "
        "of ebgan_tf/evaluation/targets.json, docs/evaluation.md). Default: the project's targets.",
    )


FLAGS = flags.FLAGS


@reports_errors("ebgan-eval", ValueError, OSError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    require_flags("model_dir", "output_dir")
    check_at_least_one({"batch_size": FLAGS.batch_size, "grid_rows": FLAGS.grid_rows})
    report = evaluate_models(
        FLAGS.model_dir,
        os.path.expanduser(FLAGS.data_dir),
        FLAGS.classifier_dir,
        FLAGS.output_dir,
        dataset=FLAGS.dataset,
        regions=FLAGS.regions,
        num_pairs=FLAGS.num_pairs,
        batch_size=FLAGS.batch_size,
        grid_rows=FLAGS.grid_rows,
        targets_file=FLAGS.targets,
        faces=FLAGS.faces,
        log=functools.partial(print, flush=True),
    )
    print(markdown(report))
    print(f"Wrote {', '.join(REPORT_FILES)} and logs/ to {FLAGS.output_dir}.")
    return 0


def run() -> None:
    """Console-script entry point (`ebgan-eval`)."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
