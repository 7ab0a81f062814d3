"""Versions on disk: poll the base paths, load what the version policy asks for, unload the rest."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Sequence

import grpc
from absl import logging
from tensorflow_serving.apis import get_model_status_pb2

from ebgan_tf.serving.errors import not_found
from ebgan_tf.serving.servable import Servable
from ebgan_tf.serving.server_config import ModelSource, VersionPolicy

State = get_model_status_pb2.ModelVersionStatus.State


MAX_VERSION = 2**63 - 1  # versions are int64, as in TF Serving


def version_number(entry: str) -> int | None:
    """The version a directory name stands for: ASCII decimal digits of an int64 (leading zeros allowed, as TF
    Serving parses it); None for any other name."""
    if not (entry.isascii() and entry.isdigit()):
        return None
    number = int(entry)
    return number if number <= MAX_VERSION else None


def _versions_on_disk(base_path: str, skipped: set[str]) -> dict[int, str]:
    """Version -> directory name of the version directories that may be complete (saved_model.pb present). A
    directory with saved_model.pb whose name is no version, or a second name of the same version (042 beside 42),
    is skipped, with one log line per name (`skipped` holds the names already logged)."""
    try:
        entries = sorted(os.listdir(base_path))
    except OSError:
        return {}
    versions: dict[int, str] = {}
    for entry in entries:
        if not os.path.isfile(os.path.join(base_path, entry, "saved_model.pb")):
            continue
        number = version_number(entry)
        if number is None or number in versions:
            if entry not in skipped:
                skipped.add(entry)
                reason = (
                    f"a second directory of version {number}"
                    if number is not None
                    else "not a version number (decimal digits of an int64)"
                )
                logging.warning("Skipping %s: %s.", os.path.join(base_path, entry), reason)
            continue
        versions[number] = entry
    return versions


def _fingerprint(path: str) -> tuple:
    """The files of a version directory with their sizes and modification times: it changes when they do."""
    files = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                info = os.stat(os.path.join(root, name))
            except OSError:
                continue
            files.append((os.path.relpath(os.path.join(root, name), path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(files))


@dataclasses.dataclass
class _Failure:
    """A version that failed to load: its files then, how often it failed and when it was last tried."""

    fingerprint: tuple
    attempts: int
    tried: float


def _wanted_versions(policy: VersionPolicy, versions: Sequence[int]) -> set[int]:
    """The versions a TF Serving version policy serves out of `versions` (empty policy = latest 1)."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(versions)
    if kind == "specific":
        return set(versions) & set(policy.specific.versions)
    count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return set(sorted(versions)[-count:])


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class _Model:
    """The state of one configured model: loaded versions and per-version status."""

    def __init__(self, source: ModelSource):
        self.source = source
        self.loaded: dict[int, Servable] = {}
        self.status: dict[int, tuple[int, grpc.StatusCode, str]] = {}  # version -> (state, code, message)
        self.failed: dict[int, _Failure] = {}
        self.directories: dict[int, str] = {}  # version -> its directory's name under the base path
        self.skipped: set[str] = set()  # directory names skipped (and logged once)


class ModelManager:
    """Keeps the served versions of every model in line with its base path and version policy."""

    def __init__(
        self,
        sources: Sequence[ModelSource],
        poll_wait_seconds: float,
        load_retry_interval_seconds: float = 60.0,
        max_num_load_retries: int = 5,
    ):
        self._models = {source.name: _Model(source) for source in sources}
        self._poll_wait_seconds = poll_wait_seconds
        self._retry_interval = load_retry_interval_seconds
        self._max_retries = max_num_load_retries
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Loads what is on disk now, then keeps polling in a background thread (if poll_wait_seconds > 0)."""
        self.poll()
        if self._poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait_seconds):
            self.poll()

    def poll(self) -> None:
        """One pass over every base path: load wanted versions first, then unload the others."""
        for model in self._models.values():
            try:
                self._poll_model(model)
            except Exception:  # pylint: disable=broad-except  (a poll failure must not stop serving)
                logging.exception("Polling %s failed", model.source.base_path)

    def _poll_model(self, model: _Model) -> None:
        model.directories = _versions_on_disk(model.source.base_path, model.skipped)
        on_disk = set(model.directories)
        if not on_disk and not model.loaded:
            logging.log_every_n_seconds(
                logging.WARNING, "No versions of model %s found under %s", 60, model.source.name, model.source.base_path
            )
        for version in set(model.failed) - on_disk:
            del model.failed[version]
        while True:  # a version that fails to load leaves the policy to pick among the others
            loadable = [version for version in on_disk if self._may_load(model, version)]
            wanted = _wanted_versions(model.source.version_policy, loadable)
            missing = sorted(wanted - set(model.loaded), reverse=True)
            if not missing:
                break
            for version in missing:
                self._load(model, version)
        with self._lock:
            for version in set(model.loaded) - wanted:
                logging.info("Unloading model %s version %d", model.source.name, version)
                del model.loaded[version]
                model.status[version] = (State.END, grpc.StatusCode.OK, "")

    def _may_load(self, model: _Model, version: int) -> bool:
        """A version that never failed; or one that failed and whose files changed since, or whose retry interval
        has passed (at most max_num_load_retries times)."""
        failure = model.failed.get(version)
        if failure is None:
            return True
        if _fingerprint(os.path.join(model.source.base_path, model.directories[version])) != failure.fingerprint:
            failure.attempts = 0  # new files: a fresh round of retries
            return True
        return failure.attempts <= self._max_retries and time.monotonic() - failure.tried >= self._retry_interval

    def _load(self, model: _Model, version: int) -> None:
        name, path = model.source.name, os.path.join(model.source.base_path, model.directories[version])
        fingerprint = _fingerprint(path)
        with self._lock:
            model.status[version] = (State.LOADING, grpc.StatusCode.OK, "")
        try:
            servable = Servable(name, version, path)
        except Exception as error:  # pylint: disable=broad-except  (a bad export must not stop serving)
            logging.error("Loading model %s version %d from %s failed: %s", name, version, path, error)
            previous = model.failed.get(version)
            failure = _Failure(fingerprint, (previous.attempts if previous else 0) + 1, time.monotonic())
            retry = (
                f"retrying in {self._retry_interval:g} s or when its files change"
                if failure.attempts <= self._max_retries
                else f"{self._max_retries} retries used up; retrying when its files change"
            )
            message = f"Loading {path} failed (attempt {failure.attempts}; {retry}): {_first_line(error)}"
            with self._lock:
                model.failed[version] = failure
                model.status[version] = (State.END, grpc.StatusCode.UNKNOWN, message)
            return
        logging.info("Loaded model %s version %d from %s", name, version, path)
        with self._lock:
            model.failed.pop(version, None)
            model.loaded[version] = servable
            model.status[version] = (State.AVAILABLE, grpc.StatusCode.OK, "")

    def _model(self, name: str) -> _Model:
        if name not in self._models:
            raise not_found(
                f"Servable not found for request: model {name!r} is not served "
                f"(served models: {', '.join(sorted(self._models))})."
            )
        return self._models[name]

    def _requested_version(self, model: _Model, version: int | None, label: str | None) -> int | None:
        if label:
            if label not in model.source.version_labels:
                raise not_found(f"Unrecognized servable version label {label!r} for model {model.source.name!r}.")
            return model.source.version_labels[label]
        return version

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses: a version, a labelled version, or the highest loaded one."""
        model = self._model(name)
        wanted = self._requested_version(model, version, label)
        with self._lock:
            if wanted is None and model.loaded:
                return model.loaded[max(model.loaded)]
            if wanted in model.loaded:
                return model.loaded[wanted]
        what = "Latest" if wanted is None else f"version {wanted}" + (f" (label {label!r})" if label else "")
        raise not_found(f"Servable not found for request: {what} of model {name!r}.")

    def status(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> list[tuple[int, int, grpc.StatusCode, str]]:
        """(version, state, error code, message) of every known version, or of the requested one."""
        model = self._model(name)
        wanted = self._requested_version(model, version, label)
        with self._lock:
            rows = [(v, *model.status[v]) for v in sorted(model.status) if wanted is None or v == wanted]
        if not rows:
            raise not_found(
                f"Could not find any versions of model {name!r}"
                + ("." if wanted is None else f" with version {wanted}.")
            )
        return rows
