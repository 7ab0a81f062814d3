"""`ebgan-web`: the face editor in the browser, on 127.0.0.1 by default.

    ebgan-web --model=exports/ebgan                                  # the model in this process
    ebgan-web --model=exports/ebgan,exports/ebgan_plain              # several: the page has a model chooser
    ebgan-web --model_server=localhost:8500 --model_name=ebgan       # in front of TF Serving (gRPC)

Open the printed address. Uploaded photos stay in memory (the latest --stored_images), never on disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags, logging

from ebgan_tf.cli import catch_stop_signals, reports_errors, run_main, wait_for_stop
from ebgan_tf.serving import request_limits
from ebgan_tf.serving.web import DEFAULT_LIMITS

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_list(
        "model",
        [],
        "Exported model(s) to load in this process: SavedModel version or base "
        "directories, or .tflite files; each is named after its base directory. The first is the "
        "default. Without --model and --model_server: the shipped models (models/att_ebgan, "
        "models/ebgan).",
    )
    flags.DEFINE_string(
        "model_server",
        None,
        "host:port of a gRPC model server (TF Serving or ebgan-serve) to edit with, instead of --model.",
    )
    flags.DEFINE_list("model_name", ["ebgan"], "With --model_server: the served model name(s) to offer.")
    flags.DEFINE_float("timeout", 30.0, "With --model_server: seconds to wait for each answer.", lower_bound=0.001)
    flags.DEFINE_string(
        "host",
        "127.0.0.1",
        "Address to bind. Keep 127.0.0.1 unless a proxy with authentication and TLS sits in front (docs/web.md).",
    )
    flags.DEFINE_integer("port", 8080, "Port of the page (0 = any free port).", lower_bound=0)
    flags.DEFINE_integer(
        "max_pixels", 40_000_000, "Largest image accepted, in pixels (checked before decoding).", lower_bound=1
    )
    flags.DEFINE_integer("stored_images", 64, "How many uploaded photos are kept in memory for edits.", lower_bound=2)
    request_limits.define_http_limit_flags(DEFAULT_LIMITS)  # --max_message_bytes, timeouts and connections
    flags.adopt_module_key_flags(request_limits)
    flags.DEFINE_integer(
        "edit_workers",
        0,
        "Edits computed at once (first come, first served; the others wait their turn); 0 = one per CPU core.",
        lower_bound=0,
    )


def build_server():
    """The WebServer the flags describe (not started)."""
    from ebgan_tf.serving.web.app import WebApp, WebOptions, WebServer
    from ebgan_tf.serving.web.models import ModelSet
    from ebgan_tf.shipped import SHIPPED_MODELS

    if FLAGS.model and FLAGS.model_server:
        raise ValueError("Give --model (models to load in this process) or --model_server (host:port), not both.")
    models = (
        ModelSet.remote(FLAGS.model_server, FLAGS.model_name, FLAGS.timeout)
        if FLAGS.model_server
        else ModelSet.load(FLAGS.model or list(SHIPPED_MODELS.values()))
    )
    options = WebOptions(
        limits=request_limits.http_limits_from_flags(DEFAULT_LIMITS),
        max_pixels=FLAGS.max_pixels,
        stored_images=FLAGS.stored_images,
        edit_workers=FLAGS.edit_workers,
    )
    return WebServer(WebApp(models, options), FLAGS.host, FLAGS.port)


@reports_errors("ebgan-web", ValueError, OSError)
def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    stopping = catch_stop_signals()
    server = build_server().start()
    print(f"ebgan-web: open {server.url}", flush=True)
    wait_for_stop(stopping)
    logging.info("Stopping")
    server.stop()
    return 0


def run() -> None:
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
