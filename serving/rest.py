"""The REST front end: TF Serving's REST API (predict and model status) over http.server."""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import re
from typing import Any, Mapping

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2

from serving.core import ServingCore, status_response
from serving.errors import ServingError, invalid, not_found
from serving.servable import DEFAULT_SIGNATURE


_HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
                grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.UNAVAILABLE: 503}
_REST_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(:predict)?$")


def _decode_json_string(item: Any) -> bytes:
    """A JSON string, or TF Serving's {"b64": ...} for binary data -> bytes."""
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, dict) and isinstance(item.get("b64"), str):
        return base64.b64decode(item["b64"])
    raise ValueError(f"expected a string or {{\"b64\": ...}}, got {item!r}")


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
    if array.dtype.kind not in "biuf" or (dtype.is_integer and array.dtype.kind == "f" and
                                          not np.all(np.mod(array, 1) == 0)):
        raise invalid(f"Input {key!r} must hold {dtype.name} numbers (a rectangular nested list).")
    if dtype.is_integer and array.size and (array.min() < dtype.min or array.max() > dtype.max):
        raise invalid(f"Input {key!r} has values outside the range of {dtype.name} [{dtype.min}, {dtype.max}].")
    return array.astype(dtype.as_numpy_dtype)


def _array_to_json(array: np.ndarray) -> Any:
    if array.dtype.kind in "OS":
        return np.vectorize(lambda item: item.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def _rest_inputs(body: Mapping[str, Any], signature: meta_graph_pb2.SignatureDef) -> tuple[dict, bool]:
    """TF Serving's REST request formats -> (inputs, row format?). A lone input may be given without its name."""
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
        keys = set().union(*instances) if instances else set()
        columns = {key: [item.get(key) for item in instances] for key in keys}
    else:
        columns = body["inputs"]
        if len(names) == 1 and not (isinstance(columns, dict) and set(columns) == set(names)):
            columns = {names[0]: columns}
        if not isinstance(columns, dict):
            raise invalid(f'"inputs" must be an object with the keys {names}.')
    unexpected = sorted(set(columns) - set(names))
    if unexpected:
        raise invalid(f"input tensor alias(es) {unexpected} not found in signature; expected inputs: {names}.")
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
    return {"predictions": [{key: _array_to_json(value[row]) for key, value in outputs.items()} for row in range(rows)]}


def rest_handler(core: ServingCore, max_body_bytes: int) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        """TF Serving's REST API: predict and model status."""

        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002  (quiet; errors are logged below)
            logging.debug("REST %s", format % args)

        def _reply(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, post: bool) -> None:
            try:
                match = _REST_PATH.match(self.path)
                if not match or bool(match.group(4)) != post:
                    raise not_found(f"Malformed request: {self.command} {self.path}")
                name, version, label = match.group(1), match.group(2), match.group(3)
                version = int(version) if version else None
                if not post:
                    status = status_response(core.manager, name, version, label)
                    self._reply(200, json_format.MessageToDict(status, always_print_fields_with_no_presence=True,
                                                               preserving_proto_field_name=True))
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body_bytes:
                    self.close_connection = True
                    self._reply(413, {"error": f"Request body of {length} bytes exceeds {max_body_bytes} bytes."})
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError as error:
                    raise invalid(f"The request body is not valid JSON: {error}") from None
                if not isinstance(body, dict):
                    raise invalid("The request body must be a JSON object.")
                signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
                servable = core.manager.resolve(name, version, label)
                inputs, row_format = _rest_inputs(body, servable.signature(signature_name))
                outputs = core.predict(servable, signature_name, inputs)
                self._reply(200, _rest_outputs(outputs, row_format))
            except ServingError as error:
                self._reply(_HTTP_STATUS.get(error.code, 500), {"error": error.message})
            except Exception as error:  # pylint: disable=broad-except
                logging.exception("REST request failed")
                self._reply(500, {"error": f"{type(error).__name__}: {error}"})

        def do_GET(self):  # noqa: N802
            self._handle(post=False)

        def do_POST(self):  # noqa: N802
            self._handle(post=True)

    return Handler

