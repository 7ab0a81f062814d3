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
    similarity allows to `to_landmarks`; bilinear, edges repeated."""
    images = tf.convert_to_tensor(images, tf.float32)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=similarity_transforms(from_landmarks, to_landmarks),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
