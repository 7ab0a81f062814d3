"""Killed and failed exports (export/staging.py, export/main.py): a version folder appears complete and checked or
not at all, and the next ebgan-export removes what a killed one left. Real processes and real SIGKILLs, on a tiny
untrained EBGAN (SavedModel + the float32 TFLite file)."""

from __future__ import annotations

import os
import signal
import stat
import time

import pytest

from ebgan_tf.editing import Editor
from ebgan_tf.export.staging import Staging
from ebgan_tf.export.verify import ParityCheck
from tests.helpers.export_fixtures import HANG_MARKER, export_cli, start_export
from tests.helpers.tiny import write_untrained_run
from tests.helpers.train_fixtures import killed_on_exit

NAME = "ebgan"
TFLITE_FILE = "model_float32.tflite"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data_dir) -> str:
    return write_untrained_run(tmp_path_factory.mktemp("run") / "model", data_dir, variant="ebgan")


def flags(model_dir: str, base, *extra: str) -> list[str]:
    return [f"--model_dir={model_dir}", f"--export_base={base}", f"--name={NAME}", "--tflite=float32", *extra]


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def staging_folders(folder) -> list[str]:
    return [name for name in listing(folder) if name.startswith(".tmp-")]


def assert_published_complete(base, versions: list[str]) -> None:
    """`<name>/` and `<name>-tflite/` hold exactly `versions`, each SavedModel with its TFLite file."""
    assert listing(base / NAME) == versions
    assert listing(base / f"{NAME}-tflite") == versions
    for version in versions:
        assert os.path.exists(base / NAME / version / "saved_model.pb")
        assert listing(base / f"{NAME}-tflite" / version) == [TFLITE_FILE]
        for folder in (base / NAME / version, base / f"{NAME}-tflite" / version):  # not mkdtemp's 0700
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755, folder


def folders(path) -> list[str]:
    """The folders in `path` (TensorFlow's autograph leaves generated .py files in the temporary folder: not ours)."""
    return [name for name in listing(path) if os.path.isdir(os.path.join(path, name))]


def removed_line(path) -> str:
    return f"Removed {path}, left by an export that was killed."


def test_an_export_removes_what_killed_exports_left_and_nothing_else(model_dir, tmp_path, monkeypatch):
    base = tmp_path / "exports"
    model_base, tflite_base = base / NAME, base / f"{NAME}-tflite"
    litter = [
        model_base / ".tmp-1-abcd1234",
        tflite_base / ".tmp-1-ef_56789",
        tflite_base / "2",
        tflite_base / "3" / ".partial-x1y2z3.model_float32.tflite",
        tflite_base / "3",
    ]
    (litter[0] / "variables").mkdir(parents=True)  # a SavedModel half written
    (litter[0] / "saved_model.pb").write_bytes(b"half")
    (litter[1] / ".convert-q7r8s9").mkdir(parents=True)  # the conversion folder inside the TFLite staging folder
    litter[2].mkdir()  # an empty TFLite version folder
    litter[4].mkdir()
    litter[3].write_bytes(b"half")  # an interrupted write_atomically, alone in its version folder
    kept = [
        model_base / "notes",
        model_base / ".tmp-notes",
        model_base / ".tmp-",
        model_base / ".tmpabc",
        model_base / "tmp-4-abcd",
        tflite_base / "5" / "model_float32.tflite",
        tflite_base / "5" / "README",
        base / "other" / ".tmp-1-abcd1234" / "saved_model.pb",
        base / "other-tflite" / "6",
    ]
    for path in kept:
        if path.suffix or path.name == "README" or path.name == "saved_model.pb":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"kept")
        else:
            path.mkdir(parents=True)
    (tflite_base / ".tmp-7-abcd1234").write_bytes(b"a file, not a staging folder")
    kept.append(tflite_base / ".tmp-7-abcd1234")
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(system_temp))

    with Staging(str(model_base), 9) as running:  # the staging folder of an export running now: locked, kept
        status, out, err = export_cli(*flags(model_dir, base, "--version=4"))
        assert status == 0, err
        assert os.path.isdir(running.path)
    for path in litter:
        assert not path.exists(), path
    removed = [line for line in out.splitlines() if line.startswith("Removed ")]
    assert removed == [removed_line(path) for path in litter]  # one line each, in order
    for path in kept:
        assert path.exists(), path
    assert listing(model_base) == sorted([".tmp-", ".tmp-notes", ".tmpabc", "4", "notes", "tmp-4-abcd"])
    assert listing(tflite_base) == [".tmp-7-abcd1234", "4", "5"]
    assert listing(tflite_base / "4") == [TFLITE_FILE]
    assert folders(system_temp) == []  # the conversion's SavedModel went into the staging folder, not here


def test_a_failed_verify_publishes_nothing_and_checked_the_staged_files(model_dir, tmp_path, monkeypatch):
    base = tmp_path / "exports"
    seen = {}

    def failing_verify(trainer, saved_model_dir, tflite_paths=None, count=4):
        seen.update(saved=saved_model_dir, tflite=dict(tflite_paths))
        seen["existed"] = [
            os.path.exists(os.path.join(saved_model_dir, "saved_model.pb")),
            *map(os.path.exists, tflite_paths.values()),
        ]
        seen["published"] = listing(base / NAME) + listing(base / f"{NAME}-tflite")
        return [
            ParityCheck("Keras vs SavedModel (edit)", "max level difference", 0.0, 1, True),
            ParityCheck("TFLite float32 vs SavedModel (edit)", "max level difference", 9.0, 1, False),
        ]

    monkeypatch.setattr("ebgan_tf.export.verify.verify_export", failing_verify)
    status, out, err = export_cli(*flags(model_dir, base, "--verify"))
    assert status == 1, out
    assert err == "ebgan-export: error: parity check failed (see above).\n"
    assert "TFLite float32 vs SavedModel (edit)" in out and out.rstrip().endswith("FAILED")
    # The checks ran on the staged files, before anything was published ...
    assert seen["existed"] == [True, True]
    assert os.path.dirname(seen["saved"]) == str(base / NAME)
    assert os.path.basename(seen["saved"]).startswith(".tmp-1-")
    assert os.path.dirname(os.path.dirname(seen["tflite"]["float32"])) == str(base / f"{NAME}-tflite")
    assert all(name.startswith(".tmp-1-") for name in seen["published"]) and len(seen["published"]) == 2
    # ... and nothing is left: no version, no staging folder, no folder the export created.
    assert listing(base) == []
    assert "SavedModel: " not in out and "TFLite float32: " not in out


@pytest.mark.slow  # two exports, one in a process of its own
def test_sigkill_during_the_export_publishes_nothing_and_the_next_export_cleans_up(model_dir, tmp_path):
    base = tmp_path / "exports"
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    log = tmp_path / "killed.log"
    process = start_export(flags(model_dir, base), str(log), EBGAN_TEST_HANG_IN_CONVERSION="1", TMPDIR=str(system_temp))
    with killed_on_exit([process]):
        deadline = time.monotonic() + 600
        while HANG_MARKER not in log.read_text():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the export did not reach the TFLite conversion"
            time.sleep(0.05)
        # The SavedModel is complete in its staging folder, the TFLite conversion under way in its own.
        [saved_staging] = staging_folders(base / NAME)
        [tflite_staging] = staging_folders(base / f"{NAME}-tflite")
        assert listing(base / NAME) == [saved_staging] and listing(base / f"{NAME}-tflite") == [tflite_staging]
        assert os.path.exists(base / NAME / saved_staging / "saved_model.pb")
        assert any(name.startswith(".convert-") for name in listing(base / f"{NAME}-tflite" / tflite_staging))
        process.send_signal(signal.SIGKILL)
        assert process.wait(60) == -signal.SIGKILL
    # No version visible, so none without its TFLite file; nothing in the system's temporary folder.
    assert not [name for name in listing(base / NAME) + listing(base / f"{NAME}-tflite") if name.isdigit()]
    assert folders(system_temp) == []

    status, out, err = export_cli(*flags(model_dir, base))
    assert status == 0, err
    assert removed_line(base / NAME / saved_staging) in out
    assert removed_line(base / f"{NAME}-tflite" / tflite_staging) in out
    assert_published_complete(base, ["1"])
    assert Editor.load(str(base / NAME)).info.variant == "ebgan"


@pytest.mark.slow  # two exports, one in a process of its own
def test_sigkill_between_the_two_renames_leaves_no_saved_model_version_and_the_next_export_replaces_the_tflite_files(
    model_dir, tmp_path
):
    base = tmp_path / "exports"
    log = tmp_path / "killed.log"
    with killed_on_exit(
        [start_export(flags(model_dir, base), str(log), EBGAN_TEST_KILL_BEFORE_SAVED_MODEL_PUBLISH="1")]
    ) as (process,):
        assert process.wait(600) == -signal.SIGKILL, log.read_text()[-3000:]
    # The TFLite files were published, the SavedModel was not: servers see no version 1.
    [saved_staging] = staging_folders(base / NAME)
    assert listing(base / NAME) == [saved_staging]
    assert listing(base / f"{NAME}-tflite") == ["1"] and listing(base / f"{NAME}-tflite" / "1") == [TFLITE_FILE]

    status, out, err = export_cli(*flags(model_dir, base))
    assert status == 0, err
    assert removed_line(base / NAME / saved_staging) in out
    assert f"Removed {base / f'{NAME}-tflite' / '1'}: TFLite files of no published version" in out
    assert_published_complete(base, ["1"])
