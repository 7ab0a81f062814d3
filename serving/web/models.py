"""The models the web editor edits with: loaded in-process (`Editor`) or behind a gRPC model server.

Both kinds look the same to the page: a name, an `info` (ModelInfo, plus the version),
`edit(source, exemplar, mask, attributes)` on aligned crops, which is what `ebgan_tf.faces.edit_crops` calls,
`edit_composed(source, exemplars, masks, strengths, attributes)` (what `ebgan_tf.faces.compose_crops` calls;
`composes` says whether the export has the signature) and `classify(image)` (the classifier's reading of an aligned
face; `classifies` says whether the model has one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from ebgan_tf.editing import EDIT_COMPOSED, Editor, ModelInfo, classify_error
from ebgan_tf.serving.client import EditClient
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

    def edit(self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray,
             attributes: np.ndarray | None = None) -> np.ndarray:
        return self._locked(self._editor.edit, source, exemplar, mask, attributes)

    def edit_composed(self, source: np.ndarray, exemplars: np.ndarray, masks: np.ndarray,
                      strengths: Sequence[float] | None = None,
                      attributes: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return self._locked(self._editor.edit_composed, source, exemplars, masks, strengths, attributes)

    def classify(self, image: np.ndarray) -> np.ndarray:
        return self._locked(self._editor.classify, image)


class RemoteModel:
    """A model served by TF Serving or `ebgan-serve`, called over gRPC (its metadata and signature list are read on
    first use)."""

    def __init__(self, name: str, client: EditClient):
        self.name = name
        self.path = f"grpc://{client.server}/{name}"
        self._client = client
        self._info: ModelInfo | None = None
        self._classify_error: str | None = None
        self._signatures: frozenset[str] = frozenset()

    @property
    def info(self):  # ebgan_tf.serving.client.ModelInfo: ModelInfo plus the version that answered
        if self._info is None:
            info = self._client.model_info(self.name)
            signatures = self._client.metadata(self.name, info.version).signatures  # GetModelMetadata
            self._classify_error = classify_error(info, signatures)
            self._signatures = frozenset(signatures)
            self._info = info
        return self._info

    @property
    def classifies(self) -> bool:
        return self.info is not None and self._classify_error is None

    @property
    def composes(self) -> bool:
        return self.info is not None and EDIT_COMPOSED in self._signatures

    def classify(self, image: np.ndarray) -> np.ndarray:
        if not self.classifies:
            raise ValueError(self._classify_error)
        return self._client.classify(image, model_name=self.name, version=self.info.version)

    @property
    def version(self) -> int:
        return self.info.version

    def edit(self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray,
             attributes: np.ndarray | None = None) -> np.ndarray:
        signature = "edit" if attributes is None else "edit_filtered"
        return self._client.edit(source, exemplar, mask, attributes, model_name=self.name, version=self.info.version,
                                 signature=signature)

    def edit_composed(self, source: np.ndarray, exemplars: np.ndarray, masks: np.ndarray,
                      strengths: Sequence[float] | None = None,
                      attributes: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return self._client.edit_composed(source, exemplars, masks, strengths, attributes, model_name=self.name,
                                          version=self.info.version, info=self.info)


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
