"""`ebgan-export`: a trained model directory -> SavedModel in TF Serving's layout (+ TFLite files, + checks).

ebgan-export --model_dir=runs/demo --export_base=exports --name=ebgan [--version=N]
             [--tflite=float32,float16,dynamic,int8] [--calibration_examples=600 --data_dir=DIR] [--verify]
"""

from __future__ import annotations

import contextlib
import os
import shutil

from absl import flags

from ebgan_tf.cli import reports_errors, run_main
from ebgan_tf.data import DEFAULT_DATA_DIR
from ebgan_tf.export.tflite import DEFAULT_CALIBRATION_EXAMPLES


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("model_dir", None, "Training directory written by ebgan-train (config.json + final weights).")
    flags.DEFINE_string(
        "export_base", "exports", "Base directory; the SavedModel goes to <export_base>/<name>/<version>/."
    )
    flags.DEFINE_string("name", "ebgan", "Model name: the directory under --export_base that TF Serving serves.")
    flags.DEFINE_integer("version", None, "Version number to write; default: one more than the highest existing one.")
    flags.DEFINE_string(
        "tflite",
        "",
        "Comma-separated TFLite variants to write too: float32, float16, dynamic "
        "(dynamic-range int8 weights), int8 (full-integer, calibrated on the run's training data). "
        "Files go to <export_base>/<name>-tflite/<version>/.",
    )
    flags.DEFINE_integer(
        "calibration_examples",
        DEFAULT_CALIBRATION_EXAMPLES,
        "int8: how many training examples "
        "(source, exemplar, region mask; the run's regions in turn) calibrate the quantisation.",
    )
    flags.DEFINE_string(
        "data_dir",
        DEFAULT_DATA_DIR,
        "int8: the directory of the run's training data set (the "
        "--data_dir given to ebgan-train); calibration reads its training split.",
    )
    flags.DEFINE_boolean(
        "verify",
        False,
        "Check parity: Keras vs SavedModel and TFLite float32 vs SavedModel within 1 "
        "grey level, float16/dynamic/int8 PSNR inside the mask above the documented floors. Exit 1 on "
        "failure.",
    )
    flags.mark_flag_as_required("model_dir")


FLAGS = flags.FLAGS


@reports_errors("ebgan-export", ValueError, OSError)  # FileNotFoundError, FileExistsError are OSErrors
def main(argv: list[str]) -> int:
    del argv
    from ebgan_tf.config import ATT_EBGAN
    from ebgan_tf.export.saved_model import new_version_path, write_saved_model
    from ebgan_tf.export.staging import Staging, remove_export_litter, remove_unpublished_tflite
    from ebgan_tf.export.tflite import INT8, calibration_data_of_run, export_tflite, integer_ops, parse_variants
    from ebgan_tf.export.verify import verify_export
    from ebgan_tf.runs import load_trained, read_config

    variants = parse_variants(FLAGS.tflite)
    if INT8 in variants and FLAGS.calibration_examples < 1:
        raise ValueError(f"--calibration_examples must be positive, got {FLAGS.calibration_examples}.")
    trainer = load_trained(FLAGS.model_dir)
    config = read_config(FLAGS.model_dir)
    assert config is not None  # load_trained read it
    template = config.get("landmark_template")
    if template is None:
        raise ValueError(
            f"{FLAGS.model_dir}/config.json has no landmark_template (recorded by ebgan-train "
            "since the export was added); train the model again with the current ebgan-train."
        )
    print(
        f"Exporting {trainer.variant} ({trainer.model_config.image_size} px, attributes: "
        f"{', '.join(trainer.attribute_names)}) from {FLAGS.model_dir}",
        flush=True,
    )
    model_base = os.path.join(FLAGS.export_base, FLAGS.name)
    tflite_base = os.path.join(FLAGS.export_base, f"{FLAGS.name}-tflite")
    for path in remove_export_litter(model_base, tflite_base):
        print(f"Removed {path}, left by an export that was killed.", flush=True)
    version, saved_target = new_version_path(model_base, FLAGS.version)
    calibration = None
    if INT8 in variants:  # read before anything is written: a missing data set writes nothing
        calibration = calibration_data_of_run(FLAGS.model_dir, FLAGS.data_dir, FLAGS.calibration_examples)
        print(
            f"int8 calibration: {len(calibration)} training examples ({', '.join(calibration.regions)} in turn)",
            flush=True,
        )
    # Everything is written to hidden staging folders and checked there; only then are the folders renamed into
    # place, the TFLite one first and the SavedModel one last (servers watch <name>/, docs/export.md, "Publishing").
    tflite_target = os.path.join(tflite_base, str(version))
    with contextlib.ExitStack() as stack:
        saved = stack.enter_context(Staging(model_base, version))
        write_saved_model(trainer, saved.path, template)
        staged_tflite = {}
        if variants:
            tflite = stack.enter_context(Staging(tflite_base, version))
            staged_tflite = export_tflite(trainer, template, tflite.path, variants, calibration=calibration)
        if FLAGS.verify:
            checks = verify_export(trainer, saved.path, staged_tflite)
            for check in checks:
                print(check, flush=True)
            if not all(check.passed for check in checks):
                raise ValueError("parity check failed (see above).")
        if remove_unpublished_tflite(tflite_target, saved_target):
            print(
                f"Removed {tflite_target}: TFLite files of no published version (an export killed between "
                "publishing its TFLite files and its SavedModel leaves them).",
                flush=True,
            )
        if variants:
            tflite.publish(tflite_target)
        try:
            path = saved.publish(saved_target)
        except BaseException:
            if variants:  # no TFLite version without its SavedModel version
                shutil.rmtree(tflite_target, ignore_errors=True)
            raise
    for variant, staged_path in staged_tflite.items():
        tflite_path = os.path.join(tflite_target, os.path.basename(staged_path))
        print(f"TFLite {variant}: {tflite_path} ({os.path.getsize(tflite_path) / 1e6:.1f} MB)", flush=True)
        if variant == INT8:
            for signature, count in integer_ops(tflite_path).items():
                if count.total:
                    print(f"  int8 {signature}: {count.integer} of {count.total} ops in integer", flush=True)
    filtering = "edit_filtered, classify, " if trainer.variant == ATT_EBGAN else ""
    signatures = f"edit (serving_default), {filtering}edit_composed, "
    print(f"SavedModel: {path}  signatures: {signatures}metadata", flush=True)
    if trainer.variant != ATT_EBGAN:
        print(
            "This is an EBGAN model: no edit_filtered and no classify signature (attribute filtering and the "
            "classifier's reading of an exemplar need att_ebgan)."
        )
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
