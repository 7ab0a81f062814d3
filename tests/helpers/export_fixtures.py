"""`ebgan-export` in this process (`export_cli`), or in a subprocess with test hooks that stop it at chosen points
(tests/export/test_export_kill.py).

Run as a program, this module is `ebgan-export`, with optional hooks set by environment variables:
  EBGAN_TEST_HANG_IN_CONVERSION=1   once the TFLite conversion's SavedModel is written (inside the TFLite staging
                                    folder), print "hanging in conversion" and sleep: the test SIGKILLs the process
  EBGAN_TEST_KILL_BEFORE_SAVED_MODEL_PUBLISH=1
                                    SIGKILL this process after the TFLite version folder is renamed into place and
                                    before the SavedModel's rename (the moment between the two renames)
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time

from ebgan_tf.cli import run_in_process
from ebgan_tf.export import main as export_main
from tests.helpers.tiny import REPO_ROOT

HANG_MARKER = "hanging in conversion"


def export_cli(*argv: str) -> tuple[int, str, str]:
    """Runs ebgan-export in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_in_process(export_main.main, export_main.define_flags, ["ebgan-export", *argv])
    return status, out.getvalue(), err.getvalue()


def start_export(flags: list[str], log_path: str, **hooks: str) -> subprocess.Popen:
    """Starts this module's `ebgan-export` in a new process (stdout and stderr to `log_path`)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1", **hooks}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.export_fixtures", *flags],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _install_hooks() -> None:
    from ebgan_tf.export import staging, tflite

    if os.environ.get("EBGAN_TEST_HANG_IN_CONVERSION"):

        class Hanging:
            def __init__(self, saved_model_dir: str, *args, **kwargs):
                self.saved_model_dir = saved_model_dir

            def convert(self) -> bytes:
                assert os.path.exists(os.path.join(self.saved_model_dir, "saved_model.pb"))
                print(f"{HANG_MARKER} {self.saved_model_dir}", flush=True)
                while True:
                    time.sleep(60)

        tflite._converter = Hanging

    if os.environ.get("EBGAN_TEST_KILL_BEFORE_SAVED_MODEL_PUBLISH"):
        publish = staging.Staging.publish

        def publish_or_die(self, target: str) -> str:
            if not os.path.dirname(target).endswith("-tflite"):  # the SavedModel's rename
                os.kill(os.getpid(), signal.SIGKILL)
            return publish(self, target)

        staging.Staging.publish = publish_or_die


if __name__ == "__main__":
    _install_hooks()
    from ebgan_tf.export import main

    sys.argv[0] = "ebgan-export"
    main.run()
