"""`ebgan-export`: a trained model directory -> SavedModel in TF Serving's layout (+ TFLite files, + checks).

    ebgan-export --model_dir=runs/demo --export_base=exports --name=ebgan [--version=N]
                 [--tflite=float32,float16,dynamic,int8] [--calibration_examples=600 --data_dir=DIR] [--verify]
"""

from __future__ import annotations

import os

from absl import flags

from ebgan_tf.cli import reports_errors, run_main
from ebgan_tf.data import DEFAULT_DATA_DIR
from ebgan_tf.export.tflite import DEFAULT_CALIBRATION_EXAMPLES


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("model_dir", None, "Training directory written by ebgan-train (config.json + final weights).")
    flags.DEFINE_string("export_base", "exports",
                        "Base directory; the SavedModel goes to <export_base>/<name>/<version>/.")
    flags.DEFINE_string("name", "ebgan", "Model name: the directory under --export_base that TF Serving serves.")
    flags.DEFINE_integer("version", None, "Version number to write; default: one more than the highest existing one.")
    flags.DEFINE_string("tflite", "", "Comma-separated TFLite variants to write too: float32, float16, dynamic "
                        "(dynamic-range int8 weights), int8 (full-integer, calibrated on the run's training data). "
                        "Files go to <export_base>/<name>-tflite/<version>/.")
    flags.DEFINE_integer("calibration_examples", DEFAULT_CALIBRATION_EXAMPLES, "int8: how many training examples "
                         "(source, exemplar, region mask; the run's regions in turn) calibrate the quantisation.")
    flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "int8: the directory of the run's training data set (the "
                        "--data_dir given to ebgan-train); calibration reads its training split.")
    flags.DEFINE_boolean("verify", False, "Check parity: Keras vs SavedModel and TFLite float32 vs SavedModel within 1 "
                         "grey level, float16/dynamic/int8 PSNR inside the mask above the documented floors. Exit 1 on "
                         "failure.")
    flags.mark_flag_as_required("model_dir")


FLAGS = flags.FLAGS


@reports_errors("ebgan-export", ValueError, OSError)  # FileNotFoundError, FileExistsError are OSErrors
def main(argv: list[str]) -> int:
    del argv
    from ebgan_tf.config import ATT_EBGAN
    from ebgan_tf.export.saved_model import export_saved_model
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
        raise ValueError(f"{FLAGS.model_dir}/config.json has no landmark_template (recorded by ebgan-train "
                         "since the export was added); train the model again with the current ebgan-train.")
    print(f"Exporting {trainer.variant} ({trainer.model_config.image_size} px, attributes: "
          f"{', '.join(trainer.attribute_names)}) from {FLAGS.model_dir}", flush=True)
    calibration = None
    if INT8 in variants:  # read before anything is written: a missing data set writes nothing
        calibration = calibration_data_of_run(FLAGS.model_dir, FLAGS.data_dir, FLAGS.calibration_examples)
        print(f"int8 calibration: {len(calibration)} training examples ({', '.join(calibration.regions)} in turn)",
              flush=True)
    path = export_saved_model(trainer, FLAGS.export_base, FLAGS.name, template, FLAGS.version)
    filtering = "edit_filtered, classify, " if trainer.variant == ATT_EBGAN else ""
    signatures = f"edit (serving_default), {filtering}edit_composed, "
    print(f"SavedModel: {path}  signatures: {signatures}metadata", flush=True)
    if trainer.variant != ATT_EBGAN:
        print("This is an EBGAN model: no edit_filtered and no classify signature (attribute filtering and the "
              "classifier's reading of an exemplar need att_ebgan).")
    tflite_paths = {}
    if variants:
        tflite_dir = os.path.join(FLAGS.export_base, f"{FLAGS.name}-tflite", os.path.basename(path))
        tflite_paths = export_tflite(trainer, template, tflite_dir, variants, calibration=calibration)
        for variant, tflite_path in tflite_paths.items():
            print(f"TFLite {variant}: {tflite_path} ({os.path.getsize(tflite_path) / 1e6:.1f} MB)", flush=True)
        if INT8 in tflite_paths:
            for signature, count in integer_ops(tflite_paths[INT8]).items():
                if count.total:
                    print(f"  int8 {signature}: {count.integer} of {count.total} ops in integer", flush=True)
    if FLAGS.verify:
        checks = verify_export(trainer, path, tflite_paths)
        for check in checks:
            print(check)
        if not all(check.passed for check in checks):
            raise ValueError("parity check failed (see above).")
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
