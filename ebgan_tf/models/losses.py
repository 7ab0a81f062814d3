"""The paper's losses (section 3.2) as per-example float32 losses of shape [N].

The trainer averages them over the global batch. Discriminator and classifier outputs are logits; the sigmoid of
the paper is applied inside softplus / sigmoid cross-entropy, which equal -log(sigmoid) without overflow:
-log(sigmoid(x)) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x).
"""

from __future__ import annotations

import tensorflow as tf


def _per_example_mean(values: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the first."""
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def l1_loss(target: tf.Tensor, prediction: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example: the paper's ||.||_1 normalised by the number of elements."""
    return _per_example_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(prediction, tf.float32)))


def reconstruction_loss(source: tf.Tensor, reconstruction: tf.Tensor) -> tf.Tensor:
    """L_rec = |A - G_dec(Z^A, Z^A')|_1 over the whole image (eq. 1)."""
    return l1_loss(source, reconstruction)


def hole_reconstruction_loss(
    source: tf.Tensor, reconstruction: tf.Tensor, mask: tf.Tensor, squared: bool = False
) -> tf.Tensor:
    """Mean absolute (or, if `squared`, squared) difference inside the mask only (per example, over mask pixels and
    channels); 0 for an empty mask. Beside eq. 1, it weighs the hole, where the exemplar code is the only source of
    content, by its own area."""
    mask = tf.cast(mask, tf.float32)
    difference = tf.cast(source, tf.float32) - tf.cast(reconstruction, tf.float32)
    difference = (tf.square(difference) if squared else tf.abs(difference)) * mask
    area = tf.reduce_sum(mask, axis=[1, 2, 3]) * tf.cast(tf.shape(source)[-1], tf.float32)
    return tf.reduce_sum(difference, axis=[1, 2, 3]) / tf.maximum(area, 1.0)


def code_spread(code: tf.Tensor, num_blocks: int = 1) -> tf.Tensor:
    """How much the exemplar code varies between the images of a batch, per block of channels [num_blocks].

    Spread = (standard deviation over the batch, averaged over the code's elements) / mean |code|: 0 when the
    encoder returns the same code for every exemplar (collapse), about 1 or more for codes that differ as much as
    they are large. `code` [N, h, w, C] splits into `num_blocks` equal channel blocks (Att-EBGAN's attributes).
    """
    code = tf.cast(code, tf.float32)
    blocks = tf.reshape(code, [tf.shape(code)[0], -1, num_blocks, code.shape[-1] // num_blocks])
    spread = tf.reduce_mean(tf.math.reduce_std(blocks, axis=0), axis=[0, 2])
    return spread / tf.maximum(tf.reduce_mean(tf.abs(blocks), axis=[0, 1, 3]), 1e-12)


def cycle_loss(exemplar_code: tf.Tensor, cycled_code: tf.Tensor) -> tf.Tensor:
    """L_cyc = |Z^B - E(A^b, M)|_1 over the code (eq. 4)."""
    return l1_loss(exemplar_code, cycled_code)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """L_adv_d = -[log D(A) + log(1 - D(y))] (eq. 5), from D's logits [N]."""
    return tf.nn.softplus(-tf.cast(real_logits, tf.float32)) + tf.nn.softplus(tf.cast(fake_logits, tf.float32))


def generator_adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating L_adv_g = -log D(y) (eq. 6 with the sign that makes G maximise log D(y))."""
    return tf.nn.softplus(-tf.cast(fake_logits, tf.float32))


def classification_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy summed over the n attributes (eqs. 2 and 3), from C's logits [N, n]."""
    return tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=tf.cast(logits, tf.float32)),
        axis=-1,
    )
