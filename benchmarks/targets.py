"""The performance targets (docs/BENCHMARKS.md, "Performance targets"), checked against the figures the other
sections measured in this run.

Targets (2-core CPU): training step at 128 px >= 40 % of the measured matmul peak; SavedModel batch-32 edit at
128 px >= 60 % of peak; TFLite dynamic-range batch-1 edit latency <= 0.7 x the SavedModel's; input pipeline >= 10 x
training consumption; 8 batched clients >= 2 x one client's throughput. Run last (`python -m benchmarks.run`).
"""

from __future__ import annotations

from benchmarks.peak import peak_gflops
from benchmarks.results import MEASURED, target_row


def _share_percent(*keys: str) -> float | None:
    """The best of the GFLOP/s figures under `keys` as a percentage of the best peak of the run (None if none)."""
    values = [MEASURED[key] for key in keys if key in MEASURED]
    return 100 * max(values) / peak_gflops() if values else None


def run() -> list[tuple[str, str]]:
    """Prints and returns one row per target: the measured figure and met / MISSED."""
    rows = [
        ("targets: matmul peak, best of the whole run (GFLOP/s; every share below is of it)", f"{peak_gflops():.1f}"),
        target_row(
            "128 px training step, share of peak (graph mode, the default)",
            _share_percent("train_gflops_128_graph"),
            40,
            " %",
        ),
        target_row(
            "128 px training step, share of peak (best of graph / XLA)",
            _share_percent("train_gflops_128_graph", "train_gflops_128_XLA"),
            40,
            " %",
        ),
        target_row(
            "128 px SavedModel batch-32 edit, share of peak", _share_percent("saved_model_gflops_128"), 60, " %"
        ),
        target_row(
            "128 px SavedModel exported with XLA (variant) batch-32 edit, share of peak",
            _share_percent("saved_model_xla_gflops_128"),
            60,
            " %",
        ),
    ]
    for size in (64, 128):
        rows.append(
            target_row(
                f"{size} px TFLite dynamic batch-1 latency / SavedModel's (Editor)",
                MEASURED.get(f"latency_ratio_TFLite dynamic_{size}"),
                0.7,
                at_most=True,
            )
        )
    for size in (64, 128):
        rows.append(
            target_row(
                f"pipeline examples/s at {size} px / training images/s at {size} px",
                MEASURED.get(f"pipeline_over_training_{size}"),
                10,
                "x",
            )
        )
    rows.append(
        target_row(
            "serving throughput 8 clients (batching on) / 1 client",
            MEASURED.get("serving_batched_over_one_client"),
            2,
            "x",
        )
    )
    for measure, value in rows:
        print(f"{measure}: {value}")
    return rows


if __name__ == "__main__":
    run()
