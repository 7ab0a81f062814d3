"""Tests of ebgan-train (training/train.py, train_lib.py, run_config.py, callbacks.py) and the demo writer, on a
tiny model and a tiny synthetic data set."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from ebgan_tf import images
from ebgan_tf.config import get_preset
from ebgan_tf.export.saved_model import write_saved_model
from ebgan_tf.runs import (
    ConfigError,
    check_config,
    load_trained,
    read_config,
    run_config_from_dir,
    write_config,
)
from ebgan_tf.training import train_lib
from ebgan_tf.training.distribute import make_strategy
from tests.helpers.tiny import (
    IMAGE_SIZE,
    LANDMARK_TEMPLATE,
    SPLIT_SIZES,
    TINY_MODEL,
    TINY_MODEL_FLAG,
    TINY_RUN,
    network_weights,
    tiny_config,
    write_untrained_run,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# pipeline.load_examples reads the standard synthetic_faces config (12,000 training faces); the tests read a
# tiny data set with the same builder instead. DEMO runs ebgan_tf.training.demo's main on it in a fresh process.
DEMO = f"""
import sys
from ebgan_tf.data import pipeline, synthetic_faces
pipeline.load_examples = lambda dataset, data_dir, split, image_size: synthetic_faces.load_synthetic_faces(
    data_dir, split, image_size, prepare=False, **{SPLIT_SIZES!r})
from ebgan_tf.training import demo
sys.argv = ["demo"] + sys.argv[1:]
demo.run()
"""
FLAGS_OF_THE_BRIEF = (
    "preset",
    "variant",
    "regions",
    "region_weights",
    "dataset",
    "data_dir",
    "model_dir",
    "epochs",
    "steps_per_epoch",
    "batch_size",
    "learning_rate",
    "rec_weight",
    "cyc_weight",
    "cls_weight",
    "model_config",
    "strategy",
    "cpu_replicas",
    "seed",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "image_every",
    "image_rows",
    "validation_steps",
    "hole_rec_weight",
    "gate_dropout",
    "divergence_factor",
)


def run_python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def summaries(directory: str) -> dict[str, dict[int, event_pb2.Summary.Value]]:
    """tag -> step -> summary value, from every event file in `directory`."""
    found: dict[str, dict[int, event_pb2.Summary.Value]] = {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = value
    return found


class StopAtStep(keras.callbacks.Callback):
    """Simulates an interruption: ends training after `step` optimisation steps."""

    def __init__(self, step: int):
        super().__init__()
        self._step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations.numpy()) >= self._step:
            self.model.stop_training = True


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """An uninterrupted 6-step run: (model_dir, trainer, history)."""
    model_dir = str(tmp_path_factory.mktemp("run") / "model")
    trainer, history = train_lib.train(tiny_config(model_dir, data_dir), make_strategy("one_device"))
    return model_dir, trainer, history


@pytest.mark.slow
def test_run_writes_config_checkpoints_summaries_and_final_weights(finished):
    model_dir, trainer, history = finished
    config = read_config(model_dir)
    assert config["variant"] == "att_ebgan" and config["regions"] == ["mouth"]
    assert config["attribute_names"] == list(trainer.attribute_names)
    assert config["model"]["image_size"] == IMAGE_SIZE and config["batch_size"] == 4
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-6")
    kept = sorted(path[: -len(".index")] for path in glob.glob(os.path.join(model_dir, "checkpoints", "*.index")))
    assert [os.path.basename(path) for path in kept] == ["ckpt-4", "ckpt-6"]  # keep_checkpoints=2
    assert os.path.exists(os.path.join(model_dir, "final.weights.h5"))
    assert trainer.g_optimizer.iterations.numpy() == 6
    assert len(history["g_loss"]) == 2 and np.all(np.isfinite(history["g_loss"]))
    assert len(history["val_g_loss"]) == 2

    train_logs = summaries(os.path.join(model_dir, "logs", "train"))
    assert sorted(train_logs["g_loss"]) == [1, 2, 3, 4, 5, 6]  # log_every=1, keyed by the global step
    assert np.isfinite(tf.make_ndarray(train_logs["g_loss"][6].tensor))
    assert sorted(train_logs["edits"]) == [2, 4, 6]
    png = train_logs["edits"][6].tensor.string_val
    grid = tf.io.decode_png(png[2]).numpy()
    assert (int(png[1]), int(png[0])) == grid.shape[:2]
    assert grid.shape[0] >= 2 * IMAGE_SIZE and grid.shape[1] >= 5 * IMAGE_SIZE  # 2 rows, 5 columns
    assert sorted(summaries(os.path.join(model_dir, "logs", "validation"))["g_loss"]) == [3, 6]


@pytest.mark.slow
def test_load_trained_rebuilds_the_final_model(finished):
    model_dir, trainer, _ = finished
    loaded = load_trained(model_dir)
    assert loaded.attribute_names == trainer.attribute_names and loaded.variant == "att_ebgan"
    for got, want in zip(network_weights(loaded), network_weights(trainer), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_load_trained_of_a_run_without_final_weights_restores_every_weight_from_its_newest_checkpoint(
    finished, tmp_path
):
    model_dir, trainer, _ = finished
    killed = tmp_path / "killed"
    shutil.copytree(model_dir, killed)
    os.remove(killed / "final.weights.h5")  # as a run killed after its last checkpoint (step 6)
    for got, want in zip(network_weights(load_trained(str(killed))), network_weights(trainer), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_resume_mid_epoch_gives_the_weights_of_an_uninterrupted_run(finished, data_dir, tmp_path, capsys):
    _, uninterrupted, _ = finished
    config = tiny_config(tmp_path / "model", data_dir)
    stopped, _ = train_lib.train(config, make_strategy("one_device"), extra_callbacks=[StopAtStep(4)])
    assert stopped.g_optimizer.iterations.numpy() == 4  # interrupted in the second epoch, after its first step
    capsys.readouterr()
    resumed, _ = train_lib.train(config, make_strategy("one_device"))
    output = capsys.readouterr().out
    assert "Resuming from step 4 (checkpoint" in output
    assert "Epoch 2 of 2: steps 5 to 6 of 6." in output and "Epoch 2/2" not in output  # one epoch counter
    assert resumed.g_optimizer.iterations.numpy() == 6
    for got, want in zip(network_weights(resumed), network_weights(uninterrupted), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class FinalWeightsSeen(keras.callbacks.Callback):
    """Records whether `path` exists when training starts."""

    def __init__(self, path: str):
        super().__init__()
        self.path, self.seen = path, None

    def on_train_batch_begin(self, batch, logs=None):
        if self.seen is None:
            self.seen = os.path.exists(self.path)


@pytest.mark.slow
def test_training_a_finished_run_further_removes_its_stale_final_weights(finished, data_dir, tmp_path, capsys):
    model_dir, _, _ = finished
    extended = tmp_path / "extended"
    shutil.copytree(model_dir, extended)
    final = os.path.join(extended, "final.weights.h5")
    seen = FinalWeightsSeen(final)
    trainer, _ = train_lib.train(
        tiny_config(extended, data_dir, epochs=3), make_strategy("one_device"), extra_callbacks=[seen, StopAtStep(7)]
    )
    assert "Removed the final weights of step 6" in capsys.readouterr().out
    assert seen.seen is False  # gone before the first new step: a kill now loads the newest checkpoint
    assert trainer.g_optimizer.iterations.numpy() == 7 and os.path.exists(final)  # the stop wrote new ones
    for got, want in zip(network_weights(load_trained(str(extended))), network_weights(trainer), strict=True):
        np.testing.assert_array_equal(got, want)


class WeightsAtStart(keras.callbacks.Callback):
    """Records the networks' weights and the step when training starts."""

    def on_train_begin(self, logs=None):
        self.step = int(self.model.g_optimizer.iterations.numpy())
        self.weights = network_weights(self.model)


@pytest.mark.slow
def test_a_new_run_starts_from_the_networks_of_another_run_and_refuses_networks_that_do_not_fit(
    finished, data_dir, tmp_path, capsys
):
    model_dir, trained, _ = finished
    aligned = {**TINY_MODEL, "code_pooling": "spatial", "exemplar_alignment": "landmarks"}  # the networks' shapes kept
    start = WeightsAtStart()
    config = tiny_config(tmp_path / "aligned", data_dir, init_from=model_dir, model_overrides=aligned)
    train_lib.train(config, make_strategy("one_device"), extra_callbacks=[start, StopAtStep(1)])
    assert f"from the networks of {model_dir} (step 6)" in capsys.readouterr().out
    assert start.step == 0  # fresh optimisers and step count
    for got, want in zip(start.weights, network_weights(trained), strict=True):  # the run's final weights
        np.testing.assert_array_equal(got, want)
    assert read_config(str(tmp_path / "aligned"))["init_from"] == model_dir
    assert run_config_from_dir(str(tmp_path / "aligned")).init_from == model_dir
    # --noinit_discriminator: the editing networks copied, the discriminator new.
    start = WeightsAtStart()
    config = tiny_config(tmp_path / "new_discriminator", data_dir, init_from=model_dir, init_discriminator=False)
    train_lib.train(config, make_strategy("one_device"), extra_callbacks=[start, StopAtStep(1)])
    assert "(step 6), with a new discriminator." in capsys.readouterr().out
    editing = len(trained.encoder.weights) + len(trained.generator.weights)
    discriminator = slice(editing, editing + len(trained.discriminator.weights))
    for got, want in zip(start.weights[:editing], network_weights(trained)[:editing], strict=True):
        np.testing.assert_array_equal(got, want)
    new = zip(start.weights[discriminator], network_weights(trained)[discriminator], strict=True)
    assert not any(np.array_equal(got, want) for got, want in new)
    assert not run_config_from_dir(str(tmp_path / "new_discriminator")).init_discriminator
    with pytest.raises(ConfigError, match="--noinit_discriminator needs --init_from"):
        train_lib.train(
            tiny_config(tmp_path / "refused", data_dir, init_discriminator=False), make_strategy("one_device")
        )
    wider = tiny_config(
        tmp_path / "wider", data_dir, init_from=model_dir, model_overrides={**TINY_MODEL, "max_width": 32}
    )
    with pytest.raises(ConfigError, match="its encoder does not fit this run's"):
        train_lib.train(wider, make_strategy("one_device"))
    with pytest.raises(ConfigError, match="neither a model directory written by ebgan-train .* nor an export"):
        train_lib.train(tiny_config(tmp_path / "other", data_dir, init_from=str(tmp_path)), make_strategy("one_device"))
    assert not (tmp_path / "wider").exists() and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_run_with_a_teacher_logs_the_teacher_loss_records_the_teacher_and_refuses_one_that_does_not_fit(
    finished, data_dir, tmp_path
):
    model_dir, trained, _ = finished
    weights = dataclasses.replace(get_preset("synthetic64").train.loss_weights, teacher=10.0)
    config = tiny_config(tmp_path / "taught", data_dir, teacher=model_dir, loss_weights=weights)
    _, history = train_lib.train(config, make_strategy("one_device"), extra_callbacks=[StopAtStep(1)])
    assert history["teacher"] and history["teacher"][0] > 0 and np.isfinite(history["val_teacher"]).all()
    assert read_config(str(tmp_path / "taught"))["teacher"] == model_dir
    assert run_config_from_dir(str(tmp_path / "taught")).teacher == model_dir
    # Its final weights hold the student's networks only and load for editing without the teacher.
    assert len(load_trained(str(tmp_path / "taught")).weights) == len(trained.weights)
    larger = write_untrained_run(tmp_path / "larger", data_dir, model_overrides={**TINY_MODEL, "image_size": 64})
    cases = [
        (dict(teacher=larger, loss_weights=weights), "that run edits 64 px images, this one 32 px"),
        (dict(teacher=str(tmp_path), loss_weights=weights), f"--teacher={tmp_path}: .*not a model directory"),
        (dict(loss_weights=weights), "--teacher_weight and --teacher go together"),
        (dict(teacher=model_dir), "--teacher_weight and --teacher go together"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            train_lib.train(tiny_config(tmp_path / "refused", data_dir, **overrides), make_strategy("one_device"))
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_restart_with_another_configuration_names_the_differing_fields(finished, data_dir):
    model_dir, _, _ = finished
    before = sorted(os.listdir(model_dir))
    with pytest.raises(ConfigError, match=r"another configuration.*variant: 'att_ebgan' in the model_dir, 'ebgan'"):
        train_lib.train(tiny_config(model_dir, data_dir, variant="ebgan"), make_strategy("one_device"))
    with pytest.raises(ConfigError, match=r"batch_size: 4 in the model_dir, 8 now"):
        train_lib.train(tiny_config(model_dir, data_dir, batch_size=8), make_strategy("one_device"))
    with pytest.raises(ConfigError, match=r"region_weights: None in the model_dir, \[2.0\] now"):
        train_lib.train(tiny_config(model_dir, data_dir, region_weights=(2.0,)), make_strategy("one_device"))
    assert sorted(os.listdir(model_dir)) == before


def test_a_run_recorded_before_a_field_existed_resumes_and_loads_as_if_it_had_the_default(tmp_path):
    identity = tiny_config(tmp_path, tmp_path).resolved().identity()
    assert identity["model"]["code_pooling"] == "parts"  # the preset's, not ModelConfig's default ("spatial")
    older = json.loads(json.dumps(identity))
    del older["loss_weights"]["swap_back"], older["model"]["generator"], older["ema_decay"], older["region_weights"]
    write_config(str(tmp_path), older)
    check_config(str(tmp_path), {**identity, "ema_decay": 0.0})  # the fields it predates are at their defaults
    with pytest.raises(ValueError, match=r"ema_decay: 0.0 in the model_dir, 0.99 now"):
        check_config(str(tmp_path), identity)
    changed = {**identity, "loss_weights": {**identity["loss_weights"], "swap_back": 5.0}}
    with pytest.raises(ValueError, match=r"loss_weights.swap_back: 0.0 in the model_dir, 5.0 now"):
        check_config(str(tmp_path), changed)
    del older["model"]["code_pooling"]  # a run before per-part codes existed had one spatial code map
    write_config(str(tmp_path), older)
    with pytest.raises(ValueError, match=r"model.code_pooling: 'spatial' in the model_dir, 'parts' now"):
        check_config(str(tmp_path), identity)
    loaded = run_config_from_dir(str(tmp_path))  # loading follows the same rule
    assert loaded.model_config().code_pooling == "spatial" and loaded.ema_decay == 0.0
    assert loaded.region_weights is None  # every region equally often, as before the field existed
    assert loaded.loss_weights is not None and loaded.loss_weights.swap_back == 0.0


def test_training_batches_draw_regions_by_the_runs_weights_and_validation_ones_all_regions(data_dir, tmp_path):
    config = tiny_config(tmp_path, data_dir, regions=("mouth", "eyes"), region_weights=(0.0, 1.0)).resolved()
    data = train_lib._Data(config, get_preset(config.preset).attributes_for(config.regions))
    trained = np.concatenate([batch["mask_region"].numpy() for batch in data.epoch(0, 0)])
    assert len(trained) == TINY_RUN["steps_per_epoch"] * TINY_RUN["batch_size"] and set(trained) == {1}
    validated = np.concatenate([batch["mask_region"].numpy() for batch in data.validation().take(4)])
    assert set(validated) == {0, 1}


def test_user_errors_are_config_errors_before_anything_is_written(tmp_path):
    model_dir = tmp_path / "model"
    three_replicas = types.SimpleNamespace(num_replicas_in_sync=3)
    cases = [
        (
            tiny_config(model_dir, tmp_path / "missing"),
            make_strategy("one_device"),
            "does not exist|No synthetic_faces data set",
        ),  # real or tiny loader (see data_dir)
        (tiny_config(model_dir, tmp_path, batch_size=4), three_replicas, "multiple of the 3 replica"),
        (
            tiny_config(model_dir, tmp_path, regions=("mouth", "ears")),
            make_strategy("one_device"),
            "Unknown region.*'ears'.*valid regions: mouth, eyes",
        ),
        (
            tiny_config(model_dir, tmp_path, regions=("mouth", "eyes", "mouth")),
            make_strategy("one_device"),
            "Region.*'mouth' named more than once in 'mouth,eyes,mouth'",
        ),
        (
            tiny_config(model_dir, tmp_path, regions=("mouth", "eyes"), region_weights=(1.0,)),
            make_strategy("one_device"),
            "--region_weights needs one weight per region: 1 for the 2 regions mouth,eyes",
        ),
        (tiny_config(model_dir, tmp_path, variant="gan"), make_strategy("one_device"), "Unknown variant 'gan'"),
        (tiny_config(model_dir, tmp_path, preset="huge"), make_strategy("one_device"), "Unknown preset 'huge'"),
        (
            tiny_config(model_dir, tmp_path, model_overrides={"depth": 3}),
            make_strategy("one_device"),
            "Unknown model setting.*'depth'",
        ),
        (tiny_config(model_dir, tmp_path, checkpoint_every=0), make_strategy("one_device"), "--checkpoint_every"),
    ]
    for config, strategy, message in cases:
        with pytest.raises(ConfigError, match=message):
            train_lib.train(config, strategy)
    assert not model_dir.exists()


@pytest.mark.slow
def test_a_new_run_starts_from_the_editing_networks_of_an_export(finished, data_dir, tmp_path, capsys):
    _, trained, _ = finished
    export_base = str(tmp_path / "export")
    write_saved_model(trained, os.path.join(export_base, "1"), LANDMARK_TEMPLATE)
    start = WeightsAtStart()
    config = tiny_config(tmp_path / "tuned", data_dir, init_from=export_base, init_discriminator=False)
    train_lib.train(config, make_strategy("one_device"), extra_callbacks=[start, StopAtStep(1)])
    assert f"from the networks of {export_base} (step 0), with a new discriminator." in capsys.readouterr().out
    assert start.step == 0
    editing = len(trained.encoder.weights) + len(trained.generator.weights)
    classifier = slice(editing + len(trained.discriminator.weights), None)
    for got, want in zip(start.weights[:editing], network_weights(trained)[:editing], strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(start.weights[classifier], network_weights(trained)[classifier], strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ConfigError, match="^--init_from=.* is an export, which holds no discriminator: add --noinit"):
        train_lib.train(tiny_config(tmp_path / "refused", data_dir, init_from=export_base), make_strategy("one_device"))
    old_export = str(tmp_path / "old_export")
    tf.saved_model.save(tf.Module(), old_export)
    with pytest.raises(ConfigError, match="^--init_from=.*: this export holds no network weights"):
        train_lib.train(
            tiny_config(tmp_path / "old", data_dir, init_from=old_export, init_discriminator=False),
            make_strategy("one_device"),
        )
    assert not (tmp_path / "refused").exists() and not (tmp_path / "old").exists()


@pytest.mark.slow
def test_cli_help_mentions_every_flag():
    result = run_python("-m", "ebgan_tf.training.train", "--helpshort")  # absl exits with status 1 after the help
    for name in FLAGS_OF_THE_BRIEF:
        assert f"--{name}" in result.stdout, name


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--preset=huge"],
            "flag --preset=huge: value should be one of <celeba128|celeba128_paper|synthetic64|synthetic64_paper>",
        ),
        (["--variant=gan"], "flag --variant=gan: value should be one of <ebgan|att_ebgan>"),
        (["--divergence_factor=1"], "ebgan-train: error: --divergence_factor must be 0 (off) or above 1, got 1.0."),
        (
            ["--model_config=code_pooling=max"],
            "ebgan-train: error: Unknown code_pooling 'max'; valid: spatial, global, parts.",
        ),
        (["--regions=mouth,ears"], "ebgan-train: error: Unknown region(s) 'ears'; valid regions:"),
        (
            ["--regions=mouth,nose", "--region_weights=1,x"],
            "ebgan-train: error: --region_weights expects comma-separated numbers, got '1,x'.",
        ),
        (
            ["--regions=mouth,nose", "--region_weights="],
            "ebgan-train: error: --region_weights needs one weight per region: 0 for the 2 regions mouth,nose.",
        ),
        (
            ["--strategy=mirrored", "--cpu_replicas=2", "--batch_size=3"],
            "ebgan-train: error: --batch_size=3 (the global batch) must be a positive multiple of the 2 replica(s)",
        ),
    ],
)
def test_cli_errors_exit_1_with_one_clear_line(args, message, tmp_path):
    result = run_python(
        "-m", "ebgan_tf.training.train", f"--model_dir={tmp_path / 'model'}", f"--data_dir={tmp_path}", *args
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_cli_refuses_a_model_dir_of_another_run(finished, data_dir):
    model_dir, _, _ = finished
    result = run_python(
        "-m",
        "ebgan_tf.training.train",
        f"--model_dir={model_dir}",
        f"--data_dir={data_dir}",
        f"--model_config={TINY_MODEL_FLAG}",
        "--batch_size=4",
        "--rec_weight=1",
    )
    assert result.returncode == 1
    assert "holds a run with another configuration (loss_weights.rec: 100.0 in the model_dir, 1.0 now)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_writes_the_edit_grid(finished, data_dir, tmp_path):
    model_dir, _, _ = finished
    out = tmp_path / "edits.png"
    result = run_python("-c", DEMO, f"--model_dir={model_dir}", f"--data_dir={data_dir}", f"--out={out}", "--rows=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote {out}: 3 rows" in result.stdout
    grid = images.load_image(str(out))
    assert grid.shape[0] >= 3 * IMAGE_SIZE and grid.shape[1] >= 5 * IMAGE_SIZE
