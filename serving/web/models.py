"""The models the web editor edits with: loaded in-process (`Editor`) or behind a gRPC model server.

Both kinds are `CropEditor`s (ebgan_tf.editing), which is what `ebgan_tf.faces.edit_crops` and `compose_crops` take:
an `info` (ModelInfo, plus the version), `edit(source, exemplar, mask, attributes)` on aligned crops,
`edit_composed(source, exemplars, masks, strengths, attributes)` and `classify(images)` (the classifier's reading of
aligned faces). For the page they also have a name, a path, `composes` (whether the export has the edit_composed
signature) and `classifies` (whether the model has a classifier).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ebgan_tf.editing import EDIT_COMPOSED, CropEditor, Editor, ModelInfo
from ebgan_tf.serving.client import EditClient, ServedModel
from ebgan_tf.serving.errors import invalid, not_found


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

    @property
    def classifies(self) -> bool:
        return self._editor.classifies

    @property
    def composes(self) -> bool:
        """Whether the export has the edit_composed signature (exports written before it do not)."""
        return EDIT_COMPOSED in self._editor.signatures

    def _locked(self, call, *args):
        if self._lock is None:
            return call(*args)
        with self._lock:
            return call(*args)

    def edit(
        self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray, attributes: np.ndarray | None = None
    ) -> np.ndarray:
        return self._locked(self._editor.edit, source, exemplar, mask, attributes)

    def edit_composed(
        self,
        source: np.ndarray,
        exemplars: Sequence[np.ndarray] | np.ndarray,
        masks: Sequence[np.ndarray] | np.ndarray,
        strengths: Sequence[float] | np.ndarray | None = None,
        attributes: Sequence[np.ndarray | None] | np.ndarray | None = None,
    ) -> np.ndarray:
        return self._locked(self._editor.edit_composed, source, exemplars, masks, strengths, attributes)

    def classify(self, images: np.ndarray) -> np.ndarray:
        return self._locked(self._editor.classify, images)


class RemoteModel(ServedModel):
    """A model served by TF Serving or `ebgan-serve`, called over gRPC (`ServedModel`: its metadata and signature
    list are read on first use)."""

    def __init__(self, name: str, client: EditClient):
        super().__init__(client, name)
        self.path = f"grpc://{client.server}/{name}"

    @property
    def composes(self) -> bool:
        return EDIT_COMPOSED in self.signatures

    @property
    def version(self) -> int:
        return self.info.version


if TYPE_CHECKING:  # mypy: both kinds of model are CropEditors
    _LOCAL_MODEL: type[CropEditor] = LocalModel
    _REMOTE_MODEL: type[CropEditor] = RemoteModel


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
            raise ValueError(
                "Give at least one model"
                if not models
                else f"Two models are both named {', '.join(duplicated)}; give them distinct names."
            )
        self._models: Mapping[str, LocalModel | RemoteModel] = {model.name: model for model in models}
        self.default = names[0]

    @classmethod
    def load(cls, paths: Sequence[str]) -> ModelSet:
        """Models loaded in-process from export paths (named after their base directory)."""
        return cls([LocalModel(model_name(path), path) for path in paths])

    @classmethod
    def remote(cls, server: str, names: Sequence[str], timeout: float) -> ModelSet:
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
