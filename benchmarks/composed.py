"""Benchmark: a composed edit of K = 4 parts (eyes, brows, nose, mouth, each from its own exemplar) through the
exported `edit_composed` signature against four sequential `edit` calls on the same inputs (each on the previous
result), batch 1, through ebgan_tf.editing.Editor (SavedModel).

Models: untrained synthetic64 Att-EBGANs (speed does not depend on training), one with per-part codes
(code_pooling="parts": one generator pass for all parts) and one with a global code (code_pooling="global": the
parts one after another in the graph). Latency: median of LATENCY_CALLS calls after one warm-up call. Run alone with
`python -m benchmarks.composed`.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np

from ebgan_tf.config import ATT_EBGAN, get_preset
from ebgan_tf.data.synthetic import render_face, sample_face
from ebgan_tf.editing import Editor
from ebgan_tf.export.saved_model import export_saved_model
from ebgan_tf.models.trainer import build_trainer

PRESET = "synthetic64"
PARTS = ("eyes", "brows", "nose", "mouth")
LATENCY_CALLS = 10
POOLINGS = ("parts", "global")


def _median_seconds(call: Callable[[], object]) -> float:
    call()  # warm-up (traces, allocates)
    times = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(pooling: str) -> tuple[float, float]:
    """(composed seconds, four sequential edits seconds) of an untrained model with `code_pooling=pooling`."""
    preset = get_preset(PRESET)
    preset = dataclasses.replace(preset, model=dataclasses.replace(preset.model, code_pooling=pooling))
    trainer = build_trainer(preset, ATT_EBGAN, preset.default_regions)
    trainer.build_all()
    size = preset.model.image_size
    faces = [render_face(sample_face(seed), size) for seed in range(1 + len(PARTS))]
    template = np.mean([face.landmarks for face in faces], axis=0)
    with tempfile.TemporaryDirectory() as base:
        editor = Editor.load(export_saved_model(trainer, base, "bench", template))
        source, exemplars = faces[0].image, np.stack([face.image for face in faces[1:]])
        masks = np.stack([editor.info.region_mask(part) for part in PARTS])

        def sequential():
            result = source
            for exemplar, mask in zip(exemplars, masks):
                result = editor.edit(result, exemplar, mask)
            return result

        composed = _median_seconds(lambda: editor.edit_composed(source, exemplars, masks))
        return composed, _median_seconds(sequential)


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    rows = []
    for pooling in POOLINGS:
        composed, sequential = measure(pooling)
        rows += [
            (f"composed K=4 ({pooling} code), edit_composed ms", f"{composed * 1e3:.1f}"),
            (f"composed K=4 ({pooling} code), 4 sequential edit ms", f"{sequential * 1e3:.1f}"),
            (f"composed K=4 ({pooling} code), time ratio composed / sequential", f"{composed / sequential:.2f}"),
        ]
    for measure_name, value in rows:
        print(f"{measure_name}: {value}", flush=True)
    return rows


if __name__ == "__main__":
    run()
