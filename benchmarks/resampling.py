"""Benchmark: the cost of the aligned exemplar's resampling, bicubic (16 gathers per pixel) against bilinear (4).

Model: EBGAN synthetic64 as shipped (per-pixel code, the exemplar aligned by its eyes and mouth), untrained, on a
fixed random batch. Measured per resampling: the warp alone (`alignment.align` of a batch), one training step and
one edit of one image; each the best of its TRIALS calls after a warm-up call (traces), the two resamplings timed in
turn so that both see the same load; compare the ratios. Run alone with `python -m benchmarks.resampling`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import tensorflow as tf

from benchmarks.peak import best_seconds
from benchmarks.training import batch_specs, random_batch
from ebgan_tf.config import EBGAN, EXEMPLAR_RESAMPLINGS, get_preset
from ebgan_tf.models.alignment import align
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer

PRESET = "synthetic64"
BATCH_SIZE = 32
TRIALS = {"warp": 20, "step": 3, "edit": 20}  # calls timed per measure (the best is kept)
ALIGNMENT = "eyes_mouth"
LABELS = {"warp": f"warp of {BATCH_SIZE} exemplars", "step": f"training step, batch {BATCH_SIZE}", "edit": "edit"}


def _trainer(resampling: str) -> EBGANTrainer:
    preset = get_preset(PRESET)
    model = dataclasses.replace(
        preset.model, code_pooling="spatial", exemplar_alignment=ALIGNMENT, exemplar_resampling=resampling
    )
    trainer = build_trainer(dataclasses.replace(preset, model=model), EBGAN, preset.default_regions)
    trainer.compile(learning_rate=preset.train.learning_rate)
    return trainer


def timed_calls(resampling: str) -> dict[str, Callable[[], object]]:
    """The warp of a batch, a training step on it and one edit, with `resampling`, as calls to time."""
    trainer = _trainer(resampling)
    batch = random_batch(batch_specs(trainer, BATCH_SIZE))
    warp = tf.function(align)
    step = tf.function(trainer.train_step)
    edit = tf.function(trainer.edit)
    pair = [batch[name][:1] for name in ("source", "exemplar", "mask")]
    landmarks = batch["exemplar_landmarks"], batch["source_landmarks"]
    return {
        "warp": lambda: float(warp(batch["exemplar"], *landmarks, ALIGNMENT, resampling)[0, 0, 0, 0]),
        "step": lambda: float(step(batch)["g_loss"][0]),
        "edit": lambda: float(edit(*pair)[0, 0, 0, 0]),
    }


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    calls = {resampling: timed_calls(resampling) for resampling in EXEMPLAR_RESAMPLINGS}
    seconds = {resampling: {} for resampling in EXEMPLAR_RESAMPLINGS}
    for key in LABELS:
        for resampling in EXEMPLAR_RESAMPLINGS:  # in turn, under the same load
            seconds[resampling][key] = best_seconds(calls[resampling][key], TRIALS[key])
    rows = []
    for key, label in LABELS.items():
        for resampling in EXEMPLAR_RESAMPLINGS:
            rows.append((f"{PRESET} {label}, {resampling}: ms", f"{seconds[resampling][key] * 1e3:.1f}"))
        ratio = seconds["bicubic"][key] / seconds["bilinear"][key]
        rows.append((f"{PRESET} {label}: time ratio bicubic / bilinear", f"{ratio:.2f}"))
    share = seconds["bicubic"]["warp"] / seconds["bicubic"]["step"]
    rows.append((f"{PRESET} bicubic warp of the batch as a share of a bicubic training step", f"{share:.1%}"))
    for measure_name, value in rows:
        print(f"{measure_name}: {value}", flush=True)
    return rows


if __name__ == "__main__":
    run()
