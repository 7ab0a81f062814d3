"""Tests of --strategy=multi_worker: TF_CONFIG checks, and two worker processes on 127.0.0.1 that train to the
weights of one process with the same global batch and seed, with only the chief writing the run's files."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest

from ebgan_tf.training import distribute, train_lib
from ebgan_tf.training.distribute import check_tf_config, make_strategy
from tests.helpers.tiny import network_weights, tiny_config
from tests.helpers.train_fixtures import (
    free_port,
    killed_on_exit,
    load_tiny_examples,
    load_weights,
    prepare_tiny_data,
    start_training,
    train_flags,
)

STEPS = 3  # one epoch of 3 steps, global batch 4, checkpoint at step 2 and at the end


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    )


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "needs a 'cluster' with a 'worker' list"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "is not in its cluster"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'type' must be one of worker"),
    ],
)
def test_bad_tf_config_is_a_clear_error(value, message):
    with pytest.raises(ValueError, match=message):
        check_tf_config(value)


def test_multi_worker_refuses_cpu_replicas_and_a_missing_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="multi_worker uses one CPU device per machine"):
        make_strategy("multi_worker", cpu_replicas=2)
    with pytest.raises(ValueError, match='TF_CONFIG environment variable.*"index": 0'):
        make_strategy("multi_worker")


def test_only_the_chief_writes_into_the_model_dir(tmp_path):
    def cluster(task_type, task_id, jobs):
        spec = types.SimpleNamespace(as_dict=lambda: {job: ["host:1"] for job in jobs})
        resolver = types.SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: spec)
        return types.SimpleNamespace(cluster_resolver=resolver)

    assert distribute.is_chief(types.SimpleNamespace())  # single-machine strategies have no cluster resolver
    assert distribute.is_chief(cluster("worker", 0, ["worker"]))
    assert not distribute.is_chief(cluster("worker", 1, ["worker"]))
    assert distribute.is_chief(cluster("chief", 0, ["chief", "worker"]))
    assert not distribute.is_chief(cluster("worker", 0, ["chief", "worker"]))
    with distribute.output_dir(str(tmp_path), cluster("worker", 0, ["worker"])) as chief_dir:
        assert chief_dir == str(tmp_path)
    with distribute.output_dir(str(tmp_path), cluster("worker", 1, ["worker"])) as worker_dir:
        assert worker_dir == str(tmp_path / ".workertemp_worker_1") and os.path.isdir(worker_dir)
    assert not os.path.exists(worker_dir)


@pytest.mark.slow
def test_two_workers_train_like_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    data_dir = prepare_tiny_data(str(tmp_path / "data"))
    model_dir = str(tmp_path / "model")
    ports = [free_port(), free_port()]
    flags = train_flags(model_dir, data_dir, epochs=1, steps_per_epoch=STEPS, strategy="multi_worker")
    workers = [
        start_training(
            flags,
            str(tmp_path / f"worker{index}.log"),
            TF_CONFIG=tf_config(ports, index),
            EBGAN_TEST_WEIGHTS_OUT=str(tmp_path / f"worker{index}.npz"),
        )
        for index in (0, 1)
    ]
    with killed_on_exit(workers):
        statuses = [worker.wait(timeout=600) for worker in workers]
    logs = [(tmp_path / f"worker{index}.log").read_text() for index in (0, 1)]
    assert statuses == [0, 0], "\n".join(log[-3000:] for log in logs)

    # The chief (worker 0) wrote the run; worker 1 wrote into its own temporary directory and deleted it.
    assert sorted(os.listdir(model_dir)) == ["checkpoints", "config.json", "final.weights.h5", "logs"]
    assert sorted(name for name in os.listdir(os.path.join(model_dir, "checkpoints")) if name.endswith(".index")) == [
        "ckpt-2.index",
        f"ckpt-{STEPS}.index",
    ]
    assert f"Saved the final weights to {model_dir}/final.weights.h5 (step {STEPS})" in logs[0]
    assert f"Saved the final weights to {model_dir}/.workertemp_worker_1/final.weights.h5" in logs[1]

    chief, worker = (load_weights(str(tmp_path / f"worker{index}.npz")) for index in (0, 1))
    for got, want in zip(worker, chief, strict=True):
        np.testing.assert_array_equal(got, want)

    monkeypatch.setattr("ebgan_tf.data.pipeline.load_examples", load_tiny_examples)
    config = tiny_config(tmp_path / "one_process", data_dir, epochs=1, steps_per_epoch=STEPS)
    one_process, _ = train_lib.train(config, make_strategy("one_device"))
    for got, want in zip(chief, network_weights(one_process), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
