"""The model server: the model manager, the batcher and the gRPC and REST front ends, started and stopped
together."""

from __future__ import annotations

import threading
import time

from ebgan_tf.serving.batching import Batcher
from ebgan_tf.serving.core import ServingCore
from ebgan_tf.serving.grpc_service import GrpcFront
from ebgan_tf.serving.model_manager import ModelManager
from ebgan_tf.serving.rest import RestServer
from ebgan_tf.serving.server_config import ServerOptions


class ModelServer:
    """The gRPC (and optional REST) server; `start()` returns once models on disk are loaded and ports are bound."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.manager = ModelManager(
            options.models,
            options.file_system_poll_wait_seconds,
            options.load_retry_interval_seconds,
            options.max_num_load_retries,
        )
        self.batcher: Batcher | None = None
        self.port: int | None = None
        self.rest_port: int | None = None
        self._grpc: GrpcFront | None = None
        self._rest: RestServer | None = None
        self._core: ServingCore | None = None

    def start(self) -> ModelServer:
        options = self.options
        self.manager.start()
        self.batcher = Batcher(options.batching) if options.batching else None
        core = self._core = ServingCore(self.manager, self.batcher, options.limits)
        self._grpc = GrpcFront(core, options.limits, options.grpc_max_threads)
        address = f"[{options.host}]:{options.port}" if ":" in options.host else f"{options.host}:{options.port}"
        try:
            self.port = self._grpc.start(address)
        except OSError:
            self.stop(0.0)
            raise
        if options.rest_api_port is not None:
            self._rest = RestServer((options.host, options.rest_api_port), core)
            self.rest_port = self._rest.server_address[1]
            threading.Thread(target=self._rest.serve_forever, name="rest", daemon=True).start()
        return self

    def stop(self, grace_seconds: float | None = None) -> bool:
        """Stops serving within `grace_seconds` (default: the options' shutdown grace): health NOT_SERVING, ports
        closed, no new requests; requests in flight may finish until the grace period ends, then gRPC calls are
        ended UNAVAILABLE, REST requests answered 503 and queued batches failed UNAVAILABLE.

        Returns True if no computation is left running (else the caller should exit the process: a TensorFlow
        computation cannot be interrupted)."""
        grace = self.options.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        grpc_stopping = None
        if self._grpc is not None:  # health NOT_SERVING at once, calls in flight ended after the grace period
            grpc_stopping = threading.Thread(target=self._grpc.stop, args=(grace,), name="grpc-stop")
            grpc_stopping.start()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.refuse_waiting()
            self._rest.server_close()
            self._rest.close_idle()
        while self._rest is not None and self._rest.busy_handlers() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._rest is not None:
            self._rest.abandon_busy()
        if grpc_stopping is not None:
            grpc_stopping.join(max(0.0, deadline - time.monotonic()) + 5.0)
        if self.batcher is not None:
            self.batcher.stop(max(0.0, deadline - time.monotonic()))
        self.manager.stop()
        return self._core is None or self._core.in_flight == 0
