"""`ebgan-edit`: edit one aligned face with an exported model (SavedModel directory or .tflite file).

    ebgan-edit --model=exports/ebgan/1 --source=a.png --exemplar=b.png --region=mouth --drop=Mustache --output=out.png

Source and exemplar must already be at the model's alignment and size (as its training images were); the mask
is a named region placed on the model's landmark template, or a mask image (white = edit).
"""

from __future__ import annotations

import sys

from absl import app, flags

from ebgan_tf.cli import run_main

def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("model", None, "Exported model: a SavedModel version directory (exports/ebgan/1) or a .tflite file.")
    flags.DEFINE_string("source", None, "Image to edit (PNG/JPEG/..., at the model's size and alignment).")
    flags.DEFINE_string("exemplar", None, "Face whose region is transferred (same size and alignment).")
    flags.DEFINE_string("region", None, "Region(s) to edit, comma-separated: mouth, eyes, brows, nose, components, face.")
    flags.DEFINE_string("mask", None, "Mask image instead of --region: white (or opaque) pixels are edited.")
    flags.DEFINE_list("drop", [], "Att-EBGAN: exemplar attributes to filter out, e.g. Mustache,Smiling.")
    flags.DEFINE_list("keep", None, "Att-EBGAN: the only exemplar attributes to transfer (all others filtered out).")
    flags.DEFINE_string("output", None, "Where to write the edited image (format from the extension; written atomically).")
    for name in ("model", "source", "exemplar", "output"):
        flags.mark_flag_as_required(name)


FLAGS = flags.FLAGS


def edit_files(model: str, source: str, exemplar: str, output: str, region: str | None = None,
               mask: str | None = None, drop: list[str] = (), keep: list[str] | None = None) -> None:
    """Loads the model and images, edits, and writes `output` atomically. Bad input raises ValueError."""
    from ebgan_tf.config import parse_regions
    from ebgan_tf.data.masks import load_mask_image
    from ebgan_tf.editing import Editor
    from ebgan_tf.images import load_image, save_image

    if (region is None) == (mask is None):
        raise ValueError("Give exactly one of --region and --mask.")
    regions = parse_regions(region) if region is not None else None
    editor = Editor.load(model)
    transfer = editor.info.transfer_vector(drop=drop, keep=keep)
    size = editor.info.image_size
    source_image, exemplar_image = load_image(source, size=size), load_image(exemplar, size=size)
    mask_image = editor.info.region_mask(regions) if regions is not None else load_mask_image(mask, size)
    save_image(output, editor.edit(source_image, exemplar_image, mask_image, transfer))


def main(argv: list[str]) -> int:
    del argv
    try:
        edit_files(FLAGS.model, FLAGS.source, FLAGS.exemplar, FLAGS.output, FLAGS.region, FLAGS.mask,
                   FLAGS.drop, FLAGS.keep)
    except (ValueError, FileNotFoundError) as error:
        print(f"ebgan-edit: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {FLAGS.output}")
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)
