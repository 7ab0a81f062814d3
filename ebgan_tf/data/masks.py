"""Region masks from CelebA's five landmarks.

Each named region is a union of axis-aligned ellipses placed relative to the landmarks, in units of the
interocular distance d, so masks scale with the face. Coordinates are pixels with x to the right and y down;
pixel (row i, column j) has its centre at (j + 0.5, i + 0.5). Landmark order is CelebA's: left eye, right eye,
nose, left mouth corner, right mouth corner.

Training jitters the masks (`random_region_mask`); users may also bring their own mask image (`load_mask_image`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from ebgan_tf import images
from ebgan_tf.config import REGIONS, validate_regions

PARTS: tuple[str, ...] = ("eyes", "brows", "nose", "mouth")
# The parts of a per-part exemplar code: the four parts and the skin (every pixel in none of them).
CODE_PARTS: tuple[str, ...] = PARTS + ("skin",)


def _part_ellipses(landmarks: tf.Tensor, region: str) -> list[tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]]:
    """(cx, cy, rx, ry) of the ellipses covering one region; landmarks float32 [..., 5, 2] (x, y), each of the four
    of shape [...]."""
    left_eye, right_eye, nose, left_mouth, right_mouth = (landmarks[..., i, :] for i in range(5))
    eye_mid = (left_eye + right_eye) / 2.0
    mouth_mid = (left_mouth + right_mouth) / 2.0
    d = tf.norm(right_eye - left_eye, axis=-1)
    across = (right_eye - left_eye) / tf.maximum(d, 1e-6)[..., None]
    down = tf.stack([-across[..., 1], across[..., 0]], axis=-1)  # perpendicular to the eye line, down the face
    step = d[..., None] * down  # one interocular distance down the face
    if region == "mouth":
        centre = mouth_mid + 0.05 * step
        radii = (0.5 * tf.norm(right_mouth - left_mouth, axis=-1) + 0.3 * d, 0.5 * d)
    elif region == "eyes":
        centre = eye_mid + 0.02 * step
        radii = (0.92 * d, 0.3 * d)
    elif region == "brows":
        centre = eye_mid - 0.42 * step
        radii = (0.95 * d, 0.2 * d)
    elif region == "nose":
        nose_top = eye_mid + 0.2 * step
        centre = (nose_top + nose) / 2.0 + 0.05 * step
        radii = (0.35 * d, 0.5 * tf.norm(nose - nose_top, axis=-1) + 0.2 * d)
    elif region == "face":
        centre = (eye_mid + mouth_mid) / 2.0 - 0.1 * step
        radii = (1.2 * d, 1.55 * d)
    elif region == "components":
        return [ellipse for part in PARTS for ellipse in _part_ellipses(landmarks, part)]
    else:
        validate_regions([region])
        raise AssertionError(region)
    return [(centre[..., 0], centre[..., 1], radii[0], radii[1])]


def region_mask(
    landmarks: tf.Tensor,
    regions: Sequence[str] | str,
    size: int | tuple[int, int],
    scale: tf.Tensor | float = 1.0,
    shift: tf.Tensor | Sequence[float] = (0.0, 0.0),
) -> tf.Tensor:
    """Binary mask float32 [..., H, W, 1] (1 = edit) of the union of `regions`, for one face or a batch.

    Args:
      landmarks: float [..., 5, 2] (x, y) pixel coordinates in CelebA order.
      regions: a region name or several (see `ebgan_tf.config.REGIONS`); unknown names raise ValueError.
      size: image size, an int for square images or (height, width).
      scale: factor on every ellipse radius (training jitter).
      shift: (dx, dy) offset of every ellipse centre, in units of the interocular distance (training jitter).
    """
    names = [regions] if isinstance(regions, str) else list(regions)
    validate_regions(names)
    if not names:
        raise ValueError(f"No region given; valid regions: {', '.join(REGIONS)}.")
    height, width = (size, size) if isinstance(size, int) else size
    landmarks = tf.cast(tf.convert_to_tensor(landmarks), tf.float32)
    scale = tf.cast(scale, tf.float32)
    interocular = tf.norm(landmarks[..., 1, :] - landmarks[..., 0, :], axis=-1)[..., None, None]
    shift = tf.cast(tf.convert_to_tensor(shift), tf.float32) * interocular[..., None]
    ys = tf.range(height, dtype=tf.float32)[:, None] + 0.5
    xs = tf.range(width, dtype=tf.float32)[None, :] + 0.5
    inside = tf.zeros([height, width], tf.bool)
    for name in names:
        for cx, cy, rx, ry in _part_ellipses(landmarks, name):
            cx, cy, rx, ry = (value[..., None, None] for value in (cx, cy, rx, ry))
            dx = (xs - cx - shift[..., 0]) / (rx * scale)
            dy = (ys - cy - shift[..., 1]) / (ry * scale)
            inside = tf.logical_or(inside, dx * dx + dy * dy <= 1.0)
    return tf.cast(inside, tf.float32)[..., None]


def part_layout(landmarks: tf.Tensor, size: int) -> tf.Tensor:
    """One-hot map float32 [..., S, S, len(CODE_PARTS)] of which face part each pixel belongs to.

    A pixel inside one or more of the parts' (unjittered) ellipses belongs to the part whose ellipse it is deepest
    in (smallest normalised distance); every other pixel belongs to the skin. `landmarks` float [..., 5, 2] (x, y):
    one face or a batch, in one vectorised computation (no loop in the graph: TFLite's int8 calibrator crashes on
    the WHILE a tf.map_fn leaves).
    """
    landmarks = tf.cast(tf.convert_to_tensor(landmarks), tf.float32)
    ys = tf.range(size, dtype=tf.float32)[:, None] + 0.5
    xs = tf.range(size, dtype=tf.float32)[None, :] + 0.5
    distances = []
    for part in PARTS:
        ((cx, cy, rx, ry),) = _part_ellipses(landmarks, part)
        cx, cy = cx[..., None, None], cy[..., None, None]
        rx, ry = tf.maximum(rx, 1e-3)[..., None, None], tf.maximum(ry, 1e-3)[..., None, None]  # a point, not a NaN
        distances.append(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    distances.append(tf.ones_like(distances[0]))  # the skin: every pixel outside all four ellipses
    return tf.one_hot(tf.argmin(tf.stack(distances, axis=-1), axis=-1), len(CODE_PARTS), dtype=tf.float32)


def random_jitter(
    seed: tf.Tensor | Sequence[int], max_scale_jitter: float = 0.15, max_shift: float = 0.1
) -> tuple[tf.Tensor, tf.Tensor]:
    """(scale [], shift [2]) of a training mask: a scale in [1 - max_scale_jitter, 1 + max_scale_jitter] and a shift
    of up to `max_shift` interocular distances along x and y, drawn from the stateless `seed` int [2]."""
    seed = tf.convert_to_tensor(seed)
    scale_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    scale = tf.random.stateless_uniform([], scale_seed, 1.0 - max_scale_jitter, 1.0 + max_scale_jitter)
    shift = tf.random.stateless_uniform([2], shift_seed, -max_shift, max_shift)
    return scale, shift


def random_region_mask(
    landmarks: tf.Tensor,
    regions: Sequence[str] | str,
    size: int | tuple[int, int],
    seed: tf.Tensor | Sequence[int],
    max_scale_jitter: float = 0.15,
    max_shift: float = 0.1,
) -> tf.Tensor:
    """`region_mask` with the jitter of `random_jitter`: the same seed gives the same mask."""
    scale, shift = random_jitter(seed, max_scale_jitter, max_shift)
    return region_mask(landmarks, regions, size, scale=scale, shift=shift)


MASK_IMAGE_MODES: tuple[str, ...] = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


def _mask_on(image: Image.Image) -> np.ndarray:
    """bool [H, W]: opaque pixels if the image has transparency, otherwise pixels with luminance > 127."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    if image.mode in ("LA", "RGBA"):
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            return alpha > 127
    return np.asarray(image.convert("L")) > 127


def load_mask_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Reads a user's mask image as float32 [size, size, 1] in {0, 1} (1 = edit).

    "On" (edit) pixels are the opaque ones of an image with transparency (paint on a transparent layer), else the
    light ones (luminance > 127: white = edit, black = keep). The image must be square (any resolution); it is
    resized to `size` with nearest-neighbour sampling. Raises ImageError for unreadable files, ValueError for
    other modes, a non-square image or an empty mask; warns when the mask covers the whole image.
    """
    path = os.fspath(path)
    image = images.open_image(path)
    if image.mode not in MASK_IMAGE_MODES:
        raise ValueError(
            f"{path}: mask images must be black-and-white, grayscale, palette, RGB or RGBA "
            f"(modes {', '.join(MASK_IMAGE_MODES)}); got mode {image.mode}."
        )
    width, height = image.size
    if width != height:
        raise ValueError(
            f"{path}: mask image is {width}x{height} (width x height); it must be square, "
            f"like the model's {size}x{size} input."
        )
    on = _mask_on(image)
    if not on.any():
        raise ValueError(f"{path}: the mask is empty, nothing to edit (white or opaque pixels mark the region).")
    resized = Image.fromarray(on.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
    mask = (np.asarray(resized) > 127).astype(np.float32)[..., None]
    if not mask.any():
        raise ValueError(f"{path}: the mask is empty after resizing to {size}x{size}; mark a larger region.")
    if mask.all():
        warnings.warn(
            f"{path}: the mask covers the whole image, so nothing of the source is kept "
            "(white = edit, black = keep; is the mask inverted?).",
            stacklevel=2,
        )
    return mask
