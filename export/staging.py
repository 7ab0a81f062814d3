"""Publishing an export version complete or not at all, and removing what a killed export left.

TF Serving and ebgan-serve poll `<export_base>/<name>/` for numeric version folders, so a version folder must only
ever appear complete (and checked, with --verify). Everything is written to hidden staging folders
`<parent>/.tmp-<version>-XXXXXXXX` inside the destination folders (the same file system, so the final rename is
atomic) and renamed into place at the end: the TFLite version folder first, the SavedModel version folder last.

While an export works in a staging folder it holds an exclusive `flock` on it. The lock goes with the process, so a
staging folder nobody holds was left by an export that was killed (SIGKILL, out of memory, power loss) and is removed
by the next export (`remove_export_litter`); the folder of an export still running is left alone.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so a running export's staging folder is not told from litter
    fcntl = None  # type: ignore[assignment]

STAGING_PREFIX = ".tmp-"  # + "<version>-" + mkdtemp's random characters
PARTIAL_PREFIX = ".partial-"  # ebgan_tf.files.write_atomically's temporary files
_STAGING_NAME = re.compile(r"\.tmp-\d+-[a-z0-9_]+")


def is_staging_name(name: str) -> bool:
    """Whether `name` is the name of a staging folder (`.tmp-<version>-<random>`), and of nothing else."""
    return _STAGING_NAME.fullmatch(name) is not None


def _try_lock(path: str) -> int | None:
    """An open descriptor of the folder `path` holding an exclusive flock on it, or None when another process holds
    it (or the folder is gone)."""
    if fcntl is None:  # a descriptor to close, standing for a lock
        return os.open(os.devnull, os.O_RDONLY) if os.path.isdir(path) else None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(descriptor)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return descriptor


class Staging:
    """A hidden staging folder `<parent>/.tmp-<version>-XXXXXXXX`, locked while this process works in it.

    Use as a context manager: `publish(target)` renames it into place; leaving the block without publishing (an
    error, a failed check, Ctrl-C) removes it, and the folders of `parent`'s path it created when they are empty.
    """

    def __init__(self, parent: str, version: int):
        self.parent = parent
        self._created = None  # the highest folder of `parent`'s path that this staging folder creates
        folder = os.path.abspath(parent)
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            self._created, folder = folder, os.path.dirname(folder)
        os.makedirs(parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=parent)
        self._lock = _try_lock(self.path)
        self.published: str | None = None

    def publish(self, target: str) -> str:
        """Renames the staging folder to `target` (which must not exist, or be an empty folder), with the usual
        permissions (mkdtemp makes it 0700); returns `target`."""
        os.chmod(self.path, 0o755)
        os.rename(self.path, target)
        self.published = target
        return target

    def close(self) -> None:
        """Removes the staging folder unless it was published, and releases its lock."""
        try:
            if self.published is None:
                shutil.rmtree(self.path, ignore_errors=True)
                folder = os.path.abspath(self.parent)
                while self._created is not None and folder.startswith(self._created):
                    try:
                        os.rmdir(folder)
                    except OSError:
                        break  # not empty (another export's files) or gone
                    folder = os.path.dirname(folder)
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _without_partial_files(folder: str) -> tuple[list[str], bool]:
    """Removes the `.partial-*` files of `folder` (an interrupted `write_atomically`); returns their paths and
    whether the folder is empty now."""
    removed = []
    entries = sorted(os.listdir(folder))
    for name in entries:
        path = os.path.join(folder, name)
        if name.startswith(PARTIAL_PREFIX) and os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed, len(removed) == len(entries)


def remove_export_litter(model_base: str, tflite_base: str) -> list[str]:
    """Removes what exports killed earlier left in `model_base` (`<export_base>/<name>`) and `tflite_base`
    (`<export_base>/<name>-tflite`): staging folders `.tmp-<version>-*` that no running export holds (with the
    conversion folders inside them), `.partial-*` files inside `<name>-tflite/<version>/` and `<name>-tflite/<version>/`
    folders left empty. Returns the paths removed, in order (call before the export writes anything). Nothing else
    is touched, and neither folder is created."""
    removed = []
    for base in (model_base, tflite_base):
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if is_staging_name(name) and os.path.isdir(path) and not os.path.islink(path):
                lock = _try_lock(path)
                if lock is None:
                    continue  # an export running now works in it
                try:
                    shutil.rmtree(path)
                finally:
                    os.close(lock)
                removed.append(path)
            elif base == tflite_base and name.isdigit() and os.path.isdir(path) and not os.path.islink(path):
                partial, empty = _without_partial_files(path)
                removed += partial
                if empty:
                    os.rmdir(path)
                    removed.append(path)
    return removed


def remove_unpublished_tflite(target: str, saved_model_target: str) -> bool:
    """Removes the TFLite version folder `target` when it holds files and the SavedModel version `saved_model_target`
    does not exist: such TFLite files belong to no published version (an export killed between its two renames
    leaves them, as does removing a SavedModel version by hand). Call just before publishing that version; returns
    whether it removed the folder."""
    if not (os.path.isdir(target) and os.listdir(target)) or os.path.exists(saved_model_target):
        return False
    # Moved into a staging folder of its own first: a kill from here on leaves only staging litter.
    with Staging(os.path.dirname(target), int(os.path.basename(target))) as aside:
        os.rename(target, os.path.join(aside.path, "unpublished"))
    return True
