"""Benchmark: FLOPs per image and training throughput as a share of the measured matmul peak, per preset.

Model: Att-EBGAN, mouth (the presets' default regions), untrained weights and a fixed random batch (speed does
not depend on the data). FLOPs per image of one training step and of one edit are counted from the traced graphs
(benchmarks/flops.py: 2 x multiply-accumulates of every convolution, its two gradients and every matmul).
The step is `trainer.train_step` under tf.function, as `fit` runs it: graph mode (the default, jit_compile=False)
and XLA (jit_compile=True). Time per step = the best of TIMED_STEPS steps after one warm-up step (the matmul peak is
a best-of too: both are the least disturbed run on a shared machine); the peak is measured again right after each
timing, and shares are of the best peak seen so far. Run alone with `python -m benchmarks.training`.
"""

from __future__ import annotations

import tensorflow as tf

from benchmarks import results
from benchmarks.flops import function_flops
from benchmarks.peak import best_seconds, observe_peak, peak_gflops, share_of_peak
from ebgan_tf.config import ATT_EBGAN, get_preset
from ebgan_tf.data.masks import CODE_PARTS
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer

VARIANT = ATT_EBGAN
BATCH_SIZES: dict[str, int] = {"synthetic64": 32, "celeba128": 4}  # celeba128: ~330 GFLOP per image and step
TIMED_STEPS: dict[str, int] = {"synthetic64": 4, "celeba128": 2}
JIT_COMPILE: tuple[bool, ...] = (False, True)
PEAK_TRIALS = 3


def batch_specs(trainer: EBGANTrainer, batch_size: int) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of a training batch of `trainer` (docs/data.md, "The batch schema") of fixed shapes, with the
    part layouts where the trainer has per-part codes."""
    size, num_attributes = trainer.model_config.image_size, len(trainer.attribute_names)
    image, mask = [batch_size, size, size, 3], [batch_size, size, size, 1]
    specs = {
        "source": tf.TensorSpec(image),
        "exemplar": tf.TensorSpec(image),
        "mask": tf.TensorSpec(mask),
        "exemplar_mask": tf.TensorSpec(mask),
        "source_attributes": tf.TensorSpec([batch_size, num_attributes]),
        "exemplar_attributes": tf.TensorSpec([batch_size, num_attributes]),
        "source_landmarks": tf.TensorSpec([batch_size, 5, 2]),
        "exemplar_landmarks": tf.TensorSpec([batch_size, 5, 2]),
    }
    if trainer.parts:
        for name in ("source_layout", "exemplar_layout"):
            specs[name] = tf.TensorSpec([batch_size, size, size, len(CODE_PARTS)])
    return specs


def random_batch(specs: dict[str, tf.TensorSpec], seed: int = 0) -> dict[str, tf.Tensor]:
    """A batch of the shapes of `specs`: images in [-1, 1], binary masks and labels, landmarks inside the image,
    one-hot part layouts."""
    image_size = specs["source"].shape[1]
    batch = {}
    for index, (name, spec) in enumerate(sorted(specs.items())):
        values = tf.random.stateless_uniform(spec.shape, seed=[seed, index])
        if name.endswith("mask") or name.endswith("attributes"):
            batch[name] = tf.round(values)
        elif name.endswith("layout"):
            batch[name] = tf.one_hot(tf.argmax(values, axis=-1), spec.shape[-1])
        elif name.endswith("landmarks"):
            batch[name] = values * (image_size - 1)
        else:
            batch[name] = values * 2.0 - 1.0
    return batch


def train_flops_per_image(trainer: EBGANTrainer, batch_size: int) -> float:
    """FLOPs of one training step divided by the batch size."""
    specs = batch_specs(trainer, batch_size)
    return function_flops(trainer.train_step, specs) / batch_size


def edit_flops_per_image(trainer: EBGANTrainer) -> float:
    """FLOPs of one edit (E and C on the exemplar, G_enc and G_dec) of one image."""
    size = trainer.model_config.image_size
    specs = [tf.TensorSpec([1, size, size, channels]) for channels in (3, 3, 1)]
    return function_flops(trainer.edit, *specs)


def seconds_per_step(trainer: EBGANTrainer, batch: dict[str, tf.Tensor], jit_compile: bool, steps: int) -> float:
    """Best wall time of `steps` training steps after a warm-up step (which traces and compiles)."""
    step = tf.function(trainer.train_step, jit_compile=jit_compile)
    return best_seconds(lambda: float(step(batch)["g_loss"][0]), steps)


def measure_preset(preset_name: str) -> list[tuple[str, str]]:
    """Rows of one preset: FLOPs per image (step, edit), images/s, GFLOP/s and share of peak per mode."""
    preset = get_preset(preset_name)
    size, batch_size = preset.model.image_size, BATCH_SIZES[preset_name]
    trainer = build_trainer(preset, VARIANT, preset.default_regions)
    trainer.compile(learning_rate=preset.train.learning_rate)
    step_flops, edit_flops = train_flops_per_image(trainer, batch_size), edit_flops_per_image(trainer)
    rows = [
        (f"{size} px ({preset_name}) FLOPs per image, one training step", f"{step_flops / 1e9:.2f} G"),
        (f"{size} px ({preset_name}) FLOPs per image, one edit", f"{edit_flops / 1e9:.2f} G"),
    ]
    batch = random_batch(batch_specs(trainer, batch_size))
    for jit_compile in JIT_COMPILE:
        mode = "XLA" if jit_compile else "graph"
        seconds = seconds_per_step(trainer, batch, jit_compile, TIMED_STEPS[preset_name])
        observe_peak(PEAK_TRIALS)  # under the same load as the steps just timed
        images_per_second = batch_size / seconds
        gflops = step_flops * images_per_second / 1e9
        results.MEASURED[f"train_images_per_second_{size}_{mode}"] = images_per_second
        results.MEASURED[f"train_gflops_{size}_{mode}"] = gflops
        label = f"{size} px training, {mode}, batch {batch_size}"
        rows += [
            (f"{label}: s / step", f"{seconds:.2f}"),
            (f"{label}: images/s", f"{images_per_second:.2f}"),
            (f"{label}: achieved GFLOP/s (share of peak)", f"{gflops:.1f} ({share_of_peak(gflops)})"),
        ]
    return rows


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows (untrained weights)."""
    rows = [
        (
            "training benchmark model",
            f"{VARIANT}, mouth, untrained, fixed random batch; best of the timed steps after one warm-up step",
        )
    ]
    for preset_name in BATCH_SIZES:
        for row in measure_preset(preset_name):
            print(f"{row[0]}: {row[1]}", flush=True)
            rows.append(row)
    rows.append(("training: matmul peak, best seen so far in this run (GFLOP/s)", f"{peak_gflops():.1f}"))
    print(f"{rows[-1][0]}: {rows[-1][1]}")
    return rows


if __name__ == "__main__":
    run()
