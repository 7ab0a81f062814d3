"""The gRPC front end: tensorflow.serving.PredictionService (Predict, GetModelMetadata), ModelService
(GetModelStatus) and grpc.health.v1.Health (Check), on grpcio's asyncio server.

Every method is registered to read its request message itself, so that a call
- holds no thread while its message arrives, and must deliver it within `grpc_message_timeout_seconds` (else it
  is ended DEADLINE_EXCEEDED and its stream reset, freeing what part of the message had arrived);
- counts among at most `grpc_max_pending_messages` calls waiting for their message (one more ends the one that
  has waited longest, RESOURCE_EXHAUSTED), on at most `grpc_max_concurrent_streams` streams per connection;
- gets INVALID_ARGUMENT for a message that does not parse (truncated, invalid UTF-8 in a name).
Requests are then parsed and computed on `grpc_max_threads` threads; health checks are answered on the event
loop, never behind a computation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import tensorflow as tf
from absl import logging
from google.protobuf import message as protobuf_message
from grpc_health.v1 import health_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from ebgan_tf.serving.core import ServingCore, status_response
from ebgan_tf.serving.errors import ServingError, invalid
from ebgan_tf.serving.limits import RequestLimits, check_request_names, short_message
from ebgan_tf.serving.request_limits import flag
from ebgan_tf.serving.servable import DEFAULT_SIGNATURE, dtype_name, tensor_protos_to_arrays

HEALTH_SERVICES = ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
SHUTDOWN_MESSAGE = "The server shut down before this request finished; retry elsewhere."


def _spec_version(model_spec) -> tuple[int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    if choice == "version":
        return model_spec.version.value, None
    return None, (model_spec.version_label if choice == "version_label" else None)


def _check_spec_names(model_spec, inputs: Any = (), outputs: Any = ()) -> None:
    check_request_names(model_spec.name, model_spec.signature_name, model_spec.version_label, inputs, outputs)


def predict(core: ServingCore, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """PredictionService/Predict."""
    _check_spec_names(request.model_spec, request.inputs, request.output_filter)
    version, label = _spec_version(request.model_spec)
    servable = core.manager.resolve(request.model_spec.name, version, label)
    signature = servable.signature(request.model_spec.signature_name)
    for key, proto in request.inputs.items():  # check dtypes before decoding the tensors
        if key in signature.inputs and proto.dtype != signature.inputs[key].dtype:
            raise invalid(
                f"Input {key!r} has dtype {dtype_name(proto.dtype)} but signature "
                f"{request.model_spec.signature_name or DEFAULT_SIGNATURE!r} expects "
                f"{dtype_name(signature.inputs[key].dtype)}."
            )
    outputs = core.predict(
        servable,
        request.model_spec.signature_name,
        tensor_protos_to_arrays(request.inputs),
        list(request.output_filter),
    )
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return response


def model_metadata(
    core: ServingCore, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """PredictionService/GetModelMetadata (signature_def)."""
    _check_spec_names(request.model_spec)
    fields = list(request.metadata_field)
    if not fields:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field.")
    unsupported = [field for field in fields if field != "signature_def"]
    if unsupported:
        raise invalid(f"Metadata field(s) {unsupported[:8]} not supported; supported: ['signature_def'].")
    servable = core.manager.resolve(request.model_spec.name, *_spec_version(request.model_spec))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signatures.signature_def[key].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signatures)
    return response


def model_status(
    core: ServingCore, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """ModelService/GetModelStatus."""
    _check_spec_names(request.model_spec)
    return status_response(core.manager, request.model_spec.name, *_spec_version(request.model_spec))


@dataclasses.dataclass(frozen=True)
class _Method:
    """One unary method: its request message class and what answers a parsed request."""

    request: type[protobuf_message.Message]
    answer: Callable[[Any], protobuf_message.Message]
    on_loop: bool = False  # answered on the event loop (cheap, never waits for a computation)


def _parse(method: _Method, data: bytes) -> Any:
    """A request message from its bytes; INVALID_ARGUMENT if they do not parse."""
    try:
        return method.request.FromString(data)
    except protobuf_message.DecodeError as error:
        raise invalid(f"The request is not a valid {method.request.DESCRIPTOR.full_name} ({error}).") from None


def _answer(method: _Method, data: bytes) -> bytes:
    return method.answer(_parse(method, data)).SerializeToString()


async def _read_one(context: grpc.aio.ServicerContext) -> bytes:
    """The one request message of a unary call (which must then end)."""
    message = await context.read()
    if message is grpc.aio.EOF:
        raise invalid("The call ended without a request message.")
    if await context.read() is not grpc.aio.EOF:
        raise invalid("The call sent more than one request message; this method takes one.")
    return message


class GrpcFront:
    """The gRPC server on its own event-loop thread; `start` binds the port, `stop` ends it (see `stop`)."""

    def __init__(self, core: ServingCore, limits: RequestLimits, max_threads: int):
        self._core, self._limits = core, limits
        self._workers = concurrent.futures.ThreadPoolExecutor(max_threads, thread_name_prefix="grpc")
        self._health = {service: health_pb2.HealthCheckResponse.SERVING for service in HEALTH_SERVICES}
        self._pending: dict[asyncio.Future, None] = {}  # reads of calls waiting for their message, oldest first
        self._running: set[asyncio.Task] = set()  # calls past their read
        self._closing = False
        self._expired: asyncio.Event | None = None
        self._server: grpc.aio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()

    def _methods(self) -> dict[str, dict[str, _Method]]:
        core = self._core
        return {
            "tensorflow.serving.PredictionService": {
                "Predict": _Method(predict_pb2.PredictRequest, lambda request: predict(core, request)),
                "GetModelMetadata": _Method(
                    get_model_metadata_pb2.GetModelMetadataRequest, lambda request: model_metadata(core, request)
                ),
            },
            "tensorflow.serving.ModelService": {
                "GetModelStatus": _Method(
                    get_model_status_pb2.GetModelStatusRequest, lambda request: model_status(core, request)
                )
            },
            "grpc.health.v1.Health": {"Check": _Method(health_pb2.HealthCheckRequest, self._check, True)},
        }

    def start(self, address: str) -> int:
        """Binds `address` (host:port) and starts serving; returns the port."""
        return asyncio.run_coroutine_threadsafe(self._start(address), self._loop).result()

    async def _start(self, address: str) -> int:
        limits = self._limits
        self._expired = asyncio.Event()
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                ("grpc.max_concurrent_streams", limits.grpc_max_concurrent_streams),
            ]
        )
        for service, methods in self._methods().items():
            handlers = {
                name: grpc.stream_unary_rpc_method_handler(self._handler(method)) for name, method in methods.items()
            }
            self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        try:
            port = self._server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot listen on {address}: {error}") from None
        await self._server.start()
        return port

    def _check(self, request: health_pb2.HealthCheckRequest) -> health_pb2.HealthCheckResponse:
        if request.service not in self._health:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Unknown service {request.service[:200]!r}.")
        return health_pb2.HealthCheckResponse(status=self._health[request.service])

    def _handler(self, method: _Method):
        # grpc is untyped here: mypy cannot see that context.abort always raises.
        async def handle(_, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[return]
            try:
                if self._closing:
                    raise ServingError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down.")
                data = await self._receive(context)
                if method.on_loop:
                    return _answer(method, data)
                return await self._compute(method, data)
            except ServingError as error:
                await context.abort(error.code, short_message(error.message))
            except Exception as error:  # pylint: disable=broad-except  (the server keeps running)
                logging.exception("Request failed")
                await context.abort(grpc.StatusCode.INTERNAL, short_message(f"{type(error).__name__}: {error}"))

        return handle

    async def _receive(self, context: grpc.aio.ServicerContext) -> bytes:
        """The call's message within the deadline; over `grpc_max_pending_messages` waiting calls, the one that has
        waited longest is ended (RESOURCE_EXHAUSTED)."""
        limits = self._limits
        read = asyncio.ensure_future(_read_one(context))
        self._pending[read] = None
        if len(self._pending) > limits.grpc_max_pending_messages:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            oldest.cancel()
        try:
            done, _ = await asyncio.wait({read}, timeout=limits.grpc_message_timeout_seconds)
        finally:
            self._pending.pop(read, None)
            if not read.done():
                read.cancel()
        if not done:
            raise ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"The request message did not arrive within {limits.grpc_message_timeout_seconds:g} "
                f"s ({flag('grpc_message_timeout_seconds')}).",
            )
        if read.cancelled():
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"More than {limits.grpc_max_pending_messages} calls were waiting for their request "
                f"message ({flag('grpc_max_pending_messages')}) and this one had waited longest.",
            )
        return read.result()

    async def _compute(self, method: _Method, data: bytes) -> bytes:
        """Parses and answers a request on a worker thread; UNAVAILABLE if the shutdown's grace period ends first."""
        assert self._expired is not None, "set by _start"
        work = asyncio.wrap_future(self._workers.submit(_answer, method, data))
        expired = asyncio.ensure_future(self._expired.wait())
        task = asyncio.current_task()
        assert task is not None  # called from a coroutine
        self._running.add(task)
        futures: set[asyncio.Future[Any]] = {work, expired}
        try:
            await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._running.discard(task)
            expired.cancel()
            if not work.done():  # grace period over or call cancelled: a queued request is dropped (a running
                work.cancel()  # computation cannot be interrupted, and its answer is not waited for)
        if work.cancelled():
            raise ServingError(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_MESSAGE)
        return work.result()

    def stop(self, grace_seconds: float) -> None:
        """Health NOT_SERVING, no new calls; calls in flight may finish for `grace_seconds`, then each still running
        is ended UNAVAILABLE (its computation is not waited for), and the server and its loop stop."""
        future = asyncio.run_coroutine_threadsafe(self._stop(grace_seconds), self._loop)
        future.result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def _stop(self, grace_seconds: float) -> None:
        self._closing = True
        self._health = {service: health_pb2.HealthCheckResponse.NOT_SERVING for service in self._health}
        if self._server is None:
            return
        assert self._expired is not None, "set by _start with the server"
        stopped = asyncio.ensure_future(self._server.stop(grace_seconds + 1.0))
        deadline = time.monotonic() + grace_seconds
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self._expired.set()
        await stopped
