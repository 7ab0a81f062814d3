"""The installed distribution: one top-level import name (ebgan_tf), every console script inside it, and a user's own
modules called training, export or serving left alone."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest


def test_every_console_script_lives_inside_ebgan_tf_and_loads():
    scripts = [
        entry for entry in importlib.metadata.distribution("ebgan-tf").entry_points if entry.group == "console_scripts"
    ]
    assert {entry.name for entry in scripts} >= {"ebgan-train", "ebgan-export", "ebgan-serve", "ebgan-web"}
    for entry in scripts:
        assert entry.value.startswith("ebgan_tf."), entry
        assert callable(entry.load()), entry


@pytest.mark.slow  # a fresh Python process importing TensorFlow
def test_user_modules_named_training_export_and_serving_do_not_clash(tmp_path):
    for name in ("training", "serving"):
        (tmp_path / f"{name}.py").write_text(f"OWNER = 'user {name}'\n")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "__init__.py").write_text("OWNER = 'user export'\n")
    script = (
        "import training, export, serving\n"
        "from ebgan_tf.serving.client import EditClient\n"
        "from ebgan_tf.training.train_lib import train\n"
        "from ebgan_tf.export.saved_model import export_saved_model\n"
        "print(training.OWNER, export.OWNER, serving.OWNER, sep=',')\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "user training,user export,user serving"
