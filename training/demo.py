"""Writes the demo picture of a trained run: rows of source, exemplar, mask, result and filtered result.

  python -m ebgan_tf.training.demo --model_dir=demo/model --data_dir=demo/data --out=demo/edits.png

Pairs come from the evaluation split. Rows whose exemplar shows the model's first attribute (Mustache for the
mouth) and whose source does not come first, so the "without Mustache" column shows the filtering.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from ebgan_tf import images
from ebgan_tf.cli import check_at_least_one, check_no_arguments, define_data_dir_flag, reports_errors, run_main
from ebgan_tf.data import pipeline
from ebgan_tf.runs import load_trained, run_config_from_dir
from ebgan_tf.visualize import edit_grid

CANDIDATES = 256  # evaluation pairs to choose the demo rows from


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("model_dir", None, "Model directory written by ebgan-train.")
    define_data_dir_flag()
    flags.DEFINE_string("out", "demo/edits.png", "PNG file to write (atomically).")
    flags.DEFINE_integer("rows", 6, "Number of rows (source/exemplar pairs).")
    flags.DEFINE_integer("seed", 0, "Seed of the pairing of evaluation faces.")
    flags.mark_flag_as_required("model_dir")


FLAGS = flags.FLAGS


def demo_batch(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """`rows` pairs of `batch`: first those whose exemplar has the first attribute and whose source has not."""
    shows = batch["exemplar_attributes"][:, 0] > 0.5
    lacks = batch["source_attributes"][:, 0] < 0.5
    order = np.argsort(~(shows & lacks), kind="stable")[:rows]
    return {key: value[order] for key, value in batch.items()}


def write_demo_grid(model_dir: str, data_dir: str, out: str, rows: int = 6, seed: int = 0) -> np.ndarray:
    """Writes the edit grid of `rows` evaluation pairs of the run in `model_dir` to `out`, and the first pair as
    source.png and exemplar.png beside it; returns the grid."""
    check_at_least_one({"rows": rows})
    config = run_config_from_dir(model_dir)
    assert config.dataset is not None and config.regions is not None, "run_config_from_dir resolves"
    trainer = load_trained(model_dir)
    image_size = config.model_config().image_size
    examples = pipeline.load_examples(config.dataset, data_dir, pipeline.EVAL_SPLIT[config.dataset], image_size)
    batches = pipeline.make_dataset(
        examples,
        image_size=image_size,
        regions=config.regions,
        attribute_names=trainer.attribute_names,
        batch_size=max(rows, CANDIDATES),
        crop=pipeline.default_crop(config.dataset),
        training=False,
        same_exemplar_share=0.0,
        seed=seed,
        deterministic=True,
        repeat=True,
    )
    batch = demo_batch({key: value.numpy() for key, value in next(iter(batches)).items()}, rows)
    grid = edit_grid(trainer, batch)
    images.save_image(out, grid)
    folder = os.path.dirname(out)
    for role in ("source", "exemplar"):  # the first pair as image files, for trying ebgan-edit
        images.save_image(os.path.join(folder, f"{role}.png"), images.to_uint8(batch[role][0]))
    return grid


@reports_errors("demo", ValueError, FileNotFoundError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    write_demo_grid(FLAGS.model_dir, FLAGS.data_dir, FLAGS.out, FLAGS.rows, FLAGS.seed)
    print(f"Wrote {FLAGS.out}: {FLAGS.rows} rows of source, exemplar, mask, result and filtered result.")
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
