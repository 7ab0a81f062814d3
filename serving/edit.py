"""`ebgan-edit`: edit a face in any photo with an exported model (SavedModel directory or .tflite file).

    ebgan-edit --model=exports/ebgan/1 --source=me.jpg --exemplar=friend.png --region=mouth --drop=Mustache
    ebgan-edit --source=me.jpg --part=eyes:b.png:0.7 --part=mouth:c.png      # a part per exemplar (edit_composed)
    ebgan-edit --source=group.jpg --list_faces

The face is found (MTCNN), aligned to the model's crop, edited, and pasted back into the photo over a feathered
seam; the output has the source's size, and outside the edited region and its seam the source's pixels. An image
of exactly the model's size is taken as an aligned crop (--align=auto); --align=detect / none force either way.
The mask is a named region on the source face's landmarks, or a mask image (white = edit) of the source's size.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from absl import flags

from ebgan_tf.cli import check_no_arguments, reports_errors, run_main


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    from ebgan_tf.faces import ALIGN_MODES, DEFAULT_FEATHER
    from ebgan_tf.shipped import DEFAULT_MODEL

    flags.DEFINE_string(
        "model",
        DEFAULT_MODEL,
        "Exported model: a SavedModel version directory (exports/ebgan/1), its "
        "base directory (exports/ebgan: the highest version) or a .tflite file. Default: the shipped "
        "Att-EBGAN (models/att_ebgan: synthetic faces at 64 px; mouth, components and face).",
    )
    flags.DEFINE_string("source", None, "Photo to edit (PNG/JPEG/...; any size; EXIF orientation is applied).")
    flags.DEFINE_string("exemplar", None, "Photo (or aligned crop) whose face region is transferred to the source.")
    flags.DEFINE_multi_string(
        "part",
        [],
        "A part of a composed edit, instead of --exemplar and --region/--mask: "
        "region:exemplar file[:strength], e.g. --part=eyes:b.png:0.7 --part=mouth:c.png "
        "(strength in [0, 1], default 1: 0 = the source's own region). Repeat for each part; "
        "--drop/--keep apply to every part.",
    )
    flags.DEFINE_string(
        "region", None, "Region(s) to edit, comma-separated: mouth, eyes, brows, nose, components, face."
    )
    flags.DEFINE_string(
        "mask",
        None,
        "Mask image instead of --region: white (or opaque) pixels are edited. It must "
        "have the source's size (any square size for an aligned source).",
    )
    flags.DEFINE_list("drop", [], "Att-EBGAN: exemplar attributes to filter out, e.g. Mustache,Smiling.")
    flags.DEFINE_list("keep", None, "Att-EBGAN: the only exemplar attributes to transfer (all others filtered out).")
    flags.DEFINE_string(
        "output",
        None,
        "Where to write the edited image (format from the extension; written "
        "atomically). Default: <source name>_edited.<source extension> next to the source.",
    )
    flags.DEFINE_integer(
        "face_index",
        0,
        "Which face of the source to edit when it has several: 0 = the largest (see --list_faces).",
        lower_bound=0,
    )
    flags.DEFINE_integer("exemplar_face_index", 0, "Which face of the exemplar to use: 0 = the largest.", lower_bound=0)
    flags.DEFINE_boolean(
        "list_faces",
        False,
        "Print the faces found in --source (and --exemplar, if given), largest first, and exit without editing.",
    )
    flags.DEFINE_enum(
        "align",
        "auto",
        ALIGN_MODES,
        "auto: an image of exactly the model's size is an aligned crop, "
        "any other is searched for faces; detect: always search; none: never (aligned crops only).",
    )
    flags.DEFINE_float(
        "feather",
        DEFAULT_FEATHER,
        "Width of the blended seam around the pasted region, in model pixels.",
        lower_bound=0.0,
    )


FLAGS = flags.FLAGS


def default_output(source: str) -> str:
    """photo.jpg -> photo_edited.jpg (same folder, same format)."""
    stem, extension = os.path.splitext(source)
    return f"{stem}_edited{extension or '.png'}"


def describe_faces(path: str) -> str:
    """One line per face found in the image at `path`, largest first."""
    from ebgan_tf.faces import detect_faces
    from ebgan_tf.images import load_image

    image = load_image(path)
    faces = detect_faces(image)
    lines = [f"{path}: {image.shape[1]}x{image.shape[0]} pixels, {len(faces)} face(s), largest first"]
    for index, face in enumerate(faces):
        x, y, width, height = face.box
        eyes = ", ".join(f"({px:.0f}, {py:.0f})" for px, py in face.landmarks[:2])
        lines.append(
            f"  [{index}] box x={x:.0f} y={y:.0f} width={width:.0f} height={height:.0f}  "
            f"confidence {face.confidence:.3f}  eyes {eyes}"
        )
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class PhotoOptions:
    """What a single and a composed edit share: the attribute switches (--drop/--keep), which faces to use, how
    to align them and the seam's width."""

    drop: Sequence[str] = ()
    keep: list[str] | None = None
    face_index: int = 0
    exemplar_face_index: int = 0
    align: str = "auto"
    feather: float = 2.0

    @classmethod
    def from_flags(cls) -> PhotoOptions:
        """The options given by ebgan-edit's flags."""
        return cls(FLAGS.drop, FLAGS.keep, FLAGS.face_index, FLAGS.exemplar_face_index, FLAGS.align, FLAGS.feather)


def edit_files(
    model: str,
    source: str,
    exemplar: str,
    output: str,
    region: str | None = None,
    mask: str | None = None,
    options: PhotoOptions = PhotoOptions(),
) -> None:
    """Loads the model and images, edits, and writes `output` atomically. Bad input raises ValueError."""
    from ebgan_tf.config import parse_regions
    from ebgan_tf.data.masks import load_mask_image
    from ebgan_tf.editing import Editor
    from ebgan_tf.faces import edit_photo, is_aligned_input, load_photo_mask
    from ebgan_tf.images import load_image, save_image

    if (region is None) == (mask is None):
        raise ValueError("Give exactly one of --region and --mask.")
    regions = parse_regions(region) if region is not None else None
    source_image, exemplar_image = load_image(source), load_image(exemplar)
    editor = Editor.load(model)
    attributes = editor.info.attributes_from(drop=options.drop, keep=options.keep)
    mask_image = None
    if mask is not None:
        size = editor.info.image_size
        if is_aligned_input(source_image, size, options.align):
            mask_image = load_mask_image(mask, size)
        else:
            mask_image = load_photo_mask(mask, source_image.shape[:2])
    edited = edit_photo(
        editor,
        source_image,
        exemplar_image,
        regions,
        mask_image,
        attributes,
        options.face_index,
        options.exemplar_face_index,
        options.align,
        options.feather,
        names=(source, exemplar),
    )
    save_image(output, edited)


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of a composed edit: the region, the exemplar's file and the strength."""

    region: str
    exemplar: str
    strength: float = 1.0


def parse_part(text: str) -> Part:
    """'eyes:b.png:0.7' -> Part("eyes", "b.png", 0.7); 'mouth:c.png' -> strength 1. A clear ValueError for a
    malformed value, an unknown region, a strength that is not a number in [0, 1] or an exemplar file that does not
    exist."""
    from ebgan_tf.config import parse_regions

    region, _, rest = text.partition(":")
    if not region.strip() or not rest.strip():
        raise ValueError(f"--part={text!r}: give region:exemplar file[:strength], e.g. --part=eyes:b.png:0.7.")
    exemplar, strength = rest, 1.0
    head, _, tail = rest.rpartition(":")
    if head and not os.path.exists(rest):  # 'b.png:0.7' (a file name may itself hold a colon)
        try:
            strength = float(tail)
        except ValueError:
            raise ValueError(
                f"--part={text!r}: the strength {tail!r} is not a number (give region:exemplar "
                "file[:strength], strength in [0, 1])."
            ) from None
        exemplar = head
    if not 0.0 <= strength <= 1.0:  # NaN fails too
        raise ValueError(
            f"--part={text!r}: strength must be in [0, 1] (0 = the source's own region, 1 = the "
            f"exemplar's), got {tail}."
        )
    names = parse_regions(region)
    if len(names) != 1:
        raise ValueError(f"--part={text!r}: one region per part (give --part once for each).")
    if not os.path.isfile(exemplar):
        raise ValueError(f"--part={text!r}: exemplar file not found: {exemplar}")
    return Part(names[0], exemplar, strength)


def compose_files(
    model: str,
    source: str,
    parts: Sequence[Part],
    output: str,
    options: PhotoOptions = PhotoOptions(),
) -> None:
    """A composed edit of `source` (an aligned crop or a photo): each part's region, on the source face's own
    landmarks, filled from its exemplar (each exemplar file detected and aligned once) at its strength; the result
    is pasted back into a photo and written to `output` atomically. Bad input raises ValueError."""
    import numpy as np

    from ebgan_tf.data.masks import region_mask
    from ebgan_tf.editing import Editor
    from ebgan_tf.faces import compose_crops, face_crop
    from ebgan_tf.images import load_image, save_image

    if not parts:
        raise ValueError("Give at least one --part.")
    source_image = load_image(source)
    editor = Editor.load(model)
    attributes = editor.info.attributes_from(drop=options.drop, keep=options.keep)
    size = editor.info.image_size
    source_crop = face_crop(source_image, editor.info, options.align, options.face_index, source)
    crops = {
        path: face_crop(load_image(path), editor.info, options.align, options.exemplar_face_index, path)
        for path in dict.fromkeys(part.exemplar for part in parts)
    }
    part_masks = np.stack([region_mask(source_crop.landmarks, part.region, size).numpy() for part in parts])
    edited = compose_crops(
        editor,
        source_image,
        source_crop,
        [crops[part.exemplar] for part in parts],
        part_masks,
        [part.strength for part in parts],
        [attributes] * len(parts),
        options.feather,
    )
    save_image(output, edited)


@reports_errors("ebgan-edit", ValueError, FileNotFoundError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    if FLAGS.part and (FLAGS.exemplar or FLAGS.region or FLAGS.mask):
        raise ValueError(
            "Give --part (one per region, each with its exemplar) or --exemplar with --region/--mask, not both."
        )
    needed = ["source"] if FLAGS.list_faces else ["model", "source"] + ([] if FLAGS.part else ["exemplar"])
    missing = [f"--{name}" for name in needed if not FLAGS[name].value]
    if missing:
        raise ValueError(
            f"Missing {', '.join(missing)}" + (" (--list_faces needs only --source)." if FLAGS.list_faces else ".")
        )
    if FLAGS.list_faces:
        for path in (FLAGS.source, FLAGS.exemplar):
            if path:
                print(describe_faces(path))
        return 0
    output = FLAGS.output or default_output(FLAGS.source)
    options = PhotoOptions.from_flags()
    if FLAGS.part:
        parts = [parse_part(text) for text in FLAGS.part]
        compose_files(FLAGS.model, FLAGS.source, parts, output, options)
    else:
        edit_files(FLAGS.model, FLAGS.source, FLAGS.exemplar, output, FLAGS.region, FLAGS.mask, options)
    print(f"Wrote {output}")
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
