"""SavedModel export in TF Serving's layout, with the signatures of docs/export.md's "The exported model contract".

`<export_base>/<name>/<version>/` holds the SavedModel with signatures
  edit (= serving_default): source uint8 [N,S,S,3], exemplar uint8 [N,S,S,3], mask float32 [N,S,S,1] -> edited
  edit_filtered (Att-EBGAN): as edit plus attributes float32 [N,n] (1 = transfer, 0 = filter out)
  classify (Att-EBGAN): image uint8 [N,S,S,3] -> probabilities float32 [N,n] (the classifier's reading; > 0.5 =
            the gate of the edit transfers that attribute)
  edit_composed: source uint8 [N,S,S,3], exemplars uint8 [N,K,S,S,3], masks float32 [N,K,S,S,1], strengths
            float32 [N,K], attributes float32 [N,K,n] -> edited: part k filled from exemplar k at strength k
  metadata: () -> attribute_names string [n], image_size int32 [], variant string [],
            landmark_template float32 [5,2] (where the model expects the five landmarks of an aligned face)
plus assets/attributes.txt and assets.extra/tf_serving_warmup_requests. A version is written to a hidden
staging folder and renamed into place (export/staging.py), so a server polling the base path never sees half an
export.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from ebgan_tf.config import ATT_EBGAN
from ebgan_tf.editing import CLASSIFY, EDIT, EDIT_COMPOSED, EDIT_FILTERED, METADATA
from ebgan_tf.export.staging import Staging
from ebgan_tf.models.composing import compose
from ebgan_tf.models.trainer import EBGANTrainer
from ebgan_tf.runs import EDITING_NETWORKS, exported_weights_name


def _to_unit(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _assert_shape(tensor: tf.Tensor, expected: list, message: str) -> tf.Operation:
    """Asserts `tensor`'s rank and dimensions (None = any) without failing on a wrong rank; the error shows the
    shape that was given."""
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.zeros([len(expected)], tf.int32)], 0)[: len(expected)]
    wanted = tf.stack([padded[index] if size is None else size for index, size in enumerate(expected)])
    matches = tf.logical_and(tf.equal(tf.size(shape), len(expected)), tf.reduce_all(tf.equal(padded, wanted)))
    return tf.debugging.Assert(matches, [f"{message}; got shape", shape], summarize=8)


def _assert_values(tensor: tf.Tensor, name: str) -> tf.Operation:
    """Asserts that every value of a float input is finite and in [0, 1]; the error names the input and shows the
    smallest and largest value given (NaN shows as nan)."""
    ok = tf.reduce_all(tf.logical_and(tf.greater_equal(tensor, 0.0), tf.less_equal(tensor, 1.0)))
    return tf.debugging.Assert(
        ok, [f"{name} values must be finite and in [0, 1]; got min/max", tf.reduce_min(tensor), tf.reduce_max(tensor)]
    )


def _validate(image_size: int, num_attributes: int, source, exemplar, mask, attributes=None) -> list[tf.Operation]:
    """Graph assertions with readable messages for every input of an edit signature.

    TF Serving feeds tensors without checking them against the signature's shapes, so the checks live in the graph.
    """
    batch = tf.concat([tf.shape(source), [0]], 0)[0]
    checks = []
    for name, tensor, channels in (("source", source, 3), ("exemplar", exemplar, 3), ("mask", mask, 1)):
        checks.append(
            _assert_shape(
                tensor,
                [None, image_size, image_size, channels],
                f"{name} must be [N,{image_size},{image_size},{channels}]",
            )
        )
        if name != "source":
            checks.append(
                _assert_shape(tensor, [batch, None, None, None], f"{name} must have the same batch size N as source")
            )
    if attributes is not None:
        checks.append(
            _assert_shape(
                attributes,
                [batch, num_attributes],
                f"attributes must be [N,{num_attributes}] (one value per attribute, N as source)",
            )
        )
    with tf.control_dependencies(checks):  # values are read only once the shapes are known to be right
        values = [
            _assert_values(tensor, name)
            for name, tensor in (("mask", mask), ("attributes", attributes))
            if tensor is not None
        ]
    return checks + values


def edit_function(trainer: EBGANTrainer, filtered: bool, validate: bool) -> Callable[..., dict[str, tf.Tensor]]:
    """The serving computation: uint8 images in, uint8 composite out; pixels outside the mask are the source's.

    The mask is binarised at 0.5 and the composite selects the source's pixel wherever the mask is 0, in float32
    on the 0..255 scale (TFLite has no uint8 select): outside the mask the output is the source bit for bit, even
    if the generator's values are not finite. With `validate`, non-finite or out-of-range masks and attributes
    are rejected (INVALID_ARGUMENT) before anything runs.
    """
    image_size = trainer.model_config.image_size
    num_attributes = len(trainer.attribute_names)

    def edit(source, exemplar, mask, attributes=None):
        checks = _validate(image_size, num_attributes, source, exemplar, mask, attributes) if validate else []
        with tf.control_dependencies(checks):
            inside = mask > 0.5
            result = trainer.edit(
                _to_unit(source), _to_unit(exemplar), tf.cast(inside, tf.float32), attributes=attributes
            )
            generated = tf.clip_by_value(tf.round((result + 1.0) * 127.5), 0.0, 255.0)
            composite = tf.where(inside, generated, tf.cast(source, tf.float32))
            return {"edited": tf.cast(composite, tf.uint8)}

    if filtered:
        return lambda source, exemplar, mask, attributes: edit(source, exemplar, mask, attributes)
    return lambda source, exemplar, mask: edit(source, exemplar, mask)


def _validate_composed(
    image_size: int, num_attributes: int, source, exemplars, masks, strengths, attributes
) -> list[tf.Operation]:
    """Graph assertions of `edit_composed`: shapes (K >= 1 parts, N and K alike everywhere), then finite values in
    [0, 1] for masks, strengths and attributes."""
    batch = tf.concat([tf.shape(source), [0]], 0)[0]
    parts = tf.concat([tf.shape(exemplars), [0, 0]], 0)[1]
    pixels = [image_size, image_size]
    checks = [
        _assert_shape(source, [None, *pixels, 3], f"source must be [N,{image_size},{image_size},3]"),
        _assert_shape(
            exemplars, [batch, None, *pixels, 3], f"exemplars must be [N,K,{image_size},{image_size},3] (N as source)"
        ),
        tf.debugging.Assert(
            parts > 0, ["exemplars must hold at least one part (K >= 1); got shape", tf.shape(exemplars)], summarize=8
        ),
        _assert_shape(
            masks,
            [batch, parts, *pixels, 1],
            f"masks must be [N,K,{image_size},{image_size},1] (N as source, K as exemplars)",
        ),
        _assert_shape(strengths, [batch, parts], "strengths must be [N,K] (N as source, K as exemplars)"),
        _assert_shape(
            attributes,
            [batch, parts, num_attributes],
            f"attributes must be [N,K,{num_attributes}] (one value per attribute and part)",
        ),
    ]
    with tf.control_dependencies(checks):
        values = [
            _assert_values(tensor, name)
            for name, tensor in (("masks", masks), ("strengths", strengths), ("attributes", attributes))
        ]
    return checks + values


def composed_function(trainer: EBGANTrainer, validate: bool) -> Callable[..., dict[str, tf.Tensor]]:
    """The `edit_composed` signature: uint8 images in, uint8 composite out, as `edit_function` (masks binarised at
    0.5; outside their union the source bit for bit). EBGAN ignores `attributes` (but checks it)."""
    image_size = trainer.model_config.image_size
    num_attributes = len(trainer.attribute_names)

    def edit_composed(source, exemplars, masks, strengths, attributes):
        checks = (
            _validate_composed(image_size, num_attributes, source, exemplars, masks, strengths, attributes)
            if validate
            else []
        )
        with tf.control_dependencies(checks):
            inside = masks > 0.5
            switches = attributes if trainer.classifier is not None else None
            result = compose(
                trainer, _to_unit(source), _to_unit(exemplars), tf.cast(inside, tf.float32), strengths, switches
            )
            generated = tf.clip_by_value(tf.round((result + 1.0) * 127.5), 0.0, 255.0)
            composite = tf.where(tf.reduce_any(inside, axis=1), generated, tf.cast(source, tf.float32))
            return {"edited": tf.cast(composite, tf.uint8)}

    return edit_composed


def composed_signature(image_size: int, num_attributes: int, batch: int | None) -> list[tf.TensorSpec]:
    """TensorSpecs of `edit_composed`; batch None = dynamic, the number of parts K always dynamic."""
    pixels = [image_size, image_size]
    return [
        tf.TensorSpec([batch, *pixels, 3], tf.uint8, name="source"),
        tf.TensorSpec([batch, None, *pixels, 3], tf.uint8, name="exemplars"),
        tf.TensorSpec([batch, None, *pixels, 1], tf.float32, name="masks"),
        tf.TensorSpec([batch, None], tf.float32, name="strengths"),
        tf.TensorSpec([batch, None, num_attributes], tf.float32, name="attributes"),
    ]


def classify_function(trainer: EBGANTrainer, validate: bool) -> Callable[..., dict[str, tf.Tensor]]:
    """The `classify` signature: aligned uint8 faces -> sigmoid of the classifier's logits, the image scaled as
    `edit` scales the exemplar (so probability > 0.5 <=> logit > 0 <=> the edit's gate transfers the attribute)."""
    image_size = trainer.model_config.image_size
    classifier = trainer.classifier
    assert classifier is not None  # Att-EBGAN only

    def classify(image):
        checks = (
            [_assert_shape(image, [None, image_size, image_size, 3], f"image must be [N,{image_size},{image_size},3]")]
            if validate
            else []
        )
        with tf.control_dependencies(checks):
            logits = tf.cast(classifier(_to_unit(image)), tf.float32)
            return {"probabilities": tf.sigmoid(logits)}

    return classify


def classify_signature(image_size: int, batch: int | None) -> list[tf.TensorSpec]:
    """TensorSpec of the `classify` signature; batch None = dynamic."""
    return [tf.TensorSpec([batch, image_size, image_size, 3], tf.uint8, name="image")]


def input_signature(image_size: int, num_attributes: int, filtered: bool, batch: int | None) -> list[tf.TensorSpec]:
    """TensorSpecs of an edit signature; batch None = dynamic."""
    specs = [
        tf.TensorSpec([batch, image_size, image_size, 3], tf.uint8, name="source"),
        tf.TensorSpec([batch, image_size, image_size, 3], tf.uint8, name="exemplar"),
        tf.TensorSpec([batch, image_size, image_size, 1], tf.float32, name="mask"),
    ]
    if filtered:
        specs.append(tf.TensorSpec([batch, num_attributes], tf.float32, name="attributes"))
    return specs


def metadata_function(trainer: EBGANTrainer, landmark_template: np.ndarray) -> Callable[[], dict[str, tf.Tensor]]:
    """The `metadata` signature: constants describing the model."""
    template = np.asarray(landmark_template, np.float32).reshape(5, 2)

    def metadata():
        return {
            "attribute_names": tf.constant(list(trainer.attribute_names), tf.string),
            "image_size": tf.constant(trainer.model_config.image_size, tf.int32),
            "variant": tf.constant(trainer.variant, tf.string),
            "landmark_template": tf.constant(template),
        }

    return metadata


def build_archive(
    trainer: EBGANTrainer, landmark_template: np.ndarray, batch: int | None, validate: bool
) -> keras.export.ExportArchive:
    """An ExportArchive holding the edit, edit_filtered and classify (Att-EBGAN), edit_composed and metadata
    endpoints, `edit` first, and the editing networks' weights as variable collections (`exported_weights_name`)."""
    # Nothing is track()ed: the endpoints capture the variables they use (the encoder, generator and, for Att-EBGAN,
    # classifier; not the discriminator nor the optimisers), and Keras 3.15 writes every tracked variable a second
    # time next to the captured one, doubling the SavedModel.
    archive = keras.export.ExportArchive()
    size, count = trainer.model_config.image_size, len(trainer.attribute_names)
    archive.add_endpoint(EDIT, edit_function(trainer, False, validate), input_signature(size, count, False, batch))
    if trainer.variant == ATT_EBGAN:
        archive.add_endpoint(
            EDIT_FILTERED, edit_function(trainer, True, validate), input_signature(size, count, True, batch)
        )
        archive.add_endpoint(CLASSIFY, classify_function(trainer, validate), classify_signature(size, batch))
    archive.add_endpoint(EDIT_COMPOSED, composed_function(trainer, validate), composed_signature(size, count, batch))
    archive.add_endpoint(METADATA, metadata_function(trainer, landmark_template), input_signature=[])
    for name in EDITING_NETWORKS:
        network = getattr(trainer, name)
        if network is not None:  # the tf.Variables under the Keras ones, which the endpoints capture: stored once
            archive.add_variable_collection(exported_weights_name(name), [weight.value for weight in network.weights])
    return archive


def next_version(model_base: str) -> int:
    """One more than the highest numeric version directory under `model_base` (1 when there is none)."""
    if not os.path.isdir(model_base):
        return 1
    versions = [int(entry) for entry in os.listdir(model_base) if entry.isdigit()]
    return max(versions, default=0) + 1


def _write_warmup(path: str, image_size: int) -> None:
    """TF Serving warm-up records: one `edit` request of batch 1 (zeros, empty mask)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=EDIT))
    image = np.zeros([1, image_size, image_size, 3], np.uint8)
    request.inputs["source"].CopyFrom(tf.make_tensor_proto(image))
    request.inputs["exemplar"].CopyFrom(tf.make_tensor_proto(image))
    request.inputs["mask"].CopyFrom(tf.make_tensor_proto(np.zeros([1, image_size, image_size, 1], np.float32)))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())


def new_version_path(model_base: str, version: int | None = None) -> tuple[int, str]:
    """(version, `<model_base>/<version>`) of a version to write: `version`, or the next free one; an existing version
    directory is an error (exports are immutable once served), and so is a version below 1."""
    version = next_version(model_base) if version is None else version
    if version < 1:
        raise ValueError(f"--version must be a positive integer, got {version}.")
    target = os.path.join(model_base, str(version))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} already exists; choose another --version or leave it out for the next free one."
        )
    return version, target


def write_saved_model(trainer: EBGANTrainer, directory: str, landmark_template: np.ndarray) -> None:
    """Writes the SavedModel with its assets and warm-up requests into the empty folder `directory` (a staging folder:
    `export_saved_model` and ebgan-export rename it into place)."""
    build_archive(trainer, landmark_template, batch=None, validate=True).write_out(directory, verbose=False)
    os.makedirs(os.path.join(directory, "assets"), exist_ok=True)
    with open(os.path.join(directory, "assets", "attributes.txt"), "w") as handle:
        handle.write("".join(f"{attribute}\n" for attribute in trainer.attribute_names))
    _write_warmup(
        os.path.join(directory, "assets.extra", "tf_serving_warmup_requests"), trainer.model_config.image_size
    )


def export_saved_model(
    trainer: EBGANTrainer, export_base: str, name: str, landmark_template: np.ndarray, version: int | None = None
) -> str:
    """Writes `<export_base>/<name>/<version>/` (next free version by default) and returns its path.

    An existing version directory is an error (exports are immutable once served). The version is written to a hidden
    staging folder next to it and renamed into place (ebgan-export stages its TFLite files and checks too before it
    renames; export/staging.py).
    """
    model_base = os.path.join(export_base, name)
    version, target = new_version_path(model_base, version)
    with Staging(model_base, version) as staging:
        write_saved_model(trainer, staging.path, landmark_template)
        return staging.publish(target)
