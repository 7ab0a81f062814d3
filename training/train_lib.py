"""The training library behind `ebgan-train`: `train(run_config, strategy)`.

Exact resume: the input stream is a deterministic function of (seed, epoch) — every epoch gets its own
pipeline seeded by the run seed and the epoch number — and a checkpoint holds the models, the optimisers and
the global step (optimiser iterations). A restart restores the latest checkpoint, rebuilds the pipeline of the
epoch it stopped in and skips the batches already consumed (at most one epoch of input work, no training), so
an interrupted run ends with the same weights as an uninterrupted one. Each epoch is one `fit` call.

Checkpoints are written atomically by tf.train.CheckpointManager (data files first, the `checkpoint` state file
last), so a process killed at any moment leaves the previous checkpoint as the latest. A non-finite loss or weight
stops the run before it is saved (callbacks.NonFiniteError), and so does a reconstruction loss that rises far above its
lowest value (callbacks.DivergenceError: finite divergence, `RunConfig.divergence_factor`).

Under MultiWorkerMirroredStrategy every worker runs this same function; only the chief writes into the model
directory (see distribute.output_dir), and every worker restores from the chief's checkpoints, so the model
directory must be on storage all workers read (a shared file system or a bucket) for a multi-worker resume.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ebgan_tf.data import pipeline
from ebgan_tf.editing import saved_model_dir
from ebgan_tf.models.trainer import EBGANTrainer, build_trainer
from ebgan_tf.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EDITING_NETWORKS,
    FINAL_WEIGHTS,
    LOG_DIR,
    NETWORKS,
    ConfigError,
    RunConfig,
    check_config,
    checkpoint_step,
    exported_weights_name,
    learning_rate_schedule,
    load_trained,
    make_checkpoint,
    remove_checkpoint_litter,
    save_final_weights,
    write_config,
)
from ebgan_tf.training import callbacks, distribute


def epoch_seed(seed: int, epoch: int) -> int:
    """The input pipeline's seed for one epoch of a run."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class _Data:
    """The run's training, validation and image-grid batches."""

    def __init__(self, config: RunConfig, attribute_names: tuple[str, ...]):
        assert config.dataset is not None and config.batch_size is not None, "call with a resolved config"
        self._config = config
        self._batch_size: int = config.batch_size
        image_size = config.model_config().image_size
        self._train = pipeline.load_examples(
            config.dataset, config.data_dir, pipeline.TRAIN_SPLIT[config.dataset], image_size
        )
        self._eval = pipeline.load_examples(
            config.dataset, config.data_dir, pipeline.EVAL_SPLIT[config.dataset], image_size
        )
        self._options: dict[str, Any] = dict(
            image_size=image_size,
            regions=config.regions,
            attribute_names=attribute_names,
            crop=pipeline.default_crop(config.dataset),
            deterministic=True,
            repeat=True,
            part_layouts=config.model_config().code_pooling == "parts",
        )

    def epoch(self, epoch: int, skip: int) -> tf.data.Dataset:
        """The batches of `epoch` after the first `skip`."""
        config = self._config
        batches = pipeline.make_dataset(
            self._train,
            batch_size=self._batch_size,
            training=True,
            region_weights=config.region_weights,
            same_exemplar_share=config.preset_object().train.same_exemplar_share,
            seed=epoch_seed(config.seed, epoch),
            **self._options,
        )
        return distribute.shard_by_data(batches.skip(skip).take(config.steps_per_epoch - skip))

    def validation(self) -> tf.data.Dataset | None:
        """The same `validation_steps` batches of the evaluation split after every epoch, or None."""
        if not self._config.validation_steps:
            return None
        return distribute.shard_by_data(
            pipeline.make_dataset(
                self._eval, batch_size=self._batch_size, training=False, seed=self._config.seed, **self._options
            ).take(self._config.validation_steps)
        )

    def landmark_template(self, batches: int = 4) -> list[list[float]]:
        """Mean landmarks [5, 2] of evaluation faces after crop and resize: where the model expects the five
        points of an aligned face (exported in the `metadata` signature for masks and photo alignment)."""
        eval_batches = pipeline.make_dataset(
            self._eval, batch_size=self._batch_size, training=False, seed=self._config.seed, **self._options
        ).take(batches)
        landmarks = np.concatenate([batch["source_landmarks"].numpy() for batch in eval_batches])
        return np.round(landmarks.mean(axis=0), 2).tolist()

    def image_batch(self) -> dict[str, np.ndarray]:
        """A fixed batch of `image_rows` evaluation pairs (never B = A) for the edit grid."""
        batches = pipeline.make_dataset(
            self._eval,
            batch_size=self._config.image_rows,
            training=False,
            same_exemplar_share=0.0,
            seed=self._config.seed,
            **self._options,
        )
        return {key: value.numpy() for key, value in next(iter(batches)).items()}


class RunProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar without Keras' own "Epoch k/k" line: each `fit` call is one epoch of the run, and the run
    prints its own count ("Epoch 2 of 8: steps 101 to 200 of 800.")."""

    def set_params(self, params: dict) -> None:
        super().set_params({**params, "epochs": 1})


def _build(config: RunConfig, strategy: tf.distribute.Strategy) -> EBGANTrainer:
    """Builds and compiles the trainer (models and optimisers) inside the strategy's scope, under the float32 or
    mixed_float16 policy (the process's global policy is restored afterwards)."""
    assert config.regions is not None and config.ema_decay is not None, "call with a resolved config"
    keras.utils.set_random_seed(config.seed)
    train = config.preset_object().train
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision else "float32")
    try:
        with strategy.scope():
            teacher = _teacher(config)
            trainer = build_trainer(
                config.preset_object(),
                config.variant,
                config.regions,
                config.loss_weights,
                teacher_edit=teacher.edit if teacher is not None else None,
            )
            trainer.build_all()
            trainer.compile(
                learning_rate=learning_rate_schedule(config),
                beta_1=train.beta_1,
                beta_2=train.beta_2,
                ema_decay=config.ema_decay,
                jit_compile=config.xla,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    # Keras 3.15's fit and evaluate first pull one batch and reduce it across replicas with strategy.reduce to
    # build the model symbolically; MultiWorkerMirroredStrategy cannot reduce dict batches
    # and the trainer is fully built already, so that step is skipped.
    trainer._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    return trainer


def _teacher(config: RunConfig) -> EBGANTrainer | None:
    """The trained run `config.teacher` as `load_trained` loads it, or None without one.

    Raises ConfigError if that folder holds no trained run or one of another image size."""
    if not config.teacher:
        return None
    teacher = _load_run("teacher", config.teacher)
    size, ours = teacher.model_config.image_size, config.model_config().image_size
    if size != ours:
        raise ConfigError(f"--teacher={config.teacher}: that run edits {size} px images, this one {ours} px.")
    return teacher


def _load_run(flag: str, run_dir: str) -> EBGANTrainer:
    """The trained run in `run_dir` as `load_trained` loads it; a ConfigError naming `--<flag>` if there is none."""
    try:
        return load_trained(run_dir)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(f"--{flag}={run_dir}: {error}") from None


def _networks_of_run(run_dir: str, discriminator: bool) -> tuple[dict[str, list[np.ndarray] | None], int]:
    """The weights of the networks of the run in `run_dir` (its final weights, else its latest checkpoint's,
    weight-averaged where the run keeps an average; as `ebgan-eval` loads it; None where it has no such network)
    and the step they are of."""
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR))
    source = _load_run("init_from", run_dir)
    names = NETWORKS if discriminator else EDITING_NETWORKS
    networks = {name: getattr(source, name) for name in names}
    weights = {name: None if network is None else network.get_weights() for name, network in networks.items()}
    return weights, checkpoint_step(latest) if latest else 0


def exported_networks(export_dir: str) -> dict[str, list[np.ndarray] | None]:
    """The editing networks' weights kept in the SavedModel version directory `export_dir` (None where it has no
    such network); a ValueError if it keeps none."""
    loaded = tf.saved_model.load(export_dir)
    collections = {name: getattr(loaded, exported_weights_name(name), None) for name in EDITING_NETWORKS}
    if all(collection is None for collection in collections.values()):
        raise ValueError(
            "this export holds no network weights (written by an older ebgan-export); export its run again, or "
            "start from the run itself."
        )
    return {
        name: None if collection is None else [variable.numpy() for variable in collection]
        for name, collection in collections.items()
    }


def _networks_of_export(path: str, discriminator: bool) -> dict[str, list[np.ndarray] | None]:
    """`exported_networks` of the export at `path` (a SavedModel version or base directory); a ConfigError naming
    `--init_from` if `path` is no export, holds no network weights, or a discriminator is asked for."""
    try:
        export_dir = saved_model_dir(path)
    except ValueError as error:
        raise ConfigError(
            f"--init_from={path}: neither a model directory written by ebgan-train (no {CONFIG_FILE}) nor an "
            f"export: {error}"
        ) from None
    if discriminator:
        raise ConfigError(
            f"--init_from={path} is an export, which holds no discriminator: add --noinit_discriminator to start "
            "the discriminator new."
        )
    try:
        return exported_networks(export_dir)
    except ValueError as error:
        raise ConfigError(f"--init_from={path}: {error}") from None


def _initialise(trainer: EBGANTrainer, path: str, discriminator: bool) -> int:
    """Copies the networks of the run or export at `path` into `trainer`, whose optimisers stay new; returns the step
    they are of (0 for an export). Without `discriminator` the discriminator keeps its new weights.

    Raises ConfigError if `path` holds no trained run or export, or networks that do not fit `trainer`'s."""
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, CONFIG_FILE)):
        weights, step = _networks_of_export(path, discriminator), 0
    else:
        weights, step = _networks_of_run(path, discriminator)
    for name, theirs in weights.items():
        ours = getattr(trainer, name)
        if (ours is None) != (theirs is None):
            raise ConfigError(
                f"--init_from={path}: that model has {'no' if theirs is None else 'a'} {name} network, this one "
                f"{'has' if ours is not None else 'has none'} (another variant or code pooling?)."
            )
        try:
            if ours is not None:
                ours.set_weights(theirs)
        except ValueError as error:
            raise ConfigError(
                f"--init_from={path}: its {name} does not fit this run's (other widths or attributes?): "
                f"{str(error).splitlines()[0][:300]}"
            ) from None
    return step


def train(
    config: RunConfig,
    strategy: tf.distribute.Strategy,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[EBGANTrainer, dict[str, list[float]]]:
    """Trains (or resumes) the run `config` under `strategy`; returns the trainer and the per-epoch history.

    `extra_callbacks` run after the built-in ones; one that sets `model.stop_training` ends the run early (with a
    checkpoint and the weights of the step it stopped at).

    Raises:
      ConfigError: a bad setting, a global batch that does not split over the replicas, a model_dir holding
        another run, or missing data — all found before anything is written.
      callbacks.NonFiniteError: a loss or weight became NaN or infinite (the latest checkpoint is the last good one).
      callbacks.DivergenceError: the reconstruction loss diverged (likewise).
    """
    try:
        config = config.resolved()
        assert config.batch_size is not None, "resolved"
        distribute.check_global_batch(config.batch_size, strategy)
        distribute.check_xla(config.xla, strategy)
        identity = config.identity()
        data = _Data(config, tuple(identity["attribute_names"]))
        identity["landmark_template"] = data.landmark_template()
        check_config(config.model_dir, identity)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from None
    trainer = _build(config, strategy)
    started_from = None
    if config.init_from and not tf.train.latest_checkpoint(os.path.join(config.model_dir, CHECKPOINT_DIR)):
        started_from = _initialise(trainer, config.init_from, config.init_discriminator)
    with distribute.output_dir(config.model_dir, strategy) as output_dir:
        history = _fit(trainer, config, identity, data, strategy, output_dir, started_from, extra_callbacks)
    return trainer, history


def _fit(
    trainer: EBGANTrainer,
    config: RunConfig,
    identity: dict,
    data: _Data,
    strategy: tf.distribute.Strategy,
    output_dir: str,
    started_from: int | None,
    extra_callbacks: Sequence[keras.callbacks.Callback],
) -> dict[str, list[float]]:
    """Restores the latest checkpoint of `config.model_dir` (none: the networks are new, or loaded from the
    `config.init_from` checkpoint of step `started_from`), trains to the end and writes into `output_dir`."""
    if output_dir == config.model_dir:  # the chief's own folder: what a killed save left there
        removed = remove_checkpoint_litter(config.model_dir)
        if removed:
            print(
                f"Removed what a run killed while saving left in {config.model_dir}/{CHECKPOINT_DIR}: "
                f"{', '.join(removed)}.",
                flush=True,
            )
    counter = callbacks.StepCounter()
    checkpoint = make_checkpoint(trainer, optimizers=True, step=counter.variable)
    latest = tf.train.latest_checkpoint(os.path.join(config.model_dir, CHECKPOINT_DIR))
    if latest:
        with strategy.scope():
            checkpoint.restore(latest).assert_existing_objects_matched()
        print(f"Resuming from step {counter.step} (checkpoint {latest}).", flush=True)
    elif started_from is not None:
        print(
            f"Starting a new run in {config.model_dir} from the networks of {config.init_from} (step {started_from})"
            f"{'' if config.init_discriminator else ', with a new discriminator'}.",
            flush=True,
        )
    else:
        print(f"Starting a new run in {config.model_dir}.", flush=True)
    write_config(output_dir, identity)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(output_dir, CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints
    )

    logs = os.path.join(output_dir, LOG_DIR)
    train_writer = tf.summary.create_file_writer(os.path.join(logs, "train"))
    checkpoints = callbacks.CheckpointCallback(
        trainer,
        manager,
        config.checkpoint_every,
        counter,
        saved_step=counter.step if latest else None,
        divergence_factor=config.divergence_factor,
    )
    grids = callbacks.EditGridSummaries(trainer, counter, train_writer, data.image_batch(), config.image_every)
    scalars = callbacks.ScalarSummaries(
        counter, train_writer, tf.summary.create_file_writer(os.path.join(logs, "validation")), config.log_every
    )

    history: dict[str, list[float]] = {}
    total_steps = config.epochs * config.steps_per_epoch
    if counter.step >= total_steps:
        print(f"Training is already complete: step {counter.step} of {total_steps}.", flush=True)
    elif os.path.exists(os.path.join(output_dir, FINAL_WEIGHTS)):
        # A finished run trained further: its final weights are now stale. Without them, a run killed before it
        # ends is loaded (ebgan-eval, ebgan-export) from its newest checkpoint instead; the end writes new ones.
        os.remove(os.path.join(output_dir, FINAL_WEIGHTS))
        print(
            f"Removed the final weights of step {counter.step} from {output_dir}: training continues to step "
            f"{total_steps}.",
            flush=True,
        )
    for epoch in range(counter.step // config.steps_per_epoch, config.epochs):
        skip = counter.step - epoch * config.steps_per_epoch
        # Keras numbers each one-epoch fit call "Epoch k/k"; this line gives the run's own count.
        last_step = (epoch + 1) * config.steps_per_epoch
        print(
            f"Epoch {epoch + 1} of {config.epochs}: steps {counter.step + 1} to {last_step} of {total_steps}.",
            flush=True,
        )
        result = trainer.fit(
            data.epoch(epoch, skip),
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=config.steps_per_epoch - skip,
            validation_data=data.validation(),
            validation_steps=config.validation_steps or None,
            shuffle=False,
            callbacks=[counter, checkpoints, scalars, grids, *extra_callbacks, RunProgress()],
        )
        for name, values in result.history.items():
            history.setdefault(name, []).extend(float(np.mean(value)) for value in values)
        if trainer.stop_training:
            break

    checkpoints.save()
    trainer.use_averaged_weights()  # the final weights (and the returned trainer) are the moving average
    grids.write()
    save_final_weights(trainer, output_dir)
    print(f"Saved the final weights to {os.path.join(output_dir, FINAL_WEIGHTS)} (step {counter.step}).", flush=True)
    return history
