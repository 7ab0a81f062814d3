"""Client of TensorFlow Serving's gRPC API for the project's models (works against TF Serving and `ebgan-serve`).

Python API:

    with EditClient("localhost:8500", timeout=10) as client:
        info = client.model_info("ebgan")                       # the `metadata` signature: attributes, size, ...
        edited = client.edit(source, exemplar, info.region_mask("mouth"), model_name="ebgan")
        model = client.model("ebgan")                           # one served model, a CropEditor (as Editor)
        edited = model.edit(source, exemplar, model.info.region_mask("mouth"))
        reading = client.classify(exemplar, model_name="ebgan")  # Att-EBGAN: probability per attribute
        composed = client.edit_composed(source, [b, c], [eyes, mouth], [0.7, 1.0], model_name="ebgan", info=info)
        client.metadata("ebgan"); client.status("ebgan")         # GetModelMetadata, GetModelStatus

Command line (`ebgan-client`):

    ebgan-client edit --server=localhost:8500 --model_name=ebgan --source=a.png --exemplar=b.png \\
        --region=mouth --drop=Mustache --output=out.png
    ebgan-client edit --server=localhost:8500 --model_name=ebgan --source=a.png --part=eyes:b.png:0.7 \\
        --part=mouth:c.png --output=out.png                    # a part per exemplar (edit_composed)
    ebgan-client metadata --server=localhost:8500 --model_name=ebgan
    ebgan-client status --server=localhost:8500 --model_name=ebgan

Errors (server unreachable, NOT_FOUND, INVALID_ARGUMENT, unreadable images, unknown attributes) print one line on
stderr and exit with status 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import grpc
import numpy as np
import tensorflow as tf
from absl import flags
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from ebgan_tf import editing, images
from ebgan_tf.cli import reports_errors, run_main
from ebgan_tf.config import parse_regions
from ebgan_tf.data import masks
from ebgan_tf.serving.errors import ServingError, status_code

DEFAULT_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...] | None  # -1 = any size; None = unknown rank


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """GetModelMetadata's answer: the version that answered and its signatures."""

    name: str
    version: int
    signatures: Mapping[str, SignatureSpec]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One entry of GetModelStatus: state is START, LOADING, AVAILABLE, UNLOADING or END."""

    version: int
    state: str
    error_code: str
    error_message: str


@dataclasses.dataclass(frozen=True)
class ModelInfo(editing.ModelInfo):
    """The model's `metadata` signature (with attributes_from / region_mask), plus the version that answered
    (pin it for the following calls)."""

    version: int


def _spec(model_name: str, version: int | None, version_label: str | None, signature: str = "") -> model_pb2.ModelSpec:
    if version is not None and version_label:
        raise ValueError("Give a version or a version label, not both.")
    spec = model_pb2.ModelSpec(name=model_name, signature_name=signature)
    if version is not None:
        spec.version.value = version
    elif version_label:
        spec.version_label = version_label
    return spec


def _tensor_spec(info) -> TensorSpec:
    shape = None if info.tensor_shape.unknown_rank else tuple(dim.size for dim in info.tensor_shape.dim)
    return TensorSpec(tf.dtypes.as_dtype(info.dtype).name, shape)


def _code_name(number: int) -> str:
    code = status_code(number)
    return code.name if code else str(number)


class EditClient:
    """PredictionService and ModelService stubs over one channel; every call has a deadline of `timeout` s."""

    def __init__(self, server: str, timeout: float = 10.0, max_message_bytes: int = DEFAULT_MESSAGE_BYTES):
        self.server = server
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            server,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def model(self, model_name: str, version: int | None = None, version_label: str | None = None) -> ServedModel:
        """One served model with its name (and version) bound: a `CropEditor`, called as `Editor` is."""
        return ServedModel(self, model_name, version, version_label)

    def __enter__(self) -> EditClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                details = f"cannot reach the model server at {self.server} ({details})"
            elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                details = f"no answer from {self.server} within {self.timeout:g} s"
            raise ServingError(code, details) from None

    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        model_name: str,
        signature: str = "serving_default",
        version: int | None = None,
        version_label: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Predict on any signature: named numpy inputs -> named numpy outputs."""
        request = predict_pb2.PredictRequest(model_spec=_spec(model_name, version, version_label, signature))
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self._predictions.Predict, request)
        return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}

    def edit(
        self,
        source: np.ndarray,
        exemplar: np.ndarray,
        mask: np.ndarray,
        attributes: np.ndarray | None = None,
        model_name: str = "ebgan",
        version: int | None = None,
        version_label: str | None = None,
        signature: str = "edit",
    ) -> np.ndarray:
        """Edits uint8 images [S,S,3] or [N,S,S,3] with a mask [S,S,1] / [N,S,S,1] (1 = edit); returns uint8 like
        `source`. `attributes` [n] or [N,n] (1 = transfer, 0 = filter out) is sent for `edit_filtered`."""
        single = np.ndim(source) == 3
        batch = [np.asarray(array)[None] if single else np.asarray(array) for array in (source, exemplar, mask)]
        inputs = {"source": batch[0], "exemplar": batch[1], "mask": batch[2].astype(np.float32)}
        if attributes is not None:
            attributes = np.asarray(attributes, np.float32)
            inputs["attributes"] = np.broadcast_to(attributes, (len(batch[0]),) + attributes.shape[-1:]).copy()
        edited = self.predict(inputs, model_name, signature, version, version_label)["edited"]
        return edited[0] if single else edited

    def edit_composed(
        self,
        source: np.ndarray,
        exemplars,
        masks,
        strengths=None,
        attributes=None,
        model_name: str = "ebgan",
        version: int | None = None,
        version_label: str | None = None,
        info: editing.ModelInfo | None = None,
    ) -> np.ndarray:
        """The `edit_composed` signature: part k fills masks[k] from exemplars[k] at strengths[k], with the
        arguments of `Editor.edit_composed` (checked here the same way). `info` (the model's `model_info`) saves
        the call that reads it."""
        info = info or self.model_info(model_name, version, version_label)
        inputs, single = editing.composed_inputs(info, source, exemplars, masks, strengths, attributes)
        edited = self.predict(inputs, model_name, editing.EDIT_COMPOSED, version, version_label)["edited"]
        return edited[0] if single else edited

    def classify(
        self,
        images: np.ndarray,
        model_name: str = "ebgan",
        version: int | None = None,
        version_label: str | None = None,
    ) -> np.ndarray:
        """The `classify` signature (Att-EBGAN): aligned uint8 faces [S,S,3] or [N,S,S,3] -> float32 probabilities
        [n] or [N,n] (> 0.5 = the edit's gate transfers that attribute)."""
        single = np.ndim(images) == 3
        batch = np.asarray(images)[None] if single else np.asarray(images)
        probabilities = self.predict({"image": batch}, model_name, editing.CLASSIFY, version, version_label)[
            "probabilities"
        ]
        return probabilities[0] if single else probabilities

    def model_info(self, model_name: str, version: int | None = None, version_label: str | None = None) -> ModelInfo:
        """Runs the model's `metadata` signature (attribute names, image size, variant, landmark template)."""
        request = predict_pb2.PredictRequest(model_spec=_spec(model_name, version, version_label, "metadata"))
        response = self._call(self._predictions.Predict, request)
        values = {key: tf.make_ndarray(value) for key, value in response.outputs.items()}
        return ModelInfo.from_metadata(values, version=response.model_spec.version.value)

    def metadata(self, model_name: str, version: int | None = None, version_label: str | None = None) -> ModelMetadata:
        """GetModelMetadata (signature_def): every callable signature's input and output names, dtypes, shapes."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_spec(model_name, version, version_label), metadata_field=["signature_def"]
        )
        response = self._call(self._predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        signatures = {
            key: SignatureSpec(
                {name: _tensor_spec(info) for name, info in sorted(signature.inputs.items())},
                {name: _tensor_spec(info) for name, info in sorted(signature.outputs.items())},
            )
            for key, signature in sorted(signature_map.signature_def.items())
            if not key.startswith("__")
        }  # skip internal ones such as __saved_model_init_op
        return ModelMetadata(response.model_spec.name, response.model_spec.version.value, signatures)

    def status(
        self, model_name: str, version: int | None = None, version_label: str | None = None
    ) -> list[VersionStatus]:
        """GetModelStatus: the state of every version the server knows (or of the requested one)."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=_spec(model_name, version, version_label))
        response = self._call(self._models.GetModelStatus, request)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return [
            VersionStatus(
                entry.version, state_name(entry.state), _code_name(entry.status.error_code), entry.status.error_message
            )
            for entry in response.model_version_status
        ]


class ServedModel:
    """One model of a model server as a `CropEditor` (ebgan_tf.editing): EditClient's calls with the model's name
    bound. Its metadata and signature list are read on first use; every call then goes to the version that answered
    (so a version the server loads later is not mixed into a session)."""

    def __init__(self, client: EditClient, name: str, version: int | None = None, version_label: str | None = None):
        self.name = name
        self._client = client
        self._version, self._version_label = version, version_label
        self._info: ModelInfo | None = None
        self._signatures: frozenset[str] = frozenset()

    @property
    def info(self) -> ModelInfo:
        """The `metadata` signature of the version that answered (`ModelInfo.version`)."""
        if self._info is None:
            info = self._client.model_info(self.name, self._version, self._version_label)
            self._signatures = frozenset(self._client.metadata(self.name, info.version).signatures)  # GetModelMetadata
            self._info = info
        return self._info

    @property
    def signatures(self) -> frozenset[str]:
        """The signatures the served version has (as `Editor.signatures`), read with `info`."""
        _ = self.info
        return self._signatures

    @property
    def classifies(self) -> bool:
        """Whether `classify` works: an Att-EBGAN export with the classify signature."""
        return editing.classify_error(self.info, self.signatures) is None

    def edit(
        self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray, attributes: np.ndarray | None = None
    ) -> np.ndarray:
        """`edit`, or `edit_filtered` with `attributes` (as `Editor.edit`)."""
        signature = editing.EDIT if attributes is None else editing.EDIT_FILTERED
        return self._client.edit(
            source, exemplar, mask, attributes, model_name=self.name, version=self.info.version, signature=signature
        )

    def edit_composed(
        self,
        source: np.ndarray,
        exemplars: Sequence[np.ndarray] | np.ndarray,
        masks: Sequence[np.ndarray] | np.ndarray,
        strengths: Sequence[float] | np.ndarray | None = None,
        attributes: Sequence[np.ndarray | None] | np.ndarray | None = None,
    ) -> np.ndarray:
        """`edit_composed` (as `Editor.edit_composed`)."""
        return self._client.edit_composed(
            source,
            exemplars,
            masks,
            strengths,
            attributes,
            model_name=self.name,
            version=self.info.version,
            info=self.info,
        )

    def classify(self, images: np.ndarray) -> np.ndarray:
        """`classify` (as `Editor.classify`); a model without it is a ValueError saying why."""
        error = editing.classify_error(self.info, self.signatures)
        if error:
            raise ValueError(error)
        return self._client.classify(images, model_name=self.name, version=self.info.version)


if TYPE_CHECKING:  # mypy: a served model is a CropEditor
    _SERVED_MODEL: type[editing.CropEditor] = ServedModel


# ---------------------------------------------------------------------------------------------------------------
# ebgan-client

COMMANDS = ("edit", "metadata", "status")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC model server (TF Serving or ebgan-serve).")
    flags.DEFINE_string("model_name", "ebgan", "Name of the served model.")
    flags.DEFINE_integer(
        "version", None, "Model version to use (default: the latest the server serves).", lower_bound=1
    )
    flags.DEFINE_string("version_label", None, "Version label to use (e.g. stable), instead of --version.")
    flags.DEFINE_enum(
        "signature",
        None,
        ["edit", "edit_filtered"],
        "Signature to call (default: edit_filtered with --drop/--keep, else edit).",
    )
    flags.DEFINE_string("source", None, "Source face image (aligned, at the model's image size).")
    flags.DEFINE_string("exemplar", None, "Exemplar face image (aligned, at the model's image size).")
    flags.DEFINE_string(
        "region", None, "Region(s) to edit, e.g. mouth or eyes,brows (for faces at the model's alignment)."
    )
    flags.DEFINE_multi_string(
        "part",
        [],
        "A part of a composed edit (signature edit_composed), instead of --exemplar "
        "and --region/--mask: region:exemplar file[:strength], e.g. --part=eyes:b.png:0.7 "
        "--part=mouth:c.png (aligned faces; strength in [0, 1], default 1). --drop/--keep "
        "apply to every part.",
    )
    flags.DEFINE_string("mask", None, "Mask image instead of --region: white (or opaque) = edit.")
    flags.DEFINE_list("drop", [], "Attributes of the exemplar NOT to transfer, e.g. Mustache,Smiling (Att-EBGAN).")
    flags.DEFINE_list("keep", None, "The only attributes of the exemplar to transfer (Att-EBGAN).")
    flags.DEFINE_float("timeout", 10.0, "Seconds to wait for each answer.", lower_bound=0.001)
    flags.DEFINE_string("output", None, "Where to write the edited image (.png, .jpg, ...).")


def _edit_composed(client: EditClient) -> str:
    from ebgan_tf.serving.edit import parse_part  # pylint: disable=import-outside-toplevel

    if FLAGS.exemplar or FLAGS.region or FLAGS.mask or FLAGS.signature:
        raise ValueError(
            "Give --part (one per region, each with its exemplar) or --exemplar with --region/--mask, "
            "not both (--part calls edit_composed)."
        )
    missing = [f"--{name}" for name in ("source", "output") if not getattr(FLAGS, name)]
    if missing:
        raise ValueError(f"edit needs {', '.join(missing)}.")
    parts = [parse_part(text) for text in FLAGS.part]
    info = client.model_info(FLAGS.model_name, FLAGS.version, FLAGS.version_label)
    attributes = info.attributes_from(FLAGS.drop, FLAGS.keep)
    source = images.load_image(FLAGS.source, size=info.image_size)
    exemplars = {
        path: images.load_image(path, size=info.image_size) for path in dict.fromkeys(part.exemplar for part in parts)
    }
    edited = client.edit_composed(
        source,
        np.stack([exemplars[part.exemplar] for part in parts]),
        np.stack([info.region_mask(part.region) for part in parts]),
        [part.strength for part in parts],
        [attributes] * len(parts),
        model_name=FLAGS.model_name,
        version=info.version,
        info=info,
    )
    images.save_image(FLAGS.output, edited)
    return (
        f"Wrote {FLAGS.output} (model {FLAGS.model_name} version {info.version}, signature "
        f"{editing.EDIT_COMPOSED}, {len(parts)} parts)."
    )


def _edit(client: EditClient) -> str:
    if FLAGS.part:
        return _edit_composed(client)
    missing = [f"--{name}" for name in ("source", "exemplar", "output") if not getattr(FLAGS, name)]
    if missing:
        raise ValueError(f"edit needs {', '.join(missing)}.")
    if bool(FLAGS.region) == bool(FLAGS.mask):
        raise ValueError("edit needs exactly one of --region (e.g. mouth) or --mask (a mask image).")
    filtering = bool(FLAGS.drop) or FLAGS.keep is not None
    signature = FLAGS.signature or ("edit_filtered" if filtering else "edit")
    if filtering and signature != "edit_filtered":
        raise ValueError("--drop/--keep need --signature=edit_filtered.")
    info = client.model_info(FLAGS.model_name, FLAGS.version, FLAGS.version_label)
    source = images.load_image(FLAGS.source, size=info.image_size)
    exemplar = images.load_image(FLAGS.exemplar, size=info.image_size)
    mask = (
        info.region_mask(parse_regions(FLAGS.region))
        if FLAGS.region
        else masks.load_mask_image(FLAGS.mask, info.image_size)
    )
    attributes = None
    if signature == "edit_filtered":  # without --drop/--keep every attribute is transferred
        attributes = info.attributes_from(FLAGS.drop, FLAGS.keep if filtering else list(info.attribute_names))
    edited = client.edit(
        source, exemplar, mask, attributes, model_name=FLAGS.model_name, version=info.version, signature=signature
    )
    images.save_image(FLAGS.output, edited)
    return f"Wrote {FLAGS.output} (model {FLAGS.model_name} version {info.version}, signature {signature})."


def _describe(spec: TensorSpec) -> str:
    shape = "?" if spec.shape is None else "[" + ",".join("N" if size == -1 else str(size) for size in spec.shape) + "]"
    return f"{spec.dtype} {shape}"


def _metadata(client: EditClient) -> str:
    metadata = client.metadata(FLAGS.model_name, FLAGS.version, FLAGS.version_label)
    lines = [f"model {metadata.name} version {metadata.version}"]
    for name, signature in metadata.signatures.items():
        lines.append(f"signature {name}:")
        lines += [f"  input  {key}: {_describe(spec)}" for key, spec in signature.inputs.items()]
        lines += [f"  output {key}: {_describe(spec)}" for key, spec in signature.outputs.items()]
    if "metadata" in metadata.signatures:
        info = client.model_info(FLAGS.model_name, metadata.version)
        lines += [
            f"variant: {info.variant}",
            f"image_size: {info.image_size}",
            f"attribute_names: {', '.join(info.attribute_names) or '(none)'}",
        ]
    return "\n".join(lines)


def _status(client: EditClient) -> str:
    rows = client.status(FLAGS.model_name, FLAGS.version, FLAGS.version_label)
    return "\n".join(
        f"version {row.version}: {row.state}"
        + (f" ({row.error_code}: {row.error_message})" if row.error_code != "OK" else "")
        for row in rows
    )


@reports_errors("ebgan-client", ServingError, ValueError)  # images.ImageError is a ValueError
def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise ValueError(f"give one command, {', '.join(COMMANDS)} (got {' '.join(argv[1:]) or 'none'}).")
    if FLAGS.version is not None and FLAGS.version_label:
        raise ValueError("Give --version or --version_label, not both.")
    with EditClient(FLAGS.server, FLAGS.timeout) as client:
        print({"edit": _edit, "metadata": _metadata, "status": _status}[argv[1]](client))
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
