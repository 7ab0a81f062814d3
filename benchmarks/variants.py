"""Optimisation experiments on the training step (not part of the default `make bench`; run with
`python -m benchmarks.run variants` or `python -m benchmarks.variants`).

Variants of one trainer's step, timed in turn (one step each per round, best of ROUNDS, after a warm-up), so that
the load of a shared machine falls on all of them alike:
  graph          trainer.train_step under tf.function (what `fit` runs today, jit_compile=False)
  XLA            the same with jit_compile=True
  batched        E(exemplar) + E(source) and G_dec's two decodes (the edit and the reconstruction) each run once on
                 the concatenated batch: same losses and gradients (no batch-dependent layers), fewer, larger ops.
                 D(real) + D(fake) and C(generated) + C(source) stay separate: concatenated, TF computes the input
                 gradient of the real half too (measured: +9.5 % FLOPs, 0.84x speed at 64 px).
  batched + XLA  both.
`batched_losses` is the candidate replacement of EBGANTrainer._per_example_losses (applied here by a subclass).
And the edit (export.saved_model.edit_function, what the SavedModel runs) under tf.function with and without
jit_compile, at batch 1 and batch 32, and batch 32 fed as 4 calls of 8 (cache-sized activations), timed in turn.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from benchmarks.flops import function_flops
from benchmarks.peak import observe_peak, peak_gflops, share_of_peak
from benchmarks.training import batch_specs, random_batch
from ebgan_tf.config import get_preset
from ebgan_tf.models import losses
from ebgan_tf.models.generator import composite, gate_code
from ebgan_tf.models.trainer import EBGANTrainer
from export.saved_model import edit_function

PRESETS: dict[str, int] = {"synthetic64": 32, "celeba128": 4}  # preset -> batch size
ROUNDS: dict[str, int] = {"synthetic64": 4, "celeba128": 1}
PEAK_TRIALS = 3
REGIONS = ("mouth",)
EDIT_BATCH = 32
EDIT_CHUNK = 8
EDIT_ROUNDS: dict[str, int] = {"synthetic64": 5, "celeba128": 1}


def _halves(tensor: tf.Tensor, count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tensor[:count], tensor[count:]


def batched_losses(self: EBGANTrainer, batch: dict) -> dict[str, tf.Tensor]:
    """EBGANTrainer._per_example_losses with the two encoder calls and the two decodes each fused into one call."""
    source, exemplar, mask = batch["source"], batch["exemplar"], batch["mask"]
    count = tf.shape(source)[0]
    both_masks = tf.concat([mask, mask], 0)
    context = self.generator.encode(source, mask)
    exemplar_code, source_code = _halves(self.encoder(tf.concat([exemplar, source], 0), both_masks), count)
    exemplar_gated, source_gated = exemplar_code, source_code
    if self.classifier is not None:
        exemplar_gated = gate_code(exemplar_code, batch["exemplar_attributes"], len(self.attribute_names))
        source_gated = gate_code(source_code, batch["source_attributes"], len(self.attribute_names))
    decoded = self.generator.decode([tf.concat([features, features], 0) for features in context],
                                    tf.concat([exemplar_gated, source_gated], 0))
    generated, reconstructed = _halves(decoded, count)
    fake_logits = self.discriminator(composite(generated, source, mask))
    values = {
        "adv_g": losses.generator_adversarial_loss(fake_logits),
        "rec": losses.reconstruction_loss(source, reconstructed),
        "cyc": losses.cycle_loss(exemplar_code, self.encoder(generated, mask)),
        "adv_d": losses.discriminator_loss(self.discriminator(source), fake_logits),
    }
    weights = self.loss_weights
    values["g_loss"] = weights.adv * values["adv_g"] + weights.rec * values["rec"] + weights.cyc * values["cyc"]
    values["d_loss"] = values["adv_d"]
    if self.classifier is not None:
        values["cls_g"] = losses.classification_loss(batch["exemplar_attributes"], self.classifier(generated))
        values["c_loss"] = losses.classification_loss(batch["source_attributes"], self.classifier(source))
        values["g_loss"] += weights.cls * values["cls_g"]
    return values


class BatchedTrainer(EBGANTrainer):
    """EBGANTrainer with `batched_losses`."""

    _per_example_losses = batched_losses


def _trainers(preset_name: str) -> dict[str, EBGANTrainer]:
    preset = get_preset(preset_name)
    trainers = {}
    for name, cls in (("default", EBGANTrainer), ("batched", BatchedTrainer)):
        trainer = cls(preset.model, preset.attributes_for(REGIONS), "att_ebgan", preset.train.loss_weights)
        trainer.compile(learning_rate=preset.train.learning_rate)
        trainers[name] = trainer
    return trainers


def measure_preset(preset_name: str) -> list[tuple[str, str]]:
    """Rows of one preset: s / step and share of peak per variant, and the speed-up over graph mode."""
    preset, batch_size = get_preset(preset_name), PRESETS[preset_name]
    size = preset.model.image_size
    trainers = _trainers(preset_name)
    specs = batch_specs(size, len(trainers["default"].attribute_names), batch_size)
    batch = random_batch(specs)
    flops = {name: function_flops(trainer.train_step, specs) for name, trainer in trainers.items()}
    steps = {"graph": (trainers["default"], False), "XLA": (trainers["default"], True),
             "batched": (trainers["batched"], False), "batched + XLA": (trainers["batched"], True)}
    functions = {name: tf.function(trainer.train_step, jit_compile=jit) for name, (trainer, jit) in steps.items()}
    best = _best_in_turn({name: (lambda function=function: float(function(batch)["g_loss"][0]))
                          for name, function in functions.items()}, ROUNDS[preset_name])
    observe_peak(PEAK_TRIALS)  # under the same load as the steps just timed
    rows = []
    for name, seconds in best.items():
        trainer_name = "batched" if name.startswith("batched") else "default"
        gflops = flops[trainer_name] / seconds / 1e9
        rows.append((f"{size} px batch {batch_size} step, {name}: s / step (share of peak)",
                     f"{seconds:.2f} ({share_of_peak(gflops)}); {best['graph'] / seconds:.2f}x graph"))
    if flops["batched"] != flops["default"]:
        rows.append((f"{size} px FLOPs per step batched / default", f"{flops['batched'] / flops['default']:.4f}"))
    return rows


def _best_in_turn(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time of each call over `rounds` rounds that call each once in turn, after a warm-up call each."""
    for call in calls.values():
        call()
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def measure_edit(preset_name: str) -> list[tuple[str, str]]:
    """Rows of one preset: the uint8 edit under tf.function with and without XLA, batch 1 and 32."""
    preset = get_preset(preset_name)
    size = preset.model.image_size
    trainer = _trainers(preset_name)["default"]
    edit = edit_function(trainer, filtered=False, validate=False)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, [EDIT_BATCH, size, size, 3], dtype=np.uint8))
    mask = tf.constant(np.ones([EDIT_BATCH, size, size, 1], np.float32))
    calls = {}
    for jit_compile in (False, True):
        function = tf.function(edit, jit_compile=jit_compile)
        for batch in (1, EDIT_BATCH):
            calls[(batch, jit_compile)] = (lambda function=function, batch=batch:
                                           function(images[:batch], images[:batch], mask[:batch])["edited"].numpy())
    graph = tf.function(edit)
    calls["chunks"] = lambda: [graph(images[start:start + EDIT_CHUNK], images[start:start + EDIT_CHUNK],
                                     mask[start:start + EDIT_CHUNK])["edited"].numpy()
                               for start in range(0, EDIT_BATCH, EDIT_CHUNK)]
    best = _best_in_turn(calls, EDIT_ROUNDS[preset_name])
    rows = []
    for batch in (1, EDIT_BATCH):
        graph_seconds, xla_seconds = best[(batch, False)], best[(batch, True)]
        rows.append((f"{size} px edit batch {batch}, tf.function graph / XLA (ms)",
                     f"{graph_seconds * 1000:.1f} / {xla_seconds * 1000:.1f}; XLA {graph_seconds / xla_seconds:.2f}x"))
    rows.append((f"{size} px edit batch {EDIT_BATCH} as {EDIT_BATCH // EDIT_CHUNK} calls of {EDIT_CHUNK} (ms)",
                 f"{best['chunks'] * 1000:.1f}; {best[(EDIT_BATCH, False)] / best['chunks']:.2f}x one call"))
    return rows


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    rows = []
    for preset_name in PRESETS:
        for row in measure_preset(preset_name) + measure_edit(preset_name):
            print(f"{row[0]}: {row[1]}", flush=True)
            rows.append(row)
    rows.append(("variants: matmul peak, best seen so far (GFLOP/s)", f"{peak_gflops():.1f}"))
    return rows


if __name__ == "__main__":
    run()
