"""CelebA (aligned 178x218 images) from a local copy, in the shared example schema. Nothing is downloaded.

Two forms of a local copy are read (see `find_celeba`):

* "extracted": `img_align_celeba/*.jpg` and the annotation text files in the data directory (also accepted in
  the official Google Drive layout: `Img/img_align_celeba/`, `Anno/*.txt`, `Eval/list_eval_partition.txt`).
  Read by this module's tf.data reader; no checksum, so copies repackaged by mirrors work.
* "tfds_manual": the five official files in tensorflow-datasets' manual directory `<data_dir>/downloads/manual/`,
  read by tfds' own `celeb_a` builder. tfds finds each file there by name and never downloads it, but checks it
  against the official SHA-256 that tfds pins, so only byte-identical official files pass.

The editing papers' protocol (AttGAN, STGAN) centre-crops the aligned images to 170x170 at offset (26, 3) before
resizing: `CROP`. The pipeline (`ebgan_tf/data/pipeline.py`) applies it to images and landmarks.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from ebgan_tf.config import CELEBA_ATTRIBUTES, LANDMARK_NAMES, validate_attribute_names

# (top, left, height, width) of the centre crop of the 178x218 aligned images used by AttGAN / STGAN
# (STGAN data.py: offset_h = 26, offset_w = 3, img_size = 170, then resize to 128).
CROP: tuple[int, int, int, int] = (26, 3, 170, 170)
IMAGE_SHAPE: tuple[int, int, int] = (218, 178, 3)  # height, width, channels of img_align_celeba

# Column 2 of list_eval_partition.txt. The paper trains on "train+validation" and evaluates on "test".
SPLIT_IDS: dict[str, int] = {"train": 0, "validation": 1, "test": 2}

ATTR_FILE = "list_attr_celeba.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_ARCHIVE = "img_align_celeba.zip"
IMAGE_DIR = "img_align_celeba"
# The files tfds' celeb_a builder needs in its manual directory (names as in its checksums.tsv).
OFFICIAL_FILES: tuple[str, ...] = (IMAGE_ARCHIVE, ATTR_FILE, LANDMARKS_FILE, PARTITION_FILE, IDENTITY_FILE)
# What the extracted form needs, and the subfolder of the official Google Drive layout that holds each one.
EXTRACTED_ITEMS: dict[str, str] = {IMAGE_DIR: "Img", ATTR_FILE: "Anno", LANDMARKS_FILE: "Anno", PARTITION_FILE: "Eval"}
LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy")
FORMS: tuple[str, ...] = ("extracted", "tfds_manual")


@dataclasses.dataclass(frozen=True)
class CelebALocation:
    """A complete local copy of CelebA: its form and the path of every file it needs."""

    form: str  # "extracted" or "tfds_manual"
    data_dir: str
    paths: dict[str, str]  # file (or image folder) name -> path

    @property
    def partition_path(self) -> str:
        return self.paths[PARTITION_FILE]


@dataclasses.dataclass(frozen=True)
class Annotations:
    """The annotation files joined per image, in list_eval_partition.txt order."""

    file_names: np.ndarray  # str [N]
    partition: np.ndarray  # int64 [N]: 0 train, 1 validation, 2 test
    lines: np.ndarray  # int64 [N]: 1-based line of each image in list_eval_partition.txt
    attributes: np.ndarray  # bool [N, 40] in CELEBA_ATTRIBUTES order
    landmarks: np.ndarray  # int64 [N, 10] in LANDMARK_COLUMNS order


def manual_dir(data_dir: str) -> str:
    """tensorflow-datasets' default manual directory for `data_dir` (where form "tfds_manual" lives)."""
    return os.path.join(data_dir, "downloads", "manual")


def _extracted_candidates(data_dir: str, item: str) -> list[str]:
    return [os.path.join(data_dir, item), os.path.join(data_dir, EXTRACTED_ITEMS[item], item)]


def find_celeba(data_dir: str) -> CelebALocation:
    """Finds a complete local copy of CelebA under `data_dir`; "extracted" wins when both forms are there.

    Raises:
      FileNotFoundError: neither form is complete; the message lists, per form, every missing file and every
        place it was looked for.
    """
    found: dict[str, str] = {}
    missing_extracted: list[str] = []
    for item in EXTRACTED_ITEMS:
        candidates = _extracted_candidates(data_dir, item)
        exists = os.path.isdir if item == IMAGE_DIR else os.path.isfile
        path = next((candidate for candidate in candidates if exists(candidate)), None)
        if path is None:
            missing_extracted.append(
                f"    {item}{'/' if item == IMAGE_DIR else ''} (looked for {' and '.join(candidates)})"
            )
        else:
            found[item] = path
    if not missing_extracted:
        return CelebALocation("extracted", data_dir, found)

    manual = manual_dir(data_dir)
    official = {name: os.path.join(manual, name) for name in OFFICIAL_FILES}
    missing_manual = [f"    {path}" for path in official.values() if not os.path.isfile(path)]
    if not missing_manual:
        return CelebALocation("tfds_manual", data_dir, official)

    raise FileNotFoundError(
        f"No complete copy of CelebA under {data_dir!r}"
        f"{'' if os.path.isdir(data_dir) else ' (the directory does not exist)'}. Either form works:\n"
        f'  form "extracted" (img_align_celeba/*.jpg and the text files) is missing:\n'
        + "\n".join(missing_extracted)
        + f'\n  form "tfds_manual" (the five official files in tensorflow-datasets\' manual dir {manual}) is '
        f"missing:\n"
        + "\n".join(missing_manual)
        + "\nGet the files from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
        "(see docs/data.md, 'Getting CelebA')."
    )


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a text file ({error}).") from None


def _parse_rows(
    path: str, lines: list[str], first_line: int, num_values: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rows `name v1 ... vn` from line `first_line` (1-based) on -> names, int64 [N, n] values, line numbers."""
    names: list[str] = []
    numbers: list[int] = []
    tokens: list[str] = []
    for number, line in enumerate(lines[first_line - 1 :], start=first_line):
        parts = line.split()
        if not parts:
            continue  # blank lines (e.g. at the end) carry nothing
        if len(parts) != num_values + 1:
            raise ValueError(
                f"{path} line {number}: expected {num_values + 1} columns (image name and "
                f"{num_values} values), found {len(parts)}."
            )
        names.append(parts[0])
        numbers.append(number)
        tokens.extend(parts[1:])
    try:
        values = np.fromstring(" ".join(tokens), dtype=np.int64, sep=" ") if tokens else np.zeros([0], np.int64)
    except ValueError:  # a token that is not an integer
        values = None
    if values is None or values.size != len(tokens):
        bad = next(i for i, token in enumerate(tokens) if not token.lstrip("+-").isdigit())
        raise ValueError(f"{path} line {numbers[bad // num_values]}: value {tokens[bad]!r} is not an integer.")
    seen: dict[str, int] = {}
    for name, number in zip(names, numbers):
        if name in seen:
            raise ValueError(f"{path} line {number}: {name} is listed twice (first on line {seen[name]}).")
        seen[name] = number
    return names, values.reshape(len(names), num_values), np.asarray(numbers, np.int64)


def _read_table(path: str, columns: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A CelebA annotation table: a count line, a header line of column names, then one row per image."""
    lines = _read_lines(path)
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and a header line, found {len(lines)} line(s).")
    count = lines[0].strip()
    if not count.isdigit():
        raise ValueError(f"{path} line 1: expected the number of images, found {count[:40]!r}.")
    header = lines[1].split()
    if header != list(columns):
        wrong = next(
            (i for i, (got, want) in enumerate(zip(header, columns)) if got != want), min(len(header), len(columns))
        )
        raise ValueError(
            f"{path} line 2: expected the header of {len(columns)} columns {' '.join(columns)}; "
            f"column {wrong + 1} is {header[wrong] if wrong < len(header) else 'missing'!r}."
        )
    names, values, numbers = _parse_rows(path, lines, 3, len(columns))
    if len(names) != int(count):
        raise ValueError(f"{path} line 1: says {int(count)} images but the file lists {len(names)}.")
    return names, values, numbers


def read_annotations(attr_path: str, landmarks_path: str, partition_path: str) -> Annotations:
    """Parses and joins the three annotation files; malformed content is a ValueError naming file and line."""
    attr_names, attr_values, attr_lines = _read_table(attr_path, CELEBA_ATTRIBUTES)
    bad = np.flatnonzero(~np.isin(attr_values, (-1, 1)).all(axis=1))
    if bad.size:
        raise ValueError(f"{attr_path} line {attr_lines[bad[0]]}: attribute values must be 1 or -1.")
    mark_names, mark_values, _ = _read_table(landmarks_path, LANDMARK_COLUMNS)
    part_names, part_values, part_lines = _parse_rows(partition_path, _read_lines(partition_path), 1, 1)
    partition = part_values[:, 0]
    bad = np.flatnonzero(~np.isin(partition, list(SPLIT_IDS.values())))
    if bad.size:
        raise ValueError(
            f"{partition_path} line {part_lines[bad[0]]}: partition must be 0 (train), "
            f"1 (validation) or 2 (test), found {partition[bad[0]]}."
        )
    attr_rows = {name: row for row, name in enumerate(attr_names)}
    mark_rows = {name: row for row, name in enumerate(mark_names)}
    for table, rows in ((attr_path, attr_rows), (landmarks_path, mark_rows)):
        absent = [(name, line) for name, line in zip(part_names, part_lines) if name not in rows]
        if absent:
            raise ValueError(
                f"{table} has no row for {absent[0][0]} (listed on line {absent[0][1]} of "
                f"{partition_path}; {len(absent)} image(s) lack a row)."
            )
    return Annotations(
        file_names=np.asarray(part_names),
        partition=partition,
        lines=part_lines,
        attributes=attr_values[[attr_rows[name] for name in part_names]] > 0,
        landmarks=mark_values[[mark_rows[name] for name in part_names]],
    )


def _annotations(location: CelebALocation) -> Annotations:
    return read_annotations(location.paths[ATTR_FILE], location.paths[LANDMARKS_FILE], location.partition_path)


def split_rows(partition: np.ndarray, split: str) -> np.ndarray:
    """Row indices of a tfds split expression ("train", "train+validation", "test[:10%]", ...), in order."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    rows_of = {name: np.flatnonzero(partition == split_id) for name, split_id in SPLIT_IDS.items()}
    infos = {
        name: tfds.core.SplitInfo(name=name, shard_lengths=[len(rows)], num_bytes=0, filename_template=None)
        for name, rows in rows_of.items()
    }
    try:
        instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(infos)
    except (ValueError, AssertionError) as error:
        raise ValueError(
            f"Invalid split {split!r}: {str(error).splitlines()[0]} Valid splits: "
            f"{', '.join(SPLIT_IDS)}, or a tfds split expression such as "
            f"'train+validation' or 'test[:10%]'."
        ) from None
    return np.concatenate([rows_of[part.splitname][part.from_ : part.to] for part in instructions])


def _check_images_present(image_dir: str, annotations: Annotations, rows: np.ndarray, partition_path: str) -> None:
    present = set(os.listdir(image_dir))
    absent = [row for row in rows if annotations.file_names[row] not in present]
    if absent:
        shown = ", ".join(f"{annotations.file_names[row]} (line {annotations.lines[row]})" for row in absent[:5])
        raise FileNotFoundError(
            f"{len(absent)} image(s) listed in {partition_path} are missing from {image_dir}: {shown}"
            f"{', ...' if len(absent) > 5 else ''}. Re-extract img_align_celeba.zip there."
        )


def _check_image_size(path: str) -> None:
    """The aligned CelebA images are 178x218; a copy of another size (e.g. a resized mirror) is an error, not
    200,000 skipped images. Checked on one image's header."""
    try:
        with Image.open(path) as image:
            size = image.size
    except OSError:
        return  # unreadable: the reader skips it with a warning
    if size != IMAGE_SHAPE[1::-1]:
        raise ValueError(
            f"{path} is {size[0]}x{size[1]} pixels; the aligned CelebA images (img_align_celeba) are "
            f"{IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]}."
        )


_skipped_images: list[str] = []
LOGGED_SKIPS = 20  # skipped images logged one by one; after that, every 1000th


def skipped_images() -> list[str]:
    """Paths of images skipped as unreadable (corrupt JPEG, wrong size) since the process started."""
    return list(_skipped_images)


def _extracted_examples(location: CelebALocation, split: str) -> tf.data.Dataset:
    """The tf.data reader of the extracted form. Images that fail to decode to 218x178x3 are dropped by
    `ignore_errors` (one bad file cannot end a long run); the positions missing from the output name them in a
    counted warning."""
    annotations = _annotations(location)
    rows = split_rows(annotations.partition, split)
    image_dir = location.paths[IMAGE_DIR]
    _check_images_present(image_dir, annotations, rows, location.partition_path)
    paths = [os.path.join(image_dir, name) for name in annotations.file_names[rows]]
    count = len(rows)
    if paths:
        _check_image_size(paths[0])

    def report_skipped(first: tf.Tensor, end: tf.Tensor) -> bool:
        for position in range(int(first), int(end)):
            _skipped_images.append(paths[position])
            skipped = len(_skipped_images)
            if skipped <= LOGGED_SKIPS or skipped % 1000 == 0:  # every one at first, then a count now and then
                logging.warning(
                    "CelebA: skipped unreadable image %s (%s line %d); %d skipped so far%s.",
                    paths[position],
                    PARTITION_FILE,
                    annotations.lines[rows[position]],
                    skipped,
                    " (from now on every 1000th is logged)" if skipped == LOGGED_SKIPS else "",
                )
        return True

    def decode(position, path, attributes, landmarks):
        image = tf.ensure_shape(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), IMAGE_SHAPE)
        return position, image, attributes, landmarks

    def with_expected(expected, element):  # scan: pairs each element with the position expected next
        return element[0] + 1, (*element, expected)

    def keep(position, image, attributes, landmarks, expected) -> tf.Tensor:
        reported = tf.cond(
            position > expected,
            lambda: tf.py_function(report_skipped, [expected, position], tf.bool),
            lambda: tf.constant(True),
        )
        return tf.logical_and(reported, position < count)

    def to_example(position, image, attributes, landmarks, expected) -> dict:
        return {
            "image": image,
            "attributes": {name: attributes[i] for i, name in enumerate(CELEBA_ATTRIBUTES)},
            "landmarks": {name: landmarks[i] for i, name in enumerate(LANDMARK_COLUMNS)},
        }

    columns = (
        np.arange(count, dtype=np.int64),
        np.asarray(paths, dtype=str),
        annotations.attributes[rows],
        annotations.landmarks[rows],
    )
    decoded = (
        tf.data.Dataset.from_tensor_slices(columns)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors()
    )
    # A last element that always decodes, so that skipped images at the very end are noticed too.
    end = tf.data.Dataset.from_tensors(
        (
            np.int64(count),
            tf.zeros(IMAGE_SHAPE, tf.uint8),
            np.zeros([len(CELEBA_ATTRIBUTES)], bool),
            np.zeros([len(LANDMARK_COLUMNS)], np.int64),
        )
    )
    return decoded.concatenate(end).scan(np.int64(0), with_expected).filter(keep).map(to_example)


def _tfds_builder(location: CelebALocation, prepare: bool):
    """tfds' own celeb_a builder over `location`, prepared from the manual dir if needed (never downloads)."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    builder = tfds.builder("celeb_a", data_dir=location.data_dir)
    if builder.is_prepared() or not prepare:
        return builder
    # tfds finds each file in the manual dir by its official name, so nothing is downloaded; it then checks the
    # file against the pinned SHA-256, so the text files and images it reads are exactly the official ones.
    config = tfds.download.DownloadConfig(manual_dir=manual_dir(location.data_dir), try_download_gcs=False)
    # pylint: disable-next=import-outside-toplevel
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    try:
        builder.download_and_prepare(download_config=config)
    except NonMatchingChecksumError as error:
        rejected = re.search(r"downloaded to (.+?), has wrong checksum", str(error))
        raise ValueError(
            f"tensorflow-datasets rejected {rejected.group(1) if rejected else 'a file in the manual dir'}: its "
            f"SHA-256 differs from the official CelebA file that the celeb_a builder pins (nothing was downloaded). "
            f"Copies repackaged by mirrors differ byte-wise; use the extracted form instead: unzip "
            f"img_align_celeba.zip into {location.data_dir} and put the text files next to img_align_celeba/."
        ) from None
    return builder


def _tfds_examples(location: CelebALocation, split: str) -> tf.data.Dataset:
    builder = _tfds_builder(location, prepare=True)
    counts = {name: builder.info.splits[name].num_examples for name in SPLIT_IDS}
    # Validates `split` exactly as the extracted form does (same message).
    split_rows(np.repeat([SPLIT_IDS[name] for name in counts], list(counts.values())), split)
    examples = builder.as_dataset(split=split, shuffle_files=False)
    return examples.map(lambda example: {key: example[key] for key in ("image", "attributes", "landmarks")})


def load_examples(data_dir: str, split: str, attribute_names: Sequence[str] | None = None) -> tf.data.Dataset:
    """CelebA examples of `split` in the shared schema, from either local form (never downloads).

    Args:
      data_dir: directory holding the extracted copy, or whose `downloads/manual/` holds the official files.
      split: "train", "validation", "test" or a tfds split expression such as "train+validation" (the paper's
        training split) or "test[:1000]".
      attribute_names: keep only these attributes (all 40 by default); unknown names raise a ValueError.

    Returns:
      Examples {"image": uint8 [218, 178, 3] (uncropped), "attributes": {name: bool},
      "landmarks": {"lefteye_x": int64, ...}}. The extracted form keeps list_eval_partition.txt order and skips
      unreadable images with a counted warning; the tfds form keeps tfds' stored order.
    """
    names = (
        CELEBA_ATTRIBUTES if attribute_names is None else validate_attribute_names(attribute_names, CELEBA_ATTRIBUTES)
    )
    location = find_celeba(data_dir)
    if location.form == "extracted":
        examples = _extracted_examples(location, split)
    else:
        examples = _tfds_examples(location, split)
    if tuple(names) == CELEBA_ATTRIBUTES:
        return examples
    return examples.map(lambda example: {**example, "attributes": {n: example["attributes"][n] for n in names}})


def describe(data_dir: str) -> str:
    """One line saying which form of CelebA was found and its split sizes; FileNotFoundError if none."""
    location = find_celeba(data_dir)
    _, partition, _ = _parse_rows(location.partition_path, _read_lines(location.partition_path), 1, 1)
    sizes = ", ".join(f"{name} {int(np.sum(partition == split_id))}" for name, split_id in SPLIT_IDS.items())
    if location.form == "extracted":
        where = f"images in {location.paths[IMAGE_DIR]}, read by the project's tf.data reader"
    else:
        prepared = _tfds_builder(location, prepare=False).is_prepared()
        where = (
            f"official files in {manual_dir(data_dir)}, read by tensorflow-datasets' celeb_a builder "
            f"({'prepared' if prepared else 'not prepared yet: the first use converts them once'})"
        )
    return f"CelebA, form {location.form!r}: {where}; {sizes} images."


def prepare(data_dir: str) -> str:
    """Checks a local copy up front (annotation files, every listed image present); for the tfds form also runs
    tfds' one-off conversion. Returns `describe(data_dir)`."""
    location = find_celeba(data_dir)
    if location.form == "extracted":
        annotations = _annotations(location)
        _check_images_present(
            location.paths[IMAGE_DIR], annotations, np.arange(len(annotations.file_names)), location.partition_path
        )
    else:
        _tfds_builder(location, prepare=True)
    return describe(data_dir)
