"""The console scripts' entry points (setup.py): each hides TensorFlow's C++ log lines, then imports its command
module (which imports TensorFlow) and runs it. `python -m` of a command module hides them through its package's
`hide_tensorflow_logs_if_run_as_command`; importing the library hides nothing."""

from __future__ import annotations

import importlib

from ebgan_tf.cli import hide_tensorflow_logs


def launch(module: str) -> None:
    """Hides TensorFlow's log lines, then runs `run()` of the command module `module`."""
    hide_tensorflow_logs()
    importlib.import_module(module).run()


def ebgan_data() -> None:
    launch("ebgan_tf.training.data")


def ebgan_train() -> None:
    launch("ebgan_tf.training.train")


def ebgan_eval() -> None:
    launch("ebgan_tf.training.evaluate")


def ebgan_figures() -> None:
    launch("ebgan_tf.training.figures")


def ebgan_eval_classifier() -> None:
    launch("ebgan_tf.training.eval_classifier")


def ebgan_curve() -> None:
    launch("ebgan_tf.training.curve")


def ebgan_ablate() -> None:
    launch("ebgan_tf.training.ablate")


def ebgan_export() -> None:
    launch("ebgan_tf.export.main")


def ebgan_edit() -> None:
    launch("ebgan_tf.serving.edit")


def ebgan_serve() -> None:
    launch("ebgan_tf.serving.main")


def ebgan_client() -> None:
    launch("ebgan_tf.serving.client")


def ebgan_web() -> None:
    launch("ebgan_tf.serving.web.main")
