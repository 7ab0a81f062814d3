"""Request limits: the one place where the server bounds what a client may make it allocate, compute or wait for.

The gRPC decoder (servable.tensor_protos_to_arrays), the HTTP front ends (body size, timeouts, connections) and
ServingCore.predict (rows per request, batched or not) all check against one RequestLimits (defined, with the flags
that set it, in ebgan_tf.serving.request_limits).
Over a limit is RESOURCE_EXHAUSTED (REST 413); a malformed request is INVALID_ARGUMENT (REST 400).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf

from ebgan_tf.serving.errors import ServingError, invalid
from ebgan_tf.serving.request_limits import RequestLimits, flag

# TensorProto's typed value fields, and how many of their entries make one element.
_VALUE_FIELDS = {
    "half_val": 1,
    "float_val": 1,
    "double_val": 1,
    "int_val": 1,
    "string_val": 1,
    "scomplex_val": 2,
    "int64_val": 1,
    "bool_val": 1,
    "dcomplex_val": 2,
    "uint32_val": 1,
    "uint64_val": 1,
}
# The value field each dtype's values travel in (as TensorFlow's make_tensor_proto writes them); tensor_content
# serves every dtype but string.
_DTYPE_FIELDS = {
    tf.float32: "float_val",
    tf.float64: "double_val",
    tf.int32: "int_val",
    tf.int16: "int_val",
    tf.int8: "int_val",
    tf.uint8: "int_val",
    tf.uint16: "int_val",
    tf.qint8: "int_val",
    tf.quint8: "int_val",
    tf.qint16: "int_val",
    tf.quint16: "int_val",
    tf.qint32: "int_val",
    tf.int64: "int64_val",
    tf.uint32: "uint32_val",
    tf.uint64: "uint64_val",
    tf.bool: "bool_val",
    tf.string: "string_val",
    tf.float16: "half_val",
    tf.bfloat16: "half_val",
    tf.complex64: "scomplex_val",
    tf.complex128: "dcomplex_val",
}
# Names a client chooses (model, signature, version label, input and output names) and how many it may list: a
# bound keeps every error message that names them short (gRPC carries it in a trailer of at most 8-16 KB).
MAX_NAME_CHARS = 256
MAX_NAMES = 64  # input tensors, or output filters, of one request
MAX_ERROR_CHARS = 2000  # an error message longer than this is cut (whatever it quotes)
# A size a signature leaves free past dimension 0 (the K parts of `edit_composed`): bounded, so that a request's size
# (and the REST body's JSON count) follows from the signature and --max_batch_rows.
MAX_FREE_SIZE = 16
# int_val carries these dtypes' values (half_val: the bit patterns of half and bfloat16) and can overflow them.
_NARROW_INTEGERS = {
    tf.uint8.as_datatype_enum: (0, 255),
    tf.int8.as_datatype_enum: (-128, 127),
    tf.uint16.as_datatype_enum: (0, 65535),
    tf.int16.as_datatype_enum: (-32768, 32767),
    tf.half.as_datatype_enum: (0, 65535),
    tf.bfloat16.as_datatype_enum: (0, 65535),
}


def exhausted(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted for an error message, cut to `limit` characters (saying how long it was)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def shown_list(names: Any, limit: int = 8) -> str:
    """A list of names for an error message: at most `limit` of them, each cut by `shown`."""
    names = list(names)
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return "[" + ", ".join(shown(name, 40) for name in names[:limit]) + more + "]"


def check_name(what: str, name: str) -> None:
    """INVALID_ARGUMENT if a client's name (of a model, signature, label, input or output) is over the bound."""
    if len(name) > MAX_NAME_CHARS:
        raise invalid(f"The {what} {shown(name, 40)} is longer than {MAX_NAME_CHARS} characters.")


def check_request_names(model: str, signature: str = "", label: str = "", inputs: Any = (), outputs: Any = ()) -> None:
    """INVALID_ARGUMENT if any name of a request, or its number of inputs or output filters, is over the bounds."""
    for what, names in (("inputs", inputs), ("output filters", outputs)):
        names = list(names)
        if len(names) > MAX_NAMES:
            raise invalid(f"The request has {len(names)} {what}; at most {MAX_NAMES} are accepted.")
    check_name("model name", model)
    check_name("signature name", signature)
    check_name("version label", label)
    for name in inputs:
        check_name("input name", name)
    for name in outputs:
        check_name("output filter", name)


def short_message(message: str) -> str:
    """An error message cut to MAX_ERROR_CHARS (the rest is dropped, saying so)."""
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return message[:MAX_ERROR_CHARS] + f"... (message cut at {MAX_ERROR_CHARS} of {len(message)} characters)"


def check_tensor_proto(key: str, proto: Any) -> None:
    """INVALID_ARGUMENT unless a TensorProto's declared dtype and shape match the values it carries, in the value
    field of its dtype (or tensor_content).

    Runs before anything is allocated: tf.make_ndarray would pad a single value out to any declared shape, and
    read values from another dtype's field as zeros.
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
    fields = [
        (name, len(values) // _VALUE_FIELDS[name])
        for name, values in ((field.name, value) for field, value in proto.ListFields())
        if name in _VALUE_FIELDS
    ]
    if proto.tensor_content:
        fields.append(("tensor_content", len(proto.tensor_content) // max(dtype.size, 1)))
        if dtype == tf.string or len(proto.tensor_content) % dtype.size:
            raise invalid(
                f"Input {key!r}: tensor_content of {len(proto.tensor_content)} bytes does not hold whole "
                f"{dtype.name} values."
            )
    if len(fields) > 1:
        raise invalid(f"Input {key!r} carries values in more than one field: {[name for name, _ in fields]}.")
    own_field = _DTYPE_FIELDS.get(dtype)
    if fields and fields[0][0] not in ("tensor_content", own_field):
        where = f"{own_field} or tensor_content" if own_field else "tensor_content"
        raise invalid(
            f"Input {key!r} ({dtype.name}) carries its values in {fields[0][0]}; {dtype.name} values go in {where}."
        )
    given = fields[0][1] if fields else 0
    if given != declared:
        raise invalid(
            f"Input {key!r} declares shape {dims} ({declared} values) but carries {given}; "
            "send every value (tensor_content or the full value field)."
        )
    if proto.dtype in _NARROW_INTEGERS and fields and fields[0][0] in ("int_val", "half_val"):
        low, high = _NARROW_INTEGERS[proto.dtype]
        values = np.asarray(getattr(proto, fields[0][0]), np.int64)
        if values.size and (values.min() < low or values.max() > high):
            raise invalid(
                f"Input {key!r} has values outside the range of {dtype.name} [{low}, {high}] "
                f"(min {values.min()}, max {values.max()})."
            )


def check_rows(inputs: Mapping[str, np.ndarray], limits: RequestLimits) -> None:
    """RESOURCE_EXHAUSTED if an input of a request has more rows (dimension 0) than the server allows."""
    for key, array in inputs.items():
        if array.ndim:
            check_row_count(key, array.shape[0], limits)


def check_row_count(key: str, rows: int, limits: RequestLimits) -> None:
    """RESOURCE_EXHAUSTED if `rows` (of input `key`) is over --max_batch_rows."""
    if rows > limits.max_batch_rows:
        raise exhausted(
            f"Input {key!r} has {rows} rows; this server takes at most {limits.max_batch_rows} per "
            f"request ({flag('max_batch_rows')}). Split the request."
        )


def content_length(values: list[str], max_bytes: int) -> int:
    """The body length an HTTP request declares: INVALID_ARGUMENT if it is missing, repeated, negative or not a
    number, RESOURCE_EXHAUSTED if it is over `max_bytes` (--max_message_bytes)."""
    if not values:
        raise invalid("The request needs a Content-Length header (chunked bodies are not accepted).")
    if len(values) > 1:
        raise invalid(f"The request has {len(values)} Content-Length headers; send exactly one.")
    text = values[0].strip()
    if not text.isdigit() or not text.isascii():
        raise invalid(f"Content-Length must be a non-negative decimal number, got {values[0]!r}.")
    length = int(text)
    if length > max_bytes:
        raise exhausted(
            f"The request is too large: {length / 1e6:.1f} MB ({length} bytes), over this server's limit "
            f"of {max_bytes / 1e6:.1f} MB ({flag('max_message_bytes')})."
        )
    return length


def parse_json(data: bytes) -> Any:
    """A request body parsed as JSON (empty: None); INVALID_ARGUMENT if it is not JSON or nested too deeply."""
    try:
        return json.loads(data or b"null")
    except (ValueError, RecursionError) as error:
        kind = "nested too deeply" if isinstance(error, RecursionError) else f"not valid JSON: {error}"
        raise invalid(f"The request body is {kind}.") from None
