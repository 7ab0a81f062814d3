"""The model server: the model manager, the batcher and the gRPC and REST front ends, started and stopped
together."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from ebgan_tf.serving.batching import Batcher
from ebgan_tf.serving.core import ServingCore
from ebgan_tf.serving.grpc_service import ModelServicer, PredictionServicer
from ebgan_tf.serving.model_manager import ModelManager
from ebgan_tf.serving.rest import RestServer
from ebgan_tf.serving.server_config import ServerOptions


class ModelServer:
    """The gRPC (and optional REST) server; `start()` returns once models on disk are loaded and ports are bound."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.manager = ModelManager(options.models, options.file_system_poll_wait_seconds,
                                    options.load_retry_interval_seconds, options.max_num_load_retries)
        self.batcher: Batcher | None = None
        self.health = health.HealthServicer()
        self.port: int | None = None
        self.rest_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._rest: RestServer | None = None
        self._core: ServingCore | None = None

    def start(self) -> "ModelServer":
        options = self.options
        self.manager.start()
        self.batcher = Batcher(options.batching) if options.batching else None
        core = self._core = ServingCore(self.manager, self.batcher, options.limits)
        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
            options=[("grpc.max_receive_message_length", options.limits.max_message_bytes),
                     ("grpc.max_send_message_length", options.limits.max_message_bytes)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(core), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), self._grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        address = f"[{options.host}]:{options.port}" if ":" in options.host else f"{options.host}:{options.port}"
        try:
            self.port = self._grpc.add_insecure_port(address)
        except RuntimeError as error:
            self.stop()
            raise OSError(f"cannot listen on {address}: {error}") from None
        self._grpc.start()
        if options.rest_api_port is not None:
            self._rest = RestServer((options.host, options.rest_api_port), core)
            self.rest_port = self._rest.server_address[1]
            threading.Thread(target=self._rest.serve_forever, name="rest", daemon=True).start()
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self

    def stop(self, grace_seconds: float | None = None) -> bool:
        """Stops serving within `grace_seconds` (default: the options' shutdown grace): health NOT_SERVING, ports
        closed, no new requests; requests in flight may finish until the grace period ends, then gRPC calls are
        cancelled, REST requests answered 503 and queued batches failed UNAVAILABLE.

        Returns True if no computation is left running (else the caller should exit the process: a TensorFlow
        computation cannot be interrupted)."""
        grace = self.options.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        self.health.enter_graceful_shutdown()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
            self._rest.close_idle()
        grpc_stopped = self._grpc.stop(grace) if self._grpc is not None else None
        while self._rest is not None and self._rest.busy_handlers() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._rest is not None:
            self._rest.abandon_busy()
        if grpc_stopped is not None:
            grpc_stopped.wait(max(0.0, deadline - time.monotonic()) + 1.0)
        if self.batcher is not None:
            self.batcher.stop(max(0.0, deadline - time.monotonic()))
        self.manager.stop()
        return self._core is None or self._core.in_flight == 0
