"""The REST front end: TF Serving's REST API (predict and model status) over the HTTP layer of http_base (h11),
with timeouts, a bounded number of connections and the body rules of ebgan_tf.serving.limits."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2

from ebgan_tf.serving.core import ServingCore, status_response
from ebgan_tf.serving.errors import invalid, not_found
from ebgan_tf.serving.http_base import LimitedHandler, LimitedHTTPServer
from ebgan_tf.serving.limits import (
    MAX_FREE_SIZE,
    RequestLimits,
    check_request_names,
    check_row_count,
    exhausted,
    parse_json,
    shown_list,
)
from ebgan_tf.serving.request_limits import flag
from ebgan_tf.serving.servable import DEFAULT_SIGNATURE, Servable

_REST_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(:predict)?$")


def _decode_json_string(item: Any) -> bytes:
    """A JSON string, or TF Serving's {"b64": ...} for binary data -> bytes."""
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, dict) and isinstance(item.get("b64"), str):
        return base64.b64decode(item["b64"])
    raise ValueError(f'expected a string or {{"b64": ...}}, got {item!r}')


def _json_to_array(value: Any, info: meta_graph_pb2.TensorInfo, key: str) -> np.ndarray:
    """A JSON value -> numpy array of the signature's dtype; INVALID_ARGUMENT for ragged or out-of-range values."""
    dtype = tf.dtypes.as_dtype(info.dtype)
    try:
        if dtype == tf.string:
            array = np.asarray(value, dtype=object)
            return np.vectorize(_decode_json_string, otypes=[object])(array) if array.size else array
        array = np.asarray(value)
    except (ValueError, TypeError, binascii.Error) as error:
        raise invalid(f"Input {key!r} could not be parsed as a {dtype.name} tensor: {error}") from None
    if array.dtype.kind not in "biuf" or (
        dtype.is_integer and array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0)
    ):
        raise invalid(f"Input {key!r} must hold {dtype.name} numbers (a rectangular nested list).")
    if dtype.is_integer and array.size and (array.min() < dtype.min or array.max() > dtype.max):
        raise invalid(f"Input {key!r} has values outside the range of {dtype.name} [{dtype.min}, {dtype.max}].")
    return array.astype(dtype.as_numpy_dtype)


def _array_to_json(array: np.ndarray) -> Any:
    if array.dtype.kind in "OS":
        return np.vectorize(lambda item: item.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def _most_json_items(servable: Servable, rows: int) -> int | None:
    """The most numbers and arrays a predict body for `servable` can hold with `rows` rows per input (any of its
    signatures; a free size after dimension 0 counts as MAX_FREE_SIZE); None if that has no bound (an input of
    unknown rank, or strings, which may hold commas)."""
    most = 0
    for signature in servable.signature_defs.values():
        items = 0
        for info in signature.inputs.values():
            if info.dtype == tf.string.as_datatype_enum or info.tensor_shape.unknown_rank:
                return None
            dims = [dim.size for dim in info.tensor_shape.dim]
            dims[1:] = [MAX_FREE_SIZE if size < 0 else size for size in dims[1:]]  # servable.validate's bound
            leading = (rows if dims[0] < 0 else dims[0]) if dims else 1
            arrays = sum(math.prod(dims[1:index]) for index in range(1, len(dims)))  # one row's nested lists
            items += leading * (math.prod(dims[1:]) + arrays + 1)
        most = max(most, items)
    return most


def check_json_size(data: bytes, servable: Servable, limits: RequestLimits) -> None:
    """RESOURCE_EXHAUSTED, before the body is parsed, if it holds more numbers and arrays (counted by their commas
    and opening brackets) than --max_batch_rows rows of any signature of `servable` can."""
    most = _most_json_items(servable, limits.max_batch_rows)
    if most is None:
        return
    most += 64  # the body's own object and the row format's lists
    items = data.count(b",") + data.count(b"[")
    if items > most:
        raise exhausted(
            f"The request body holds about {items} JSON values and arrays; {limits.max_batch_rows} rows "
            f"({flag('max_batch_rows')}) of model {servable.name!r} hold at most {most}. Split the "
            "request."
        )


def _rest_inputs(
    body: Mapping[str, Any], signature: meta_graph_pb2.SignatureDef, limits: RequestLimits
) -> tuple[dict, bool]:
    """TF Serving's REST request formats -> (inputs, row format?). A lone input may be given without its name.
    Names and rows are checked before any value is converted."""
    if ("instances" in body) == ("inputs" in body):
        raise invalid('The request must have exactly one of "instances" (row format) or "inputs" (columnar).')
    names = sorted(signature.inputs)
    row_format = "instances" in body
    if row_format:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise invalid('"instances" must be a list.')
        if len(names) == 1 and not all(isinstance(item, dict) and set(item) == set(names) for item in instances):
            instances = [{names[0]: item} for item in instances]
        if not all(isinstance(item, dict) for item in instances):
            raise invalid(f"Every instance must be an object with the keys {names}.")
        check_row_count("instances", len(instances), limits)
        keys = set().union(*instances) if instances else set()
        columns = {key: [item.get(key) for item in instances] for key in keys}
    else:
        columns = body["inputs"]
        if len(names) == 1 and not (isinstance(columns, dict) and set(columns) == set(names)):
            columns = {names[0]: columns}
        if not isinstance(columns, dict):
            raise invalid(f'"inputs" must be an object with the keys {names}.')
        for key, value in columns.items():
            if isinstance(value, list):
                check_row_count(str(key), len(value), limits)
    check_request_names("", inputs=columns)
    unexpected = sorted(set(columns) - set(names))
    if unexpected:
        raise invalid(
            f"input tensor alias(es) {shown_list(unexpected)} not found in signature; expected inputs: {names}."
        )
    return {key: _json_to_array(value, signature.inputs[key], key) for key, value in columns.items()}, row_format


def _rest_outputs(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    if not row_format:
        values = {key: _array_to_json(value) for key, value in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise invalid('The outputs have no common batch dimension; use the columnar "inputs" request format.')
    if len(outputs) == 1:
        return {"predictions": _array_to_json(next(iter(outputs.values())))}
    rows = sizes.pop()
    assert rows is not None  # checked above
    return {"predictions": [{key: _array_to_json(value[row]) for key, value in outputs.items()} for row in range(rows)]}


class _Handler(LimitedHandler):
    """TF Serving's REST API (predict and model status), each phase of a request under the server's timeouts."""

    server: RestServer

    def handle_request(self, post: bool) -> None:
        match = _REST_PATH.match(self.path)
        if not match or bool(match.group(4)) != post:
            raise not_found(f"Malformed request: {self.command} {self.path[:200]}")
        name, version, label = match.group(1), match.group(2), match.group(3)
        check_request_names(name, label=label or "")
        version = int(version) if version else None
        if not post:
            status = status_response(self.server.core.manager, name, version, label)
            self.send_json(
                200,
                json_format.MessageToDict(
                    status, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
                ),
            )
            return
        servable = self.server.core.manager.resolve(name, version, label)
        data = self.read_body()
        check_json_size(data, servable, self.server.core.limits)
        body = parse_json(data)
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid(f'"signature_name" must be a string, got {type(signature_name).__name__}.')
        check_request_names(name, signature_name)
        signature_name = signature_name or DEFAULT_SIGNATURE
        inputs, row_format = _rest_inputs(body, servable.signature(signature_name), self.server.core.limits)
        outputs = self.server.core.predict(servable, signature_name, inputs)
        self.send_json(200, _rest_outputs(outputs, row_format))


class RestServer(LimitedHTTPServer):
    """The REST server: a bounded number of connections (more are answered 503 and closed), each on a thread;
    `close` answers what is still being computed after a grace period."""

    def __init__(self, address: tuple[str, int], core: ServingCore):
        self.core = core
        super().__init__(address, _Handler, core.limits)
