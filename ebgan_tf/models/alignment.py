"""The exemplar aligned to the source: warped by the similarity transform (scale, rotation, shift) that best maps
its five landmarks onto the source's, so that a spatial code of it lies in the source's pose."""

from __future__ import annotations

import tensorflow as tf


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


def align(images, from_landmarks, to_landmarks) -> tf.Tensor:
    """`images` [N, S, S, C] (landmarks `from_landmarks` [N, 5, 2]) warped so that their landmarks lie as close as a
    similarity allows to `to_landmarks`; bilinear, edges repeated. Built from gathers (TFLite builtins), not
    ImageProjectiveTransform, so that an exported model converts without TensorFlow ops."""
    images = tf.convert_to_tensor(images, tf.float32)
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    transforms = similarity_transforms(from_landmarks, to_landmarks)[:, :6, None, None]  # [N, 6, 1, 1]
    rows, columns = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    x = transforms[:, 0] * columns + transforms[:, 1] * rows + transforms[:, 2]  # [N, H, W]: where to sample
    y = transforms[:, 3] * columns + transforms[:, 4] * rows + transforms[:, 5]
    x = tf.clip_by_value(x, 0.0, width - 1.0)
    y = tf.clip_by_value(y, 0.0, height - 1.0)
    left, top = tf.floor(x), tf.floor(y)
    share_x, share_y = (x - left)[..., None], (y - top)[..., None]
    left, top = tf.cast(left, tf.int32), tf.cast(top, tf.int32)
    right, bottom = tf.minimum(left + 1, width - 1), tf.minimum(top + 1, height - 1)
    pixels = tf.reshape(images, [-1, channels])
    first = (tf.range(tf.shape(images)[0]) * height * width)[:, None, None]

    def at(row, column):
        return tf.gather(pixels, first + row * width + column)

    upper = at(top, left) * (1.0 - share_x) + at(top, right) * share_x
    lower = at(bottom, left) * (1.0 - share_x) + at(bottom, right) * share_x
    return upper * (1.0 - share_y) + lower * share_y
