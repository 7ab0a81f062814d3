"""The models the web editor edits with: loaded in-process (`Editor`) or behind a gRPC model server.

Both kinds look the same to the page: a name, an `info` (ModelInfo, plus the version) and
`edit(source, exemplar, mask, transfer)` on aligned crops, which is what `ebgan_tf.faces.edit_crops` calls.
"""

from __future__ import annotations

import os
import threading
from typing import Mapping, Sequence

import numpy as np

from ebgan_tf.editing import Editor, ModelInfo
from serving.client import EditClient
from serving.errors import invalid, not_found


class LocalModel:
    """An exported model loaded in this process (SavedModel or .tflite)."""

    def __init__(self, name: str, path: str):
        self.name = name
        self._editor = Editor.load(path)
        self.path = self._editor.path
        version = os.path.basename(os.path.normpath(self.path))
        self.version = int(version) if version.isdigit() else None
        # LiteRT interpreters must not run two calls at once; SavedModel signatures may.
        self._lock = threading.Lock() if self.path.endswith(".tflite") else None

    @property
    def info(self) -> ModelInfo:
        return self._editor.info

    def edit(self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray,
             transfer: np.ndarray | None = None) -> np.ndarray:
        if self._lock is None:
            return self._editor.edit(source, exemplar, mask, transfer)
        with self._lock:
            return self._editor.edit(source, exemplar, mask, transfer)


class RemoteModel:
    """A model served by TF Serving or `ebgan-serve`, called over gRPC (its metadata is read on first use)."""

    def __init__(self, name: str, client: EditClient):
        self.name = name
        self.path = f"grpc://{client.server}/{name}"
        self._client = client
        self._info = None

    @property
    def info(self):  # serving.client.ModelInfo: ModelInfo plus the version that answered
        if self._info is None:
            self._info = self._client.model_info(self.name)
        return self._info

    @property
    def version(self) -> int:
        return self.info.version

    def edit(self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray,
             transfer: np.ndarray | None = None) -> np.ndarray:
        signature = "edit" if transfer is None else "edit_filtered"
        return self._client.edit(source, exemplar, mask, transfer, model_name=self.name, version=self.info.version,
                                 signature=signature)


def model_name(path: str) -> str:
    """exports/ebgan/1 -> ebgan; exports/ebgan -> ebgan; model_dynamic.tflite -> model_dynamic."""
    path = os.path.normpath(path)
    if path.endswith(".tflite"):
        return os.path.splitext(os.path.basename(path))[0]
    base = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) if base.isdigit() else base


class ModelSet:
    """The models the page offers, by name, in the order given (the first is the default)."""

    def __init__(self, models: Sequence[LocalModel | RemoteModel]):
        names = [model.name for model in models]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if not models or duplicated:
            raise ValueError("Give at least one model" if not models else
                             f"Two models are both named {', '.join(duplicated)}; give them distinct names.")
        self._models: Mapping[str, LocalModel | RemoteModel] = {model.name: model for model in models}
        self.default = names[0]

    @classmethod
    def load(cls, paths: Sequence[str]) -> "ModelSet":
        """Models loaded in-process from export paths (named after their base directory)."""
        return cls([LocalModel(model_name(path), path) for path in paths])

    @classmethod
    def remote(cls, server: str, names: Sequence[str], timeout: float) -> "ModelSet":
        """Models served at `server` (host:port of TF Serving's gRPC API), one channel for all."""
        client = EditClient(server, timeout)
        return cls([RemoteModel(name, client) for name in names])

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str | None) -> LocalModel | RemoteModel:
        """The model of that name; None or "" is the default model. NOT_FOUND or INVALID_ARGUMENT otherwise."""
        if name is None or name == "":
            return self._models[self.default]
        if not isinstance(name, str):
            raise invalid(f"The model must be given by its name (a string), not a {type(name).__name__}.")
        if name not in self._models:
            raise not_found(f"No model named {name!r}; this editor serves {', '.join(self._models)}.")
        return self._models[name]
