"""Test fixture: a tiny SavedModel that obeys the exported model contract (docs/export.md) exactly.

Serving tests use it in place of a trained model. Signatures (exported through keras.export.ExportArchive, `edit`
first so it is also `serving_default`):
  edit:          source uint8 [N,S,S,3], exemplar uint8 [N,S,S,3], mask float32 [N,S,S,1] -> edited uint8 [N,S,S,3]
  edit_filtered: (att_ebgan only) as edit plus attributes float32 [N,n] -> edited
  classify:      (att_ebgan only, unless classify=False: an export from before the signature) image uint8 [N,S,S,3]
                 -> probabilities float32 [N,n] (a random convolution, pooled, then a sigmoid)
  metadata:      () -> attribute_names string [n], image_size int32 [], variant string [],
                 landmark_template float32 [5,2]
The generator is a few random convolutions; the composite y = A^b * M + A * (1 - M) is taken in float32 on the
0..255 scale with the mask binarised at 0.5, rounded and cast to uint8, so pixels outside the mask are the source's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

ATTRIBUTES: tuple[str, ...] = ("Mustache", "Smiling", "Wearing_Lipstick")
# Where the fixture model "expects" the five landmarks (x, y) of a face, as fractions of the image size.
TEMPLATE_FRACTIONS = np.array([[0.39, 0.51], [0.61, 0.51], [0.5, 0.64], [0.4, 0.74], [0.59, 0.74]], np.float32)


def template_landmarks(image_size: int) -> np.ndarray:
    """The fixture model's landmark template at `image_size` pixels."""
    return TEMPLATE_FRACTIONS * np.float32(image_size)


def _generator(image_size: int, num_attributes: int, seed: int) -> keras.Model:
    """[A*(1-M), B*M, M] (7 channels in [-1, 1]) and optional attribute switches -> A^b in [-1, 1]."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((image_size, image_size, 7), name="images")
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(images)
    inputs = [images]
    if num_attributes:
        switches = keras.Input((num_attributes,), name="switches")
        inputs.append(switches)
        gate = keras.layers.Reshape((1, 1, 8))(keras.layers.Dense(8)(switches))
        features = keras.layers.Multiply()([features, keras.layers.Activation("sigmoid")(gate)])
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(features)
    outputs = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(features)
    return keras.Model(inputs, outputs)


def _classifier(image_size: int, num_attributes: int, seed: int) -> keras.Model:
    """Image in [-1, 1] -> one logit per attribute (random weights; biases from +2 down to -2, so that the first
    attributes tend to read as present and the last as absent)."""
    keras.utils.set_random_seed(seed + 1)
    images = keras.Input((image_size, image_size, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(images))
    logits = keras.layers.Dense(
        num_attributes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0),
        bias_initializer=keras.initializers.Constant(np.linspace(2.0, -2.0, num_attributes)),
    )
    return keras.Model(images, logits(features))


def _checks(image_size: int, num_attributes: int, source, exemplar, mask, attributes=None) -> list:
    batch = tf.shape(source)[0]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(tensor)[1:3], [image_size, image_size], message=f"{name} must be [N,{image_size},{image_size},C]"
        )
        for name, tensor in (("source", source), ("exemplar", exemplar), ("mask", mask))
    ]
    checks += [
        tf.debugging.assert_equal(tf.shape(tensor)[0], batch, message=f"{name} must have source's N")
        for name, tensor in (("exemplar", exemplar), ("mask", mask))
    ]
    if attributes is not None:
        checks.append(
            tf.debugging.assert_equal(
                tf.shape(attributes),
                tf.stack([batch, num_attributes]),
                message=f"attributes must be [N,{num_attributes}]",
            )
        )
    return checks


def export_contract_model(
    base_path: str,
    name: str = "ebgan",
    version: int = 1,
    image_size: int = 16,
    variant: str = "att_ebgan",
    attribute_names: Sequence[str] = ATTRIBUTES,
    seed: int = 0,
    classify: bool = True,
) -> str:
    """Writes the fixture SavedModel to `<base_path>/<name>/<version>/` (atomically) and returns that path.
    `classify=False` leaves out an Att-EBGAN's classify signature, as exports written before it were."""
    names = tuple(attribute_names) if variant == "att_ebgan" else ()
    generator = _generator(image_size, len(names), seed)
    classifier = _classifier(image_size, len(names), seed) if names and classify else None

    def edit(source, exemplar, mask, attributes=None):
        with tf.control_dependencies(_checks(image_size, len(names), source, exemplar, mask, attributes)):
            binary = tf.cast(mask > 0.5, tf.float32)
            a = tf.cast(source, tf.float32) / 127.5 - 1.0
            b = tf.cast(exemplar, tf.float32) / 127.5 - 1.0
            inputs = tf.concat([a * (1.0 - binary), b * binary, binary], axis=-1)
            if names and attributes is None:  # plain `edit` of an Att-EBGAN model transfers every attribute
                attributes = tf.ones([tf.shape(source)[0], len(names)])
            generated = generator([inputs, attributes] if names else inputs)
            generated = tf.clip_by_value(tf.round((generated + 1.0) * 127.5), 0.0, 255.0)
            composite = generated * binary + tf.cast(source, tf.float32) * (1.0 - binary)
            return {"edited": tf.cast(composite, tf.uint8)}

    def classify_image(image):
        check = tf.debugging.assert_equal(
            tf.shape(image)[1:], [image_size, image_size, 3], message=f"image must be [N,{image_size},{image_size},3]"
        )
        with tf.control_dependencies([check]):
            return {"probabilities": tf.sigmoid(classifier(tf.cast(image, tf.float32) / 127.5 - 1.0))}

    def metadata():
        return {
            "attribute_names": tf.constant(list(names), tf.string),
            "image_size": tf.constant(image_size, tf.int32),
            "variant": tf.constant(variant, tf.string),
            "landmark_template": tf.constant(template_landmarks(image_size)),
        }

    images = [
        tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="source"),
        tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="exemplar"),
        tf.TensorSpec([None, image_size, image_size, 1], tf.float32, name="mask"),
    ]
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("edit", lambda source, exemplar, mask: edit(source, exemplar, mask), images)
    if names:
        archive.add_endpoint(
            "edit_filtered", edit, images + [tf.TensorSpec([None, len(names)], tf.float32, name="attributes")]
        )
    if classifier is not None:
        archive.track(classifier)
        archive.add_endpoint(
            "classify", classify_image, [tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="image")]
        )
    archive.add_endpoint("metadata", metadata, input_signature=[])
    model_base = os.path.join(base_path, name)
    os.makedirs(model_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=model_base)
    target = os.path.join(model_base, str(version))
    try:
        archive.write_out(staging, verbose=False)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def random_inputs(count: int, image_size: int, num_attributes: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the edit signatures (mask: a random rectangle per image; attributes: random 0/1)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros([count, image_size, image_size, 1], np.float32)
    for index in range(count):
        top, left = rng.integers(0, image_size // 2, size=2)
        mask[index, top : top + image_size // 2, left : left + image_size // 2] = 1.0
    inputs = {
        "source": rng.integers(0, 256, [count, image_size, image_size, 3], dtype=np.uint8),
        "exemplar": rng.integers(0, 256, [count, image_size, image_size, 3], dtype=np.uint8),
        "mask": mask,
    }
    if num_attributes:
        inputs["attributes"] = rng.integers(0, 2, [count, num_attributes]).astype(np.float32)
    return inputs


def assert_same_reading(single: np.ndarray, row: np.ndarray) -> None:
    """One image's `classify` against its row of a batch's: a batch of one may take other CPU kernels than a larger
    batch, so the two may differ by one float32 ulp."""
    np.testing.assert_allclose(single, row, rtol=1e-6, atol=1e-7)
