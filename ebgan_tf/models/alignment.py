"""The exemplar aligned to the source, so that a spatial code of it lies in the source's pose: warped by the
similarity transform (scale, rotation, shift) that best maps its five landmarks onto the source's ("landmarks"), or
by the affine transform that maps its eyes and its mouth's centre exactly onto the source's ("eyes_mouth"); resampled
bilinearly or by the bicubic convolution kernel (`EXEMPLAR_RESAMPLINGS`), which keeps more of a thin feature's
contrast at a fraction of a pixel's shift."""

from __future__ import annotations

import tensorflow as tf

from ebgan_tf.config import EXEMPLAR_RESAMPLINGS


def similarity_transforms(from_landmarks, to_landmarks) -> tf.Tensor:
    """float32 [N, 8] projective transforms (`tf.raw_ops.ImageProjectiveTransformV3`'s form: output pixel -> input
    pixel) of the least-squares similarity that maps `to_landmarks` onto `from_landmarks` [N, K, 2] (x, y)."""
    source = tf.convert_to_tensor(from_landmarks, tf.float32)
    target = tf.convert_to_tensor(to_landmarks, tf.float32)
    source_mean, target_mean = tf.reduce_mean(source, 1), tf.reduce_mean(target, 1)
    p, q = source - source_mean[:, None], target - target_mean[:, None]
    norm = tf.maximum(tf.reduce_sum(q**2, axis=(1, 2)), 1e-6)
    a = tf.reduce_sum(q[..., 0] * p[..., 0] + q[..., 1] * p[..., 1], 1) / norm
    b = tf.reduce_sum(q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0], 1) / norm
    shift_x = source_mean[:, 0] - (a * target_mean[:, 0] - b * target_mean[:, 1])
    shift_y = source_mean[:, 1] - (b * target_mean[:, 0] + a * target_mean[:, 1])
    zeros = tf.zeros_like(a)
    return tf.stack([a, -b, shift_x, b, a, shift_y, zeros, zeros], axis=1)


def _eyes_and_mouth(landmarks) -> tf.Tensor:
    """[N, 3, 2]: the two eyes and the centre of the mouth's corners of five CelebA-ordered landmarks [N, 5, 2]."""
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    return tf.concat([landmarks[:, :2], tf.reduce_mean(landmarks[:, 3:], axis=1, keepdims=True)], axis=1)


def affine_transforms(from_landmarks, to_landmarks) -> tf.Tensor:
    """float32 [N, 8] projective transforms (as `similarity_transforms`) of the affine map that takes the eyes and the
    mouth's centre of `to_landmarks` exactly onto those of `from_landmarks` [N, 5, 2]. Element-wise arithmetic only
    (a closed-form 2 x 2 inverse), so that it converts to TFLite builtins."""
    source, target = _eyes_and_mouth(from_landmarks), _eyes_and_mouth(to_landmarks)
    p, q = source[:, 1:] - source[:, :1], target[:, 1:] - target[:, :1]  # [N, 2, 2]: rows are the two spans
    # The linear part L (2 x 2) solves p = q @ L (row vectors): L = q^-1 @ p.
    a, b, c, d = q[:, 0, 0], q[:, 0, 1], q[:, 1, 0], q[:, 1, 1]
    determinant = a * d - b * c
    determinant = tf.where(tf.abs(determinant) < 1e-6, tf.ones_like(determinant) * 1e-6, determinant)
    xx = (d * p[:, 0, 0] - b * p[:, 1, 0]) / determinant  # input x per output x
    yx = (a * p[:, 1, 0] - c * p[:, 0, 0]) / determinant  # input x per output y
    xy = (d * p[:, 0, 1] - b * p[:, 1, 1]) / determinant  # input y per output x
    yy = (a * p[:, 1, 1] - c * p[:, 0, 1]) / determinant  # input y per output y
    shift_x = source[:, 0, 0] - (xx * target[:, 0, 0] + yx * target[:, 0, 1])
    shift_y = source[:, 0, 1] - (xy * target[:, 0, 0] + yy * target[:, 0, 1])
    zeros = tf.zeros_like(a)
    return tf.stack([xx, yx, shift_x, xy, yy, shift_y, zeros, zeros], axis=1)


TRANSFORMS = {"landmarks": similarity_transforms, "eyes_mouth": affine_transforms}


def _tap_weights(fraction: tf.Tensor, resampling: str) -> dict[int, tf.Tensor]:
    """The weight of each tap (offset from the sample's floor along one axis) for a sample `fraction` of a pixel past
    the floor. "bicubic" is Keys' cubic convolution (a = -0.5), written per tap as a polynomial in the fraction (no
    select or power ops, so that the int8 TFLite file keeps them float as element-wise ops)."""
    f = fraction
    if resampling == "bilinear":
        return {0: 1.0 - f, 1: f}
    squared = f * f
    cubed = squared * f
    return {
        -1: -0.5 * cubed + squared - 0.5 * f,
        0: 1.5 * cubed - 2.5 * squared + 1.0,
        1: -1.5 * cubed + 2.0 * squared + 0.5 * f,
        2: 0.5 * cubed - 0.5 * squared,
    }


def align(images, from_landmarks, to_landmarks, kind: str = "landmarks", resampling: str = "bilinear") -> tf.Tensor:
    """`images` [N, S, S, C] (landmarks `from_landmarks` [N, 5, 2]) warped onto `to_landmarks` by the transform of
    `kind` (`TRANSFORMS`: "landmarks", the five landmarks as close as a similarity allows; "eyes_mouth", the eyes and
    the mouth's centre exactly), resampled by `resampling` (`EXEMPLAR_RESAMPLINGS`), edges repeated. Built from gathers
    (`warp`), not ImageProjectiveTransform, so that an exported model converts without TensorFlow ops."""
    return warp(images, TRANSFORMS[kind](from_landmarks, to_landmarks), resampling)


def random_similarities(landmarks, size: int, strength: float, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """Random similarity transforms of size x size faces about the image's centre: shift up to `strength` * size
    pixels, scale within 1 +- `strength`, rotation within +- `strength` radians (stateless, from `seed` [2]).
    Returns (transforms [N, 8] for `warp`, `landmarks` [N, K, 2] moved alike)."""
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    draws = tf.random.stateless_uniform(tf.stack([tf.shape(landmarks)[0], 4]), seed, -strength, strength)
    scale, cos, sin = 1.0 + draws[:, 0], tf.cos(draws[:, 1]), tf.sin(draws[:, 1])
    shift_x, shift_y = draws[:, 2] * size, draws[:, 3] * size
    centre = (size - 1) / 2.0
    # p' = scale * R (p - centre) + centre + shift; the image follows through the similarity that maps them back.
    x, y = landmarks[..., 0] - centre, landmarks[..., 1] - centre
    moved = tf.stack(
        [
            scale[:, None] * (cos[:, None] * x - sin[:, None] * y) + centre + shift_x[:, None],
            scale[:, None] * (sin[:, None] * x + cos[:, None] * y) + centre + shift_y[:, None],
        ],
        axis=-1,
    )
    return similarity_transforms(landmarks, moved), moved


def warp(images, transforms, resampling: str = "bilinear") -> tf.Tensor:
    """`images` [N, S, S, C] resampled by projective `transforms` [N, 8] (affine ones: output pixel -> input pixel, as
    `tf.raw_ops.ImageProjectiveTransformV3`); `resampling` one of `EXEMPLAR_RESAMPLINGS`, edges repeated, from
    gathers (TFLite builtins)."""
    if resampling not in EXEMPLAR_RESAMPLINGS:
        raise ValueError(f"Unknown resampling {resampling!r}; valid: {', '.join(EXEMPLAR_RESAMPLINGS)}.")
    images = tf.convert_to_tensor(images, tf.float32)
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    transforms = tf.convert_to_tensor(transforms, tf.float32)[:, :6, None, None]  # [N, 6, 1, 1]
    rows, columns = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    x = transforms[:, 0] * columns + transforms[:, 1] * rows + transforms[:, 2]  # [N, H, W]: where to sample
    y = transforms[:, 3] * columns + transforms[:, 4] * rows + transforms[:, 5]
    x = tf.clip_by_value(x, 0.0, width - 1.0)
    y = tf.clip_by_value(y, 0.0, height - 1.0)
    left, top = tf.floor(x), tf.floor(y)
    pixels = tf.reshape(images, [-1, channels])
    first = (tf.range(tf.shape(images)[0]) * height * width)[:, None, None]
    column_taps = [
        (tf.clip_by_value(tf.cast(left, tf.int32) + tap, 0, width - 1), weight[..., None])
        for tap, weight in _tap_weights(x - left, resampling).items()
    ]
    lines = []
    for tap, weight in _tap_weights(y - top, resampling).items():
        row = tf.clip_by_value(tf.cast(top, tf.int32) + tap, 0, height - 1)
        line = _sum([tf.gather(pixels, first + row * width + column) * share for column, share in column_taps])
        lines.append(line * weight[..., None])
    return _sum(lines)


def _sum(terms: list[tf.Tensor]) -> tf.Tensor:
    """terms[0] + terms[1] + ..., in that order (no add of a constant zero to start from)."""
    return sum(terms[1:], terms[0])
