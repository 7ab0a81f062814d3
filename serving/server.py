"""`ebgan-serve`: a model server that speaks TensorFlow Serving's protocol, for machines without TF Serving.

It serves SavedModels in TF Serving's layout (`<model_base_path>/<version>/saved_model.pb`) generically, by the
signature defs stored in each SavedModel:

  gRPC  tensorflow.serving.PredictionService/Predict, /GetModelMetadata (signature_def)
        tensorflow.serving.ModelService/GetModelStatus
        grpc.health.v1.Health/Check
  REST  POST /v1/models/<name>[/versions/<n>|/labels/<label>]:predict  ("instances" or "inputs" JSON)
        GET  /v1/models/<name>[/versions/<n>|/labels/<label>]          (model status)

TF Serving's flags and files mean the same here: `--model_config_file` (text ModelServerConfig with version
policies and labels), `--enable_batching` with `--batching_parameters_file` (text BatchingParameters), and
`--file_system_poll_wait_seconds` (new version directories are loaded, removed ones unloaded, without restart).
Errors use TF Serving's codes: NOT_FOUND for an unknown model, version, label or signature; INVALID_ARGUMENT for
inputs that do not match the signature. Each request is validated before it joins a batch, and a batch that
fails is re-run request by request, so one bad request never fails another.
"""

from __future__ import annotations

import collections
import base64
import binascii
import concurrent.futures
import dataclasses
import functools
import http.server
import json
import os
import re
import signal
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, text_format
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc)
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from ebgan_tf.cli import run_main

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit
VersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy
State = get_model_status_pb2.ModelVersionStatus.State


class ServingError(Exception):
    """A request error with its gRPC status code (NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


# ---------------------------------------------------------------------------------------------------------------
# Configuration: TF Serving's ModelServerConfig and BatchingParameters text formats.


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
            raise ValueError(f"model {model.name!r}: model_platform {model.model_platform!r} is not supported "
                             "(only 'tensorflow').")
        seen.add(model.name)
        sources.append(ModelSource(model.name, model.base_path, model.model_version_policy,
                                   dict(model.version_labels)))
    if not sources:
        raise ValueError("the model config lists no model.")
    return sources


@functools.cache
def _batching_parameters_class() -> type:
    """TF Serving's BatchingParameters message (session_bundle_config.proto), which tensorflow-serving-api lacks."""
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="ebgan_serving/batching_parameters.proto", package="tensorflow.serving", syntax="proto3",
        dependency=[wrappers.name])
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapped = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
    for number, name in enumerate(wrapped, start=1):
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                          type_name=".google.protobuf.Int64Value")
    message.field.add(name="thread_pool_name", number=5, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                      type_name=".google.protobuf.StringValue")
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
    values = {name: getattr(parameters, name).value if parameters.HasField(name) else getattr(defaults, name)
              for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")}
    for name, value in values.items():
        if value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{name} must be {'>= 0' if name == 'batch_timeout_micros' else '>= 1'}, got {value}.")
    allowed = tuple(parameters.allowed_batch_sizes)
    if allowed and (list(allowed) != sorted(set(allowed)) or allowed[0] < 1 or allowed[-1] != values["max_batch_size"]):
        raise ValueError("allowed_batch_sizes must be increasing positive sizes ending with max_batch_size "
                         f"({values['max_batch_size']}); got {list(allowed)}.")
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


# ---------------------------------------------------------------------------------------------------------------
# One loaded SavedModel version: validation against its signature defs, and running a signature.


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _expected_shape(info: meta_graph_pb2.TensorInfo) -> list[int] | None:
    """The signature's shape with -1 for any size, or None for unknown rank."""
    shape = info.tensor_shape
    return None if shape.unknown_rank else [dim.size for dim in shape.dim]


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:  # DT_INVALID (unset) or an unknown number
        return f"DataType {enum}"


def _is_batchable(signature: meta_graph_pb2.SignatureDef) -> bool:
    """A signature can be batched if every input and output has a free leading (batch) dimension."""
    tensors = list(signature.inputs.values()) + list(signature.outputs.values())
    return bool(signature.inputs) and all(
        (shape := _expected_shape(info)) is not None and len(shape) >= 1 and shape[0] == -1 for info in tensors)


class Servable:
    """A loaded version of a model: its signature defs (from saved_model.pb) and callable signatures."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
            saved_model.ParseFromString(handle.read())
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self._functions = tf.saved_model.load(path).signatures
        self._warm_up()

    def signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        """The signature def of a servable signature; NOT_FOUND listing the available ones."""
        name = name or DEFAULT_SIGNATURE
        if name not in self._functions:
            raise _not_found(f"Serving signature name: {name!r} not found in signature def of model "
                             f"{self.name!r} version {self.version}; it has: {', '.join(sorted(self._functions))}.")
        return self.signature_defs[name]

    def batchable(self, name: str) -> bool:
        return _is_batchable(self.signature(name))

    def validate(self, name: str, inputs: Mapping[str, np.ndarray]) -> None:
        """INVALID_ARGUMENT unless `inputs` has exactly the signature's input names, dtypes and shapes."""
        signature = self.signature(name)
        expected, given = set(signature.inputs), set(inputs)
        if expected != given:
            raise _invalid(
                f"Request inputs do not match signature {name or DEFAULT_SIGNATURE!r} of model {self.name!r}: "
                f"unexpected {sorted(given - expected)}, missing {sorted(expected - given)}; "
                f"expected inputs: {sorted(expected)}.")
        for key, info in signature.inputs.items():
            array, dtype = inputs[key], tf.dtypes.as_dtype(info.dtype)
            matches = array.dtype.kind in "OSU" if dtype == tf.string else array.dtype == dtype.as_numpy_dtype
            if not matches:
                raise _invalid(f"Input {key!r} has dtype {_array_dtype_name(array)} but signature "
                               f"{name or DEFAULT_SIGNATURE!r} expects {dtype.name}.")
            shape = _expected_shape(info)
            if shape is not None and (len(shape) != array.ndim or any(
                    want not in (-1, got) for want, got in zip(shape, array.shape))):
                raise _invalid(f"Input {key!r} has shape {_shape_text(array.shape)} but signature "
                               f"{name or DEFAULT_SIGNATURE!r} expects {_shape_text(shape)} (-1 = any size).")

    def run(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on validated inputs; errors of the computation become ServingErrors."""
        function = self._functions[name or DEFAULT_SIGNATURE]
        try:
            outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        except tf.errors.OpError as error:
            raise ServingError(_grpc_code(error.error_code), _first_lines(error.message)) from None
        except (ValueError, TypeError) as error:
            raise _invalid(_first_lines(str(error))) from None
        return {key: np.asarray(value.numpy()) for key, value in outputs.items()}  # scalars too

    def _warm_up(self) -> None:
        """Replays TF Serving warm-up requests (assets.extra/tf_serving_warmup_requests) like TF Serving does."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if log.WhichOneof("log_type") == "predict_log":
                request = log.predict_log.request
                inputs = tensor_protos_to_arrays(request.inputs)
                self.validate(request.model_spec.signature_name, inputs)
                self.run(request.model_spec.signature_name, inputs)


def _array_dtype_name(array: np.ndarray) -> str:
    return "string" if array.dtype.kind in "OSU" else array.dtype.name


def _grpc_code(tf_code: int) -> grpc.StatusCode:
    """TensorFlow's error codes are gRPC's status codes."""
    return next((code for code in grpc.StatusCode if code.value[0] == tf_code), grpc.StatusCode.INTERNAL)


def _first_lines(message: str, count: int = 3) -> str:
    """TensorFlow error messages carry long graph traces; keep the readable start."""
    return "\n".join(message.strip().splitlines()[:count])


def tensor_protos_to_arrays(protos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """TensorProtos -> numpy arrays; INVALID_ARGUMENT if a proto is malformed."""
    arrays = {}
    for key, proto in protos.items():
        try:
            arrays[key] = tf.make_ndarray(proto)
        except (ValueError, TypeError) as error:
            raise _invalid(f"Input {key!r} is not a valid TensorProto: {error}") from None
    return arrays


# ---------------------------------------------------------------------------------------------------------------
# Versions on disk: poll the base paths, load what the version policy asks for, unload the rest.


def _versions_on_disk(base_path: str) -> dict[int, float]:
    """Complete version directories (numeric name, saved_model.pb present) -> saved_model.pb mtime."""
    found = {}
    try:
        entries = os.listdir(base_path)
    except OSError:
        return found
    for entry in entries:
        graph = os.path.join(base_path, entry, "saved_model.pb")
        if entry.isdigit() and os.path.isfile(graph):
            found[int(entry)] = os.path.getmtime(graph)
    return found


def _wanted_versions(policy: VersionPolicy, versions: Sequence[int]) -> set[int]:
    """The versions a TF Serving version policy serves out of `versions` (empty policy = latest 1)."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(versions)
    if kind == "specific":
        return set(versions) & set(policy.specific.versions)
    count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return set(sorted(versions)[-count:])


class _Model:
    """The state of one configured model: loaded versions and per-version status."""

    def __init__(self, source: ModelSource):
        self.source = source
        self.loaded: dict[int, Servable] = {}
        self.status: dict[int, tuple[int, grpc.StatusCode, str]] = {}  # version -> (state, code, message)
        self.failed: dict[int, float] = {}  # version -> mtime of the saved_model.pb that failed to load


class ModelManager:
    """Keeps the served versions of every model in line with its base path and version policy."""

    def __init__(self, sources: Sequence[ModelSource], poll_wait_seconds: float):
        self._models = {source.name: _Model(source) for source in sources}
        self._poll_wait_seconds = poll_wait_seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Loads what is on disk now, then keeps polling in a background thread (if poll_wait_seconds > 0)."""
        self.poll()
        if self._poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait_seconds):
            self.poll()

    def poll(self) -> None:
        """One pass over every base path: load wanted versions first, then unload the others."""
        for model in self._models.values():
            try:
                self._poll_model(model)
            except Exception:  # pylint: disable=broad-except  (a poll failure must not stop serving)
                logging.exception("Polling %s failed", model.source.base_path)

    def _poll_model(self, model: _Model) -> None:
        on_disk = _versions_on_disk(model.source.base_path)
        if not on_disk and not model.loaded:
            logging.log_every_n_seconds(logging.WARNING, "No versions of model %s found under %s", 60,
                                        model.source.name, model.source.base_path)
        while True:  # a version that fails to load leaves the policy to pick among the others
            loadable = [version for version, mtime in on_disk.items() if model.failed.get(version) != mtime]
            wanted = _wanted_versions(model.source.version_policy, loadable)
            missing = sorted(wanted - set(model.loaded), reverse=True)
            if not missing:
                break
            for version in missing:
                self._load(model, version, on_disk[version])
        with self._lock:
            for version in set(model.loaded) - wanted:
                logging.info("Unloading model %s version %d", model.source.name, version)
                del model.loaded[version]
                model.status[version] = (State.END, grpc.StatusCode.OK, "")

    def _load(self, model: _Model, version: int, mtime: float) -> None:
        name, path = model.source.name, os.path.join(model.source.base_path, str(version))
        with self._lock:
            model.status[version] = (State.LOADING, grpc.StatusCode.OK, "")
        try:
            servable = Servable(name, version, path)
        except Exception as error:  # pylint: disable=broad-except  (a bad export must not stop serving)
            logging.error("Loading model %s version %d from %s failed: %s", name, version, path, error)
            with self._lock:
                model.failed[version] = mtime
                model.status[version] = (State.END, grpc.StatusCode.UNKNOWN, f"Loading {path} failed: {error}")
            return
        logging.info("Loaded model %s version %d from %s", name, version, path)
        with self._lock:
            model.failed.pop(version, None)
            model.loaded[version] = servable
            model.status[version] = (State.AVAILABLE, grpc.StatusCode.OK, "")

    def _model(self, name: str) -> _Model:
        if name not in self._models:
            raise _not_found(f"Servable not found for request: model {name!r} is not served "
                             f"(served models: {', '.join(sorted(self._models))}).")
        return self._models[name]

    def _requested_version(self, model: _Model, version: int | None, label: str | None) -> int | None:
        if label:
            if label not in model.source.version_labels:
                raise _not_found(f"Unrecognized servable version label {label!r} for model {model.source.name!r}.")
            return model.source.version_labels[label]
        return version

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses: a version, a labelled version, or the highest loaded one."""
        model = self._model(name)
        wanted = self._requested_version(model, version, label)
        with self._lock:
            if wanted is None and model.loaded:
                return model.loaded[max(model.loaded)]
            if wanted in model.loaded:
                return model.loaded[wanted]
        what = "Latest" if wanted is None else f"version {wanted}" + (f" (label {label!r})" if label else "")
        raise _not_found(f"Servable not found for request: {what} of model {name!r}.")

    def status(self, name: str, version: int | None = None,
               label: str | None = None) -> list[tuple[int, int, grpc.StatusCode, str]]:
        """(version, state, error code, message) of every known version, or of the requested one."""
        model = self._model(name)
        wanted = self._requested_version(model, version, label)
        with self._lock:
            rows = [(v, *model.status[v]) for v in sorted(model.status) if wanted is None or v == wanted]
        if not rows:
            raise _not_found(f"Could not find any versions of model {name!r}" +
                             ("." if wanted is None else f" with version {wanted}."))
        return rows


# ---------------------------------------------------------------------------------------------------------------
# Batching: requests for the same servable and signature are concatenated along dimension 0.


@dataclasses.dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    enqueued: float
    future: concurrent.futures.Future


@dataclasses.dataclass
class _Queue:
    run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    tasks: collections.deque = dataclasses.field(default_factory=collections.deque)
    rows: int = 0


class Batcher:
    """TF Serving's shared batch scheduler, in short: one queue per (servable, signature, input shapes), served by
    `num_batch_threads` threads. A batch closes when it reaches `max_batch_size` rows or when its oldest request
    has waited `batch_timeout_micros`."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queues: dict[Any, _Queue] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{index}", daemon=True)
                         for index in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Any, run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]],
               inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Queues one request (every input with the same dimension 0) and waits for its share of the outputs."""
        sizes = {name: array.shape[0] for name, array in inputs.items()}
        if len(set(sizes.values())) != 1:
            raise _invalid(f"Batching needs every input to have the same size in dimension 0; got {sizes}.")
        rows = next(iter(sizes.values()))
        if rows > self.options.max_batch_size:
            raise _invalid(f"Task size {rows} is larger than maximum batch size {self.options.max_batch_size}.")
        task = _Task(inputs, rows, time.monotonic(), concurrent.futures.Future())
        full_key = (key, tuple(sorted((name, array.shape[1:]) for name, array in inputs.items())))
        with self._condition:
            if self._closed:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down.")
            queue = self._queues.setdefault(full_key, _Queue(run))
            if queue.rows + rows > self.options.max_enqueued_batches * self.options.max_batch_size:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full.")
            queue.tasks.append(task)
            queue.rows += rows
            self._condition.notify()
        return task.future.result()

    def stop(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            with self._condition:
                batch = self._next_batch()
                while batch is None:
                    if self._closed:
                        return
                    self._condition.wait(self._seconds_to_next_deadline())
                    batch = self._next_batch()
            self._run(*batch)

    def _next_batch(self):
        """Pops a ready batch (full, timed out, or closing) from the queue with the oldest request; else None."""
        now, timeout = time.monotonic(), self.options.batch_timeout_micros / 1e6
        ready = [(queue.tasks[0].enqueued, key) for key, queue in self._queues.items()
                 if queue.rows >= self.options.max_batch_size or now - queue.tasks[0].enqueued >= timeout
                 or self._closed]
        if not ready:
            return None
        key = min(ready, key=lambda item: item[0])[1]
        queue, tasks, rows = self._queues[key], [], 0
        while queue.tasks and rows + queue.tasks[0].rows <= self.options.max_batch_size:
            tasks.append(queue.tasks.popleft())
            rows += tasks[-1].rows
        queue.rows -= rows
        if not queue.tasks:
            del self._queues[key]
        return queue.run, tasks

    def _seconds_to_next_deadline(self) -> float | None:
        if not self._queues:
            return None
        oldest = min(queue.tasks[0].enqueued for queue in self._queues.values())
        return max(0.0, oldest + self.options.batch_timeout_micros / 1e6 - time.monotonic())

    def _padded_size(self, rows: int) -> int:
        return next((size for size in self.options.allowed_batch_sizes if size >= rows), rows)

    def _run(self, run, tasks: list[_Task]) -> None:
        """Runs one batch and hands each task its rows; if the batch fails, each task runs alone."""
        rows = sum(task.rows for task in tasks)
        padding = self._padded_size(rows) - rows
        try:
            outputs = run({name: np.concatenate([task.inputs[name] for task in tasks]
                                                + [np.repeat(tasks[0].inputs[name][:1], padding, axis=0)])
                           for name in tasks[0].inputs})
            wrong = {name: value.shape for name, value in outputs.items() if value.shape[:1] != (rows + padding,)}
            if wrong:
                raise ServingError(grpc.StatusCode.INTERNAL, f"Batched outputs lost the batch dimension: {wrong}.")
        except Exception as error:  # pylint: disable=broad-except  (handed to the waiting request)
            if len(tasks) > 1:
                for task in tasks:
                    self._run(run, [task])
            else:
                tasks[0].future.set_exception(error)
            return
        start = 0
        for task in tasks:
            task.future.set_result({name: value[start:start + task.rows] for name, value in outputs.items()})
            start += task.rows


# ---------------------------------------------------------------------------------------------------------------
# The protocol: Predict / GetModelMetadata / GetModelStatus over gRPC, predict and status over REST.


class ServingCore:
    """What both front ends call: resolve the servable, validate, run (batched if enabled)."""

    def __init__(self, manager: ModelManager, batcher: Batcher | None):
        self.manager = manager
        self.batcher = batcher

    def predict(self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Validates and runs one request; returns its outputs (only the `output_filter` ones if given)."""
        signature = signature or DEFAULT_SIGNATURE
        outputs_known = servable.signature(signature).outputs
        unknown = [key for key in output_filter if key not in outputs_known]
        if unknown:
            raise _invalid(f"output tensor alias not found in signature: {unknown}; outputs: {sorted(outputs_known)}.")
        servable.validate(signature, inputs)
        if self.batcher is not None and servable.batchable(signature):
            outputs = self.batcher.submit((servable.name, servable.version, id(servable), signature),
                                          lambda batch: servable.run(signature, batch), inputs)
        else:
            outputs = servable.run(signature, inputs)
        return {key: outputs[key] for key in output_filter} if output_filter else outputs


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
                raise _invalid(f"Input {key!r} has dtype {_dtype_name(proto.dtype)} but signature "
                               f"{request.model_spec.signature_name or DEFAULT_SIGNATURE!r} expects "
                               f"{_dtype_name(signature.inputs[key].dtype)}.")
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
            raise _invalid("GetModelMetadataRequest must specify at least one metadata_field.")
        unsupported = [field for field in fields if field != "signature_def"]
        if unsupported:
            raise _invalid(f"Metadata field(s) {unsupported} not supported; supported: ['signature_def'].")
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


def status_response(manager: ModelManager, name: str, version: int | None,
                    label: str | None) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatusResponse of the model (all known versions, or the requested one)."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state, code, message in manager.status(name, version, label):
        status = response.model_version_status.add(version=number, state=state)
        status.status.error_code = code.value[0]
        status.status.error_message = message
    return response


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
        raise _invalid(f"Input {key!r} could not be parsed as a {dtype.name} tensor: {error}") from None
    if array.dtype.kind not in "biuf" or (dtype.is_integer and array.dtype.kind == "f" and
                                          not np.all(np.mod(array, 1) == 0)):
        raise _invalid(f"Input {key!r} must hold {dtype.name} numbers (a rectangular nested list).")
    if dtype.is_integer and array.size and (array.min() < dtype.min or array.max() > dtype.max):
        raise _invalid(f"Input {key!r} has values outside the range of {dtype.name} [{dtype.min}, {dtype.max}].")
    return array.astype(dtype.as_numpy_dtype)


def _array_to_json(array: np.ndarray) -> Any:
    if array.dtype.kind in "OS":
        return np.vectorize(lambda item: item.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def _rest_inputs(body: Mapping[str, Any], signature: meta_graph_pb2.SignatureDef) -> tuple[dict, bool]:
    """TF Serving's REST request formats -> (inputs, row format?). A lone input may be given without its name."""
    if ("instances" in body) == ("inputs" in body):
        raise _invalid('The request must have exactly one of "instances" (row format) or "inputs" (columnar).')
    names = sorted(signature.inputs)
    row_format = "instances" in body
    if row_format:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise _invalid('"instances" must be a list.')
        if len(names) == 1 and not all(isinstance(item, dict) and set(item) == set(names) for item in instances):
            instances = [{names[0]: item} for item in instances]
        if not all(isinstance(item, dict) for item in instances):
            raise _invalid(f"Every instance must be an object with the keys {names}.")
        keys = set().union(*instances) if instances else set()
        columns = {key: [item.get(key) for item in instances] for key in keys}
    else:
        columns = body["inputs"]
        if len(names) == 1 and not (isinstance(columns, dict) and set(columns) == set(names)):
            columns = {names[0]: columns}
        if not isinstance(columns, dict):
            raise _invalid(f'"inputs" must be an object with the keys {names}.')
    unexpected = sorted(set(columns) - set(names))
    if unexpected:
        raise _invalid(f"input tensor alias(es) {unexpected} not found in signature; expected inputs: {names}.")
    return {key: _json_to_array(value, signature.inputs[key], key) for key, value in columns.items()}, row_format


def _rest_outputs(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    if not row_format:
        values = {key: _array_to_json(value) for key, value in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise _invalid('The outputs have no common batch dimension; use the columnar "inputs" request format.')
    if len(outputs) == 1:
        return {"predictions": _array_to_json(next(iter(outputs.values())))}
    rows = sizes.pop()
    return {"predictions": [{key: _array_to_json(value[row]) for key, value in outputs.items()} for row in range(rows)]}


def _rest_handler(core: ServingCore, max_body_bytes: int) -> type:
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
                    raise _not_found(f"Malformed request: {self.command} {self.path}")
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
                    raise _invalid(f"The request body is not valid JSON: {error}") from None
                if not isinstance(body, dict):
                    raise _invalid("The request body must be a JSON object.")
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


# ---------------------------------------------------------------------------------------------------------------
# The server.


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything `ebgan-serve` needs; `rest_api_port` None = no REST, 0 = any free port (as for `port`)."""

    models: tuple[ModelSource, ...]
    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int | None = None
    batching: BatchingOptions | None = None
    file_system_poll_wait_seconds: float = 1.0
    max_message_bytes: int = 64 * 1024 * 1024
    grpc_max_threads: int = 32


class ModelServer:
    """The gRPC (and optional REST) server; `start()` returns once models on disk are loaded and ports are bound."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.manager = ModelManager(options.models, options.file_system_poll_wait_seconds)
        self.batcher: Batcher | None = None
        self.health = health.HealthServicer()
        self.port: int | None = None
        self.rest_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._rest: http.server.ThreadingHTTPServer | None = None

    def start(self) -> "ModelServer":
        options = self.options
        self.manager.start()
        self.batcher = Batcher(options.batching) if options.batching else None
        core = ServingCore(self.manager, self.batcher)
        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
            options=[("grpc.max_receive_message_length", options.max_message_bytes),
                     ("grpc.max_send_message_length", options.max_message_bytes)])
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
            self._rest = http.server.ThreadingHTTPServer(
                (options.host, options.rest_api_port), _rest_handler(core, options.max_message_bytes))
            self._rest.daemon_threads = True
            self.rest_port = self._rest.server_address[1]
            threading.Thread(target=self._rest.serve_forever, name="rest", daemon=True).start()
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self

    def stop(self, grace_seconds: float = 1.0) -> None:
        """Stops serving: health NOT_SERVING, ports closed, background threads joined."""
        self.health.enter_graceful_shutdown()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace_seconds).wait()
        if self.batcher is not None:
            self.batcher.stop()
        self.manager.stop()

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0 = every interface; TF Serving binds all).")
    flags.DEFINE_integer("port", 8500, "gRPC port (0 = any free port).")
    flags.DEFINE_integer("rest_api_port", 0, "REST API port; 0 turns the REST API off (as in TF Serving).")
    flags.DEFINE_string("model_name", "ebgan", "Name of the served model (without --model_config_file).")
    flags.DEFINE_string("model_base_path", None, "Directory holding the model's numeric version directories.")
    flags.DEFINE_string("model_config_file", None, "TF Serving text-format ModelServerConfig (model_config_list); "
                        "takes precedence over --model_name/--model_base_path.")
    flags.DEFINE_boolean("enable_batching", False, "Batch concurrent requests to the same model version and signature.")
    flags.DEFINE_string("batching_parameters_file", None, "TF Serving text-format BatchingParameters (max_batch_size, "
                        "batch_timeout_micros, max_enqueued_batches, num_batch_threads, allowed_batch_sizes).")
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "Seconds between scans of the base paths for new or "
                       "removed versions (0 = load once at start-up).")
    flags.DEFINE_integer("max_message_bytes", 64 * 1024 * 1024,
                         "Largest gRPC message (and REST body) accepted or sent.")
    flags.DEFINE_integer("grpc_max_threads", 32, "Requests handled concurrently (gRPC worker threads).")


def options_from_flags() -> ServerOptions:
    """ServerOptions from the command line; ValueError naming the problem."""
    if FLAGS.model_config_file:
        if FLAGS.model_base_path:
            logging.warning("--model_config_file given: ignoring --model_name and --model_base_path.")
        models = parse_model_config(read_text_file(FLAGS.model_config_file, "model config file"))
    elif FLAGS.model_base_path:
        models = [ModelSource(FLAGS.model_name, FLAGS.model_base_path)]
    else:
        raise ValueError("give --model_base_path (with --model_name) or --model_config_file.")
    for model in models:
        if not os.path.isdir(model.base_path):
            raise ValueError(f"base path {model.base_path!r} of model {model.name!r} is not a directory.")
    batching = None
    if FLAGS.enable_batching:
        batching = (parse_batching_parameters(read_text_file(FLAGS.batching_parameters_file, "batching parameters "
                                                             "file")) if FLAGS.batching_parameters_file
                    else BatchingOptions())
    elif FLAGS.batching_parameters_file:
        raise ValueError("--batching_parameters_file needs --enable_batching.")
    for name in ("port", "rest_api_port", "max_message_bytes", "grpc_max_threads"):
        if getattr(FLAGS, name) < (1 if name in ("max_message_bytes", "grpc_max_threads") else 0):
            raise ValueError(f"--{name} must be positive, got {getattr(FLAGS, name)}.")
    return ServerOptions(models=tuple(models), host=FLAGS.host, port=FLAGS.port,
                         rest_api_port=FLAGS.rest_api_port or None, batching=batching,
                         file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
                         max_message_bytes=FLAGS.max_message_bytes, grpc_max_threads=FLAGS.grpc_max_threads)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        server = ModelServer(options_from_flags()).start()
    except (ValueError, OSError) as error:
        raise SystemExit(f"ebgan-serve: error: {error}") from None
    rest = f", REST on port {server.rest_port}" if server.rest_port else ""
    logging.info("Serving %s: gRPC on %s:%d%s", ", ".join(m.name for m in server.options.models),
                 server.options.host, server.port, rest)
    stopping = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, `docker stop`, `kill`
        signal.signal(number, lambda *_: stopping.set())
    stopping.wait()
    logging.info("Stopping")
    server.stop()


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
