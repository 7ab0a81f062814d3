"""Distribution strategies for training: one device, several GPUs (or logical CPUs), or several machines.

`--cpu_replicas=N` splits the physical CPU into N logical devices so that MirroredStrategy (and its tests) can run
on machines without GPUs. That split must happen before TensorFlow initialises its devices, so command lines call
`make_strategy` (or `configure_cpu_replicas`) first, before anything else touches TensorFlow devices.

`multi_worker` is MultiWorkerMirroredStrategy configured by the `TF_CONFIG` environment variable. Every worker runs
the same program and takes part in every step and every save; only the chief writes into the model directory,
the others write into a temporary directory of their own that is deleted afterwards (`output_dir`), as
TensorFlow's multi-worker guide prescribes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator

import tensorflow as tf

STRATEGIES: tuple[str, ...] = ("auto", "one_device", "mirrored", "multi_worker")
TF_CONFIG_HELP = (
    'set TF_CONFIG on every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
    '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' (index 1 on the second worker)'
)


def configure_cpu_replicas(num_replicas: int) -> None:
    """Splits the physical CPU into `num_replicas` logical devices (no-op for 1, or when already split so).

    Raises:
      ValueError: `num_replicas` < 1.
      RuntimeError: TensorFlow already initialised its devices with another split.
    """
    if num_replicas < 1:
        raise ValueError(f"--cpu_replicas must be at least 1, got {num_replicas}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    if num_replicas == 1 or len(tf.config.get_logical_device_configuration(cpu) or []) == num_replicas:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)]
        )
    except RuntimeError:
        raise RuntimeError(
            f"Cannot split the CPU into {num_replicas} logical devices: TensorFlow has already initialised its "
            "devices. Call configure_cpu_replicas (or make_strategy) before any other TensorFlow work."
        ) from None


def check_tf_config(value: str | None) -> dict:
    """The parsed TF_CONFIG of a multi-worker run; a ValueError naming what is wrong with it."""
    if not value:
        raise ValueError(f"--strategy=multi_worker needs the TF_CONFIG environment variable: {TF_CONFIG_HELP}.")
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {TF_CONFIG_HELP}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs a 'cluster' with a 'worker' list and a 'task': {TF_CONFIG_HELP}.")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG task {task!r} is not in its cluster {cluster!r}: 'type' must be one of "
            f"{', '.join(sorted(cluster))} and 'index' a position in that list."
        )
    return config


def make_strategy(name: str = "auto", cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """Builds the named strategy.

    Args:
      name: "one_device" (first GPU, else the CPU), "mirrored" (every GPU, or else the `cpu_replicas` logical
        CPUs), "multi_worker" (MultiWorkerMirroredStrategy over the workers of TF_CONFIG, each with its GPUs or
        its CPU) or "auto" (mirrored when there is more than one GPU or `cpu_replicas` > 1, else one_device).
      cpu_replicas: number of logical CPU devices to split the CPU into (see `configure_cpu_replicas`).

    Raises:
      ValueError: unknown name, one_device or multi_worker with `cpu_replicas` > 1, or a missing or bad TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}.")
    if name in ("one_device", "multi_worker") and cpu_replicas > 1:
        raise ValueError(
            f"--strategy={name} uses one CPU device per machine; drop --cpu_replicas={cpu_replicas} "
            "or use --strategy=mirrored."
        )
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    configure_cpu_replicas(cpu_replicas)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 or (not gpus and cpu_replicas > 1) else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if gpus:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    cpus = tf.config.list_logical_devices("CPU")[:cpu_replicas]
    return tf.distribute.MirroredStrategy([cpu.name for cpu in cpus])


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Returns the per-replica batch; a ValueError when the global batch does not split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size < 1 or batch_size % replicas:
        raise ValueError(
            f"--batch_size={batch_size} (the global batch) must be a positive multiple of the {replicas} "
            f"replica(s) of the strategy; try --batch_size={max(1, round(batch_size / replicas)) * replicas}."
        )
    return batch_size // replicas


def check_xla(xla: bool, strategy: tf.distribute.Strategy) -> None:
    """A ValueError for --xla with more than one replica: Keras 3.15 fit compiled with XLA under MirroredStrategy
    fails (variables of other devices inside one XLA cluster); only one replica per run was verified."""
    if xla and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            f"--xla compiles the training step for one device, but the strategy has "
            f"{strategy.num_replicas_in_sync} replicas; drop --xla, or train on one device "
            "(--strategy=one_device)."
        )


def task_of(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task id) of this process in a multi-worker cluster; (None, 0) for single-machine strategies."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, 0
    return resolver.task_type, int(resolver.task_id)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes the run's files: the 'chief' task, else worker 0, else the only process."""
    task_type, task_id = task_of(strategy)
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


@contextlib.contextmanager
def output_dir(model_dir: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
    """Where this process writes checkpoints, logs, config and weights: `model_dir` on the chief; on any other
    worker a directory `model_dir/.workertemp_<task>_<id>` of its own, emptied on entry and deleted on exit."""
    if is_chief(strategy):
        yield model_dir
        return
    task_type, task_id = task_of(strategy)
    temporary = os.path.join(model_dir, f".workertemp_{task_type}_{task_id}")
    shutil.rmtree(temporary, ignore_errors=True)  # left over by a killed worker
    os.makedirs(temporary)
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shards the input of a multi-worker run by data, not files: every worker computes the same global batches and
    keeps its slice, so N workers see exactly the batches of one process (and exact resume holds)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
