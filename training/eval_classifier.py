r"""ebgan-eval-classifier: train the evaluation classifier that reads attributes on edited images.

  ebgan-eval-classifier --dataset=synthetic_faces --data_dir=demo/data --output_dir=runs/eval_classifier \
      --image_size=64

The evaluation classifier is trained apart from Att-EBGAN's classifier C (same network class,
`ebgan_tf.models.classifier`, its own weights), on real images of the data set's training split, for every
attribute a region shows. After training it reports its accuracy on the test split and writes
`eval_classifier.weights.h5` and `eval_classifier.json` (settings, attribute names, test accuracy) into
--output_dir. `ebgan-eval --classifier_dir=...` loads it with `load_eval_classifier`.
"""

from __future__ import annotations

import os

from absl import flags

from ebgan_tf.cli import check_no_arguments, define_data_dir_flag, reports_errors, require_flags, run_main
from ebgan_tf.config import CELEBA_ATTRIBUTES, validate_attribute_names
from ebgan_tf.data import pipeline
from ebgan_tf.evaluation.classifier import CONFIG_FILE, WEIGHTS_FILE, EvalClassifierConfig, train_eval_classifier


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    defaults = EvalClassifierConfig()
    flags.DEFINE_string("dataset", defaults.dataset, f"Data set: {' or '.join(pipeline.DATASETS)}.")
    define_data_dir_flag()
    flags.DEFINE_string("output_dir", None, f"Directory to write {WEIGHTS_FILE} and {CONFIG_FILE} to; required.")
    flags.DEFINE_integer(
        "image_size", defaults.image_size, "Image size in pixels; must be the size of the models it will evaluate."
    )
    flags.DEFINE_list(
        "attributes", [], "Attributes to classify (CelebA names). Default: every attribute of the data set's regions."
    )
    flags.DEFINE_integer("steps", defaults.steps, "Training steps.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Batch size.")
    flags.DEFINE_float("learning_rate", defaults.learning_rate, "Adam learning rate.")
    flags.DEFINE_integer("width", defaults.width, "Channels of the classifier's first level (doubling per level).")
    flags.DEFINE_integer("max_width", defaults.max_width, "Channel cap of the classifier's levels.")
    flags.DEFINE_integer("num_test", None, "Test examples to measure the accuracy on (default: the whole test split).")
    flags.DEFINE_integer("seed", defaults.seed, "Seed of the initial weights and the shuffling.")


FLAGS = flags.FLAGS


@reports_errors("ebgan-eval-classifier", ValueError, OSError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    require_flags("output_dir")
    config = EvalClassifierConfig(
        dataset=FLAGS.dataset,
        image_size=FLAGS.image_size,
        attribute_names=validate_attribute_names(FLAGS.attributes, CELEBA_ATTRIBUTES),
        width=FLAGS.width,
        max_width=FLAGS.max_width,
        steps=FLAGS.steps,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        seed=FLAGS.seed,
        num_test=FLAGS.num_test,
    )
    classifier = train_eval_classifier(config, os.path.expanduser(FLAGS.data_dir), FLAGS.output_dir)
    accuracy = classifier.test_accuracy
    assert accuracy is not None  # measured by train_eval_classifier
    per_attribute = ", ".join(f"{name} {100 * value:.1f}%" for name, value in accuracy["per_attribute"].items())
    print(
        f"Test accuracy on {accuracy['count']} images: mean {100 * accuracy['mean']:.2f}%, "
        f"min {100 * accuracy['min']:.2f}% ({per_attribute})."
    )
    print(f"Saved the evaluation classifier to {FLAGS.output_dir}.")
    return 0


def run() -> None:
    """Console-script entry point (`ebgan-eval-classifier`)."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
