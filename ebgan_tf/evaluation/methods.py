"""The methods under evaluation: trained models and the baselines (naive paste, exemplar-free inpainting).

A method is a `Method`: a function edit(source, exemplar, mask, attributes) -> edited image, so trained models,
baselines and test fakes are measured the same way. Inputs are float32 in [-1, 1] (mask in {0, 1}, attributes
[N, n] of 1 = transfer / 0 = filter out, or None); the output is anything convertible to such an array.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from ebgan_tf import images
from ebgan_tf.config import ATT_EBGAN, VARIANT_NAMES
from ebgan_tf.editing import CropEditor
from ebgan_tf.models.trainer import EBGANTrainer

EditFn = Callable[[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"], Any]
CodeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Method:
    """An editing method in the report. `role` is "model" (held to the targets) or "baseline"."""

    name: str
    edit: EditFn
    role: str = "model"
    attribute_names: tuple[str, ...] = ()  # its attribute switches, in order; () = it cannot filter attributes
    identity_reconstruction: bool = False  # B = A returns A by construction: no reconstruction score
    variant: str = ""  # a model's variant ("ebgan", "att_ebgan"): which targets it is held to
    code: CodeFn | None = None  # (exemplar, mask) -> Z^B (its attribute blocks, if any), for the code spread


def model_method(trainer: EBGANTrainer, name: str) -> Method:
    """The trained model's `edit` (Att-EBGAN: with its attribute switches)."""
    edit = tf.function(trainer.edit, reduce_retracing=True)
    encode = tf.function(
        lambda exemplar, mask: trainer.exemplar_code(exemplar, mask, trainer.layouts(exemplar, exemplar)[1]),
        reduce_retracing=True,
    )
    switches = trainer.attribute_names if trainer.classifier is not None else ()
    blocks = trainer.attribute_code_channels or trainer.encoder.code_channels
    return Method(
        name,
        lambda source, exemplar, mask, attributes: edit(source, exemplar, mask, attributes).numpy(),
        role="model",
        attribute_names=switches,
        variant=trainer.variant,
        code=lambda exemplar, mask: encode(exemplar, mask).numpy()[..., :blocks],
    )


def export_method(editor: CropEditor, name: str) -> Method:
    """An exported model (SavedModel or TFLite) through its signatures, as `ebgan-edit` and TF Serving run it: uint8
    pixels in and out, so the scores include the export's rounding. No code spread (the signatures return no code)."""
    info = editor.info

    def edit(source, exemplar, mask, attributes):
        edited = editor.edit(
            images.to_uint8(source), images.to_uint8(exemplar), np.asarray(mask, np.float32), attributes
        )
        return images.to_float(edited)

    switches = info.attribute_names if info.variant == ATT_EBGAN else ()
    return Method(name, edit, role="model", attribute_names=switches, variant=info.variant)


def zero_code_method(trainer: EBGANTrainer, name: str) -> Method:
    """Exemplar-free inpainting baseline: the model's generator with the exemplar code zeroed."""

    inpaint = tf.function(trainer.zero_code_edit, reduce_retracing=True)
    return Method(name, lambda source, exemplar, mask, attributes: inpaint(source, mask).numpy(), role="baseline")


def naive_paste(source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray, attributes=None) -> np.ndarray:
    """B's pixels inside the mask, A's outside."""
    return exemplar * mask + source * (1.0 - mask)


NAIVE_PASTE = Method("naive paste", naive_paste, role="baseline", identity_reconstruction=True)


def method_names(variants: Sequence[str], model_dirs: Sequence[str]) -> list[str]:
    """Display names of models: the variant's ("Att-EBGAN"), plus the directory's name when two would clash."""
    names = [VARIANT_NAMES[variant] for variant in variants]
    return [
        f"{name} ({os.path.basename(os.path.normpath(path))})" if names.count(name) > 1 else name
        for name, path in zip(names, model_dirs)
    ]
