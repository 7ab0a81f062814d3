r"""ebgan-figures: the paper's experiments as pictures, on synthetic test faces with their ground truth.

  ebgan-figures --model=models/ebgan,models/att_ebgan --data_dir=demo/data --output_dir=docs/images/paper

Writes fig5_mouth.png, fig6_components.png and fig7_face.png (source, exemplar, mask, ground truth, each model's
edit) and, when an Att-EBGAN model is given, fig8_filter_mustache.png (its edit with and without the exemplar's
Mustache, beside the ground truth with and without it) and, with an exported model that has `edit_composed` (the
last one given), composed_strengths.png (each source's eyes, mouth and nose from three other test faces in one
composed edit, at strengths 0 to 1). Models are training runs or exported models. The numbers that go with the
pictures come from `ebgan-eval` on the same test pairs.
"""

from __future__ import annotations

import os

from absl import flags

from ebgan_tf.cli import check_no_arguments, define_data_dir_flag, reports_errors, require_flags, run_main
from ebgan_tf.evaluation.figures import TRANSFER_FIGURES, paper_figures


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_list(
        "model",
        [],
        "Models to show, comma-separated: model directories of ebgan-train or exported "
        "models (SavedModel directory or .tflite). Required.",
    )
    define_data_dir_flag()
    flags.DEFINE_string("output_dir", None, "Directory for the PNG files; required.")
    flags.DEFINE_list(
        "regions",
        [region for _, region, _ in TRANSFER_FIGURES],
        "Regions whose transfer figure is drawn (mouth = Fig. 5, components = Fig. 6, face = Fig. 7).",
    )
    flags.DEFINE_integer("rows", 6, "Test pairs per figure.")
    flags.DEFINE_integer("num_pairs", 100, "Test faces searched for exemplars with --filter_attribute (Fig. 8).")
    flags.DEFINE_string(
        "filter_attribute", "Mustache", "Attribute of the exemplar that Fig. 8 filters out (Att-EBGAN models only)."
    )


FLAGS = flags.FLAGS


@reports_errors("ebgan-figures", ValueError, OSError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    require_flags("model", "output_dir")
    written = paper_figures(
        FLAGS.model,
        os.path.expanduser(FLAGS.data_dir),
        FLAGS.output_dir,
        rows=FLAGS.rows,
        num_pairs=FLAGS.num_pairs,
        filter_attribute=FLAGS.filter_attribute,
        regions=FLAGS.regions,
    )
    for path in written:
        print(f"Wrote {path}")
    return 0


def run() -> None:
    """Console-script entry point (`ebgan-figures`)."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
