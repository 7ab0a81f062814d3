"""Request limits: the one place where the server bounds what a client may make it allocate, compute or wait for.

The gRPC decoder (servable.tensor_protos_to_arrays), the REST front end (body size, timeouts, connections) and
ServingCore.predict (rows per request, batched or not) all check against one RequestLimits.
Over a limit is RESOURCE_EXHAUSTED (REST 413); a malformed request is INVALID_ARGUMENT (REST 400).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping

import grpc
import numpy as np
import tensorflow as tf

from ebgan_tf.serving.errors import ServingError, invalid

# TensorProto's typed value fields, and how many of their entries make one element.
_VALUE_FIELDS = {"half_val": 1, "float_val": 1, "double_val": 1, "int_val": 1, "string_val": 1, "scomplex_val": 2,
                 "int64_val": 1, "bool_val": 1, "dcomplex_val": 2, "uint32_val": 1, "uint64_val": 1}
# int_val carries these dtypes' values (half_val: the bit patterns of half and bfloat16) and can overflow them.
_NARROW_INTEGERS = {tf.uint8.as_datatype_enum: (0, 255), tf.int8.as_datatype_enum: (-128, 127),
                    tf.uint16.as_datatype_enum: (0, 65535), tf.int16.as_datatype_enum: (-32768, 32767),
                    tf.half.as_datatype_enum: (0, 65535), tf.bfloat16.as_datatype_enum: (0, 65535)}


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may ask of the server (every front end, batching on or off)."""

    max_batch_rows: int = 64  # rows (dimension 0) of one request
    max_message_bytes: int = 64 * 1024 * 1024  # a gRPC message or a REST body, in or out
    header_timeout_seconds: float = 10.0  # REST: request line and headers must arrive within this
    body_timeout_seconds: float = 30.0  # REST: the body must arrive, and the answer be taken, within this
    idle_timeout_seconds: float = 60.0  # REST: a kept-alive connection without a new request is closed
    max_rest_connections: int = 64  # REST connections open at once; more are answered 503 and closed

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be positive, got {getattr(self, field.name)}.")


def exhausted(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def check_tensor_proto(key: str, proto: Any) -> None:
    """INVALID_ARGUMENT unless a TensorProto's declared dtype and shape match the values it carries.

    Runs before anything is allocated: tf.make_ndarray would pad a single value out to any declared shape.
    """
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise invalid(f"Input {key!r} has no valid dtype (DataType {proto.dtype}).") from None
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"Input {key!r} must declare its shape (unknown_rank is set).")
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise invalid(f"Input {key!r} declares a negative dimension in its shape {dims}.")
    declared = math.prod(dims)
    fields = [(name, len(values) // _VALUE_FIELDS[name]) for name, values in
              ((field.name, value) for field, value in proto.ListFields()) if name in _VALUE_FIELDS]
    if proto.tensor_content:
        fields.append(("tensor_content", len(proto.tensor_content) // max(dtype.size, 1)))
        if dtype == tf.string or len(proto.tensor_content) % dtype.size:
            raise invalid(f"Input {key!r}: tensor_content of {len(proto.tensor_content)} bytes does not hold whole "
                          f"{dtype.name} values.")
    if len(fields) > 1:
        raise invalid(f"Input {key!r} carries values in more than one field: {[name for name, _ in fields]}.")
    given = fields[0][1] if fields else 0
    if given != declared:
        raise invalid(f"Input {key!r} declares shape {dims} ({declared} values) but carries {given}; "
                      "send every value (tensor_content or the full value field).")
    if proto.dtype in _NARROW_INTEGERS and fields and fields[0][0] in ("int_val", "half_val"):
        low, high = _NARROW_INTEGERS[proto.dtype]
        values = np.asarray(getattr(proto, fields[0][0]), np.int64)
        if values.size and (values.min() < low or values.max() > high):
            raise invalid(f"Input {key!r} has values outside the range of {dtype.name} [{low}, {high}] "
                          f"(min {values.min()}, max {values.max()}).")


def check_rows(inputs: Mapping[str, np.ndarray], limits: RequestLimits) -> None:
    """RESOURCE_EXHAUSTED if an input of a request has more rows (dimension 0) than the server allows."""
    for key, array in inputs.items():
        if array.ndim and array.shape[0] > limits.max_batch_rows:
            raise exhausted(f"Input {key!r} has {array.shape[0]} rows; this server takes at most "
                            f"{limits.max_batch_rows} per request (--max_batch_rows). Split the request.")


def content_length(values: list[str], max_bytes: int, flag: str = "--max_message_bytes") -> int:
    """The body length an HTTP request declares: INVALID_ARGUMENT if it is missing, repeated, negative or not a
    number, RESOURCE_EXHAUSTED if it is over `max_bytes` (set by `flag`)."""
    if not values:
        raise invalid("The request needs a Content-Length header (chunked bodies are not accepted).")
    if len(values) > 1:
        raise invalid(f"The request has {len(values)} Content-Length headers; send exactly one.")
    text = values[0].strip()
    if not text.isdigit() or not text.isascii():
        raise invalid(f"Content-Length must be a non-negative decimal number, got {values[0]!r}.")
    length = int(text)
    if length > max_bytes:
        raise exhausted(f"The request is too large: its body of {length} bytes exceeds {max_bytes} bytes ({flag}).")
    return length


def parse_json(data: bytes) -> Any:
    """A request body parsed as JSON (empty: None); INVALID_ARGUMENT if it is not JSON or nested too deeply."""
    try:
        return json.loads(data or b"null")
    except (ValueError, RecursionError) as error:
        kind = "nested too deeply" if isinstance(error, RecursionError) else f"not valid JSON: {error}"
        raise invalid(f"The request body is {kind}.") from None
