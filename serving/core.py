"""What the gRPC and REST front ends share: resolve the servable, check and run a request, report model status."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging
from tensorflow_serving.apis import get_model_status_pb2

from ebgan_tf.serving.batching import Batcher
from ebgan_tf.serving.errors import invalid
from ebgan_tf.serving.limits import RequestLimits, check_rows, shown_list
from ebgan_tf.serving.model_manager import ModelManager
from ebgan_tf.serving.servable import DEFAULT_SIGNATURE, Servable


class ServingCore:
    """What both front ends call: resolve the servable, validate, run (batched if enabled); counts the requests
    in flight so that shutdown knows whether computation is still going on."""

    def __init__(self, manager: ModelManager, batcher: Batcher | None, limits: RequestLimits):
        self.manager = manager
        self.batcher = batcher
        self.limits = limits
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def predict(
        self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> dict[str, np.ndarray]:
        """Validates and runs one request; returns its outputs (only the `output_filter` ones if given)."""
        signature = signature or DEFAULT_SIGNATURE
        outputs_known = servable.signature(signature).outputs
        unknown = [key for key in output_filter if key not in outputs_known]
        if unknown:
            raise invalid(
                f"output tensor alias not found in signature: {shown_list(unknown)}; outputs: {sorted(outputs_known)}."
            )
        check_rows(inputs, self.limits)
        servable.validate(signature, inputs)
        with self._lock:
            self._in_flight += 1
            in_flight = self._in_flight
        logging.debug(
            "Computing %s version %s, signature %s (%d request(s) in flight)",
            servable.name,
            servable.version,
            signature,
            in_flight,
        )
        try:
            if self.batcher is not None and servable.batchable(signature):
                outputs = self.batcher.submit(
                    (servable.name, servable.version, id(servable), signature),
                    lambda batch: servable.run(signature, batch),
                    inputs,
                )
            else:
                outputs = servable.run(signature, inputs)
        finally:
            with self._lock:
                self._in_flight -= 1
        return {key: outputs[key] for key in output_filter} if output_filter else outputs


def status_response(
    manager: ModelManager, name: str, version: int | None, label: str | None
) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatusResponse of the model (all known versions, or the requested one)."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state, code, message in manager.status(name, version, label):
        status = response.model_version_status.add(version=number, state=state)
        status.status.error_code = code.value[0]
        status.status.error_message = message
    return response
