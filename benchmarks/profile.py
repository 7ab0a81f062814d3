"""Profile of the training step: best step time and, with xprof installed, the share of each op type.

    python -m benchmarks.profile [--preset=synthetic64] [--xla]
    TF_ENABLE_ONEDNN_OPTS=0 python -m benchmarks.profile      # environment experiments: compare the step times

Times `tf.function(trainer.train_step)` (Att-EBGAN, the preset's regions, a fixed random batch) as benchmarks.training
does, then records PROFILED_STEPS steps with the TF profiler and prints the self time of each op type as a share of
the step. Reading the profile needs the `xprof` package, which is not one of the project's requirements
(`pip install xprof`); without it the step time is still printed. Not part of `make bench`.
"""

from __future__ import annotations

import collections
import glob
import json
import tempfile

import tensorflow as tf
from absl import app, flags

from benchmarks.training import BATCH_SIZES, batch_specs, random_batch, seconds_per_step
from ebgan_tf.config import ATT_EBGAN, get_preset
from ebgan_tf.models.trainer import build_trainer

PROFILED_STEPS = 3
TIMED_STEPS = 5
SHOWN_OP_TYPES = 12


def op_type_shares(logdir: str) -> list[tuple[str, float]]:
    """(op type, share of the total self time) of the profile in `logdir`, largest first (needs xprof)."""
    from xprof.convert import raw_to_tool_data  # pylint: disable=import-outside-toplevel

    paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
    data, _ = raw_to_tool_data.xspace_to_tool_data(paths, "framework_op_stats", {})
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    columns = [column["id"] for column in table["cols"]]
    self_time: collections.Counter = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [cell["v"] if cell else None for cell in row["c"]]))
        self_time[values["type"]] += float(values["total_self_time"])
    total = sum(self_time.values())
    return [(op_type, time / total) for op_type, time in self_time.most_common()]


def main(argv: list[str]) -> None:
    del argv
    preset = get_preset(FLAGS.preset)
    batch_size = BATCH_SIZES[FLAGS.preset]
    trainer = build_trainer(preset, ATT_EBGAN, preset.default_regions)
    trainer.compile(learning_rate=preset.train.learning_rate)
    batch = random_batch(batch_specs(trainer, batch_size))
    seconds = seconds_per_step(trainer, batch, FLAGS.xla, TIMED_STEPS)
    print(
        f"{FLAGS.preset}, batch {batch_size}, {'XLA' if FLAGS.xla else 'graph'}: best of {TIMED_STEPS} steps "
        f"{seconds:.3f} s / step",
        flush=True,
    )
    try:
        import xprof  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        print("xprof is not installed (pip install xprof): no op profile.")
        return
    step = tf.function(trainer.train_step, jit_compile=FLAGS.xla)
    float(step(batch)["g_loss"][0])
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(PROFILED_STEPS):
            float(step(batch)["g_loss"][0])
        tf.profiler.experimental.stop()
        shares = op_type_shares(logdir)
    print(f"Self time per op type over {PROFILED_STEPS} steps:")
    for op_type, share in shares[:SHOWN_OP_TYPES]:
        print(f"  {op_type:32s} {100 * share:5.1f} %")
    print(f"  {'(the rest)':32s} {100 * sum(share for _, share in shares[SHOWN_OP_TYPES:]):5.1f} %")


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags (defined only when it runs, so importing this module defines none)."""
    flags.DEFINE_enum("preset", "synthetic64", list(BATCH_SIZES), "Preset whose training step is profiled.")
    flags.DEFINE_bool("xla", False, "Compile the step with XLA (jit_compile=True).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
