"""Shared helpers of the scale-out and fault-tolerance tests: a tiny data set, `ebgan-train` in a subprocess on
that data set (with test hooks), and process clean-up.

Run as a program, this module is `ebgan-train` reading the tiny data set of `prepare_tiny_data`, with optional
hooks set by environment variables:
  EBGAN_TEST_PRINT_STEPS=1      print "step N" after every training step
  EBGAN_TEST_NAN_AT_BATCH=i     the i-th training batch (0-based) of every epoch has NaN source pixels
  EBGAN_TEST_KILL_IN_SAVE=N     SIGKILL this process inside the save of checkpoint N, after its data files are
                                written and before the checkpoint state file names it
  EBGAN_TEST_WEIGHTS_OUT=path   after training, write the network weights to path (.npz; also on non-chief workers)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import numpy as np

from tests.helpers.tiny import IMAGE_SIZE, REPO_ROOT, SPLIT_SIZES, TINY_MODEL_FLAG, TINY_RUN, network_weights


def prepare_tiny_data(data_dir: str) -> str:
    """Renders the tiny synthetic_faces data set (32 px) that the runner reads; returns `data_dir`."""
    from ebgan_tf.data import synthetic_faces

    synthetic_faces.prepare_synthetic_faces(data_dir, image_size=IMAGE_SIZE, **SPLIT_SIZES)
    return data_dir


def load_tiny_examples(dataset: str, data_dir: str, split: str, image_size: int):
    """Stands in for pipeline.load_examples: the tiny data set's split (the standard one has 12,000 faces)."""
    from ebgan_tf.data import synthetic_faces

    assert dataset == "synthetic_faces" and image_size == IMAGE_SIZE
    return synthetic_faces.load_synthetic_faces(data_dir, split, image_size, prepare=False, **SPLIT_SIZES)


def train_flags(model_dir: str, data_dir: str, **overrides) -> list[str]:
    """ebgan-train flags of the tiny run (TINY_RUN) of a tiny Att-EBGAN."""
    settings = dict(model_dir=model_dir, data_dir=data_dir, **TINY_RUN, model_config=TINY_MODEL_FLAG)
    settings.update(overrides)
    return [f"--{name}={value}" for name, value in settings.items()]


def start_training(flags: list[str], log_path: str, **hooks: str) -> subprocess.Popen:
    """Starts this module's `ebgan-train` in a new process (stdout and stderr to `log_path`)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1", **hooks}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.train_fixtures", *flags],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def run_training(flags: list[str], log_path: str, timeout: float = 600, **hooks: str) -> tuple[int, str]:
    """Runs `start_training` to the end; returns (exit status, output)."""
    with killed_on_exit([start_training(flags, log_path, **hooks)]) as (process,):
        status = process.wait(timeout)
    with open(log_path) as log:
        return status, log.read()


@contextlib.contextmanager
def killed_on_exit(processes: list[subprocess.Popen]) -> Iterator[list[subprocess.Popen]]:
    """Yields `processes` and SIGKILLs those still running on the way out (also when a test fails)."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _install_hooks() -> None:
    """Installs the hooks the environment asks for (see the module docstring)."""
    import tensorflow as tf
    from tensorflow.python.checkpoint import checkpoint_management

    from ebgan_tf.data import pipeline
    from ebgan_tf.training import callbacks, train_lib

    if os.environ.get("EBGAN_TEST_PRINT_STEPS"):
        count = callbacks.StepCounter.on_train_batch_end

        def count_and_print(self, batch, logs=None):
            count(self, batch, logs)
            print(f"\nstep {self.step}", flush=True)  # on a line of its own, after the progress bar

        callbacks.StepCounter.on_train_batch_end = count_and_print

    if os.environ.get("EBGAN_TEST_NAN_AT_BATCH"):
        poisoned_batch = int(os.environ["EBGAN_TEST_NAN_AT_BATCH"])
        make_dataset = pipeline.make_dataset

        def poison(index, batch):
            batch = dict(batch)
            batch["source"] = tf.where(index == poisoned_batch, float("nan"), batch["source"])
            return batch

        def make_poisoned_dataset(*args, training, **kwargs):
            batches = make_dataset(*args, training=training, **kwargs)
            return batches.enumerate().map(poison) if training else batches

        pipeline.make_dataset = make_poisoned_dataset

    if os.environ.get("EBGAN_TEST_KILL_IN_SAVE"):
        kill_at = os.environ["EBGAN_TEST_KILL_IN_SAVE"]
        update_state = checkpoint_management.update_checkpoint_state_internal

        def update_state_or_die(save_dir, model_checkpoint_path, *args, **kwargs):
            if model_checkpoint_path.endswith(f"-{kill_at}"):
                os.kill(os.getpid(), signal.SIGKILL)
            update_state(save_dir, model_checkpoint_path, *args, **kwargs)

        checkpoint_management.update_checkpoint_state_internal = update_state_or_die

    if os.environ.get("EBGAN_TEST_WEIGHTS_OUT"):
        train = train_lib.train

        def train_and_dump(*args, **kwargs):
            trainer, history = train(*args, **kwargs)
            np.savez(os.environ["EBGAN_TEST_WEIGHTS_OUT"], *network_weights(trainer))
            return trainer, history

        train_lib.train = train_and_dump


def load_weights(path: str) -> list[np.ndarray]:
    """The weights written by the EBGAN_TEST_WEIGHTS_OUT hook."""
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


if __name__ == "__main__":
    from ebgan_tf.data import pipeline

    pipeline.load_examples = load_tiny_examples
    _install_hooks()
    from ebgan_tf.training import train

    sys.argv[0] = "ebgan-train"
    train.run()
