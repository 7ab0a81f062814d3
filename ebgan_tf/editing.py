"""Edit faces with an exported model: a SavedModel directory or a .tflite file, behind one API.

    editor = Editor.load("exports/ebgan/1")            # or "exports/ebgan-tflite/1/model_dynamic.tflite"
    mask = editor.info.region_mask("mouth")            # for images at the model's alignment
    edited = editor.edit(source, exemplar, mask, attributes=editor.info.attributes_from(drop=["Mustache"]))
    composed = editor.edit_composed(source, [b, c], [eyes, mouth], strengths=[0.7, 1.0])  # a part per exemplar
    reading = editor.classify(exemplar)                # Att-EBGAN: probability per attribute (> 0.5 = present)

`CropEditor` is what every model that edits aligned crops offers: `Editor` here, `ServedModel` over gRPC
(`EditClient.model(name)`, ebgan_tf.serving.client) and the web editor's `LocalModel` / `RemoteModel`. Code that only
edits takes a `CropEditor`, not one of them (docs/method.md, "Glossary", names its arguments).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import numpy as np

from ebgan_tf.cli import native_logs_muted
from ebgan_tf.config import ATT_EBGAN, validate_attribute_names

EDIT, EDIT_FILTERED, CLASSIFY, METADATA = "edit", "edit_filtered", "classify", "metadata"
EDIT_COMPOSED = "edit_composed"


_Info = TypeVar("_Info", bound="ModelInfo")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What an exported model's `metadata` signature says, and the input helpers that follow from it."""

    attribute_names: tuple[str, ...]
    image_size: int
    variant: str
    landmark_template: np.ndarray  # float32 [5, 2]: the five landmarks of an aligned face at image_size

    @classmethod
    def from_metadata(cls: type[_Info], metadata: Mapping[str, np.ndarray], **extra) -> _Info:
        """Parses the outputs of the `metadata` signature (from TensorFlow, TFLite or a Predict response)."""
        return cls(
            attribute_names=tuple(_text(name) for name in np.ravel(metadata["attribute_names"])),
            image_size=int(np.asarray(metadata["image_size"]).item()),
            variant=_text(metadata["variant"]),
            landmark_template=np.asarray(metadata["landmark_template"], np.float32).reshape(5, 2),
            **extra,
        )

    def attributes_from(self, drop: Sequence[str] = (), keep: Sequence[str] | None = None) -> np.ndarray | None:
        """The `attributes` vector [n] of a filtered edit (1 = transfer, 0 = filter out) from the words of the
        command lines (--drop, --keep) and the web JSON ("drop"): the one place they are mapped (docs/method.md,
        "Glossary"). `drop` names attributes to filter out; `keep` names the only ones kept.

        Returns None when nothing is filtered (plain `edit`). Unknown names, `drop` together with `keep`, and any
        filtering on an EBGAN model are ValueErrors.
        """
        if not drop and keep is None:
            return None
        if drop and keep is not None:
            raise ValueError("Give --drop or --keep, not both.")
        if self.variant != ATT_EBGAN:
            raise ValueError(
                f"This is an {self.variant} model: it has no attribute filtering (no edit_filtered "
                "signature). Train and export an att_ebgan model to use --drop/--keep."
            )
        names = validate_attribute_names(list(drop) if drop else list(keep or ()), self.attribute_names)
        on = (lambda name: name not in names) if drop else (lambda name: name in names)
        return np.array([1.0 if on(name) else 0.0 for name in self.attribute_names], np.float32)

    def region_mask(self, regions: Sequence[str] | str) -> np.ndarray:
        """float32 [S,S,1] mask of named regions for a face at the model's alignment (its landmark template)."""
        from ebgan_tf.data.masks import region_mask

        return region_mask(self.landmark_template, regions, self.image_size).numpy()


@runtime_checkable
class CropEditor(Protocol):
    """Something that edits aligned crops (uint8 faces at the model's alignment and size): its metadata (`info`),
    the edit (`edit`; with `attributes`, the filtered edit), the composed edit (`edit_composed`) and the
    classifier's reading (`classify`). Arguments and returns as `Editor`'s methods, which every implementation
    follows: `Editor`, `ebgan_tf.serving.client.ServedModel`, the web editor's `LocalModel` and `RemoteModel`."""

    @property
    def info(self) -> ModelInfo: ...

    def edit(
        self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray, attributes: np.ndarray | None = None
    ) -> np.ndarray: ...

    def edit_composed(
        self,
        source: np.ndarray,
        exemplars: Sequence[np.ndarray] | np.ndarray,
        masks: Sequence[np.ndarray] | np.ndarray,
        strengths: Sequence[float] | np.ndarray | None = None,
        attributes: Sequence[np.ndarray | None] | np.ndarray | None = None,
    ) -> np.ndarray: ...

    def classify(self, images: np.ndarray) -> np.ndarray: ...


def saved_model_dir(path: str) -> str:
    """The SavedModel version directory of `path`: `path` itself, or the highest numeric version of a model base
    directory (as TF Serving serves); a ValueError when it holds no saved_model.pb."""
    versions = [int(entry) for entry in os.listdir(path) if entry.isdigit()]
    if not os.path.exists(os.path.join(path, "saved_model.pb")) and versions:
        path = os.path.join(path, str(max(versions)))
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"{path} is a directory without saved_model.pb; give a SavedModel version "
            "directory such as exports/ebgan/1, or its base directory exports/ebgan."
        )
    return path


def classify_error(info: ModelInfo, signatures: Collection[str]) -> str | None:
    """Why a model cannot read an exemplar's attributes (an EBGAN model, or an export without `classify`), or None."""
    if info.variant != ATT_EBGAN:
        return (
            f"This is an {info.variant} model: it has no attribute classifier (no classify signature); only "
            "att_ebgan models read attributes."
        )
    if CLASSIFY not in signatures:
        return (
            "This export has no classify signature (it was written by an older ebgan-export); export the model "
            "again to read attributes. Editing works without it."
        )
    return None


class Editor:
    """Runs the `edit` / `edit_filtered` / `edit_composed` / `classify` / `metadata` signatures of an exported model
    in this process (SavedModel or TFLite): a `CropEditor`."""

    def __init__(self, path: str, runner, signatures: Collection[str], batch_limit: int | None):
        self.path = path
        self.signatures = frozenset(signatures)
        self._run = _with_signatures(runner, self.signatures)
        self._batch_limit = batch_limit
        self.info = ModelInfo.from_metadata(self._run(METADATA, {}))

    @property
    def classifies(self) -> bool:
        """Whether `classify` works: an Att-EBGAN export with the classify signature."""
        return classify_error(self.info, self.signatures) is None

    @classmethod
    def load(cls, path: str) -> Editor:
        """Loads a SavedModel version directory, a model base directory (its highest numeric version, as TF Serving
        serves) or a .tflite file; a clear error when it is none of these."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"Model not found: {path}")
        if os.path.isdir(path):
            return cls._load_saved_model(saved_model_dir(path))
        if path.endswith(".tflite"):
            return cls._load_tflite(path)
        raise ValueError(f"{path} is neither a SavedModel directory nor a .tflite file.")

    @classmethod
    def _load_saved_model(cls, path: str) -> Editor:
        import tensorflow as tf

        signatures = tf.saved_model.load(path).signatures

        def run(name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {key: value.numpy() for key, value in signatures[name](**inputs).items()}

        return cls(path, run, set(signatures.keys()), batch_limit=None)

    @classmethod
    def _load_tflite(cls, path: str) -> Editor:
        from ai_edge_litert.interpreter import Interpreter

        # One interpreter thread per core: 1.66x lower batch-1 latency than LiteRT's default on 2 cores
        # (docs/BENCHMARKS.md, optimisation log).
        interpreter = Interpreter(model_path=path, num_threads=os.cpu_count() or 1)
        with native_logs_muted():  # LiteRT announces its XNNPACK delegate here, once per process
            interpreter.allocate_tensors()

        def run(name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return interpreter.get_signature_runner(name)(**inputs)

        return cls(path, run, set(interpreter.get_signature_list()), batch_limit=1)

    def edit(
        self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray, attributes: np.ndarray | None = None
    ) -> np.ndarray:
        """Edits uint8 images [S,S,3] or [N,S,S,3] with a float mask [S,S,1] / [N,S,S,1] (1 = edit).

        `attributes` [n] or [N,n] (1 = transfer, 0 = filter out) selects `edit_filtered`. Returns uint8 like source.
        """
        single = np.ndim(source) == 3
        source, exemplar, mask = (np.asarray(a)[None] if single else np.asarray(a) for a in (source, exemplar, mask))
        self._check(source, exemplar, mask)
        inputs = {"source": source, "exemplar": exemplar, "mask": mask.astype(np.float32)}
        signature = EDIT
        if attributes is not None:
            if self.info.variant != ATT_EBGAN:
                raise ValueError(f"This is an {self.info.variant} model: it has no attribute filtering.")
            inputs["attributes"] = attributes_batch(self.info, np.asarray(attributes, np.float32), len(source))
            signature = EDIT_FILTERED
        edited = self._run_batched(signature, inputs, "edited")
        return edited[0] if single else edited

    def edit_composed(
        self,
        source: np.ndarray,
        exemplars: Sequence[np.ndarray] | np.ndarray,
        masks: Sequence[np.ndarray] | np.ndarray,
        strengths: Sequence[float] | np.ndarray | None = None,
        attributes: Sequence[np.ndarray | None] | np.ndarray | None = None,
    ) -> np.ndarray:
        """One source, K parts: part k fills masks[k] from exemplars[k] at strengths[k] (`edit_composed`).

        Unbatched: source uint8 [S,S,3], exemplars [K,S,S,3] (or a list of K images), masks [K,S,S,1], strengths
        [K] in [0, 1] (None: all 1) and attributes [K,n] or a list of K attribute vectors or None (Att-EBGAN; None
        = transfer all); returns uint8 [S,S,3]. Batched: each with a leading N (source [N,S,S,3], exemplars
        [N,K,S,S,3], ...) and returns [N,S,S,3].
        """
        if EDIT_COMPOSED not in self.signatures:
            raise ValueError(
                "This export has no edit_composed signature (it was written by an older ebgan-export); "
                "export the model again to compose several parts in one edit."
            )
        inputs, single = composed_inputs(self.info, source, exemplars, masks, strengths, attributes)
        edited = self._run_batched(EDIT_COMPOSED, inputs, "edited")
        return edited[0] if single else edited

    def classify(self, images: np.ndarray) -> np.ndarray:
        """The classifier's reading of aligned uint8 faces [S,S,3] or [N,S,S,3]: float32 probabilities [n] or
        [N,n] in the order of `info.attribute_names`; > 0.5 means the edit's gate transfers that attribute.

        An EBGAN model or an export without the classify signature is a ValueError saying so.
        """
        error = classify_error(self.info, self.signatures)
        if error:
            raise ValueError(error)
        single = np.ndim(images) == 3
        batch = np.asarray(images)[None] if single else np.asarray(images)
        self._check_images("image", batch)
        probabilities = self._run_batched(CLASSIFY, {"image": batch}, "probabilities")
        return probabilities[0] if single else probabilities

    def _run_batched(self, signature: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        """Runs `signature` in chunks of at most the runner's batch limit and concatenates `output`."""
        count = len(next(iter(inputs.values())))
        step = self._batch_limit or count
        return np.concatenate(
            [
                self._run(signature, {key: value[start : start + step] for key, value in inputs.items()})[output]
                for start in range(0, count, step)
            ]
        )

    def _check_shape(self, name: str, array: np.ndarray, channels: int) -> None:
        _check_shape(self.info, name, array, channels)

    def _check_images(self, name: str, array: np.ndarray) -> None:
        _check_images(self.info, name, array)

    def _check(self, source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray) -> None:
        for name, array, channels in (("source", source, 3), ("exemplar", exemplar, 3), ("mask", mask, 1)):
            self._check_shape(name, array, channels)
        for name, array in (("source", source), ("exemplar", exemplar)):
            self._check_images(name, array)
        if len(exemplar) != len(source) or len(mask) != len(source):
            raise ValueError("source, exemplar and mask must hold the same number of images.")
        empty = [index for index in range(len(mask)) if not np.any(mask[index] > 0.5)]
        if empty:
            raise ValueError(f"Empty mask for image(s) {empty}: nothing to edit (mask values > 0.5 mark the region).")


def _check_shape(info: ModelInfo, name: str, array: np.ndarray, channels: int) -> None:
    size = info.image_size
    if array.ndim != 4 or array.shape[1:] != (size, size, channels):
        raise ValueError(
            f"{name} has shape {array.shape[1:] if array.ndim == 4 else array.shape}; this "
            f"model takes {size}x{size}x{channels} (align and resize the image first)."
        )


def _check_images(info: ModelInfo, name: str, array: np.ndarray) -> None:
    _check_shape(info, name, array, 3)
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 pixels, got {array.dtype}.")


def attributes_batch(info: ModelInfo, attributes: np.ndarray, count: int) -> np.ndarray:
    """`attributes` [n] or [count, n] as a [count, n] array; another shape is a ValueError naming the attributes."""
    names = info.attribute_names
    if attributes.shape not in ((len(names),), (count, len(names))):
        raise ValueError(
            f"attributes has shape {attributes.shape}; this model takes [{len(names)}] or "
            f"[N,{len(names)}] values (1 = transfer, 0 = filter out) for {', '.join(names)}."
        )
    return np.ascontiguousarray(np.broadcast_to(attributes, (count, len(names))))


def composed_inputs(
    info: ModelInfo, source, exemplars, masks, strengths=None, attributes=None
) -> tuple[dict[str, np.ndarray], bool]:
    """The `edit_composed` inputs of `Editor.edit_composed`'s arguments (see there), checked, and whether they were
    unbatched. Wrong shapes, dtypes, empty or out-of-range masks and strengths outside [0, 1] are ValueErrors."""
    single = np.ndim(source) == 3
    source, exemplars, masks = (
        np.asarray(value)[None] if single else np.asarray(value) for value in (source, exemplars, masks)
    )
    count, parts = len(source), (exemplars.shape[1] if exemplars.ndim == 5 else 0)
    if parts == 0:
        raise ValueError(
            f"exemplars has shape {exemplars.shape[1 if single else 0 :]}; give at least one part "
            f"({'[K,S,S,3]' if single else '[N,K,S,S,3]'})."
        )
    _check_images(info, "source", source)
    flat_masks = masks.reshape(-1, *masks.shape[2:])
    _check_images(info, "exemplars", exemplars.reshape(-1, *exemplars.shape[2:]))
    _check_shape(info, "masks", flat_masks, 1)
    if len(exemplars) != count or masks.shape[:2] != exemplars.shape[:2]:
        raise ValueError(
            f"source, exemplars and masks disagree: {count} source(s), exemplars "
            f"{exemplars.shape[:2]}, masks {masks.shape[:2]} (N and K must match)."
        )
    if not np.all((flat_masks >= 0.0) & (flat_masks <= 1.0)):
        raise ValueError("masks must be finite values in [0, 1] (1 = fill from that part's exemplar).")
    empty = sorted({index % parts for index in range(len(flat_masks)) if not np.any(flat_masks[index] > 0.5)})
    if empty:
        raise ValueError(f"Empty mask for part(s) {empty}: nothing to fill (mask values > 0.5 mark the region).")
    values = np.ones([parts], np.float32) if strengths is None else np.asarray(strengths, np.float32)
    if values.shape not in ((parts,), (count, parts)):
        raise ValueError(
            f"strengths has shape {values.shape}; give one value per part ([{parts}] or [{count},{parts}])."
        )
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise ValueError(
            f"strengths must be in [0, 1] (0 = the source's own region, 1 = the exemplar's); got "
            f"{values.ravel().tolist()}."
        )
    return {
        "source": source,
        "exemplars": exemplars,
        "masks": masks.astype(np.float32),
        "strengths": np.ascontiguousarray(np.broadcast_to(values, (count, parts))),
        "attributes": _part_attributes(info, attributes, count, parts, single),
    }, single


def _part_attributes(info: ModelInfo, attributes, count: int, parts: int, single: bool) -> np.ndarray:
    """Per-part attribute vectors as float32 [N,K,n] (None, or None for a part: transfer every attribute)."""
    n = len(info.attribute_names)
    if attributes is None:
        return np.ones([count, parts, n], np.float32)
    rows = [attributes] if single else list(attributes)
    if len(rows) != count or any(len(row) != parts for row in rows):
        raise ValueError(f"attributes must hold one attribute vector (or None) per part: {parts} per source.")
    if any(vector is not None for row in rows for vector in row) and info.variant != ATT_EBGAN:
        raise ValueError(f"This is an {info.variant} model: it has no attribute filtering.")
    return np.stack(
        [
            np.stack(
                [
                    np.ones(n, np.float32)
                    if vector is None
                    else attributes_batch(info, np.asarray(vector, np.float32), 1)[0]
                    for vector in row
                ]
            )
            for row in rows
        ]
    )


def _text(value) -> str:
    """A string output of a signature (bytes, or a 0-d array of bytes from TFLite) as str."""
    value = np.asarray(value).item()
    return value.decode() if isinstance(value, bytes) else str(value)


def _with_signatures(run, available: frozenset[str]):
    """Wraps `run` so that asking for a signature the model lacks is a clear error."""

    def checked(name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if name not in available:
            raise ValueError(f"The model has no {name!r} signature (it has: {', '.join(sorted(available))}).")
        return run(name, inputs)

    return checked


if TYPE_CHECKING:  # mypy: Editor is a CropEditor
    _EDITOR: type[CropEditor] = Editor
