"""Distribution strategies for training: one device, several GPUs, or the CPU split into logical devices.

`--cpu_replicas=N` splits the physical CPU into N logical devices so that MirroredStrategy (and its tests) can run
on machines without GPUs. That split must happen before TensorFlow initialises its devices, so command lines call
`make_strategy` (or `configure_cpu_replicas`) first, before anything else touches TensorFlow devices.
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES: tuple[str, ...] = ("auto", "one_device", "mirrored")


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
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)])
    except RuntimeError:
        raise RuntimeError(
            f"Cannot split the CPU into {num_replicas} logical devices: TensorFlow has already initialised its "
            "devices. Call configure_cpu_replicas (or make_strategy) before any other TensorFlow work.") from None


def make_strategy(name: str = "auto", cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """Builds the named strategy.

    Args:
      name: "one_device" (first GPU, else the CPU), "mirrored" (every GPU, or else the `cpu_replicas` logical
        CPUs) or "auto" (mirrored when there is more than one GPU or `cpu_replicas` > 1, else one_device).
      cpu_replicas: number of logical CPU devices to split the CPU into (see `configure_cpu_replicas`).

    Raises:
      ValueError: unknown name, or one_device with `cpu_replicas` > 1.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}.")
    if name == "one_device" and cpu_replicas > 1:
        raise ValueError(f"--strategy=one_device uses one device; drop --cpu_replicas={cpu_replicas} "
                         "or use --strategy=mirrored.")
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
            f"replica(s) of the strategy; try --batch_size={max(1, round(batch_size / replicas)) * replicas}.")
    return batch_size // replicas
