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

import os
import signal
import threading
from typing import Sequence

from absl import flags, logging

from ebgan_tf.cli import check_no_arguments, reports_errors, run_main
from serving.server import ModelServer
from serving.server_config import (BatchingOptions, ModelSource, ServerOptions, parse_batching_parameters,
                                   parse_model_config, read_text_file)

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


@reports_errors("ebgan-serve", ValueError, OSError)
def main(argv: Sequence[str]) -> int:
    check_no_arguments(argv)
    server = ModelServer(options_from_flags()).start()
    rest = f", REST on port {server.rest_port}" if server.rest_port else ""
    logging.info("Serving %s: gRPC on %s:%d%s", ", ".join(m.name for m in server.options.models),
                 server.options.host, server.port, rest)
    stopping = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, `docker stop`, `kill`
        signal.signal(number, lambda *_: stopping.set())
    stopping.wait()
    logging.info("Stopping")
    server.stop()
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
