"""Importing the library changes nothing in the user's process; the commands still hide TensorFlow's start-up lines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ebgan_tf.cli import VERBOSE_VARIABLE

# Run in a fresh process: the state before and after a library user's imports (the README's client import first).
_IMPORT_AS_A_USER = """
import os, sys
before = (os.environ.get("TF_CPP_MIN_LOG_LEVEL"), list(sys.meta_path), os.fstat(2))
from ebgan_tf.serving.client import EditClient
import ebgan_tf, ebgan_tf.training, ebgan_tf.export, ebgan_tf.serving, ebgan_tf.serving.web, ebgan_tf.cli
after = (os.environ.get("TF_CPP_MIN_LOG_LEVEL"), list(sys.meta_path), os.fstat(2))
added = [getattr(finder, "__module__", "") for finder in after[1] if finder not in before[1]]
print(before[0], after[0], " ".join(added) or "-",
      (before[2].st_dev, before[2].st_ino) == (after[2].st_dev, after[2].st_ino), ebgan_tf.cli._hiding, sep=",")
"""


def _user_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE_VARIABLE)}


@pytest.mark.slow  # a fresh Python process importing TensorFlow
def test_importing_the_client_as_a_library_user_leaves_the_process_untouched():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS_A_USER], env=_user_environment(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    level_before, level_after, added_finders, same_fd, hiding = result.stdout.strip().splitlines()[-1].split(",")
    assert (level_before, level_after) == ("None", "None")  # no TF_CPP_MIN_LOG_LEVEL set by the import
    # No import hook of ours (absl and six add their own finders).
    assert not [module for module in added_finders.split() if module.startswith("ebgan_tf")], added_finders
    assert same_fd == "True"  # file descriptor 2 is still the original stderr
    assert hiding == "False"  # and native_logs_muted() mutes nothing


@pytest.mark.slow  # fresh processes importing TensorFlow
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ebgan_tf.training.evaluate", "--help"],
        [os.path.join(os.path.dirname(sys.executable), "ebgan-eval"), "--help"],
    ],
    ids=["python -m", "console script"],
)
def test_the_commands_still_hide_tensorflow_start_up_lines(command, tmp_path):
    result = subprocess.run(command, cwd=tmp_path, env=_user_environment(), capture_output=True, text=True, timeout=300)
    assert "--model_dir" in result.stdout, result.stderr[-2000:]  # the usage, after TensorFlow was imported
    assert result.stderr == ""
