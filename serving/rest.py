"""The REST front end: TF Serving's REST API (predict and model status) over http.server, with timeouts,
a bounded number of connections and the body rules of serving.limits."""

from __future__ import annotations

import base64
import binascii
import http.server
import io
import json
import re
import socket
import threading
import time
from typing import Any, Mapping

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2

from serving.core import ServingCore, status_response
from serving.errors import ServingError, invalid, not_found
from serving.limits import content_length
from serving.servable import DEFAULT_SIGNATURE


# A status's HTTP code (docs/hardening.md); anything else is a server error, 500.
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
               grpc.StatusCode.UNAVAILABLE: 503}
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


class _DeadlineReader(io.RawIOBase):
    """A socket's input with a deadline for the current phase of a request (not a timeout per read, which a
    client sending one byte a second would never trip)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._deadline = float("inf")
        self.phase = "request"

    def expect(self, phase: str, seconds: float) -> None:
        self.phase, self._deadline = phase, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(self.phase)
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise TimeoutError(self.phase) from None


class _TimedWriter:
    """A socket's output: every write must be taken by the client within `seconds`."""

    def __init__(self, sock: socket.socket, seconds: float):
        self._sock, self._seconds = sock, seconds

    def write(self, data: bytes) -> int:
        self._sock.settimeout(self._seconds)
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST API (predict and model status), each phase of a request under the server's timeouts."""

    protocol_version = "HTTP/1.1"
    server: "RestServer"

    def setup(self) -> None:
        self.connection = self.request
        limits = self.server.core.limits
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = _TimedWriter(self.connection, limits.body_timeout_seconds)
        self._write_lock = threading.Lock()
        self.busy = self.abandoned = self._body_read = self._answered_one = False
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)

    def log_message(self, format, *args):  # noqa: A002  (quiet; errors are logged below)
        logging.debug("REST %s", format % args)

    def handle_one_request(self) -> None:
        """One request: wait (idle timeout), read the request line and headers (header timeout), then dispatch.
        A new connection's first request counts from the accept under the header timeout. A request line without
        an HTTP version (HTTP/0.9) and unknown methods get an error, not silence."""
        limits = self.server.core.limits
        try:
            if self._answered_one:
                self._reader.expect("idle", limits.idle_timeout_seconds)
            else:
                self._reader.expect("headers", limits.header_timeout_seconds)
            if not self.rfile.peek(1):
                self.close_connection = True
                return
            if self._answered_one:
                self._reader.expect("headers", limits.header_timeout_seconds)
            self._answered_one = True
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self._fail(414, "The request line is longer than 65536 bytes.")
                return
            if len(self.raw_requestline.split()) != 3:
                self._fail(400, f"Malformed request line {self.raw_requestline[:80]!r}: expected "
                                "'METHOD /path HTTP/1.1' (HTTP/0.9 is not supported).")
                return
            if not self.parse_request():
                return
            if self.command not in ("GET", "POST"):
                self._fail(405, f"Method {self.command} is not allowed; use GET (status) or POST (predict).")
                return
            self._handle(post=self.command == "POST")
        except TimeoutError as error:
            self.close_connection = True
            if error.args and error.args[0] != "idle":
                seconds = (limits.header_timeout_seconds if error.args[0] == "headers"
                           else limits.body_timeout_seconds)
                self._fail(408, f"The request {error.args[0]} did not arrive within {seconds:g} s.")

    def _fail(self, status: int, message: str) -> None:
        """An error answer that also closes the connection (the rest of the request cannot be trusted)."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # no parsed request: answer HTTP/1.0
            self.request_version, self.requestline, self.command = "HTTP/1.0", "", None
        try:
            self._reply(status, {"error": message})
        except OSError:
            pass  # the client is gone

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        with self._write_lock:
            if self.abandoned:
                return
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

    def abandon(self, status: int, message: str) -> None:
        """From another thread (shutdown): answers a request still being computed and closes its connection."""
        self.close_connection = True
        try:
            self._reply(status, {"error": message})
        except OSError:
            pass
        with self._write_lock:
            self.abandoned = True
        _close_quietly(self.connection)

    def _read_body(self) -> Any:
        """The JSON body under the length rules and the body timeout; INVALID_ARGUMENT/RESOURCE_EXHAUSTED."""
        if self.headers.get("Transfer-Encoding"):
            raise invalid("Transfer-Encoding is not accepted; send the body with a Content-Length.")
        limits = self.server.core.limits
        length = content_length(self.headers.get_all("Content-Length") or [], limits)
        self._reader.expect("body", limits.body_timeout_seconds)
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            raise invalid(f"The request body ended after {len(data)} of {length} bytes (Content-Length).")
        try:
            return json.loads(data or b"null")
        except (ValueError, RecursionError) as error:
            kind = "nested too deeply" if isinstance(error, RecursionError) else f"not valid JSON: {error}"
            raise invalid(f"The request body is {kind}.") from None

    def _handle(self, post: bool) -> None:
        self.busy, self._body_read = True, False
        try:
            match = _REST_PATH.match(self.path)
            if not match or bool(match.group(4)) != post:
                raise not_found(f"Malformed request: {self.command} {self.path[:200]}")
            name, version, label = match.group(1), match.group(2), match.group(3)
            version = int(version) if version else None
            if not post:
                status = status_response(self.server.core.manager, name, version, label)
                self._reply(200, json_format.MessageToDict(status, always_print_fields_with_no_presence=True,
                                                           preserving_proto_field_name=True))
                return
            body = self._read_body()
            if not isinstance(body, dict):
                raise invalid("The request body must be a JSON object.")
            signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
            if not isinstance(signature_name, str):
                raise invalid(f'"signature_name" must be a string, got {type(signature_name).__name__}.')
            servable = self.server.core.manager.resolve(name, version, label)
            inputs, row_format = _rest_inputs(body, servable.signature(signature_name))
            outputs = self.server.core.predict(servable, signature_name, inputs)
            self._reply(200, _rest_outputs(outputs, row_format))
        except ServingError as error:
            if post and not self._body_read:  # the unread body would be taken for the next request
                self.close_connection = True
            self._reply(HTTP_STATUS.get(error.code, 500), {"error": error.message})
        except TimeoutError:
            raise
        except OSError:
            self.close_connection = True  # the client went away mid-answer
        except Exception as error:  # pylint: disable=broad-except
            logging.exception("REST request failed")
            self._reply(500, {"error": f"{type(error).__name__}: {error}"})
        finally:
            self.busy = False


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class RestServer(http.server.ThreadingHTTPServer):
    """The REST server: a bounded number of connections (more are answered 503 and closed), each on a thread;
    `close` answers what is still being computed after a grace period."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 would reorder a burst of connections)

    def __init__(self, address: tuple[str, int], core: ServingCore):
        self.core = core
        self._slots = threading.BoundedSemaphore(core.limits.max_rest_connections)
        self._handlers: set[_Handler] = set()
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            body = json.dumps({"error": f"Too many connections (at most {self.core.limits.max_rest_connections}); "
                                        "retry later."}).encode()
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def track(self, handler: _Handler, open_: bool) -> None:
        """Called by each connection's handler when it opens and closes."""
        with self._lock:
            (self._handlers.add if open_ else self._handlers.discard)(handler)

    def handle_error(self, request, client_address) -> None:
        logging.debug("REST connection from %s failed", client_address, exc_info=True)

    def busy_handlers(self) -> list[_Handler]:
        with self._lock:
            return [handler for handler in self._handlers if handler.busy]

    def close_idle(self) -> None:
        """Closes the connections that wait for a request (keep-alive), so that they do not hold shutdown up."""
        with self._lock:
            idle = [handler for handler in self._handlers if not handler.busy]
        for handler in idle:
            _close_quietly(handler.connection)

    def abandon_busy(self) -> int:
        """Answers every request still being computed with 503 and closes its connection; returns how many."""
        busy = self.busy_handlers()
        for handler in busy:
            handler.abandon(503, "The server shut down before this request finished.")
        return len(busy)
