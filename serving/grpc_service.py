"""The gRPC front end: tensorflow.serving.PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus)."""

from __future__ import annotations

import grpc
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import (get_model_metadata_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from ebgan_tf.serving.core import ServingCore, status_response
from ebgan_tf.serving.errors import ServingError, invalid
from ebgan_tf.serving.servable import DEFAULT_SIGNATURE, dtype_name, tensor_protos_to_arrays


def _spec_version(model_spec) -> tuple[int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    if choice == "version":
        return model_spec.version.value, None
    return None, (model_spec.version_label if choice == "version_label" else None)


def _abort_on_error(method):
    """Turns ServingErrors (and unexpected errors) into gRPC statuses; the server keeps running."""

    def wrapped(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as error:
            context.abort(error.code, error.message)
        except Exception as error:  # pylint: disable=broad-except
            logging.exception("Request failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")

    return wrapped


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, core: ServingCore):
        self._core = core

    @_abort_on_error
    def Predict(self, request, context):  # noqa: N802  (gRPC method name)
        version, label = _spec_version(request.model_spec)
        servable = self._core.manager.resolve(request.model_spec.name, version, label)
        signature = servable.signature(request.model_spec.signature_name)
        for key, proto in request.inputs.items():  # check dtypes before decoding the tensors
            if key in signature.inputs and proto.dtype != signature.inputs[key].dtype:
                raise invalid(f"Input {key!r} has dtype {dtype_name(proto.dtype)} but signature "
                               f"{request.model_spec.signature_name or DEFAULT_SIGNATURE!r} expects "
                               f"{dtype_name(signature.inputs[key].dtype)}.")
        outputs = self._core.predict(servable, request.model_spec.signature_name,
                                     tensor_protos_to_arrays(request.inputs), list(request.output_filter))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    @_abort_on_error
    def GetModelMetadata(self, request, context):  # noqa: N802
        fields = list(request.metadata_field)
        if not fields:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field.")
        unsupported = [field for field in fields if field != "signature_def"]
        if unsupported:
            raise invalid(f"Metadata field(s) {unsupported} not supported; supported: ['signature_def'].")
        servable = self._core.manager.resolve(request.model_spec.name, *_spec_version(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature)
        response.metadata["signature_def"].Pack(signatures)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus."""

    def __init__(self, core: ServingCore):
        self._core = core

    @_abort_on_error
    def GetModelStatus(self, request, context):  # noqa: N802
        return status_response(self._core.manager, request.model_spec.name, *_spec_version(request.model_spec))
