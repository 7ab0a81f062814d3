"""Hostile and careless clients of ebgan-serve: the cases of tests/serving/test_hostile.py by class, each with the
answers it may get, and the fuzzing strategies (hypothesis) over gRPC TensorProtos and REST JSON bodies.

`python -m tests.helpers.hostile_probe` serves an untrained tiny Att-EBGAN in-process (batching off and on), tries
every case and a number of fuzzed requests, and prints the table of docs/hardening.md; `... figures` measures the
heaviest attacks against the default limits (the figures of docs/hardening.md).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import numpy as np
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings, strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from ebgan_tf.serving.limits import RequestLimits

# The limits of the servers the cases are tried on: small, so that each bound is reached fast.
LIMITS = RequestLimits(
    max_batch_rows=8,
    max_message_bytes=8 * 1024 * 1024,
    header_timeout_seconds=1.0,
    body_timeout_seconds=1.0,
    idle_timeout_seconds=1.0,
    max_connections=8,
    grpc_message_timeout_seconds=2.0,
    grpc_max_concurrent_streams=8,
    grpc_max_pending_messages=12,
)
CLIENT_ERRORS_GRPC = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"}
CLIENT_ERRORS_HTTP = {"HTTP 200", "HTTP 400", "HTTP 404", "HTTP 405", "HTTP 408", "HTTP 413", "HTTP 414", "HTTP 431"}


@dataclasses.dataclass(frozen=True)
class Target:
    """A running server: its ports, its model's shape and the limits it was started with."""

    grpc_port: int
    rest_port: int
    image_size: int
    num_attributes: int
    max_batch_rows: int
    max_message_bytes: int
    timeout_seconds: float  # the largest of its REST header/body/idle timeouts
    max_connections: int
    host: str = "127.0.0.1"
    status_path: str = "/v1/models/ebgan"  # a GET that answers 200


# --- sending ----------------------------------------------------------------------------------------------------


def grpc_answer(target: Target, request: predict_pb2.PredictRequest, timeout: float = 30.0) -> str:
    """The status code name of a Predict call ("OK" if it succeeded)."""
    with grpc.insecure_channel(
        f"{target.host}:{target.grpc_port}", options=[("grpc.max_send_message_length", 256 * 1024 * 1024)]
    ) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            return error.code().name
    return "OK"


PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def raw_grpc_answer(target: Target, data: bytes, method: str = PREDICT_METHOD, timeout: float = 30.0) -> str:
    """The status code name of a call whose request message is `data` as sent (any bytes)."""
    with grpc.insecure_channel(f"{target.host}:{target.grpc_port}") as channel:
        try:
            channel.unary_unary(method)(data, timeout=timeout)
        except grpc.RpcError as error:
            return error.code().name
    return "OK"


def good_calls_answered(target: Target, timeout: float = 15.0) -> str:
    """ "OK" if a health check and a good Predict from a new client are both answered OK within `timeout` each;
    else what went wrong."""
    with grpc.insecure_channel(f"{target.host}:{target.grpc_port}") as channel:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as error:
            return f"health {error.code().name}"
    if health.status != health_pb2.HealthCheckResponse.SERVING:
        return f"health {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}"
    answer = grpc_answer(target, predict_request(valid_inputs(target)), timeout)
    return "OK" if answer == "OK" else f"Predict {answer}"


@dataclasses.dataclass
class HalfOpen:
    """What `half_open_streams` saw: the server's stream limit per connection, how the other clients were answered
    while the streams were open, and how each stream ended (a gRPC status, "reset", or "open" at the end)."""

    max_concurrent_streams: int
    meanwhile: str
    ended: collections.Counter
    probed: Any = None  # what `probe` returned while the streams were open


class _RawHttp2:
    """One client connection speaking HTTP/2 frames directly (h2), for calls that never finish their message."""

    def __init__(self, target: Target):
        self.sock = socket.create_connection((target.host, target.grpc_port), timeout=10)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.flush()
        self.status: dict[int, str] = {}
        self.settings_received = False
        while not self.settings_received and self.receive(10):  # the server's SETTINGS (its stream limit)
            pass

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def receive(self, seconds: float) -> bool:
        """Reads and handles one batch of frames; False if nothing came within `seconds` or the server closed."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(1 << 16)
        except (TimeoutError, OSError):
            return False
        if not data:
            return False
        for event in self.h2.receive_data(data):
            stream = getattr(event, "stream_id", None)
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                code = dict(event.headers).get("grpc-status")
                if code is not None:
                    self.status[stream] = _STATUS_NAMES.get(int(code), f"status {code}")
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_received = True
            elif isinstance(event, h2.events.StreamReset):
                self.status.setdefault(stream, "reset")
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, stream)
        self.flush()
        return True

    def open_stream(self, declared_bytes: int = 0, sent_bytes: int = 0) -> int:
        """A Predict call: HEADERS, and (if `declared_bytes`) the start of a message of that size, `sent_bytes` of
        it, within the flow-control windows; never the end of the message."""
        stream = self.h2.get_next_available_stream_id()
        self.h2.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", PREDICT_METHOD),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        self.flush()
        if declared_bytes:
            data = memoryview(b"\0" + declared_bytes.to_bytes(4, "big") + b"\0" * sent_bytes)
            while data:
                window = min(self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size)
                if window <= 0:
                    if not self.receive(5):
                        break
                    continue
                self.h2.send_data(stream, data[:window].tobytes())
                data = data[window:]
                self.flush()
        return stream

    def close(self) -> None:
        self.sock.close()


def half_open_streams(
    target: Target,
    connections: int,
    streams: int,
    declared_bytes: int = 0,
    sent_bytes: int = 0,
    wait: float = 30.0,
    probe: Callable[[], Any] | None = None,
) -> HalfOpen:
    """Opens `streams` Predict calls (as many as the server allows) on each of `connections` connections, each
    with HEADERS and at most part of its message; checks that other clients are answered meanwhile (and calls
    `probe`); then waits up to `wait` seconds for the server to end every stream."""
    opened: list[tuple[_RawHttp2, list[int]]] = []
    try:
        for _ in range(connections):
            connection = _RawHttp2(target)
            allowed = min(streams, connection.h2.remote_settings.max_concurrent_streams)
            opened.append((connection, [connection.open_stream(declared_bytes, sent_bytes) for _ in range(allowed)]))
        meanwhile = good_calls_answered(target)
        probed = probe() if probe else None
        deadline = time.monotonic() + wait
        for connection, ids in opened:
            while any(stream not in connection.status for stream in ids) and time.monotonic() < deadline:
                if not connection.receive(max(0.1, deadline - time.monotonic())):
                    break
        ended = collections.Counter(
            connection.status.get(stream, "open") for connection, ids in opened for stream in ids
        )
        return HalfOpen(opened[0][0].h2.remote_settings.max_concurrent_streams, meanwhile, ended, probed)
    finally:
        for connection, _ in opened:
            connection.close()


def _half_open_case(connections: int, streams: int, declared_bytes: int = 0, sent_bytes: int = 0):
    """A case: the streams' endings (most common first), or "starved: ..." if other clients were not answered."""

    def send(target: Target) -> str:
        seen = half_open_streams(
            target, connections, streams, declared_bytes, sent_bytes, wait=target.timeout_seconds * 3 + 10
        )
        if seen.meanwhile != "OK":
            return f"starved: {seen.meanwhile}"
        return "+".join(sorted(seen.ended))

    return send


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a raw HTTP exchange got: "HTTP <code>", "closed" (closed without an answer), "no answer" (nothing in
    time) or "garbage ..."; with the answer's headers (lower-case names) and body."""

    status: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.headers.get("content-type") == "application/json" else None


def _read_answer(sock: socket.socket) -> Answer:
    received = b""
    while b"\r\n\r\n" not in received:
        try:
            chunk = sock.recv(65536)
        except OSError:  # a reset after the answer still counts the answer
            if received:
                break
            raise
        if not chunk:
            break
        received += chunk
    if not received:
        return Answer("closed")
    if not received.startswith(b"HTTP/"):
        return Answer(f"garbage {received[:20]!r}")
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {key.strip().lower(): value.strip() for key, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    try:
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return Answer(f"HTTP {lines[0].split(' ', 2)[1]}", headers, body)


def exchange(
    host: str, port: int, data: bytes, half_close: bool = True, pace: float = 0.0, wait: float = 20.0
) -> Answer:
    """Sends raw bytes to an HTTP port (one byte per `pace` seconds if given) and reads one answer."""
    with socket.create_connection((host, port), timeout=wait) as sock:
        try:
            if pace:
                for index in range(len(data)):
                    sock.sendall(data[index : index + 1])
                    time.sleep(pace)
            else:
                sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed first; read what it said
        try:
            return _read_answer(sock)
        except TimeoutError:
            return Answer("no answer")
        except OSError:
            return Answer("closed")


def rest_answer(
    target: Target, data: bytes, half_close: bool = True, pace: float = 0.0, wait: float | None = None
) -> str:
    """The status of `exchange` with the REST port (see there); waits the server's timeout and 10 s by default."""
    wait = target.timeout_seconds + 10.0 if wait is None else wait
    return exchange(target.host, target.rest_port, data, half_close, pace, wait).status


def http_post(path: str, body: bytes, headers: dict | None = None) -> bytes:
    """A raw POST request with a correct Content-Length unless `headers` replace it."""
    fields = {"Host": "localhost", "Content-Type": "application/json", "Content-Length": str(len(body))}
    fields.update(headers or {})
    lines = [f"POST {path} HTTP/1.1"] + [f"{key}: {value}" for key, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- requests -----------------------------------------------------------------------------------------------------


def valid_inputs(target: Target, rows: int = 1) -> dict[str, np.ndarray]:
    size = target.image_size
    mask = np.zeros([rows, size, size, 1], np.float32)
    mask[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    rng = np.random.default_rng(rows)
    return {
        "source": rng.integers(0, 256, [rows, size, size, 3], dtype=np.uint8),
        "exemplar": rng.integers(0, 256, [rows, size, size, 3], dtype=np.uint8),
        "mask": mask,
        "attributes": np.ones([rows, target.num_attributes], np.float32),
    }


def predict_request(inputs: dict, signature: str = "edit_filtered") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "ebgan", signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(
            value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        )
    return request


def declared(dtype: int, dims: list[int], **values) -> tensor_pb2.TensorProto:
    """A TensorProto with a declared shape and whatever values are given (possibly fewer than declared)."""
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def _with(target: Target, rows: int = 1, **changes) -> predict_pb2.PredictRequest:
    inputs = valid_inputs(target, rows)
    for key, change in changes.items():
        inputs[key] = change(inputs[key]) if callable(change) else change
    return predict_request(inputs)


def _poisoned(name: str, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def poison(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array.flat[array.size // 2] = value
        return array

    return poison


def rest_body(target: Target, rows: int = 1, **extra) -> bytes:
    columns = {key: value.tolist() for key, value in valid_inputs(target, rows).items()}
    return json.dumps({"signature_name": "edit_filtered", "inputs": columns, **extra}).encode()


# --- the cases ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str  # the class of the case, a row of the figure
    name: str
    send: Callable[[Any], Any]  # the target -> its answer (a status; web_probe: an Answer)
    expected: frozenset[str]
    words: str = ""  # must appear (case-insensitively) in the JSON error of an error answer (web_probe's cases)


def _grpc(kind: str, name: str, build: Callable[[Target], predict_pb2.PredictRequest], *expected: str) -> Case:
    return Case(kind, name, lambda target: grpc_answer(target, build(target)), frozenset(expected))


def _sent(kind: str, name: str, send: Callable[[Target], str], *expected: str) -> Case:
    """A case whose `send` gives its answer itself (raw bytes, HTTP/2 frames, a REST exchange)."""
    return Case(kind, name, send, frozenset(expected))


_rest = _sent


PREDICT = "/v1/models/ebgan:predict"
U8, F32 = types_pb2.DT_UINT8, types_pb2.DT_FLOAT


def _amplified(target: Target) -> predict_pb2.PredictRequest:
    size, rows = target.image_size, 4096
    return predict_request(
        {
            "source": declared(U8, [rows, size, size, 3], int_val=[0]),
            "exemplar": declared(U8, [rows, size, size, 3], int_val=[0]),
            "mask": declared(F32, [rows, size, size, 1], float_val=[1.0]),
            "attributes": declared(F32, [rows, target.num_attributes], float_val=[1.0]),
        }
    )


def _slow_headers(target: Target) -> str:
    return rest_answer(
        target,
        f"GET {target.status_path} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode() + b"a" * 200,
        half_close=False,
        pace=0.05,
        wait=target.timeout_seconds * 3 + 5,
    )


def _idle_keep_alive(target: Target) -> str:
    """One good request, then silence on the kept-alive connection: the server must close it."""
    with socket.create_connection((target.host, target.rest_port), timeout=target.timeout_seconds * 3 + 5) as sock:
        sock.sendall(f"GET {target.status_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return "closed" if received.startswith(b"HTTP/1.1 200") else "closed before answering"
                received += chunk
        except TimeoutError:
            return "no answer" if not received else "kept open"


def _too_many_connections(target: Target) -> str:
    """Holds every REST connection slot open with silent clients; one more connection gets the answer."""
    held = [socket.create_connection((target.host, target.rest_port)) for _ in range(target.max_connections)]
    try:
        time.sleep(0.3)
        return rest_answer(target, f"GET {target.status_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), wait=5.0)
    finally:
        for sock in held:
            sock.close()


def _named(target: Target, **spec) -> predict_pb2.PredictRequest:
    """A good request with model_spec fields (name, signature_name, version_label) replaced."""
    request = _with(target)
    for key, value in spec.items():
        setattr(request.model_spec, key, value)
    return request


def _extra_inputs(target: Target, count: int) -> predict_pb2.PredictRequest:
    request = _with(target)
    for index in range(count):
        request.inputs[f"unknown_input_{index}"].CopyFrom(tf.make_tensor_proto(np.zeros([1], np.float32)))
    return request


def _output_filters(target: Target, count: int) -> predict_pb2.PredictRequest:
    request = _with(target)
    request.output_filter.extend(f"unknown_output_{index}" for index in range(count))
    return request


def _invalid_utf8_name() -> bytes:
    """A PredictRequest whose model_spec.name holds bytes that are not UTF-8 (a protobuf string must be)."""
    spec = b"\x0a\x02\xff\xfe"  # ModelSpec.name (field 1): two bytes
    return b"\x0a" + bytes([len(spec)]) + spec  # PredictRequest.model_spec (field 1)


def every_answer(target: Target, data: bytes) -> str:
    """The statuses of every answer the server sends on one connection for `data` (then half-closed), joined by +:
    one answer per request sent, never one for a body."""
    with socket.create_connection((target.host, target.rest_port), timeout=target.timeout_seconds + 10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    statuses = [line.split(b" ")[1].decode() for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.")]
    return "+".join(f"HTTP {status}" for status in statuses) or "closed"


def _smuggled_get(target: Target) -> bytes:
    hidden = b"GET /v1/models/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    return f"GET {target.status_path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(hidden)}\r\n\r\n".encode() + hidden


def _headers(count: int) -> bytes:
    return (
        b"GET /v1/models/ebgan HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % index for index in range(count - 1))
        + b"\r\n"
    )


def big_legal_body(target: Target) -> bytes:
    """A well-formed predict body of as many rows as fit under --max_message_bytes (far over --max_batch_rows)."""
    rows = int(target.max_message_bytes * 0.9 / len(rest_body(target, 4)) * 4)
    return rest_body(target, rows)


CASES: tuple[Case, ...] = (
    _grpc("well-formed requests", "gRPC edit_filtered, 2 rows", lambda t: _with(t, 2), "OK"),
    _rest(
        "well-formed requests",
        "REST edit_filtered, 2 rows",
        lambda t: rest_answer(t, http_post(PREDICT, rest_body(t, 2))),
        "HTTP 200",
    ),
    _rest(
        "well-formed requests",
        "REST model status",
        lambda t: rest_answer(t, b"GET /v1/models/ebgan HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP 200",
    ),
    _grpc("declared sizes (gRPC)", "4096 rows declared, one value each", _amplified, "INVALID_ARGUMENT"),
    _grpc(
        "declared sizes (gRPC)",
        "dimension 2^40",
        lambda t: _with(t, source=declared(U8, [2**40, t.image_size, t.image_size, 3], int_val=[0])),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "declared sizes (gRPC)",
        "negative dimension",
        lambda t: _with(t, source=declared(U8, [-1, t.image_size, t.image_size, 3], int_val=[0])),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "declared sizes (gRPC)",
        "tensor_content of 5 bytes for float32",
        lambda t: _with(t, mask=declared(F32, [1, t.image_size, t.image_size, 1], tensor_content=b"12345")),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "declared sizes (gRPC)",
        "rows over --max_batch_rows, every value sent",
        lambda t: _with(t, t.max_batch_rows + 1),
        "RESOURCE_EXHAUSTED",
    ),
    _grpc(
        "value ranges (gRPC)",
        "uint8 int_val 300",
        lambda t: _with(
            t, source=declared(U8, [1, t.image_size, t.image_size, 3], int_val=[300] * (t.image_size**2 * 3))
        ),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "value ranges (gRPC)",
        "uint8 int_val -1",
        lambda t: _with(
            t, source=declared(U8, [1, t.image_size, t.image_size, 3], int_val=[-1] * (t.image_size**2 * 3))
        ),
        "INVALID_ARGUMENT",
    ),
    *(
        _grpc(
            "value ranges (gRPC)",
            f"{name} = {value}",
            lambda t, name=name, value=value: _with(t, **{name: _poisoned(name, value)}),
            "INVALID_ARGUMENT",
        )
        for name, value in (
            ("attributes", float("nan")),
            ("attributes", float("inf")),
            ("attributes", 1e30),
            ("attributes", -1.0),
            ("mask", float("nan")),
            ("mask", float("-inf")),
            ("mask", 2.0),
        )
    ),
    _grpc("value ranges (gRPC)", "unknown signature", lambda t: predict_request(valid_inputs(t), "nope"), "NOT_FOUND"),
    _grpc(
        "value fields (gRPC)",
        "float32 mask in int_val",
        lambda t: _with(t, mask=declared(F32, [1, t.image_size, t.image_size, 1], int_val=[1] * t.image_size**2)),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "value fields (gRPC)",
        "float32 mask in double_val",
        lambda t: _with(t, mask=declared(F32, [1, t.image_size, t.image_size, 1], double_val=[1.0] * t.image_size**2)),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "value fields (gRPC)",
        "uint8 source in int64_val",
        lambda t: _with(
            t, source=declared(U8, [1, t.image_size, t.image_size, 3], int64_val=[200] * (t.image_size**2 * 3))
        ),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "value fields (gRPC)",
        "uint8 source in float_val",
        lambda t: _with(
            t, source=declared(U8, [1, t.image_size, t.image_size, 3], float_val=[200.0] * (t.image_size**2 * 3))
        ),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "value fields (gRPC)",
        "float32 attributes in int_val",
        lambda t: _with(t, attributes=declared(F32, [1, t.num_attributes], int_val=[1] * t.num_attributes)),
        "INVALID_ARGUMENT",
    ),
    _grpc(
        "value fields (gRPC)",
        "float32 attributes in bool_val",
        lambda t: _with(t, attributes=declared(F32, [1, t.num_attributes], bool_val=[True] * t.num_attributes)),
        "INVALID_ARGUMENT",
    ),
    _grpc("names (gRPC)", "model name of 1 MB", lambda t: _named(t, name="m" * 2**20), "INVALID_ARGUMENT"),
    _grpc("names (gRPC)", "model name of 300 characters", lambda t: _named(t, name="m" * 300), "INVALID_ARGUMENT"),
    _grpc(
        "names (gRPC)", "signature name of 1 MB", lambda t: _named(t, signature_name="s" * 2**20), "INVALID_ARGUMENT"
    ),
    _grpc("names (gRPC)", "version label of 1 MB", lambda t: _named(t, version_label="l" * 2**20), "INVALID_ARGUMENT"),
    _grpc("names (gRPC)", "20000 unknown input names", lambda t: _extra_inputs(t, 20000), "INVALID_ARGUMENT"),
    _grpc("names (gRPC)", "100000 output filters", lambda t: _output_filters(t, 100000), "INVALID_ARGUMENT"),
    _grpc(
        "names (gRPC)",
        "an input name of 16 KB",
        lambda t: _with(t, **{"x" * 16384: np.zeros([1], np.float32)}),
        "INVALID_ARGUMENT",
    ),
    _sent(
        "malformed messages (gRPC)",
        "PredictRequest cut 7 bytes short",
        lambda t: raw_grpc_answer(t, _with(t).SerializeToString()[:-7]),
        "INVALID_ARGUMENT",
    ),
    _sent(
        "malformed messages (gRPC)",
        "model name not UTF-8",
        lambda t: raw_grpc_answer(t, _invalid_utf8_name()),
        "INVALID_ARGUMENT",
    ),
    _sent(
        "malformed messages (gRPC)",
        "GetModelStatusRequest of random bytes",
        lambda t: raw_grpc_answer(t, b"\xff" * 20, "/tensorflow.serving.ModelService/GetModelStatus"),
        "INVALID_ARGUMENT",
    ),
    _sent(
        "half-open gRPC streams",
        "32 Predict streams, HEADERS only, one connection",
        _half_open_case(1, 32),
        "DEADLINE_EXCEEDED",
    ),
    _sent(
        "half-open gRPC streams",
        "3 connections of 32 streams, HEADERS only",
        _half_open_case(3, 32),
        "DEADLINE_EXCEEDED+RESOURCE_EXHAUSTED",
    ),
    _sent(
        "half-open gRPC streams",
        "4 streams, each 3 MiB of a 7 MiB message",
        _half_open_case(1, 4, 7 * 2**20, 3 * 2**20),
        "DEADLINE_EXCEEDED",
    ),
    _rest(
        "REST framing",
        "Content-Length: -1, half-close",
        lambda t: rest_answer(t, http_post(PREDICT, rest_body(t), {"Content-Length": "-1"})),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "two conflicting Content-Length",
        lambda t: rest_answer(
            t, http_post(PREDICT, rest_body(t)).replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n", 1)
        ),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "Content-Length: abc",
        lambda t: rest_answer(t, http_post(PREDICT, b"{}", {"Content-Length": "abc"})),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "no Content-Length",
        lambda t: rest_answer(t, http_post(PREDICT, b"{}", {"Content-Length": None})),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "chunked body",
        lambda t: rest_answer(
            t, http_post(PREDICT, b"2\r\n{}\r\n0\r\n\r\n", {"Content-Length": None, "Transfer-Encoding": "chunked"})
        ),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "Content-Length over --max_message_bytes",
        lambda t: rest_answer(
            t, http_post(PREDICT, b"{}", {"Content-Length": str(t.max_message_bytes + 1)}), half_close=False
        ),
        "HTTP 413",
    ),
    _rest(
        "REST framing",
        "body shorter than Content-Length, half-close",
        lambda t: rest_answer(t, http_post(PREDICT, b"{}", {"Content-Length": "100"})),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "GET with a request as its body (Content-Length)",
        lambda t: every_answer(t, _smuggled_get(t)),
        "HTTP 200",
    ),
    _rest(
        "REST framing",
        "'Transfer-Encoding : chunked' (space before the colon)",
        lambda t: rest_answer(
            t, http_post(PREDICT, b"2\r\n{}\r\n0\r\n\r\n", {"Content-Length": None, "Transfer-Encoding ": "chunked"})
        ),
        "HTTP 400",
    ),
    _rest(
        "REST framing",
        "a header line without a colon",
        lambda t: rest_answer(t, b"GET /v1/models/ebgan HTTP/1.1\r\nHost: x\r\nno colon here\r\nX-After: 1\r\n\r\n"),
        "HTTP 400",
    ),
    _rest(
        "REST body",
        "JSON nested 50000 deep",
        lambda t: rest_answer(t, http_post(PREDICT, b"[" * 50000 + b"]" * 50000)),
        "HTTP 400",
    ),
    _rest(
        "REST body",
        "signature_name is a list",
        lambda t: rest_answer(t, http_post(PREDICT, rest_body(t, signature_name=["edit"]))),
        "HTTP 400",
    ),
    _rest("REST body", "not JSON", lambda t: rest_answer(t, http_post(PREDICT, b"{nope")), "HTTP 400"),
    _rest(
        "REST body",
        "NaN attribute",
        lambda t: rest_answer(
            t, http_post(PREDICT, rest_body(t).replace(b'"attributes": [[1.0', b'"attributes": [[NaN'))
        ),
        "HTTP 400",
    ),
    _rest(
        "REST body",
        "rows over --max_batch_rows",
        lambda t: rest_answer(t, http_post(PREDICT, rest_body(t, t.max_batch_rows + 1))),
        "HTTP 413",
    ),
    _rest(
        "REST body",
        "legal body of as many rows as --max_message_bytes allows",
        lambda t: rest_answer(t, http_post(PREDICT, big_legal_body(t))),
        "HTTP 413",
    ),
    *(
        _rest(
            "REST body",
            f"signature_name {text}",
            lambda t, text=text: rest_answer(
                t,
                http_post(
                    PREDICT,
                    rest_body(t).replace(b'"signature_name": "edit_filtered"', b'"signature_name": ' + text.encode()),
                ),
            ),
            "HTTP 400",
        )
        for text in ("false", "0", "[]", "{}", "null")
    ),
    _rest(
        "REST body",
        "model name of 300 characters",
        lambda t: rest_answer(t, http_post("/v1/models/" + "m" * 300 + ":predict", rest_body(t))),
        "HTTP 400",
    ),
    _rest(
        "REST protocol",
        "HTTP/0.9 'GET /v1/models/ebgan'",
        lambda t: rest_answer(t, b"GET /v1/models/ebgan\r\n", half_close=False),
        "HTTP 400",
    ),
    _rest(
        "REST protocol",
        "DELETE method",
        lambda t: rest_answer(t, b"DELETE /v1/models/ebgan HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP 405",
    ),
    _rest(
        "REST protocol",
        "request line of 70000 bytes",
        lambda t: rest_answer(t, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"),
        "HTTP 414",
    ),
    _rest("REST protocol", "100 headers", lambda t: rest_answer(t, _headers(100)), "HTTP 200"),
    _rest("REST protocol", "101 headers", lambda t: rest_answer(t, _headers(101)), "HTTP 431"),
    _rest("slow and silent clients (REST)", "headers at one byte per 50 ms", _slow_headers, "HTTP 408"),
    _rest(
        "slow and silent clients (REST)",
        "silent connection",
        lambda t: rest_answer(t, b"", half_close=False),
        "HTTP 408",
    ),
    _rest(
        "slow and silent clients (REST)",
        "short body, connection kept open",
        lambda t: rest_answer(t, http_post(PREDICT, b"{}", {"Content-Length": "100"}), half_close=False),
        "HTTP 408",
    ),
    _rest("slow and silent clients (REST)", "idle keep-alive after a request", _idle_keep_alive, "closed"),
    _rest("slow and silent clients (REST)", "one connection over --max_connections", _too_many_connections, "HTTP 503"),
)


# --- fuzzing strategies -------------------------------------------------------------------------------------------

_DTYPES = [
    types_pb2.DT_UINT8,
    types_pb2.DT_FLOAT,
    types_pb2.DT_INT32,
    types_pb2.DT_INT64,
    types_pb2.DT_STRING,
    types_pb2.DT_HALF,
    types_pb2.DT_BOOL,
    types_pb2.DT_DOUBLE,
    types_pb2.DT_INT8,
    types_pb2.DT_INT16,
    types_pb2.DT_UINT16,
    types_pb2.DT_UINT32,
    types_pb2.DT_UINT64,
    types_pb2.DT_BFLOAT16,
    types_pb2.DT_COMPLEX64,
    types_pb2.DT_COMPLEX128,
    types_pb2.DT_INVALID,
    999,
]
_INPUT_NAMES = ["source", "exemplar", "mask", "attributes", "other"]
# Every value field of a TensorProto, with a strategy for one of its entries (tensor_content: raw bytes).
_FIELD_ENTRIES = {
    "tensor_content": st.binary(min_size=1, max_size=8),
    "half_val": st.integers(-(2**31), 2**31 - 1),
    "float_val": st.floats(width=32),
    "double_val": st.floats(),
    "int_val": st.integers(-(2**31), 2**31 - 1),
    "string_val": st.binary(max_size=16),
    "scomplex_val": st.floats(width=32),
    "int64_val": st.integers(-(2**63), 2**63 - 1),
    "bool_val": st.booleans(),
    "dcomplex_val": st.floats(),
    "uint32_val": st.integers(0, 2**32 - 1),
    "uint64_val": st.integers(0, 2**64 - 1),
}


@st.composite
def tensor_protos(draw, shapes: tuple[list[int], ...] = ()) -> tensor_pb2.TensorProto:
    """Any TensorProto a careless or hostile client could send: a dtype, a shape (at random or one of `shapes`)
    and values in any value fields (none, one or two of them), as many as the shape declares or not."""
    dims = draw(
        st.lists(st.integers(-5, 40) | st.sampled_from([2**31, 2**40, 2**62]), max_size=5)
        | st.sampled_from(shapes or ([1],))
    )
    declared_count = int(np.prod(dims)) if all(0 <= size <= 4096 for size in dims) else -1
    content: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(sorted(_FIELD_ENTRIES)), max_size=2, unique=True)):
        entry = _FIELD_ENTRIES[field]
        if 0 <= declared_count <= 4096 and draw(st.booleans()):  # exactly as many values as declared
            count = declared_count * (2 if field.endswith("complex_val") else 1)
            values = [draw(entry)] * count
        else:
            values = draw(st.lists(entry, max_size=64))
        content[field] = b"".join(values) if field == "tensor_content" else values
    proto = declared(draw(st.sampled_from(_DTYPES)), dims, **content)
    proto.tensor_shape.unknown_rank = not dims and draw(st.booleans())
    return proto


@st.composite
def fuzzed_requests(draw, target: Target) -> predict_pb2.PredictRequest:
    """A valid edit_filtered request with some inputs replaced, dropped or added at random."""
    request = predict_request(
        valid_inputs(target, draw(st.integers(1, 3))), draw(st.sampled_from(["edit_filtered", "edit", "metadata", ""]))
    )
    for name in draw(st.lists(st.sampled_from(_INPUT_NAMES), max_size=3, unique=True)):
        if draw(st.booleans()) and name in request.inputs:
            del request.inputs[name]
        else:
            size = target.image_size
            request.inputs[name].CopyFrom(
                draw(tensor_protos(([1, size, size, 3], [1, size, size, 1], [1, target.num_attributes])))
            )
    return request


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@st.composite
def fuzzed_bodies(draw, target: Target) -> bytes:
    """A REST predict body: random JSON, or a valid body with fields replaced by random JSON."""
    if draw(st.booleans()):
        return json.dumps(draw(JSON_VALUES)).encode()
    body = json.loads(rest_body(target, draw(st.integers(1, 2))))
    for key in draw(
        st.lists(
            st.sampled_from(["signature_name", "inputs", "instances", "source", "mask", "attributes"]),
            max_size=3,
            unique=True,
        )
    ):
        where = body["inputs"] if key in ("source", "mask", "attributes") else body
        if isinstance(where, dict):
            where[key] = draw(JSON_VALUES)
    return json.dumps(body).encode()


def fuzz(target: Target, examples: int, record: Callable[[str, str], None]) -> None:
    """Sends `examples` fuzzed gRPC requests and REST bodies; `record(kind, answer)` gets every answer."""
    quiet = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @quiet
    @given(fuzzed_requests(target))
    def grpc_cases(request):
        record("fuzzed gRPC requests (hypothesis)", grpc_answer(target, request))

    @quiet
    @given(fuzzed_bodies(target))
    def rest_cases(body):
        record("fuzzed REST JSON bodies (hypothesis)", rest_answer(target, http_post(PREDICT, body)))

    grpc_cases()
    rest_cases()


# --- the figure -------------------------------------------------------------------------------------------------


def main() -> int:
    """Serves an untrained tiny Att-EBGAN (batching off, then on), tries every case and 200 fuzzed requests of
    each kind on each, and prints a markdown table: class, cases tried, how they were answered."""
    from ebgan_tf.serving import server, server_config
    from tests.helpers.served_models import export_untrained_att_ebgan
    from tests.helpers.tiny import IMAGE_SIZE

    answers: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with tempfile.TemporaryDirectory() as base:
        path = export_untrained_att_ebgan(base)
        with open(f"{path}/assets/attributes.txt") as handle:
            num_attributes = len(handle.read().split())
        request_limits = LIMITS
        for batching in (None, server_config.BatchingOptions(max_batch_size=8, batch_timeout_micros=2000)):
            options = server_config.ServerOptions(
                models=(server_config.ModelSource("ebgan", f"{base}/ebgan"),),
                port=0,
                rest_api_port=0,
                batching=batching,
                file_system_poll_wait_seconds=0,
                limits=request_limits,
            )
            running = server.ModelServer(options).start()
            try:
                target = Target(
                    running.port,
                    running.rest_port,
                    IMAGE_SIZE,
                    num_attributes,
                    request_limits.max_batch_rows,
                    request_limits.max_message_bytes,
                    1.0,
                    request_limits.max_connections,
                )
                for case in CASES:
                    answers[case.kind][case.send(target)] += 1
                fuzz(target, 200, lambda kind, answer: answers[kind].update([answer]))
            finally:
                running.stop()
    print_table(answers)
    return 0


def print_table(answers: dict[str, collections.Counter]) -> None:
    """The markdown table of docs/hardening.md: class of request, how many were tried, how they were answered."""
    print("| class of request | tried | answers |")
    print("|---|---|---|")
    for kind, counter in answers.items():
        text = ", ".join(f"{answer} x{count}" for answer, count in counter.most_common())
        print(f"| {kind} | {sum(counter.values())} | {text} |")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024


def health_timer(port: int) -> int:
    """Times health checks of the server at `port`, one every 50 ms, until its standard input closes; prints the
    slowest in seconds. Run as its own process (`... health PORT`), so that the probe's work does not slow it."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    slowest = 0.0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=120)
        print("ready", flush=True)
        while not stop.is_set():
            started = time.monotonic()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=120)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
    print(slowest, flush=True)
    return 0


def _while_timing_health(target: Target, work: Callable[[], Any]) -> tuple[Any, float, float]:
    """(what `work` returns, the slowest health check meanwhile in seconds, the seconds `work` took); the health
    checks are made by another process."""
    import subprocess

    timer = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.hostile_probe", "health", str(target.grpc_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert timer.stdout.readline().strip() == "ready"
    started = time.monotonic()
    try:
        result = work()
    finally:
        took = time.monotonic() - started
        slowest, _ = timer.communicate("", timeout=180)
    return result, float(slowest), took


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bodies_at_once(target: Target, body: bytes, count: int) -> list[tuple[str, float]]:
    """Sends `body` on `count` connections at once: (status, seconds to the answer) of each."""
    done: list[tuple[str, float]] = []
    started = time.monotonic()

    def one() -> None:
        done.append((exchange(target.host, target.rest_port, body, wait=120).status, time.monotonic() - started))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done


def figures() -> int:
    """Runs `ebgan-serve` with its default limits (docs/hardening.md) on an untrained tiny Att-EBGAN and measures
    what the heaviest attacks of docs/hardening.md cost it: four ~60 MB REST bodies of ~1500 rows at once, 32
    half-open streams on one connection, 8 streams each with half of a 60 MiB message. One line per measurement;
    RSS is the server process's."""
    import subprocess

    from tests.helpers.served_models import export_untrained_att_ebgan
    from tests.helpers.tiny import IMAGE_SIZE

    limits = RequestLimits()
    with tempfile.TemporaryDirectory() as base:
        path = export_untrained_att_ebgan(base)
        with open(f"{path}/assets/attributes.txt") as handle:
            num_attributes = len(handle.read().split())
        port, rest_port = _free_port(), _free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ebgan_tf.serving.main",
                f"--model_base_path={base}/ebgan",
                f"--port={port}",
                f"--rest_api_port={rest_port}",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            for line in iter(process.stdout.readline, b""):
                if line.startswith(b"ebgan-serve: serving"):
                    break
            target = Target(
                port,
                rest_port,
                IMAGE_SIZE,
                num_attributes,
                limits.max_batch_rows,
                limits.max_message_bytes,
                limits.body_timeout_seconds,
                limits.max_connections,
            )
            _, slowest, _ = _while_timing_health(target, lambda: time.sleep(2))
            print(f"health checks of an idle server: slowest {slowest * 1000:.0f} ms")
            row = len(rest_body(target, 4)) / 4
            body = http_post(PREDICT, rest_body(target, int(60e6 / row)))
            rss = _rss_mb(process.pid)
            answers, slowest, _ = _while_timing_health(target, lambda: _bodies_at_once(target, body, 4))
            print(
                f"four REST bodies of {len(body) / 1e6:.0f} MB ({int(60e6 / row)} rows) at once: "
                f"{', '.join(f'{status} after {seconds:.1f} s' for status, seconds in answers)}; slowest health "
                f"check meanwhile {slowest * 1000:.0f} ms; server RSS {rss:.0f} -> {_rss_mb(process.pid):.0f} MB"
            )
            seen, slowest, took = _while_timing_health(target, lambda: half_open_streams(target, 1, 32, wait=120))
            print(
                f"32 half-open Predict streams on one connection (the server allows "
                f"{seen.max_concurrent_streams}): other clients {seen.meanwhile}, ended {dict(seen.ended)} after "
                f"{took:.1f} s; slowest health check meanwhile {slowest * 1000:.0f} ms"
            )
            rss = _rss_mb(process.pid)
            seen, slowest, took = _while_timing_health(
                target,
                lambda: half_open_streams(
                    target, 1, 8, 60 * 2**20, 30 * 2**20, wait=120, probe=lambda: _rss_mb(process.pid)
                ),
            )
            time.sleep(2)
            print(
                f"8 streams, each 30 MiB of a 60 MiB message: other clients {seen.meanwhile}, ended "
                f"{dict(seen.ended)} after {took:.1f} s; slowest health check meanwhile {slowest * 1000:.0f} ms; "
                f"server RSS {rss:.0f} -> {seen.probed:.0f} MB while open -> {_rss_mb(process.pid):.0f} MB after"
            )
        finally:
            process.terminate()
            process.wait(60)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["health"]:
        sys.exit(health_timer(int(sys.argv[2])))
    sys.exit(figures() if sys.argv[1:] == ["figures"] else main())
