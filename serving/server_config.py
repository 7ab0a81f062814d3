"""The server's configuration: TF Serving's ModelServerConfig and BatchingParameters text formats, and the
options of a server."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from ebgan_tf.serving.limits import RequestLimits

VersionPolicy: TypeAlias = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """One served model: where its versions live, which to serve and the version labels."""

    name: str
    base_path: str
    version_policy: VersionPolicy = dataclasses.field(default_factory=VersionPolicy)  # empty = latest 1
    version_labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's batching parameters, same meaning (defaults are TF Serving's scheduler defaults)."""

    max_batch_size: int = 1000  # rows (dimension 0) in one batch
    batch_timeout_micros: int = 0  # how long the oldest request may wait for a batch to fill
    max_enqueued_batches: int = 10  # queue limit, in batches; beyond it requests get UNAVAILABLE
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()  # batches are padded up to the next of these sizes


def parse_model_config(text: str) -> list[ModelSource]:
    """Parses a text-format ModelServerConfig (`model_config_list`) into model sources; ValueError if invalid."""
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        raise ValueError(f"not a valid ModelServerConfig: {error}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("the model config must hold a model_config_list (custom_model_config is not supported).")
    sources, seen = [], set()
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ValueError("every model config needs a name and a base_path.")
        if model.name in seen:
            raise ValueError(f"model {model.name!r} is configured twice.")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"model {model.name!r}: model_platform {model.model_platform!r} is not supported (only 'tensorflow')."
            )
        seen.add(model.name)
        sources.append(ModelSource(model.name, model.base_path, model.model_version_policy, dict(model.version_labels)))
    if not sources:
        raise ValueError("the model config lists no model.")
    return sources


@functools.cache
def _batching_parameters_class() -> type:
    """TF Serving's BatchingParameters message (session_bundle_config.proto), which tensorflow-serving-api lacks."""
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="ebgan_serving/batching_parameters.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapped = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
    for number, name in enumerate(wrapped, start=1):
        message.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            label=field.LABEL_OPTIONAL,
            type_name=".google.protobuf.Int64Value",
        )
    message.field.add(
        name="thread_pool_name",
        number=5,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_OPTIONAL,
        type_name=".google.protobuf.StringValue",
    )
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # private pool: nothing else registers this name
    pool.Add(wrappers)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def parse_batching_parameters(text: str) -> BatchingOptions:
    """Parses TF Serving's text-format BatchingParameters; ValueError naming the problem if invalid."""
    try:
        parameters = text_format.Parse(text, _batching_parameters_class()())
    except text_format.ParseError as error:
        raise ValueError(f"not valid BatchingParameters: {error}") from None
    defaults = BatchingOptions()
    values = {
        name: getattr(parameters, name).value if parameters.HasField(name) else getattr(defaults, name)
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
    }
    for name, value in values.items():
        if value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{name} must be {'>= 0' if name == 'batch_timeout_micros' else '>= 1'}, got {value}.")
    allowed = tuple(parameters.allowed_batch_sizes)
    if allowed and (list(allowed) != sorted(set(allowed)) or allowed[0] < 1 or allowed[-1] != values["max_batch_size"]):
        raise ValueError(
            "allowed_batch_sizes must be increasing positive sizes ending with max_batch_size "
            f"({values['max_batch_size']}); got {list(allowed)}."
        )
    if parameters.pad_variable_length_inputs:
        raise ValueError("pad_variable_length_inputs is not supported by ebgan-serve.")
    return BatchingOptions(**values, allowed_batch_sizes=allowed)


def read_text_file(path: str, what: str) -> str:
    """The contents of a config file; ValueError naming `what` and the path if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise ValueError(f"cannot read the {what} {path}: {error.strerror or error}.") from None


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything `ebgan-serve` needs; `rest_api_port` None = no REST, 0 = any free port (as for `port`)."""

    models: tuple[ModelSource, ...]
    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int | None = None
    batching: BatchingOptions | None = None
    file_system_poll_wait_seconds: float = 1.0
    limits: RequestLimits = RequestLimits()
    grpc_max_threads: int = 32
    load_retry_interval_seconds: float = 60.0  # a failed version load is retried after this (or when it changes)
    max_num_load_retries: int = 5  # retries after the interval; a change of the version's files always retries
    shutdown_grace_seconds: float = 10.0  # SIGTERM: in-flight requests get this long, then the process exits
