"""Parity checks of an export: Keras vs SavedModel vs each TFLite variant, on synthetic faces.

Bounds: Keras vs SavedModel and TFLite float32 vs SavedModel differ by at most 1 grey level; float16,
dynamic-range and int8 TFLite files keep a PSNR inside the mask (against the SavedModel) above PSNR_FLOORS, floors we
measured on untrained and briefly trained models, with a margin (int8: the target, which the shipped models meet
with 5 dB or more to spare). The `classify` signature (Att-EBGAN) differs by at most
MAX_PROBABILITY_DIFFERENCE[variant] in any probability, the int8 file in 99 % of them (PROBABILITY_QUANTILES): its
8-bit activations now and then move one face's logit far, a quarter of a percent of the decisions of a trained
classifier (docs/export.md, "Parity").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ebgan_tf import editing, metrics
from ebgan_tf.config import ATT_EBGAN
from ebgan_tf.data.synthetic import render_face, sample_face
from ebgan_tf.editing import Editor
from ebgan_tf.export.saved_model import classify_function, composed_function, edit_function
from ebgan_tf.models.trainer import EBGANTrainer

MAX_LEVEL_DIFFERENCE = 1
PSNR_FLOORS = {"float16": 45.0, "dynamic": 30.0, "int8": 25.0}
MAX_PROBABILITY_DIFFERENCE = {"keras": 1e-4, "float32": 1e-4, "float16": 2e-3, "dynamic": 0.15, "int8": 0.35}
# The share of the probabilities each bound holds for (1: every one, the default).
PROBABILITY_QUANTILES = {"int8": 0.99}


@dataclasses.dataclass(frozen=True)
class ParityCheck:
    """One comparison: what was compared, the measured value, the bound and whether it holds."""

    name: str
    measure: str
    value: float
    bound: float
    passed: bool

    def __str__(self) -> str:
        relation = ">=" if self.measure.startswith("PSNR") else "<="
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.name:<46} {self.measure:<22} {self.value:8.4g}  (bound {relation} {self.bound:g})  {verdict}"


def verification_inputs(editor: Editor, count: int = 4, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Synthetic sources and exemplars at the model's size, with mouth masks from the model's template."""
    size = editor.info.image_size
    faces = [render_face(sample_face(seed + index), size).image for index in range(2 * count)]
    source, exemplar = np.stack(faces[:count]), np.stack(faces[count:])
    mask = np.broadcast_to(editor.info.region_mask("mouth"), (count, size, size, 1)).copy()
    return source, exemplar, mask


def _level_check(name: str, a: np.ndarray, b: np.ndarray) -> ParityCheck:
    value = float(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())
    return ParityCheck(name, "max level difference", value, MAX_LEVEL_DIFFERENCE, value <= MAX_LEVEL_DIFFERENCE)


def probability_difference(variant: str, a: np.ndarray, b: np.ndarray) -> float:
    """The difference between two readings [N, n] that `variant`'s bound applies to: the largest, or the
    PROBABILITY_QUANTILES[variant] quantile."""
    return float(np.quantile(np.abs(a.astype(np.float64) - b), PROBABILITY_QUANTILES.get(variant, 1.0)))


def _probability_check(name: str, variant: str, a: np.ndarray, b: np.ndarray) -> ParityCheck:
    quantile = PROBABILITY_QUANTILES.get(variant, 1.0)
    measure = "max probability diff" if quantile == 1.0 else f"{quantile:.0%} probability diff"
    value, bound = probability_difference(variant, a, b), MAX_PROBABILITY_DIFFERENCE[variant]
    return ParityCheck(name, measure, value, bound, value <= bound)


def classify_checks(
    trainer: EBGANTrainer, saved: Editor, images: np.ndarray, tflite_paths: dict[str, str]
) -> list[ParityCheck]:
    """The `classify` signature: Keras and each TFLite file against the SavedModel, on uint8 faces [N,S,S,3]."""
    reference = saved.classify(images)
    keras_result = classify_function(trainer, validate=False)(images)["probabilities"].numpy()
    checks = [_probability_check("Keras vs SavedModel (classify)", "keras", keras_result, reference)]
    for variant, path in tflite_paths.items():
        checks.append(
            _probability_check(
                f"TFLite {variant} vs SavedModel (classify)", variant, Editor.load(path).classify(images), reference
            )
        )
    return checks


def composed_inputs(editor: Editor, source: np.ndarray, exemplar: np.ndarray) -> dict[str, np.ndarray]:
    """`Editor.edit_composed` arguments: the eyes from each exemplar at strength 0.5, the mouth from the next one
    (in turn) at strength 1."""
    count, size = len(source), editor.info.image_size
    masks = np.stack([editor.info.region_mask("eyes"), editor.info.region_mask("mouth")])
    return {
        "source": source,
        "exemplars": np.stack([exemplar, np.roll(exemplar, 1, axis=0)], axis=1),
        "masks": np.broadcast_to(masks, (count, 2, size, size, 1)).copy(),
        "strengths": np.tile(np.array([0.5, 1.0], np.float32), (count, 1)),
    }


def _edit_check(name: str, variant: str, result: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> ParityCheck:
    """A TFLite file's edit against the SavedModel's: PSNR inside the mask for the lossy variants, else levels."""
    if variant not in PSNR_FLOORS:
        return _level_check(name, result, reference)
    psnr = float(np.mean(metrics.masked_psnr(result, reference, mask, max_psnr=100.0)))
    return ParityCheck(name, "PSNR in mask (dB)", psnr, PSNR_FLOORS[variant], psnr >= PSNR_FLOORS[variant])


def composed_checks(
    trainer: EBGANTrainer, saved: Editor, source: np.ndarray, exemplar: np.ndarray, tflite_paths: dict[str, str]
) -> list[ParityCheck]:
    """The `edit_composed` signature (eyes and mouth from two exemplars): Keras and each TFLite file against the
    SavedModel."""
    composed = composed_inputs(saved, source, exemplar)
    reference = saved.edit_composed(**composed)
    inputs, _ = editing.composed_inputs(saved.info, **composed)
    checks = [
        _level_check(
            "Keras vs SavedModel (edit_composed)",
            composed_function(trainer, validate=False)(**inputs)["edited"].numpy(),
            reference,
        )
    ]
    union = composed["masks"].max(axis=1)
    for variant, path in tflite_paths.items():
        checks.append(
            _edit_check(
                f"TFLite {variant} vs SavedModel (edit_composed)",
                variant,
                Editor.load(path).edit_composed(**composed),
                reference,
                union,
            )
        )
    return checks


def verify_export(
    trainer: EBGANTrainer, saved_model_dir: str, tflite_paths: dict[str, str] | None = None, count: int = 4
) -> list[ParityCheck]:
    """Runs every parity check of docs/export.md ("Parity") on `count` synthetic pairs; returns the checks (none
    raise)."""
    saved = Editor.load(saved_model_dir)
    source, exemplar, mask = verification_inputs(saved, count)
    switches: dict[str, np.ndarray | None] = {"edit": None}
    if saved.info.variant == ATT_EBGAN:
        switches["edit_filtered"] = saved.info.attributes_from(drop=[saved.info.attribute_names[0]])
    checks = []
    for signature, attributes in switches.items():
        reference = saved.edit(source, exemplar, mask, attributes)
        batch = None if attributes is None else np.broadcast_to(attributes, (count, len(attributes)))
        keras_fn = edit_function(trainer, filtered=attributes is not None, validate=False)
        keras_inputs = (source, exemplar, mask) + (() if batch is None else (batch,))
        checks.append(
            _level_check(f"Keras vs SavedModel ({signature})", keras_fn(*keras_inputs)["edited"].numpy(), reference)
        )
        for variant, path in (tflite_paths or {}).items():
            checks.append(
                _edit_check(
                    f"TFLite {variant} vs SavedModel ({signature})",
                    variant,
                    Editor.load(path).edit(source, exemplar, mask, attributes),
                    reference,
                    mask,
                )
            )
    checks += composed_checks(trainer, saved, source, exemplar, tflite_paths or {})
    if saved.info.variant == ATT_EBGAN:
        checks += classify_checks(trainer, saved, np.concatenate([source, exemplar]), tflite_paths or {})
    return checks
