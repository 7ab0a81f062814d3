"""Atomic file writes: a reader sees the old file or the new one, never a half-written one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(temporary_path)` next to `path` (creating the directory), then renames the result onto `path`.

    The temporary file ends with `path`'s name (so writers that check the extension accept it) and is removed
    again if `write` fails; the new file gets the usual permissions (0644).
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=f".{name}")
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_bytes_atomically(path: str, data: bytes) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "wb") as stream:
            stream.write(data)

    write_atomically(path, write)


def write_text_atomically(path: str, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))
