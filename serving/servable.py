"""One loaded SavedModel version: validation of requests against its signature defs, and running a signature."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from ebgan_tf.serving.errors import ServingError, invalid, not_found, status_code
from ebgan_tf.serving.limits import MAX_FREE_SIZE, check_tensor_proto, shown_list

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _expected_shape(info: meta_graph_pb2.TensorInfo) -> list[int] | None:
    """The signature's shape with -1 for any size, or None for unknown rank."""
    shape = info.tensor_shape
    return None if shape.unknown_rank else [dim.size for dim in shape.dim]


def dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:  # DT_INVALID (unset) or an unknown number
        return f"DataType {enum}"


def _is_batchable(signature: meta_graph_pb2.SignatureDef) -> bool:
    """A signature can be batched if every input and output has a free leading (batch) dimension."""
    tensors = list(signature.inputs.values()) + list(signature.outputs.values())
    return bool(signature.inputs) and all(
        (shape := _expected_shape(info)) is not None and len(shape) >= 1 and shape[0] == -1 for info in tensors
    )


class Servable:
    """A loaded version of a model: its signature defs (from saved_model.pb) and callable signatures."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
            saved_model.ParseFromString(handle.read())
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self._functions = tf.saved_model.load(path).signatures
        self._warm_up()

    def signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        """The signature def of a servable signature; NOT_FOUND listing the available ones."""
        name = name or DEFAULT_SIGNATURE
        if name not in self._functions:
            raise not_found(
                f"Serving signature name: {name!r} not found in signature def of model "
                f"{self.name!r} version {self.version}; it has: {', '.join(sorted(self._functions))}."
            )
        return self.signature_defs[name]

    def batchable(self, name: str) -> bool:
        return _is_batchable(self.signature(name))

    def validate(self, name: str, inputs: Mapping[str, np.ndarray]) -> None:
        """INVALID_ARGUMENT unless `inputs` has exactly the signature's input names, dtypes and shapes."""
        signature = self.signature(name)
        expected, given = set(signature.inputs), set(inputs)
        if expected != given:
            raise invalid(
                f"Request inputs do not match signature {name or DEFAULT_SIGNATURE!r} of model {self.name!r}: "
                f"unexpected {shown_list(sorted(given - expected))}, missing {sorted(expected - given)}; "
                f"expected inputs: {sorted(expected)}."
            )
        for key, info in signature.inputs.items():
            array, dtype = inputs[key], tf.dtypes.as_dtype(info.dtype)
            matches = array.dtype.kind in "OSU" if dtype == tf.string else array.dtype == dtype.as_numpy_dtype
            if not matches:
                raise invalid(
                    f"Input {key!r} has dtype {_array_dtype_name(array)} but signature "
                    f"{name or DEFAULT_SIGNATURE!r} expects {dtype.name}."
                )
            shape = _expected_shape(info)
            if shape is not None and (
                len(shape) != array.ndim or any(want not in (-1, got) for want, got in zip(shape, array.shape))
            ):
                raise invalid(
                    f"Input {key!r} has shape {_shape_text(array.shape)} but signature "
                    f"{name or DEFAULT_SIGNATURE!r} expects {_shape_text(shape)} (-1 = any size)."
                )
            if shape is not None and any(
                want == -1 and got > MAX_FREE_SIZE for want, got in zip(shape[1:], array.shape[1:])
            ):
                raise invalid(
                    f"Input {key!r} has shape {_shape_text(array.shape)}: this server takes at most "
                    f"{MAX_FREE_SIZE} in a free dimension after the batch (such as the parts of "
                    "edit_composed). Split the request."
                )

    def run(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on validated inputs; errors of the computation become ServingErrors."""
        function = self._functions[name or DEFAULT_SIGNATURE]
        try:
            outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        except tf.errors.OpError as error:
            code = status_code(error.error_code) or grpc.StatusCode.INTERNAL
            raise ServingError(code, _first_lines(error.message)) from None
        except (ValueError, TypeError) as error:
            raise invalid(_first_lines(str(error))) from None
        return {key: np.asarray(value.numpy()) for key, value in outputs.items()}  # scalars too

    def _warm_up(self) -> None:
        """Replays TF Serving warm-up requests (assets.extra/tf_serving_warmup_requests) like TF Serving does."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if log.WhichOneof("log_type") == "predict_log":
                request = log.predict_log.request
                inputs = tensor_protos_to_arrays(request.inputs)
                self.validate(request.model_spec.signature_name, inputs)
                self.run(request.model_spec.signature_name, inputs)


def _array_dtype_name(array: np.ndarray) -> str:
    return "string" if array.dtype.kind in "OSU" else array.dtype.name


def _first_lines(message: str, count: int = 3) -> str:
    """TensorFlow error messages carry long graph traces; keep the readable start (and, for a failed graph
    assertion, the assertion's own message, which comes after the trace)."""
    lines = message.strip().splitlines()
    asserted = [line.strip() for line in lines if line.strip().lower().startswith("assertion failed")]
    return "\n".join(lines[:1] + asserted[:1] if asserted else lines[:count])


def tensor_protos_to_arrays(protos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """TensorProtos -> numpy arrays; INVALID_ARGUMENT if a proto is malformed (checked before decoding)."""
    arrays = {}
    for key, proto in protos.items():
        check_tensor_proto(key, proto)
        try:
            arrays[key] = tf.make_ndarray(proto)
        except (ValueError, TypeError, OverflowError) as error:
            raise invalid(f"Input {key!r} is not a valid TensorProto: {error}") from None
    return arrays
