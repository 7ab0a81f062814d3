"""ebgan-data: prepare a data set on disk and preview the training pipeline.

Usage:
  ebgan-data prepare --dataset=synthetic_faces --data_dir=DIR [--image_size=64] [--num_train=N]
                     [--num_validation=N] [--num_test=N]
      Renders the synthetic faces into DIR as a tensorflow-datasets data set (no download). For
      --dataset=celeb_a it checks the local copy of CelebA in DIR and says what it found or what is missing.
  ebgan-data preview --dataset=synthetic_faces --data_dir=DIR --region=mouth --num=8 --out=preview.png
                     [--split=SPLIT] [--image_size=64]
      Writes a PNG grid of the first --num examples as the training pipeline sees them: each row is the image,
      the image with the region's mask overlaid in red, and the region's attributes that are on.

Errors (unknown subcommand, dataset or region, missing data, unwritable output) print one line and exit 1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from absl import flags

from ebgan_tf.cli import define_data_dir_flag, reports_errors, run_main
from ebgan_tf.config import PRESETS, REGIONS, parse_regions

SUBCOMMANDS: tuple[str, ...] = ("prepare", "preview")
DATASETS: tuple[str, ...] = tuple(dict.fromkeys(preset.dataset for preset in PRESETS.values()))


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("dataset", "synthetic_faces", f"Data set: {' or '.join(DATASETS)}.")
    define_data_dir_flag()
    flags.DEFINE_integer(
        "image_size",
        None,
        "Image size in pixels; default: the data set's preset (synthetic_faces 64, celeb_a 128).",
        lower_bound=16,
    )
    flags.DEFINE_integer(
        "num_train", None, "prepare, synthetic_faces: number of training faces (default: the builder's).", lower_bound=1
    )
    flags.DEFINE_integer(
        "num_validation",
        None,
        "prepare, synthetic_faces: number of validation faces (default: the builder's).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "num_test", None, "prepare, synthetic_faces: number of test faces (default: the builder's).", lower_bound=1
    )
    flags.DEFINE_string(
        "region",
        "mouth",
        f"preview: mask region(s), comma-separated, one drawn per example; valid: {', '.join(REGIONS)}.",
    )
    flags.DEFINE_integer("num", 8, "preview: number of examples (rows) in the grid.", lower_bound=1)
    flags.DEFINE_string("out", None, "preview: output image file (.png recommended); required for preview.")
    flags.DEFINE_string(
        "split",
        None,
        "preview: split to read, e.g. test or train[:100]; default: the training "
        "split (synthetic_faces train, celeb_a train+validation).",
    )


FLAGS = flags.FLAGS


class UsageError(ValueError):
    """A bad command line; printed as one line."""


def check_writable(path: str) -> None:
    """Raises UsageError unless `path` can be created (its nearest existing ancestor is a writable directory)."""
    if os.path.isdir(path):
        raise UsageError(f"--out={path} is a directory; give an image file name such as preview.png.")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"--out={path} cannot be written ({parent} is not a writable directory).")


def prepare(dataset: str, data_dir: str, image_size: int, sizes: dict[str, int]) -> None:
    """Builds the synthetic faces, or checks a local CelebA copy, and prints what is there."""
    started = time.time()
    if dataset == "celeb_a":
        from ebgan_tf.data import celeba  # pylint: disable=import-outside-toplevel

        print(f"Checking CelebA in {data_dir} ...", flush=True)
        print(celeba.prepare(data_dir))
        return
    from ebgan_tf.data import synthetic_faces  # pylint: disable=import-outside-toplevel

    requested = ", ".join(f"{name} {count}" for name, count in sizes.items()) or "default split sizes"
    print(f"Building synthetic_faces at {image_size}x{image_size} px ({requested}) in {data_dir} ...", flush=True)
    builder = synthetic_faces.prepare_synthetic_faces(data_dir, image_size=image_size, **sizes)
    counts = ", ".join(f"{name} {split.num_examples}" for name, split in builder.info.splits.items())
    print(
        f"Done in {time.time() - started:.1f} s: synthetic_faces at {image_size} px ({counts} faces) in "
        f"{builder.data_dir}."
    )


def preview(
    dataset: str, data_dir: str, split: str | None, regions: tuple[str, ...], image_size: int, num: int, out: str
) -> None:
    """Writes a grid of `num` pipeline examples: image, mask overlay, attribute labels that are on."""
    from ebgan_tf import images, visualize  # pylint: disable=import-outside-toplevel
    from ebgan_tf.data import pipeline  # pylint: disable=import-outside-toplevel

    split = split or pipeline.TRAIN_SPLIT[dataset]
    attribute_names = pipeline.dataset_preset(dataset).attributes_for(regions)
    examples = pipeline.load_examples(dataset, data_dir, split, image_size)
    batches = pipeline.make_dataset(
        examples,
        image_size=image_size,
        regions=regions,
        attribute_names=attribute_names,
        batch_size=num,
        crop=pipeline.default_crop(dataset),
        training=False,
        same_exemplar_share=0.0,
        deterministic=True,
        repeat=False,
    )
    batch = next(iter(batches), None)
    if batch is None:
        raise UsageError(f"Split {split!r} of {dataset} in {data_dir} has fewer than --num={num} examples.")
    sources = images.to_uint8(batch["source"].numpy())
    masks = batch["mask"].numpy()
    rows = [[source, visualize.overlay_mask(source, mask)] for source, mask in zip(sources, masks)]
    labels = [visualize.attribute_labels(row, attribute_names) for row in batch["source_attributes"].numpy()]
    grid = visualize.image_grid(rows, row_labels=labels, col_labels=["image", f"mask: {','.join(regions)}"])
    images.save_image(out, grid)
    print(
        f"Wrote {out}: {num} examples of {dataset} {split} at {image_size} px, regions {','.join(regions)} "
        f"({grid.shape[1]}x{grid.shape[0]} px)."
    )


@reports_errors("ebgan-data", ValueError, OSError)
def main(argv: Sequence[str]) -> int:
    """Runs one subcommand; user errors print one line on stderr and return 1."""
    from ebgan_tf.data import pipeline  # pylint: disable=import-outside-toplevel

    if len(argv) != 2 or argv[1] not in SUBCOMMANDS:
        given = " ".join(argv[1:]) or "none"
        raise UsageError(f"Expected one subcommand, {' or '.join(SUBCOMMANDS)} (got: {given}); see --help.")
    command = argv[1]
    preset = pipeline.dataset_preset(FLAGS.dataset)
    data_dir = os.path.expanduser(FLAGS.data_dir)
    image_size = FLAGS.image_size or preset.image_size
    if command == "prepare":
        sizes = {
            name: getattr(FLAGS, name)
            for name in ("num_train", "num_validation", "num_test")
            if getattr(FLAGS, name) is not None
        }
        if FLAGS.dataset == "celeb_a" and (sizes or FLAGS.image_size):
            raise UsageError("--image_size and --num_* apply to synthetic_faces only; CelebA comes as it is.")
        prepare(FLAGS.dataset, data_dir, image_size, sizes)
    else:
        if not FLAGS.out:
            raise UsageError("--out is required for preview.")
        check_writable(FLAGS.out)
        if FLAGS.dataset == "synthetic_faces" and not os.path.isdir(data_dir):
            raise UsageError(
                f"Data directory {data_dir!r} does not exist; run "
                f"`ebgan-data prepare --dataset=synthetic_faces --data_dir={FLAGS.data_dir}`."
            )
        preview(FLAGS.dataset, data_dir, FLAGS.split, parse_regions(FLAGS.region), image_size, FLAGS.num, FLAGS.out)
    return 0


def run() -> None:
    """Console-script entry point (`ebgan-data`)."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
