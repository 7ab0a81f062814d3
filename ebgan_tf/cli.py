"""What every absl command line of the project shares.

Each command defines its flags in a `define_flags()` function rather than at import, because several commands
share flag names (--model_name, --region, ...) and tests run them in one process (see `run_in_process`).

TensorFlow's C++ log lines (CUDA probing, CPU features, oneDNN) are hidden in the commands unless the environment
variable EBGAN_TF_VERBOSE=1 is set: the console scripts start through `ebgan_tf.commands`, which calls
`hide_tensorflow_logs()` first, and `python -m` of a command module hides them through
`hide_tensorflow_logs_if_run_as_command` in its package. Importing the library changes nothing in the process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from absl import app, flags, logging

from ebgan_tf.data import DEFAULT_DATA_DIR

VERBOSE_VARIABLE = "EBGAN_TF_VERBOSE"
LOG_NOTE = (
    f"TensorFlow's own log lines are hidden; set the environment variable {VERBOSE_VARIABLE}=1 to see them "
    "(--verbosity sets the level of the command's log)."
)


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """Sends file descriptor 2 to /dev/null (C++ code writes there directly, below Python's sys.stderr)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Mutes stderr while `tensorflow` is first imported: the lines TensorFlow's C++ libraries print before its
    log level applies (oneDNN, cudart_stub, cpu_feature_guard)."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_muted(module) -> None:
                with _stderr_muted():
                    exec_module(module)

            spec.loader.exec_module = exec_muted  # type: ignore[method-assign]  # wrapped on purpose
        return spec


_hiding = False  # set by hide_tensorflow_logs: native_logs_muted() mutes only in the commands


def hide_tensorflow_logs() -> None:
    """Hides TensorFlow's C++ log lines from here on, unless EBGAN_TF_VERBOSE is set (to anything but 0)."""
    global _hiding
    if os.environ.get(VERBOSE_VARIABLE, "0") not in ("", "0"):
        return
    _hiding = True
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # errors such as "failed call to cuInit" included
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def module_run_by_python_m() -> str | None:
    """The module named on the command line when Python was started as `python [options] -m <module>` and is still
    importing that module's packages (it sets sys.argv[0] to "-m" until the module runs); otherwise None."""
    if sys.argv[:1] != ["-m"]:
        return None
    arguments = sys.orig_argv[1:]
    for index, argument in enumerate(arguments):
        if argument == "-m":
            return arguments[index + 1] if index + 1 < len(arguments) else None
        if argument.startswith("-m"):
            return argument[2:]
    return None


def hide_tensorflow_logs_if_run_as_command(package: str) -> None:
    """Called by a command package's __init__: hides TensorFlow's log lines when the process was started as
    `python -m <package>.<command>`, and does nothing when the package is imported by a library user."""
    module = module_run_by_python_m()
    if module is not None and module.startswith(f"{package}."):
        hide_tensorflow_logs()


@contextlib.contextmanager
def native_logs_muted() -> Iterator[None]:
    """Mutes what C++ code writes to stderr inside the block (LiteRT's "Created TensorFlow Lite XNNPACK delegate"),
    where `hide_tensorflow_logs` was called; elsewhere a no-op."""
    if not _hiding:
        yield
        return
    with _stderr_muted():
        yield


Main = Callable[[list[str]], "int | None"]


def reports_errors(command: str, *errors: type[Exception]) -> Callable[[Main], Main]:
    """Decorates a command's main: an error of the given types (the user's errors: bad flags, missing files, ...)
    prints one line, `<command>: error: <message>`, on stderr and the command exits with status 1."""

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def main_reporting_errors(argv: list[str]) -> int | None:
            try:
                return main(argv)
            except errors as error:
                print(f"{command}: error: {error}", file=sys.stderr)
                return 1

        return main_reporting_errors

    return decorate


def check_no_arguments(argv: Sequence[str]) -> None:
    """Refuses positional arguments: every command takes flags only (argv[0] is the program)."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")


def require_flags(*names: str) -> None:
    """A ValueError naming the first of the flags `names` that was not given (or is empty)."""
    for name in names:
        if not flags.FLAGS[name].value:
            raise ValueError(f"--{name} is required.")


def check_at_least_one(values: Mapping[str, int]) -> None:
    """A ValueError naming the first setting (flag name -> value) below 1."""
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"--{name} must be at least 1, got {value}.")


def define_data_dir_flag() -> None:
    """--data_dir, with the same meaning and default in every command."""
    flags.DEFINE_string(
        "data_dir",
        DEFAULT_DATA_DIR,
        "Directory of the prepared data sets (a tensorflow-datasets data_dir, written by `ebgan-data prepare`).",
    )


def quiet_logging() -> None:
    """Logs from WARNING up unless --verbosity is given, so that library INFO lines (tensorflow-datasets') do not
    mix with the command's output."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def catch_stop_signals() -> threading.Event:
    """An event set when SIGINT (Ctrl-C) or SIGTERM (`docker stop`, `kill`) arrives, for a server's main to wait on;
    installed before the server says it is ready, so that a signal sent right after that line is never missed."""
    stopping = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stopping.set())
    return stopping


def wait_for_stop(stopping: threading.Event) -> None:
    """Returns once `stopping` (from `catch_stop_signals`) is set. Waited for in steps: a signal the kernel hands to
    another thread runs its Python handler only when the main thread next runs Python code, which one endless wait
    would never do."""
    while not stopping.wait(0.5):
        pass


def run_main(main: Main, define_flags: Callable[[], None], module_name: str, doc: str | None) -> None:
    """Defines the command's flags and runs `main` under absl, so that `--help` shows its usage and flags; library
    INFO logs are hidden (`quiet_logging`).

    A console script's __main__ is a generated wrapper, so absl would otherwise list no flags and no usage.
    """
    define_flags()
    sys.modules["__main__"].__doc__ = f"{doc or ''}\n{LOG_NOTE}\n"
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def quiet_main(argv: list[str]) -> int | None:
        quiet_logging()
        return main(argv)

    app.run(quiet_main)


def run_in_process(main: Callable[[list[str]], int], define_flags: Callable[[], None], argv: Sequence[str]) -> int:
    """Runs a command inside this process (for tests): defines its flags, parses `argv`, runs `main`, and removes
    the flags again so the next command can define its own. Returns the exit status."""
    before = set(flags.FLAGS)
    define_flags()
    try:
        status = main(flags.FLAGS(list(argv)))
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    return status or 0
