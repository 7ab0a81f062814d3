"""What every absl command line of the project shares.

Each command defines its flags in a `define_flags()` function rather than at import, because several commands
share flag names (--model_name, --region, ...) and tests run them in one process (see `run_in_process`).
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import app, flags


def run_main(main: Callable[[list[str]], int], define_flags: Callable[[], None], module_name: str,
             doc: str | None) -> None:
    """Defines the command's flags and runs `main` under absl, so that `--help` shows its usage and flags.

    A console script's __main__ is a generated wrapper, so absl would otherwise list no flags and no usage.
    """
    define_flags()
    sys.modules["__main__"].__doc__ = doc
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)


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
