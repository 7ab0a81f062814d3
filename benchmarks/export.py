"""Benchmark: edit latency (batch 1) and throughput (batch 32) of Keras, SavedModel and TFLite, at 64 and 128 px.

Models: Att-EBGAN of the synthetic64 (64 px) and celeba128 (128 px) presets with UNTRAINED weights (speed does not
depend on training), mouth masks. Measured per size:
  Keras eager        ebgan_tf.export.saved_model.edit_function called eagerly (the Keras networks, no graph)
  Keras tf.function  the same function traced once with tf.function
  SavedModel         the exported `edit` signature through ebgan_tf.editing.Editor
  SavedModel, XLA    the same exported with its computation compiled by XLA (`xla_edit_function`, a variant of
                     ebgan_tf.export.saved_model.edit_function patched in here; measured, not applied:
                     docs/BENCHMARKS.md)
  TFLite <variant>   the .tflite file through the Editor (ai_edge_litert, batch 1: throughput = 32 sequential calls);
                     int8 calibrated on CALIBRATION_FACES synthetic faces with mouth masks
Latency: median of LATENCY_CALLS batch-1 calls; throughput: one timed batch-32 call (after a
warm-up call for the XLA SavedModel, which compiles per batch size; the others are warm from the batch-1 calls). Plus
the export and TFLite conversion times, the file sizes, the SavedModel's batch-32 GFLOP/s as a share of the
measured matmul peak (edit FLOPs counted by benchmarks/flops.py), the int8 file's latency and throughput against
dynamic-range and float32 and the share of its `edit` ops that run in integer (ebgan_tf.export.tflite.integer_ops).
The Editor runs TFLite with one interpreter thread per core. Ratios compare measurements of the same run.
Run alone with `python -m benchmarks.export`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from unittest import mock

import numpy as np
import tensorflow as tf

from benchmarks import results
from benchmarks.peak import observe_peak, share_of_peak
from benchmarks.training import edit_flops_per_image
from ebgan_tf.config import ATT_EBGAN, get_preset
from ebgan_tf.data.synthetic import render_face, sample_face
from ebgan_tf.editing import Editor
from ebgan_tf.export import saved_model
from ebgan_tf.export.saved_model import edit_function, export_saved_model, input_signature
from ebgan_tf.export.tflite import INT8, TFLITE_VARIANTS, CalibrationData, export_tflite, integer_ops
from ebgan_tf.export.verify import verification_inputs
from ebgan_tf.models.trainer import build_trainer

PRESETS: tuple[str, ...] = ("synthetic64", "celeba128")
THROUGHPUT_BATCH = 32
LATENCY_CALLS = 5
PEAK_TRIALS = 3
XLA_SAVED_MODEL = "SavedModel, XLA (variant)"
TEMPLATE_FACES = 16
CALIBRATION_FACES = 32


def _median_seconds(call: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median wall time of `repeats` calls (after one warm-up call if `warm_up`)."""
    if warm_up:
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _directory_megabytes(path: str) -> float:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names) / 1e6


def _landmark_template(image_size: int) -> np.ndarray:
    """Mean landmarks of synthetic faces at `image_size` (what training records for the synthetic data)."""
    return np.mean([render_face(sample_face(seed), image_size).landmarks for seed in range(TEMPLATE_FACES)], axis=0)


def xla_edit_function(trainer, filtered: bool, validate: bool) -> Callable[..., dict[str, tf.Tensor]]:
    """ebgan_tf.export.saved_model.edit_function with its computation in an XLA-compiled tf.function (jit_compile=True)
    and the input checks outside it (XLA drops Assert ops). A measured alternative, not applied."""
    compiled = tf.function(edit_function(trainer, filtered, validate=False), jit_compile=True)
    size, count = trainer.model_config.image_size, len(trainer.attribute_names)

    def edit(source, exemplar, mask, attributes=None):
        checks = saved_model._validate(size, count, source, exemplar, mask, attributes) if validate else []  # pylint: disable=protected-access
        with tf.control_dependencies(checks):
            if filtered:
                return compiled(source, exemplar, mask, attributes)
            return compiled(source, exemplar, mask)

    return edit


def _export_xla_saved_model(trainer, base: str, template: np.ndarray) -> str:
    """The SavedModel export with `xla_edit_function` in place of edit_function."""
    with mock.patch.object(saved_model, "edit_function", xla_edit_function):
        return export_saved_model(trainer, base, "bench_xla", template)


def _runners(trainer, saved_dir: str, tflite_paths: dict[str, str], xla_saved_dir: str) -> dict[str, Callable]:
    """name -> edit(source, exemplar, mask) -> uint8 images."""
    eager = edit_function(trainer, filtered=False, validate=False)
    size, count = trainer.model_config.image_size, len(trainer.attribute_names)
    traced = tf.function(eager, input_signature=input_signature(size, count, filtered=False, batch=None))
    runners = {
        "Keras eager": lambda *inputs: eager(*inputs)["edited"].numpy(),
        "Keras tf.function": lambda *inputs: traced(*inputs)["edited"].numpy(),
        "SavedModel": Editor.load(saved_dir).edit,
        XLA_SAVED_MODEL: Editor.load(xla_saved_dir).edit,
    }
    for variant, path in tflite_paths.items():
        runners[f"TFLite {variant}"] = Editor.load(path).edit  # the Editor feeds a .tflite one image at a time
    return runners


def measure_preset(preset_name: str) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """Rows for one preset (export times, file sizes, latency and throughput per runner, ratios) and the batch-1
    latencies in seconds per runner."""
    preset = get_preset(preset_name)
    size = preset.model.image_size
    trainer = build_trainer(preset, ATT_EBGAN, preset.default_regions)
    trainer.build_all()
    template = _landmark_template(size)
    rows = []
    with tempfile.TemporaryDirectory() as base:
        started = time.perf_counter()
        saved_dir = export_saved_model(trainer, base, "bench", template)
        rows.append((f"{size} px SavedModel export time (s)", f"{time.perf_counter() - started:.1f}"))
        rows.append((f"{size} px SavedModel size (MB)", f"{_directory_megabytes(saved_dir):.1f}"))
        calibration = CalibrationData(
            *verification_inputs(Editor.load(saved_dir), count=CALIBRATION_FACES, seed=1000), regions=("mouth",)
        )
        started = time.perf_counter()
        tflite_paths = export_tflite(
            trainer, template, os.path.join(base, "tflite"), TFLITE_VARIANTS, calibration=calibration
        )
        rows.append(
            (
                f"{size} px TFLite conversion time, {len(TFLITE_VARIANTS)} variants (s)",
                f"{time.perf_counter() - started:.1f}",
            )
        )
        for variant, path in tflite_paths.items():
            rows.append((f"{size} px TFLite {variant} size (MB)", f"{os.path.getsize(path) / 1e6:.1f}"))
        edit_ops = integer_ops(tflite_paths[INT8])["edit"]
        rows.append(
            (
                f"{size} px TFLite int8 edit: ops in integer (share; float ops)",
                f"{edit_ops.integer} of {edit_ops.total} ({edit_ops.share:.0%}; "
                f"{', '.join(f'{name} {count}' for name, count in sorted(edit_ops.float_ops.items()))})",
            )
        )

        xla_saved_dir = _export_xla_saved_model(trainer, base, template)
        source, exemplar, mask = verification_inputs(Editor.load(saved_dir), count=THROUGHPUT_BATCH)
        latency, throughput = {}, {}
        for name, run in _runners(trainer, saved_dir, tflite_paths, xla_saved_dir).items():
            latency[name] = _median_seconds(lambda run=run: run(source[:1], exemplar[:1], mask[:1]), LATENCY_CALLS)
            # XLA compiles once per batch size: its first batch-32 call is a warm-up.
            throughput[name] = THROUGHPUT_BATCH / _median_seconds(
                lambda run=run: run(source, exemplar, mask), 1, warm_up=name == XLA_SAVED_MODEL
            )
            if name.startswith("SavedModel"):
                observe_peak(PEAK_TRIALS)  # under the same load as the batch just timed
            rows.append((f"{size} px {name} latency at batch 1 (ms)", f"{latency[name] * 1000:.1f}"))
            rows.append(
                (f"{size} px {name} throughput at batch {THROUGHPUT_BATCH} (images/s)", f"{throughput[name]:.1f}")
            )
    edit_flops = edit_flops_per_image(trainer)
    for name, key in (("SavedModel", "saved_model"), (XLA_SAVED_MODEL, "saved_model_xla")):
        edit_gflops = edit_flops * throughput[name] / 1e9
        results.MEASURED[f"{key}_gflops_{size}"] = edit_gflops
        rows.append(
            (
                f"{size} px {name} batch-{THROUGHPUT_BATCH} edit: achieved GFLOP/s (share of peak)",
                f"{edit_gflops:.1f} ({share_of_peak(edit_gflops)})",
            )
        )
    for name in latency:
        results.MEASURED[f"latency_ratio_{name}_{size}"] = latency[name] / latency["SavedModel"]
        if name != "SavedModel":
            rows.append(
                (f"{size} px latency ratio {name} / SavedModel", f"{latency[name] / latency['SavedModel']:.2f}")
            )
    rows.append(
        (
            f"{size} px throughput ratio SavedModel / TFLite float32",
            f"{throughput['SavedModel'] / throughput['TFLite float32']:.2f}",
        )
    )
    for other in ("dynamic", "float32"):
        int8, reference = "TFLite int8", f"TFLite {other}"
        rows.append(
            (
                f"{size} px TFLite int8 / {other}: batch-1 latency ratio, throughput ratio",
                f"{latency[int8] / latency[reference]:.2f}, {throughput[int8] / throughput[reference]:.2f}",
            )
        )
    return rows, latency


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows (untrained weights)."""
    rows, latencies = [], []
    for preset_name in PRESETS:
        preset_rows, latency = measure_preset(preset_name)
        latencies.append(latency)
        for measure, value in preset_rows:
            print(f"export {measure}: {value}", flush=True)
        rows += [(f"export {measure}", value) for measure, value in preset_rows]
    small, large = (get_preset(name).model.image_size for name in PRESETS)
    for name in ("SavedModel", "TFLite dynamic"):
        row = (
            f"export latency ratio {large} px / {small} px, {name}",
            f"{latencies[1][name] / latencies[0][name]:.2f}",
        )
        print(f"{row[0]}: {row[1]}")
        rows.append(row)
    return rows


if __name__ == "__main__":
    run()
