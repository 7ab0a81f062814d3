"""The configuration of a training run, its `config.json` in the model directory, and loading a trained model.

A run is identified by everything that shapes its models and its optimisation (preset, variant, regions,
attribute names, model sizes, loss weights, optimiser, global batch, data set, seed). `config.json` records that
identity; a restart in the same model directory must match it. The schedule (epochs, checkpoint and logging
intervals) and the hardware options (strategy, mixed precision, XLA) may change between restarts.

Training, export, evaluation and the demo share this module; it defines no flags.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

import keras
import tensorflow as tf

from ebgan_tf.cli import check_at_least_one
from ebgan_tf.config import (
    ATT_EBGAN,
    LossWeights,
    ModelConfig,
    Preset,
    TrainConfig,
    get_preset,
    parse_regions,
    validate_region_weights,
    validate_variant,
)
from ebgan_tf.data import DEFAULT_DATA_DIR
from ebgan_tf.files import write_atomically, write_text_atomically
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer

CONFIG_FILE = "config.json"
FINAL_WEIGHTS = "final.weights.h5"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"


# The trainer's networks (None where a model has no such network), as checkpoints name them; the editing networks
# are all but the discriminator, which only training uses.
EDITING_NETWORKS = ("encoder", "generator", "classifier", "landmarks")
NETWORKS = (*EDITING_NETWORKS, "discriminator")


def exported_weights_name(network: str) -> str:
    """The variable collection in which an export keeps `network`'s weights (one of EDITING_NETWORKS), in the order
    of the network's `weights`: what `ebgan-train --init_from=<export>` copies."""
    return f"{network}_weights"


class ConfigError(ValueError):
    """A user error found before training starts: bad setting, mismatched model_dir, missing data."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything `train` needs. Fields left None take the preset's value (see `resolved`)."""

    model_dir: str
    preset: str = "synthetic64"
    variant: str = ATT_EBGAN
    regions: tuple[str, ...] | None = None
    # How often each region is drawn in training, one weight per region (None: all equally often).
    region_weights: tuple[float, ...] | None = None
    dataset: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    epochs: int = 10
    steps_per_epoch: int = 1000
    batch_size: int | None = None
    learning_rate: float | None = None
    ema_decay: float | None = None
    lr_decay_fraction: float | None = None
    loss_weights: LossWeights | None = None
    model_overrides: dict[str, int | str] = dataclasses.field(default_factory=dict)
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    image_every: int = 500
    image_rows: int = 8
    validation_steps: int = 10
    mixed_precision: bool = False
    xla: bool = False
    divergence_factor: float = 4.0  # stop when L_rec exceeds this many times its lowest value (0 = never)
    # A new run starts from the networks of the run in this folder (as `load_trained` loads them), not at random.
    init_from: str | None = None
    # With init_from: whether the discriminator is copied too (False: it starts new, as the editing networks of an
    # exported model would, which holds no discriminator).
    init_discriminator: bool = True
    # The trained run whose edits this run's unfiltered edits follow (LossWeights.teacher > 0), as `load_trained`
    # loads it.
    teacher: str | None = None

    def resolved(self) -> RunConfig:
        """Validates every field and fills the preset's defaults; a ValueError names the first bad field."""
        preset = get_preset(self.preset)
        validate_variant(self.variant)
        regions = parse_regions(self.regions or preset.default_regions)
        region_weights = (
            validate_region_weights(self.region_weights, regions) if self.region_weights is not None else None
        )
        check_at_least_one(
            {
                name: getattr(self, name)
                for name in (
                    "epochs",
                    "steps_per_epoch",
                    "checkpoint_every",
                    "keep_checkpoints",
                    "log_every",
                    "image_every",
                    "image_rows",
                )
            }
        )
        if self.divergence_factor != 0 and self.divergence_factor <= 1:
            raise ValueError(f"--divergence_factor must be 0 (off) or above 1, got {self.divergence_factor}.")
        if self.validation_steps < 0:
            raise ValueError(f"--validation_steps must be 0 (no validation) or more, got {self.validation_steps}.")
        learning_rate = self.learning_rate if self.learning_rate is not None else preset.train.learning_rate
        if learning_rate <= 0:
            raise ValueError(f"--learning_rate must be positive, got {learning_rate}.")
        ema_decay = self.ema_decay if self.ema_decay is not None else preset.train.ema_decay
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"--ema_decay must be in [0, 1) (0 = no average), got {ema_decay}.")
        lr_decay_fraction = (
            self.lr_decay_fraction if self.lr_decay_fraction is not None else preset.train.lr_decay_fraction
        )
        if not 0.0 <= lr_decay_fraction <= 1.0:
            raise ValueError(f"--lr_decay_fraction must be in [0, 1], got {lr_decay_fraction}.")
        loss_weights = self.loss_weights or preset.train.loss_weights
        negative = [
            f"{field.name}={getattr(loss_weights, field.name)}"
            for field in dataclasses.fields(loss_weights)
            if isinstance(getattr(loss_weights, field.name), float) and getattr(loss_weights, field.name) < 0
        ]
        if negative:
            raise ValueError(f"Loss weights must not be negative, got {', '.join(negative)}.")
        if not self.init_discriminator and not self.init_from:
            raise ValueError(
                "--noinit_discriminator needs --init_from: a run that starts at random has nothing to copy."
            )
        if bool(loss_weights.teacher) != bool(self.teacher):
            raise ValueError(
                "--teacher_weight and --teacher go together: a teacher loss needs the run it follows and a teacher "
                f"run needs a weight above 0 (got --teacher_weight={loss_weights.teacher}, --teacher={self.teacher})."
            )
        resolved = dataclasses.replace(
            self,
            regions=regions,
            region_weights=region_weights,
            dataset=self.dataset or preset.dataset,
            data_dir=os.path.expanduser(self.data_dir),
            batch_size=self.batch_size or preset.train.batch_size,
            learning_rate=learning_rate,
            ema_decay=ema_decay,
            lr_decay_fraction=lr_decay_fraction,
            loss_weights=loss_weights,
        )
        resolved.model_config()  # validates model_overrides
        return resolved

    def model_config(self) -> ModelConfig:
        """The preset's ModelConfig with `model_overrides` applied."""
        base = get_preset(self.preset).model
        names = [field.name for field in dataclasses.fields(ModelConfig)]
        unknown = [name for name in self.model_overrides if name not in names]
        if unknown:
            raise ValueError(
                f"Unknown model setting(s) {', '.join(map(repr, unknown))}; valid settings: {', '.join(names)}."
            )
        overrides: dict[str, Any] = {
            name: _model_setting(base, name, value) for name, value in self.model_overrides.items()
        }
        return dataclasses.replace(base, **overrides)

    def preset_object(self) -> Preset:
        """The named preset with this run's model sizes."""
        return dataclasses.replace(get_preset(self.preset), model=self.model_config())

    def identity(self) -> dict[str, Any]:
        """What `config.json` records and a restart must match (call on a `resolved` config)."""
        assert self.regions is not None and self.loss_weights is not None, "call on a resolved config"
        preset = self.preset_object()
        train = preset.train
        return {
            "preset": self.preset,
            "variant": self.variant,
            "regions": list(self.regions),
            "region_weights": list(self.region_weights) if self.region_weights else None,
            "attribute_names": list(preset.attributes_for(self.regions)),
            "model": dataclasses.asdict(preset.model),
            "loss_weights": dataclasses.asdict(self.loss_weights),
            "learning_rate": self.learning_rate,
            "ema_decay": self.ema_decay,
            "lr_decay_fraction": self.lr_decay_fraction,
            "beta_1": train.beta_1,
            "beta_2": train.beta_2,
            "batch_size": self.batch_size,
            "same_exemplar_share": train.same_exemplar_share,
            "dataset": self.dataset,
            "seed": self.seed,
            "init_from": self.init_from,
            "init_discriminator": self.init_discriminator,
            "teacher": self.teacher,
        }


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable 'field: saved -> current' entries, descending into nested dicts."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} in the model_dir, {new!r} now")
    return differences


def read_config(model_dir: str) -> dict[str, Any] | None:
    """The run identity recorded in `model_dir`, or None when there is none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _as_recorded(value: Any) -> Any:
    """`value` as config.json holds it (tuples as lists), to compare with a recorded run."""
    return json.loads(json.dumps(value))


def _with_later_fields(saved: dict[str, Any]) -> dict[str, Any]:
    """A recorded identity with the fields added to the code since it was written (loss weights, model settings, the
    weight average and decay) at their defaults: a new field's default keeps the behaviour that run trained with."""
    defaults = TrainConfig()
    completed = {
        "ema_decay": defaults.ema_decay,
        "lr_decay_fraction": defaults.lr_decay_fraction,
        "init_from": None,
        "init_discriminator": True,
        "teacher": None,
        "region_weights": None,
        **saved,
    }
    for key, fields in (("loss_weights", LossWeights), ("model", ModelConfig)):
        if isinstance(saved.get(key), dict):
            completed[key] = {**_as_recorded(dataclasses.asdict(fields())), **saved[key]}
    return completed


def check_config(model_dir: str, identity: dict[str, Any]) -> None:
    """Raises a ValueError naming every field where the run in `model_dir` differs from `identity` (fields the
    recorded run predates count as their defaults)."""
    saved = read_config(model_dir)
    if saved is None:
        return
    differences = _differences(_with_later_fields(saved), _as_recorded(identity))
    if differences:
        raise ValueError(
            f"--model_dir={model_dir} holds a run with another configuration ({'; '.join(differences)}); "
            "use another --model_dir, or the settings of that run to resume it."
        )


def write_config(model_dir: str, identity: dict[str, Any]) -> None:
    """Writes `config.json` atomically."""
    write_text_atomically(os.path.join(model_dir, CONFIG_FILE), json.dumps(identity, indent=2) + "\n")


def _model_setting(base: ModelConfig, name: str, value: int | str) -> int | str:
    """`value` as the type of ModelConfig's field `name`: a text field as given (the config validates it), a
    count as an integer, at least 0 for `ungated_code_channels` and at least 1 for the others."""
    if isinstance(getattr(base, name), str):
        return str(value)
    least = 0 if name == "ungated_code_channels" else 1
    if not str(value).strip().isdigit() or int(value) < least:
        raise ValueError(f"Model setting {name}={value} must be an integer of at least {least}.")
    return int(value)


def run_config_from_dir(model_dir: str) -> RunConfig:
    """The resolved RunConfig of the run recorded in `model_dir` (schedule fields take their defaults)."""
    recorded = read_config(model_dir)
    if recorded is None:
        raise FileNotFoundError(
            f"{os.path.join(model_dir, CONFIG_FILE)} not found: {model_dir} is not a model "
            "directory written by ebgan-train."
        )
    saved = _with_later_fields(recorded)
    base = get_preset(saved["preset"]).model
    overrides = {name: value for name, value in saved["model"].items() if getattr(base, name) != value}
    return RunConfig(
        model_dir=model_dir,
        preset=saved["preset"],
        variant=saved["variant"],
        regions=tuple(saved["regions"]),
        region_weights=tuple(saved["region_weights"]) if saved["region_weights"] else None,
        dataset=saved["dataset"],
        batch_size=saved["batch_size"],
        learning_rate=saved["learning_rate"],
        ema_decay=saved["ema_decay"],
        lr_decay_fraction=saved["lr_decay_fraction"],
        loss_weights=LossWeights(**saved["loss_weights"]),
        model_overrides=overrides,
        seed=saved["seed"],
        init_from=saved["init_from"],
        init_discriminator=saved["init_discriminator"],
        teacher=saved["teacher"],
    ).resolved()


class DecayAtTheEnd(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate that falls linearly to 0 over the last `fraction` of `total_steps`."""

    def __init__(self, learning_rate: float, total_steps: int, fraction: float):
        self.learning_rate, self.total_steps, self.fraction = learning_rate, total_steps, fraction

    def __call__(self, step):
        decay_steps = max(self.fraction * self.total_steps, 1.0)
        remaining = (self.total_steps - tf.cast(step, tf.float32)) / decay_steps
        return self.learning_rate * tf.clip_by_value(remaining, 0.0, 1.0)

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps, "fraction": self.fraction}


def learning_rate_schedule(config: RunConfig) -> float | DecayAtTheEnd:
    """The run's learning rate: constant, or decaying over the last `lr_decay_fraction` of its steps."""
    assert config.learning_rate is not None, "call on a resolved config"
    if not config.lr_decay_fraction:
        return config.learning_rate
    return DecayAtTheEnd(config.learning_rate, config.epochs * config.steps_per_epoch, config.lr_decay_fraction)


def compile_as_trained(trainer: EBGANTrainer, config: RunConfig) -> None:
    """Compiles the trainer's optimisers as the run built them, so that a checkpoint of the run restores into them (a
    decaying learning rate holds no variable, a constant one does, and the optimiser's slots are matched in order)."""
    assert config.ema_decay is not None, "run_config_from_dir resolves"
    trainer.compile(learning_rate=learning_rate_schedule(config), ema_decay=config.ema_decay)


def make_checkpoint(trainer: EBGANTrainer, optimizers: bool, step: tf.Variable | None = None) -> tf.train.Checkpoint:
    """A checkpoint of the trainer's networks and, if `optimizers`, its Adam optimisers and the global `step`.

    Under mixed precision the Adam state is saved without its loss-scale wrapper, so checkpoints of float32 and
    mixed-precision runs are interchangeable (a resumed mixed-precision run starts with a fresh loss scale).
    """
    objects = {name: getattr(trainer, name) for name in NETWORKS}
    if optimizers:
        for name in ("g_optimizer", "d_optimizer", "c_optimizer", "l_optimizer"):
            optimizer = getattr(trainer, name)
            objects[name] = getattr(optimizer, "inner_optimizer", optimizer)
        objects["step"] = step
    return tf.train.Checkpoint(**{name: value for name, value in objects.items() if value is not None})


def save_final_weights(trainer: EBGANTrainer, model_dir: str) -> str:
    """Writes `<model_dir>/final.weights.h5` atomically; returns its path."""
    path = os.path.join(model_dir, FINAL_WEIGHTS)
    write_atomically(path, trainer.save_weights)
    return path


def checkpoint_step(path: str) -> int:
    """The training step of a checkpoint path (`.../ckpt-<step>`)."""
    return int(path.rsplit("-", 1)[1])


def trained_step(model_dir: str) -> int:
    """The training step of the run's latest checkpoint (the final weights are saved at that step), else 0."""
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    return checkpoint_step(latest) if latest else 0


def checkpoint_paths(model_dir: str) -> list[str]:
    """The paths of the run's kept checkpoints (as `tf.train.latest_checkpoint` names them), by step."""
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, CHECKPOINT_DIR))
    paths = list(state.all_model_checkpoint_paths) if state else []
    return sorted((path for path in paths if tf.io.gfile.exists(f"{path}.index")), key=checkpoint_step)


def remove_checkpoint_litter(model_dir: str) -> list[str]:
    """Removes what a run killed while saving a checkpoint leaves in `<model_dir>/checkpoints`: the `ckpt-N_temp`
    folders of an unfinished save, the `checkpoint.tmp*` files of an unfinished state-file write, and the data and
    index files of checkpoints that the state file does not name. Returns the names removed (call before the run
    saves anything)."""
    directory = os.path.join(model_dir, CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        return []
    kept = {os.path.basename(path) for path in checkpoint_paths(model_dir)}
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        prefix = name.split(".", 1)[0]
        unnamed = prefix.startswith("ckpt-") and prefix not in kept and (name.endswith(".index") or ".data-" in name)
        if (name.endswith("_temp") and os.path.isdir(path)) or name.startswith("checkpoint.tmp") or unnamed:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(name)
    return removed


def load_trained(model_dir: str, checkpoint: str | None = None) -> EBGANTrainer:
    """Rebuilds the trainer of a run from `config.json` and loads its final weights (or, when the run has not
    finished, its latest checkpoint; or the given `checkpoint` path, e.g. one of `checkpoint_paths`), with the
    moving average of its weights where the run keeps one (final weights hold it already). Raises
    FileNotFoundError when `model_dir` holds neither, or `checkpoint` does not exist.
    """
    config = run_config_from_dir(model_dir)
    assert config.regions is not None and config.ema_decay is not None, "run_config_from_dir resolves"
    if checkpoint is not None and not tf.io.gfile.exists(f"{checkpoint}.index"):
        raise FileNotFoundError(f"No checkpoint {checkpoint} (its .index file is missing).")
    trainer = build_trainer(config.preset_object(), config.variant, config.regions, config.loss_weights)
    trainer.build_all()
    weights = os.path.join(model_dir, FINAL_WEIGHTS)
    latest = checkpoint or tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if checkpoint is None and os.path.exists(weights):
        trainer.load_weights(weights)
    elif latest:
        # Keras 3 hides the layers a model keeps in lists from tf.train.Checkpoint's object graph; their variables
        # are reachable only through the optimisers that train them, so the checkpoint is read with optimisers.
        compile_as_trained(trainer, config)
        step = tf.Variable(0, dtype=tf.int64)
        make_checkpoint(trainer, optimizers=True, step=step).restore(latest).assert_existing_objects_matched()
        trainer.use_averaged_weights()
    else:
        raise FileNotFoundError(f"{model_dir} holds neither {FINAL_WEIGHTS} nor a checkpoint; train it first.")
    return trainer
