"""A tiny CelebA look-alike in CelebA's exact file formats, made of synthetic faces (for tests and benchmarks).

Faces from `ebgan_tf.data.synthetic` are scaled and shifted into 178x218 canvases so that their five landmarks
land where the aligned CelebA faces have them on average. No CelebA image is ever used or written.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
from PIL import Image

from ebgan_tf.config import CELEBA_ATTRIBUTES
from ebgan_tf.data import celeba

# Mean (x, y) of the five landmarks of the aligned CelebA images (list_landmarks_align_celeba.txt), rounded.
CELEBA_MEAN_LANDMARKS = np.array([[69, 111], [108, 111], [89, 135], [72, 152], [106, 152]], np.float64)
RENDER_SIZE = 128
SPLIT_SHARES = (0.8, 0.1)  # train, validation; the rest is test (CelebA: 162770 / 19867 / 19962)


def place_face(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scales and shifts a face (uint8 [S, S, 3], landmarks [5, 2]) into a CelebA canvas uint8 [218, 178, 3]
    with its landmarks closest (least squares) to `CELEBA_MEAN_LANDMARKS`; returns the canvas and the moved
    landmarks rounded to ints, as CelebA stores them."""
    points = np.asarray(landmarks, np.float64)
    centred, target = points - points.mean(0), CELEBA_MEAN_LANDMARKS - CELEBA_MEAN_LANDMARKS.mean(0)
    scale = float(np.sum(centred * target) / np.sum(centred * centred))
    shift = CELEBA_MEAN_LANDMARKS.mean(0) - scale * points.mean(0)
    height, width = celeba.IMAGE_SHAPE[:2]
    # PIL's affine maps each output point to the input point (x - shift_x) / scale, (y - shift_y) / scale.
    inverse = (1 / scale, 0.0, -shift[0] / scale, 0.0, 1 / scale, -shift[1] / scale)
    canvas = Image.fromarray(image).transform(
        (width, height),
        Image.Transform.AFFINE,
        inverse,
        resample=Image.Resampling.BILINEAR,
        fillcolor=tuple(int(v) for v in image[0, 0]),
    )
    return np.asarray(canvas), np.round(points * scale + shift).astype(np.int64)


def _partition(num_images: int) -> list[int]:
    """CelebA-like contiguous split ids: 80% train, 10% validation, the rest test (each non-empty if n >= 3)."""
    num_train = max(1, round(SPLIT_SHARES[0] * num_images))
    num_validation = max(1, round(SPLIT_SHARES[1] * num_images))
    num_train = min(num_train, max(1, num_images - num_validation - 1))
    num_test = num_images - num_train - num_validation
    return [0] * num_train + [1] * num_validation + [2] * max(0, num_test)


def _table(rows: list[tuple[str, list[int]]], header: tuple[str, ...], width: int, trailing: str) -> str:
    """Count line, header line, then `name` and right-aligned values, like CelebA's annotation files."""
    lines = [str(len(rows)), " ".join(header) + trailing]
    lines += [name + "".join(f" {value:>{width}d}" for value in values) for name, values in rows]
    return "\n".join(lines) + "\n"


def make_celeba_fixture(directory: str, num_images: int = 10, form: str = "extracted", seed: int = 0) -> str:
    """Writes `num_images` synthetic faces as a CelebA copy of the given form under `directory`.

    Args:
      directory: the data dir (`--data_dir`); created if needed.
      num_images: images 000001.jpg ... (80% train, 10% validation, the rest test, contiguous like CelebA).
      form: "extracted" (img_align_celeba/*.jpg and the text files in `directory`) or "tfds_manual" (the five
        official files, images zipped as img_align_celeba/NNNNNN.jpg, in `directory`/downloads/manual).
      seed: seeds the faces and identities; the same seed writes the same files.

    Returns:
      The folder the files were written to.
    """
    from ebgan_tf.data import synthetic  # pylint: disable=import-outside-toplevel

    if form not in celeba.FORMS:
        raise ValueError(f"Unknown form {form!r}; valid forms: {', '.join(celeba.FORMS)}.")
    target = directory if form == "extracted" else celeba.manual_dir(directory)
    os.makedirs(target, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"{index:06d}.jpg" for index in range(1, num_images + 1)]
    attribute_rows, landmark_rows, jpegs = [], [], []
    for name, face_seed in zip(names, rng.integers(0, 2**31 - 1, num_images)):
        params = synthetic.sample_face(int(face_seed))
        face = synthetic.render_face(params, RENDER_SIZE)
        canvas, landmarks = place_face(face.image, face.landmarks)
        attribute_rows.append((name, [1 if params.attributes[key] else -1 for key in CELEBA_ATTRIBUTES]))
        landmark_rows.append((name, landmarks.reshape(-1).tolist()))
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, format="JPEG", quality=95)
        jpegs.append(buffer.getvalue())

    texts = {
        celeba.ATTR_FILE: _table(attribute_rows, CELEBA_ATTRIBUTES, 2, " "),
        celeba.LANDMARKS_FILE: _table(landmark_rows, celeba.LANDMARK_COLUMNS, 4, ""),
        celeba.PARTITION_FILE: "".join(f"{name} {split}\n" for name, split in zip(names, _partition(num_images))),
        celeba.IDENTITY_FILE: "".join(
            f"{name} {identity}\n" for name, identity in zip(names, rng.integers(1, 10178, num_images))
        ),
    }
    for file_name, text in texts.items():
        with open(os.path.join(target, file_name), "w", encoding="utf-8") as file:
            file.write(text)
    if form == "extracted":
        os.makedirs(os.path.join(target, celeba.IMAGE_DIR), exist_ok=True)
        for name, data in zip(names, jpegs):
            with open(os.path.join(target, celeba.IMAGE_DIR, name), "wb") as file:
                file.write(data)
    else:
        with zipfile.ZipFile(os.path.join(target, celeba.IMAGE_ARCHIVE), "w") as archive:
            archive.writestr(celeba.IMAGE_DIR + "/", b"")
            for name, data in zip(names, jpegs):
                archive.writestr(f"{celeba.IMAGE_DIR}/{name}", data)
    return target
