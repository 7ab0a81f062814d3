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
`--file_system_poll_wait_seconds` (new version directories are loaded, removed ones unloaded, without restart;
a version that fails to load is retried when its files change or after `--load_retry_interval_seconds`).
Errors use TF Serving's codes: NOT_FOUND for an unknown model, version, label or signature; INVALID_ARGUMENT for
inputs that do not match the signature or a malformed request; RESOURCE_EXHAUSTED (REST 413) for a request over
a limit (`--max_batch_rows`, `--max_message_bytes`). The gRPC front end has a deadline for a call's message and
bounds on streams per connection and on calls waiting for their message; the REST front end has header, body and
idle timeouts and a bounded number of connections; SIGTERM lets requests in flight finish for
`--shutdown_grace_seconds`. The limits, timeouts and statuses are described in docs/hardening.md. Each request is
validated before it joins a batch, and a batch that fails is re-run request by request, so one bad request never
fails another.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import tensorflow as tf
from absl import flags, logging

from ebgan_tf.cli import catch_stop_signals, check_no_arguments, reports_errors, run_main, wait_for_stop
from ebgan_tf.serving import request_limits
from ebgan_tf.serving.request_limits import RequestLimits
from ebgan_tf.serving.server import ModelServer
from ebgan_tf.serving.server_config import (
    BatchingOptions,
    ModelSource,
    ServerOptions,
    parse_batching_parameters,
    parse_model_config,
    read_text_file,
)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0 = every interface; TF Serving binds all).")
    flags.DEFINE_integer("port", 8500, "gRPC port (0 = any free port).")
    flags.DEFINE_integer("rest_api_port", 0, "REST API port; 0 turns the REST API off (as in TF Serving).")
    flags.DEFINE_string("model_name", "ebgan", "Name of the served model (without --model_config_file).")
    flags.DEFINE_string("model_base_path", None, "Directory holding the model's numeric version directories.")
    flags.DEFINE_string(
        "model_config_file",
        None,
        "TF Serving text-format ModelServerConfig (model_config_list); "
        "takes precedence over --model_name/--model_base_path.",
    )
    flags.DEFINE_boolean("enable_batching", False, "Batch concurrent requests to the same model version and signature.")
    flags.DEFINE_string(
        "batching_parameters_file",
        None,
        "TF Serving text-format BatchingParameters (max_batch_size, "
        "batch_timeout_micros, max_enqueued_batches, num_batch_threads, allowed_batch_sizes).",
    )
    flags.DEFINE_float(
        "file_system_poll_wait_seconds",
        1.0,
        "Seconds between scans of the base paths for new or removed versions (0 = load once at start-up).",
    )
    defaults = RequestLimits()
    flags.DEFINE_integer(
        "max_batch_rows",
        defaults.max_batch_rows,
        "Most rows (dimension 0) one request may hold, batching on or off; more is RESOURCE_EXHAUSTED (REST 413).",
    )
    request_limits.define_http_limit_flags(defaults)  # --max_message_bytes, the REST API's timeouts and connections
    flags.adopt_module_key_flags(request_limits)
    flags.DEFINE_integer(
        "grpc_max_threads",
        32,
        "gRPC requests parsed and computed at once (worker threads); more wait their turn without holding a thread.",
    )
    flags.DEFINE_float(
        "grpc_message_timeout_seconds",
        defaults.grpc_message_timeout_seconds,
        "gRPC: seconds for a call's request message to arrive (else DEADLINE_EXCEEDED, stream reset).",
    )
    flags.DEFINE_integer(
        "grpc_max_concurrent_streams",
        defaults.grpc_max_concurrent_streams,
        "gRPC: calls open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).",
    )
    flags.DEFINE_integer(
        "grpc_max_pending_messages",
        defaults.grpc_max_pending_messages,
        "gRPC: calls waiting for their request message, over all connections; one more ends the one "
        "that waited longest (RESOURCE_EXHAUSTED). Bounds their memory to this times "
        f"{request_limits.flag('max_message_bytes')}.",
    )
    flags.DEFINE_float(
        "load_retry_interval_seconds",
        60.0,
        "A version that failed to load is tried again after this many seconds (and at once when its files change).",
    )
    flags.DEFINE_integer(
        "max_num_load_retries",
        5,
        "Retries after --load_retry_interval_seconds of a version "
        "that failed to load (a change of its files always retries).",
    )
    flags.DEFINE_integer(
        "tensorflow_intra_op_parallelism",
        0,
        "Threads one TensorFlow op may use (as in TF Serving; 0 = TensorFlow's choice, one per core).",
        lower_bound=0,
    )
    flags.DEFINE_integer(
        "tensorflow_inter_op_parallelism",
        0,
        "Threads running TensorFlow ops side by side, shared "
        "by every request (as in TF Serving; 0 = TensorFlow's choice, one per core). Set it above "
        "the number of requests computing at once when their lengths differ much "
        "(docs/hardening.md).",
        lower_bound=0,
    )
    flags.DEFINE_float(
        "shutdown_grace_seconds",
        10.0,
        "On SIGTERM/SIGINT: seconds in which requests in flight "
        "may finish; then they fail (gRPC UNAVAILABLE, REST 503) and the process exits.",
    )


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
        batching = (
            parse_batching_parameters(read_text_file(FLAGS.batching_parameters_file, "batching parameters file"))
            if FLAGS.batching_parameters_file
            else BatchingOptions()
        )
    elif FLAGS.batching_parameters_file:
        raise ValueError("--batching_parameters_file needs --enable_batching.")
    for name in (
        "port",
        "rest_api_port",
        "load_retry_interval_seconds",
        "max_num_load_retries",
        "shutdown_grace_seconds",
    ):
        if getattr(FLAGS, name) < 0:
            raise ValueError(f"--{name} must not be negative, got {getattr(FLAGS, name)}.")
    if FLAGS.grpc_max_threads < 1:
        raise ValueError(f"--grpc_max_threads must be positive, got {FLAGS.grpc_max_threads}.")
    try:
        limits = request_limits.http_limits_from_flags(
            RequestLimits(
                max_batch_rows=FLAGS.max_batch_rows,
                grpc_message_timeout_seconds=FLAGS.grpc_message_timeout_seconds,
                grpc_max_concurrent_streams=FLAGS.grpc_max_concurrent_streams,
                grpc_max_pending_messages=FLAGS.grpc_max_pending_messages,
            )
        )
    except ValueError as error:
        raise ValueError(f"a request limit flag: {error}") from None
    return ServerOptions(
        models=tuple(models),
        host=FLAGS.host,
        port=FLAGS.port,
        rest_api_port=FLAGS.rest_api_port or None,
        batching=batching,
        file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
        limits=limits,
        grpc_max_threads=FLAGS.grpc_max_threads,
        load_retry_interval_seconds=FLAGS.load_retry_interval_seconds,
        max_num_load_retries=FLAGS.max_num_load_retries,
        shutdown_grace_seconds=FLAGS.shutdown_grace_seconds,
    )


def set_tensorflow_threads(intra_op: int, inter_op: int) -> str:
    """Sizes TensorFlow's thread pools (0 leaves TensorFlow's default) before any model loads; says what they are."""
    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    return f"intra-op {intra_op or 'default'}, inter-op {inter_op or 'default'}"


@reports_errors("ebgan-serve", ValueError, OSError)
def main(argv: Sequence[str]) -> int:
    check_no_arguments(argv)
    options = options_from_flags()
    threads = set_tensorflow_threads(FLAGS.tensorflow_intra_op_parallelism, FLAGS.tensorflow_inter_op_parallelism)
    stopping = catch_stop_signals()
    server = ModelServer(options).start()
    rest = f", REST on port {server.rest_port}" if server.rest_port else ""
    print(
        f"ebgan-serve: serving {', '.join(m.name for m in server.options.models)}: gRPC on "
        f"{server.options.host}:{server.port}{rest}; TensorFlow threads {threads} (Ctrl-C or SIGTERM stops)",
        flush=True,
    )
    wait_for_stop(stopping)
    print(f"ebgan-serve: stopping (grace period {server.options.shutdown_grace_seconds:g} s)", flush=True)
    if not server.stop():
        logging.warning("Requests still computing after the grace period; exiting without waiting for them.")
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # pylint: disable=protected-access  (TensorFlow cannot interrupt a running computation)
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
