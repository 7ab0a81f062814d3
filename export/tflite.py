"""TFLite export for phones: the SavedModel's signatures at batch 1, built-in ops only.

The model is first written through keras.export.ExportArchive (a plain tf.Module export converted to garbage
in our checks: outputs off by up to 5.7e14), then converted once per variant:
  float32  no optimisation (bit-for-bit the same arithmetic up to kernel differences),
  float16  weights stored as float16,
  dynamic  dynamic-range quantisation (int8 weights, float activations).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf

from ebgan_tf.config import ATT_EBGAN
from ebgan_tf.files import write_bytes_atomically
from ebgan_tf.models.trainer import EBGANTrainer
from ebgan_tf.export.saved_model import CLASSIFY, EDIT, EDIT_FILTERED, METADATA, build_archive

TFLITE_VARIANTS: tuple[str, ...] = ("float32", "float16", "dynamic")


def parse_variants(text: str) -> tuple[str, ...]:
    """'float32,dynamic' -> validated variant names (an unknown one is a ValueError listing the valid ones)."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in TFLITE_VARIANTS]
    if unknown:
        raise ValueError(f"Unknown TFLite variant(s) {', '.join(unknown)}; valid: {', '.join(TFLITE_VARIANTS)}.")
    return names


def _converter(saved_model_dir: str, signature_keys: list[str], variant: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


def export_tflite(trainer: EBGANTrainer, landmark_template: np.ndarray, out_dir: str,
                  variants: tuple[str, ...] = TFLITE_VARIANTS, prefix: str = "model") -> dict[str, str]:
    """Writes `<out_dir>/<prefix>_<variant>.tflite` for each variant; returns variant -> path."""
    os.makedirs(out_dir, exist_ok=True)
    keys = [EDIT] + ([EDIT_FILTERED, CLASSIFY] if trainer.variant == ATT_EBGAN else []) + [METADATA]
    paths = {}
    with tempfile.TemporaryDirectory() as staging:
        build_archive(trainer, landmark_template, batch=1, validate=False).write_out(staging, verbose=False)
        for variant in variants:
            path = os.path.join(out_dir, f"{prefix}_{variant}.tflite")
            flatbuffer = _converter(staging, keys, variant).convert()
            write_bytes_atomically(path, flatbuffer)
            paths[variant] = path
    return paths
