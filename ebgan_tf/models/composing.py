"""A composed edit: one source, K exemplars, each filling its own mask at its own strength.

Strength interpolates codes, not pixels: part k's code is s_k * Z'(B_k) + (1 - s_k) * Z'(A), both the exemplar code
of the same mask (label-gated for Att-EBGAN: B_k by its classifier reading times the part's attribute switches, A
by its own reading, as `edit(A, A, M)` gates it). A model with per-part codes fills every part in one generator pass
(the K parts' codes laid out side by side on the source's part layout, each times its mask); a model with a global
code fills the parts one after another, each pass on the previous result.
"""

from __future__ import annotations

import tensorflow as tf

from ebgan_tf.models.generator import composite, gate_code
from ebgan_tf.models.trainer import EBGANTrainer


def _flatten(tensor: tf.Tensor) -> tf.Tensor:
    """[N, K, ...] -> [N * K, ...]."""
    return tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], 0))


def _gated(trainer: EBGANTrainer, code: tf.Tensor, image: tf.Tensor, attributes: tf.Tensor | None) -> tf.Tensor:
    """Att-EBGAN's gate as `trainer.edit` applies it: the classifier's reading of `image` (logit > 0) times the
    `attributes` switches; EBGAN's code passes unchanged."""
    if trainer.classifier is None:
        return code
    labels = tf.cast(trainer.classifier(image) > 0.0, tf.float32)
    if attributes is not None:
        labels *= attributes
    return gate_code(code, labels, len(trainer.attribute_names), trainer.model_config.ungated_code_channels)


def part_codes(
    trainer: EBGANTrainer,
    source,
    exemplars,
    masks,
    strengths,
    attributes=None,
    source_layout=None,
    exemplar_layouts=None,
) -> tf.Tensor:
    """The interpolated codes [N * K, ...] of every part, part k of face i at row i * K + k.

    source [N, S, S, 3], exemplars [N, K, S, S, 3] in [-1, 1]; masks [N, K, S, S, 1] in {0, 1}; strengths [N, K];
    attributes [N, K, n] or None (all ones); layouts (per-part codes) [N, S, S, P] and [N * K, S, S, P].
    """
    count = tf.shape(exemplars)[1]
    flat_exemplars, flat_masks = _flatten(exemplars), _flatten(masks)
    flat_sources = tf.repeat(source, count, axis=0)
    source_layouts = tf.repeat(source_layout, count, axis=0) if source_layout is not None else None
    flat_attributes = _flatten(attributes) if attributes is not None else None
    # The source's landmarks, estimated once and repeated (an aligned exemplar is warped onto them).
    source_landmarks = tf.repeat(trainer.face_landmarks(source), count, axis=0) if trainer.alignment else None
    encoded = trainer.aligned_exemplar(flat_sources, flat_exemplars, source_landmarks)
    exemplar_code = _gated(
        trainer, trainer.exemplar_code(encoded, flat_masks, exemplar_layouts), flat_exemplars, flat_attributes
    )
    own_code = _gated(trainer, trainer.exemplar_code(flat_sources, flat_masks, source_layouts), flat_sources, None)
    strength = tf.reshape(_flatten(strengths[..., None]), [-1] + [1] * (exemplar_code.shape.rank - 1))
    return strength * exemplar_code + (1.0 - strength) * own_code


def compose(trainer: EBGANTrainer, source, exemplars, masks, strengths, attributes=None) -> tf.Tensor:
    """The composed edit, float32 [N, S, S, 3] in [-1, 1]: the source outside the union of the masks.

    source [N, S, S, 3] and exemplars [N, K, S, S, 3] in [-1, 1]; masks [N, K, S, S, 1] (1 = fill from exemplar k);
    strengths [N, K] in [0, 1] (0 = the source's own region, 1 = the exemplar's); attributes [N, K, n] (Att-EBGAN:
    1 = transfer, 0 = filter out; None = all ones). With K = 1 and strength 1 it is `trainer.edit`.
    """
    source, exemplars, masks, strengths = (
        tf.convert_to_tensor(value, tf.float32) for value in (source, exemplars, masks, strengths)
    )
    attributes = tf.convert_to_tensor(attributes, tf.float32) if attributes is not None else None
    if trainer.parts:
        return _compose_one_pass(trainer, source, exemplars, masks, strengths, attributes)
    return _compose_part_by_part(trainer, source, exemplars, masks, strengths, attributes)


def part_layouts(source_layout, masks) -> tf.Tensor:
    """[N, S, S, K * P]: the source's part layout [N, S, S, P] times each of the K masks [N, K, S, S, 1], part p of
    mask k at channel k * P + p (the order of `part_codes`' rows); where masks overlap, each is divided by their sum,
    so that a pixel's codes average."""
    weights = masks / tf.maximum(tf.reduce_sum(masks, axis=1, keepdims=True), 1.0)
    layouts = tf.transpose(source_layout[:, None] * weights, [0, 2, 3, 1, 4])  # [N, S, S, K, P]
    size = source_layout.shape[1]
    return tf.reshape(layouts, tf.stack([tf.shape(source_layout)[0], size, size, -1]))


def _compose_one_pass(trainer: EBGANTrainer, source, exemplars, masks, strengths, attributes) -> tf.Tensor:
    """Per-part codes: the K parts' codes [N, K * P, C] on `part_layouts`, one generator pass."""
    source_layout, exemplar_layouts = trainer.layouts(source, _flatten(exemplars))
    codes = part_codes(trainer, source, exemplars, masks, strengths, attributes, source_layout, exemplar_layouts)
    codes = tf.reshape(codes, tf.stack([tf.shape(source)[0], -1, codes.shape[-1]]))
    union = tf.minimum(tf.reduce_sum(masks, axis=1), 1.0)
    generated = trainer.generator.decode(
        trainer.generator.encode(source, union), codes, part_layouts(source_layout, masks)
    )
    return composite(generated, source, union)


def _compose_part_by_part(trainer: EBGANTrainer, source, exemplars, masks, strengths, attributes) -> tf.Tensor:
    """Global codes: K generator passes, pass k filling mask k of the previous pass's result."""
    count = tf.shape(exemplars)[1]
    codes = part_codes(trainer, source, exemplars, masks, strengths, attributes)
    codes = tf.reshape(codes, tf.concat([tf.shape(source)[:1], [count], tf.shape(codes)[1:]], 0))

    def fill(index, image):
        mask = masks[:, index]
        generated = trainer.generator.decode(trainer.generator.encode(image, mask), codes[:, index])
        return index + 1, composite(generated, image, mask)

    _, result = tf.while_loop(lambda index, _: index < count, fill, [tf.constant(0), source])
    return result
