"""Serving over TF Serving's protocol, on loopback: ebgan-serve (in-process), the client API and ebgan-client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ebgan_tf import images
from ebgan_tf.cli import run_in_process
from ebgan_tf.data.masks import region_mask
from ebgan_tf.serving import batching, client, limits, server, server_config
from ebgan_tf.serving.errors import ServingError
from tests.helpers.contract_model import (
    ATTRIBUTES,
    assert_same_reading,
    export_contract_model,
    random_inputs,
    template_landmarks,
)

SIZE = 16
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO, "serving", "configs")


def _reference(path: str, signature: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The in-process SavedModel's answer."""
    function = tf.saved_model.load(path).signatures[signature]
    return function(**{key: tf.constant(value) for key, value in inputs.items()})["edited"].numpy()


def _model_config(base: str) -> str:
    return f"""
model_config_list {{
  config {{ name: "ebgan" base_path: "{base}/ebgan" model_platform: "tensorflow" }}
  config {{ name: "plain" base_path: "{base}/plain" }}
  config {{
    name: "versioned" base_path: "{base}/versioned"
    model_version_policy {{ latest {{ num_versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    base = str(tmp_path_factory.mktemp("models"))
    return {
        "base": base,
        "ebgan": export_contract_model(base, "ebgan", 1, SIZE, "att_ebgan"),
        "plain": export_contract_model(base, "plain", 1, SIZE, "ebgan", seed=1),
        "versioned": export_contract_model(base, "versioned", 1, SIZE, "ebgan", seed=2),
    }


def _start(models, batching: server_config.BatchingOptions | None, rest: bool) -> server.ModelServer:
    options = server_config.ServerOptions(
        models=tuple(server_config.parse_model_config(_model_config(models["base"]))),
        port=0,
        rest_api_port=0 if rest else None,
        batching=batching,
        file_system_poll_wait_seconds=0.2,
    )
    return server.ModelServer(options).start()


@pytest.fixture(scope="module")
def batched(models):
    running = _start(
        models,
        server_config.BatchingOptions(
            max_batch_size=8, batch_timeout_micros=2000, max_enqueued_batches=100, num_batch_threads=2
        ),
        rest=True,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def unbatched(models):
    running = _start(models, None, rest=False)
    yield running
    running.stop()


@pytest.fixture(params=["batched", "unbatched"])
def any_server(request) -> server.ModelServer:
    return request.getfixturevalue(request.param)


def _client(running: server.ModelServer, timeout: float = 20.0) -> client.EditClient:
    return client.EditClient(f"127.0.0.1:{running.port}", timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- results, metadata, status ------------------------------------------------------------------------------


@pytest.mark.parametrize("model,signature", [("ebgan", "edit"), ("ebgan", "edit_filtered"), ("plain", "edit")])
def test_edit_through_server_equals_in_process_saved_model(models, any_server, model, signature):
    inputs = random_inputs(3, SIZE, len(ATTRIBUTES) if signature == "edit_filtered" else 0, seed=3)
    expected = _reference(models[model], signature, inputs)
    with _client(any_server) as connection:
        edited = connection.edit(
            inputs["source"],
            inputs["exemplar"],
            inputs["mask"],
            inputs.get("attributes"),
            model_name=model,
            signature=signature,
        )
        single = connection.edit(
            inputs["source"][1],
            inputs["exemplar"][1],
            inputs["mask"][1],
            None if signature == "edit" else inputs["attributes"][1],
            model_name=model,
            version=1,
            signature=signature,
        )
    assert edited.dtype == np.uint8 and edited.shape == (3, SIZE, SIZE, 3)
    np.testing.assert_array_equal(edited, expected)
    np.testing.assert_array_equal(single, expected[1])
    outside = inputs["mask"][..., 0] == 0
    np.testing.assert_array_equal(edited[outside], inputs["source"][outside])
    if signature == "edit_filtered":  # the attribute switches change the result
        switched = dict(inputs, attributes=1.0 - inputs["attributes"])
        assert not np.array_equal(_reference(models[model], signature, switched), expected)


def test_classify_through_server_equals_in_process_saved_model(models, any_server):
    from ebgan_tf.serving.web.models import RemoteModel

    image = random_inputs(3, SIZE, seed=8)["exemplar"]
    expected = (
        tf.saved_model.load(models["ebgan"]).signatures["classify"](image=tf.constant(image))["probabilities"].numpy()
    )
    with _client(any_server) as connection:
        np.testing.assert_array_equal(connection.classify(image, model_name="ebgan"), expected)
        assert_same_reading(connection.classify(image[1], model_name="ebgan", version=1), expected[1])
        remote, plain = RemoteModel("ebgan", connection), RemoteModel("plain", connection)  # as ebgan-web uses them
        assert remote.classifies and not plain.classifies
        assert_same_reading(remote.classify(image[0]), expected[0])
        with pytest.raises(ValueError, match="This is an ebgan model: it has no attribute classifier"):
            plain.classify(image[0])
        with pytest.raises(ServingError, match="classify"):  # the server's own answer for a missing signature
            connection.classify(image, model_name="plain")


def test_metadata_model_info_and_status(batched):
    with _client(batched) as connection:
        metadata = connection.metadata("ebgan")
        info = connection.model_info("ebgan")
        plain = connection.metadata("plain", version=1)
        status = connection.status("ebgan")
    assert (metadata.name, metadata.version) == ("ebgan", 1)
    assert set(metadata.signatures) == {"edit", "edit_filtered", "classify", "metadata", "serving_default"}
    assert metadata.signatures["classify"].inputs == {"image": client.TensorSpec("uint8", (-1, SIZE, SIZE, 3))}
    assert metadata.signatures["classify"].outputs == {
        "probabilities": client.TensorSpec("float32", (-1, len(ATTRIBUTES)))
    }
    filtered = metadata.signatures["edit_filtered"]
    assert filtered.inputs["source"] == client.TensorSpec("uint8", (-1, SIZE, SIZE, 3))
    assert filtered.inputs["mask"] == client.TensorSpec("float32", (-1, SIZE, SIZE, 1))
    assert filtered.inputs["attributes"] == client.TensorSpec("float32", (-1, len(ATTRIBUTES)))
    assert filtered.outputs == {"edited": client.TensorSpec("uint8", (-1, SIZE, SIZE, 3))}
    assert metadata.signatures["metadata"].inputs == {}
    assert metadata.signatures["metadata"].outputs["attribute_names"] == client.TensorSpec("string", (len(ATTRIBUTES),))
    assert "edit_filtered" not in plain.signatures
    assert (info.version, info.attribute_names, info.image_size, info.variant) == (1, ATTRIBUTES, SIZE, "att_ebgan")
    np.testing.assert_allclose(info.landmark_template, template_landmarks(SIZE))
    assert status == [client.VersionStatus(1, "AVAILABLE", "OK", "")]


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_new_versions_are_picked_up_and_labels_resolve(models, batched):
    base, inputs = models["base"], random_inputs(2, SIZE, seed=4)
    with _client(batched) as connection:

        def edit(**spec):
            return connection.edit(inputs["source"], inputs["exemplar"], inputs["mask"], model_name="versioned", **spec)

        np.testing.assert_array_equal(edit(version_label="stable"), _reference(models["versioned"], "edit", inputs))
        with pytest.raises(ServingError, match="NOT_FOUND"):
            edit(version_label="canary")  # version 2 does not exist yet
        second = export_contract_model(base, "versioned", 2, SIZE, "ebgan", seed=5)
        _wait_for(lambda: [row.version for row in connection.status("versioned") if row.state == "AVAILABLE"] == [1, 2])
        expected_2 = _reference(second, "edit", inputs)
        assert not np.array_equal(expected_2, _reference(models["versioned"], "edit", inputs))
        np.testing.assert_array_equal(edit(), expected_2)  # no version: the highest
        np.testing.assert_array_equal(edit(version_label="canary"), expected_2)
        np.testing.assert_array_equal(edit(version=1), _reference(models["versioned"], "edit", inputs))
        export_contract_model(base, "versioned", 3, SIZE, "ebgan", seed=6)  # latest 2: version 1 is unloaded
        _wait_for(
            lambda: (
                {row.version: row.state for row in connection.status("versioned")}
                == {1: "END", 2: "AVAILABLE", 3: "AVAILABLE"}
            )
        )
        assert connection.model_info("versioned").version == 3
        with pytest.raises(ServingError, match="NOT_FOUND"):
            edit(version=1)


def test_broken_version_is_reported_and_previous_version_keeps_serving(models, tmp_path):
    export_contract_model(str(tmp_path), "ebgan", 1, SIZE, "ebgan")
    options = server_config.ServerOptions(
        models=(server_config.ModelSource("ebgan", str(tmp_path / "ebgan")),), port=0, file_system_poll_wait_seconds=0.2
    )
    running = server.ModelServer(options).start()
    try:
        broken = tmp_path / "ebgan" / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        with _client(running) as connection:
            _wait_for(lambda: len(connection.status("ebgan")) == 2)
            one, two = connection.status("ebgan")
            assert (one.version, one.state) == (1, "AVAILABLE")
            assert (two.version, two.state, two.error_code) == (2, "END", "UNKNOWN") and "2" in two.error_message
            assert connection.model_info("ebgan").version == 1
    finally:
        running.stop()


# --- errors ---------------------------------------------------------------------------------------------------


def test_messages_above_the_size_limit_are_refused(models, tmp_path):
    source = server_config.ModelSource("ebgan", os.path.dirname(models["plain"]))
    options = server_config.ServerOptions(
        models=(source,), port=0, file_system_poll_wait_seconds=0, limits=limits.RequestLimits(max_message_bytes=20_000)
    )
    running = server.ModelServer(options).start()
    try:
        with _client(running) as connection:
            small = random_inputs(1, SIZE)  # about 2.5 kB
            assert connection.predict(small, "ebgan", "edit")["edited"].shape == (1, SIZE, SIZE, 3)
            with pytest.raises(ServingError, match="RESOURCE_EXHAUSTED"):
                connection.predict(random_inputs(16, SIZE), "ebgan", "edit")  # about 40 kB
            assert connection.status("ebgan")[0].state == "AVAILABLE"
    finally:
        running.stop()


@pytest.mark.parametrize(
    "spec,message",
    [
        (dict(model_name="nope"), "nope"),
        (dict(model_name="ebgan", version=99), "version 99"),
        (dict(model_name="versioned", version_label="nope"), "label 'nope'"),
        (dict(model_name="ebgan", signature="nope"), "'nope' not found"),
    ],
)
def test_unknown_model_version_label_or_signature_is_not_found(batched, spec, message):
    inputs = random_inputs(1, SIZE)
    with _client(batched) as connection, pytest.raises(ServingError) as caught:
        connection.predict(inputs, **{"signature": "edit", **spec})
    assert caught.value.code == grpc.StatusCode.NOT_FOUND and message in caught.value.message
    if "signature" not in spec:
        with _client(batched) as connection, pytest.raises(ServingError, match="NOT_FOUND"):
            connection.status(spec["model_name"], spec.get("version"), spec.get("version_label"))


def _bad_requests() -> dict[str, tuple[dict[str, np.ndarray], str]]:
    """Requests that do not fit the `edit` signature, and a word the error message must contain."""
    good = random_inputs(2, SIZE)
    return {
        "dtype": (dict(good, source=good["source"].astype(np.float32)), "dtype float32"),
        "shape": (dict(good, exemplar=good["exemplar"][:, :8]), "'exemplar' has shape [2,8,16,3]"),
        "channels": (dict(good, mask=np.repeat(good["mask"], 3, axis=-1)), "'mask' has shape"),
        "missing": ({"source": good["source"], "exemplar": good["exemplar"]}, "missing ['mask']"),
        "extra": (dict(good, attributes=np.ones([2, 3], np.float32)), "unexpected ['attributes']"),
        "batch": (dict(good, mask=good["mask"][:1]), "mask"),
    }


@pytest.mark.parametrize("kind", sorted(_bad_requests()))
def test_inputs_that_do_not_fit_the_signature_are_invalid_argument(any_server, kind):
    inputs, message = _bad_requests()[kind]
    with _client(any_server) as connection, pytest.raises(ServingError) as caught:
        connection.predict(inputs, "ebgan", "edit")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.message


def test_raw_requests_without_metadata_fields_or_dtype_are_invalid(batched):
    from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

    spec = model_pb2.ModelSpec(name="ebgan", signature_name="edit")
    predict = predict_pb2.PredictRequest(model_spec=spec)
    for key, value in random_inputs(1, SIZE).items():
        predict.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    predict.inputs["mask"].dtype = 0  # DT_INVALID
    with grpc.insecure_channel(f"127.0.0.1:{batched.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for call, request, message in [
            (stub.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec), "metadata_field"),
            (stub.Predict, predict, "'mask' has dtype DataType 0"),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                call(request, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in caught.value.details()


def test_concurrent_clients_with_bad_requests_mixed_in(models, batched):
    good = [random_inputs(1 + index % 2, SIZE, len(ATTRIBUTES), seed=10 + index) for index in range(6)]
    expected = [_reference(models["ebgan"], "edit_filtered", inputs) for inputs in good]
    bad = list(_bad_requests().values())
    failures, done = [], []

    def worker(thread: int) -> None:
        with _client(batched, timeout=60) as connection:
            for step in range(50):
                try:
                    if step % 5 == 4:
                        inputs, message = bad[(thread + step // 5) % len(bad)]
                        try:
                            connection.predict(inputs, "ebgan", "edit")
                            failures.append(f"thread {thread} step {step}: bad request succeeded")
                        except ServingError as error:
                            if error.code != grpc.StatusCode.INVALID_ARGUMENT or message not in error.message:
                                failures.append(f"thread {thread} step {step}: {error}")
                    else:
                        index = (thread + step) % len(good)
                        result = connection.predict(good[index], "ebgan", "edit_filtered")["edited"]
                        if not np.array_equal(result, expected[index]):
                            failures.append(f"thread {thread} step {step}: wrong result")
                except Exception as error:  # pylint: disable=broad-except
                    failures.append(f"thread {thread} step {step}: {error!r}")
        done.append(thread)

    threads = [threading.Thread(target=worker, args=(thread,), daemon=True) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(done) == list(range(8)) and failures == []
    with grpc.insecure_channel(f"127.0.0.1:{batched.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


# --- the batcher on its own -----------------------------------------------------------------------------------


def _submit_together(batcher: batching.Batcher, run, requests: list[dict]) -> list:
    """Submits the requests from one thread each; returns results or exceptions in order."""
    results = [None] * len(requests)

    def submit(index: int) -> None:
        try:
            results[index] = batcher.submit("key", run, requests[index])
        except ServingError as error:
            results[index] = error

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_batcher_concatenates_splits_and_isolates_a_failing_request():
    calls = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        if np.any(inputs["x"] < 0):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "negative input")
        return {"y": inputs["x"] * 2}

    # A long timeout: the batch closes only when it holds max_batch_size rows.
    batcher = batching.Batcher(
        server_config.BatchingOptions(max_batch_size=4, batch_timeout_micros=30_000_000, num_batch_threads=1)
    )
    try:
        requests = [{"x": np.full([1, 2], value, np.float32)} for value in (1, 2, -1, 4)]
        results = _submit_together(batcher, run, requests)
    finally:
        batcher.stop()
    assert calls[0] == 4 and sorted(calls[1:]) == [1, 1, 1, 1]  # one batch of 4, then each request alone
    for value, result in zip((1, 2, -1, 4), results):
        if value < 0:
            assert isinstance(result, ServingError) and result.message == "negative input"
        else:
            np.testing.assert_array_equal(result["y"], np.full([1, 2], 2 * value))


def test_batcher_pads_to_allowed_batch_sizes_and_rejects_oversized_requests():
    sizes = []

    def run(inputs):
        sizes.append(len(inputs["x"]))
        return {"y": inputs["x"] + 1}

    batcher = batching.Batcher(
        server_config.BatchingOptions(
            max_batch_size=4, batch_timeout_micros=0, num_batch_threads=1, allowed_batch_sizes=(2, 4)
        )
    )
    try:
        result = batcher.submit("key", run, {"x": np.arange(3, dtype=np.int32)})
        with pytest.raises(ServingError, match="larger than maximum batch size 4"):
            batcher.submit("key", run, {"x": np.arange(5, dtype=np.int32)})
        with pytest.raises(ServingError, match="same size in dimension 0"):
            batcher.submit("key", run, {"x": np.arange(2), "z": np.arange(3)})
    finally:
        batcher.stop()
    assert sizes == [4]
    np.testing.assert_array_equal(result["y"], [1, 2, 3])


# --- REST -----------------------------------------------------------------------------------------------------


def _rest(running: server.ModelServer, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{running.rest_port}{path}", data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rest_predict_row_and_columnar_formats(models, batched):
    inputs = random_inputs(2, SIZE, len(ATTRIBUTES), seed=7)
    expected = _reference(models["ebgan"], "edit_filtered", inputs)
    instances = [{key: value[row].tolist() for key, value in inputs.items()} for row in range(2)]
    status, rows = _rest(
        batched, "/v1/models/ebgan:predict", {"signature_name": "edit_filtered", "instances": instances}
    )
    assert status == 200
    np.testing.assert_array_equal(np.asarray(rows["predictions"], np.uint8), expected)
    columns = {key: value.tolist() for key, value in inputs.items()}
    status, result = _rest(
        batched, "/v1/models/ebgan/versions/1:predict", {"signature_name": "edit_filtered", "inputs": columns}
    )
    assert status == 200
    np.testing.assert_array_equal(np.asarray(result["outputs"], np.uint8), expected)
    status, metadata = _rest(batched, "/v1/models/ebgan:predict", {"signature_name": "metadata", "inputs": {}})
    assert status == 200 and metadata["outputs"]["attribute_names"] == list(ATTRIBUTES)
    status, model_status = _rest(batched, "/v1/models/ebgan")
    assert status == 200 and model_status["model_version_status"][0]["state"] == "AVAILABLE"


@pytest.mark.parametrize(
    "path,body,code,message",
    [
        ("/v1/models/nope:predict", {"instances": []}, 404, "nope"),
        ("/v1/models/ebgan/versions/7:predict", {"instances": []}, 404, "version 7"),
        ("/v1/models/ebgan:predict", {"signature_name": "nope", "instances": []}, 404, "nope"),
        ("/v1/models/ebgan:predict", {"instances": [{"source": [[1]]}]}, 400, "missing"),
        ("/v1/models/ebgan:predict", {"inputs": {"source": [[[[300, 0, 0]]]]}}, 400, "outside the range of uint8"),
        ("/v1/models/ebgan:predict", {"inputs": {"source": [[1, 2], [3]]}}, 400, "source"),
        ("/v1/models/ebgan:predict", {"foo": 1}, 400, "instances"),
    ],
)
def test_rest_errors(batched, path, body, code, message):
    status, answer = _rest(batched, path, body)
    assert status == code and message in answer["error"]


# --- configuration files --------------------------------------------------------------------------------------


def test_shipped_config_files_parse_and_serve(models, tmp_path):
    with open(os.path.join(CONFIG_DIR, "models.config")) as handle:
        text = handle.read()
    (source,) = server_config.parse_model_config(text)
    assert (source.name, source.base_path, source.version_policy.latest.num_versions) == ("ebgan", "/models/ebgan", 2)
    with open(os.path.join(CONFIG_DIR, "batching_parameters.txt")) as handle:
        batching = server_config.parse_batching_parameters(handle.read())
    assert (batching.max_batch_size, batching.batch_timeout_micros, batching.num_batch_threads) == (16, 2000, 2)
    sources = server_config.parse_model_config(text.replace("/models", models["base"]))
    running = server.ModelServer(
        server_config.ServerOptions(models=tuple(sources), port=0, batching=batching, file_system_poll_wait_seconds=0)
    ).start()
    try:
        with _client(running) as connection:
            assert connection.model_info("ebgan").attribute_names == ATTRIBUTES
    finally:
        running.stop()


@pytest.mark.parametrize(
    "text,message",
    [
        ("model_config_list { config { name: 'a' } }", "base_path"),
        ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'pytorch' } }", "model_platform"),
        ("model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }", "twice"),
        ("model_config_list { config { nme: 'a' } }", "nme"),
    ],
)
def test_bad_model_config_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        server_config.parse_model_config(text)


@pytest.mark.parametrize(
    "text,message",
    [
        ("max_batch_size { value: 0 }", "max_batch_size must be >= 1"),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 4", "ending with max_batch_size"),
        ("max_batch_sise { value: 8 }", "max_batch_sise"),
        ("pad_variable_length_inputs: true", "not supported"),
    ],
)
def test_bad_batching_parameters_are_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        server_config.parse_batching_parameters(text)


# --- ebgan-client ---------------------------------------------------------------------------------------------


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """Runs ebgan-client in-process; returns (exit status, stdout, stderr)."""
    code = run_in_process(client.main, client.define_flags, ["ebgan-client", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_edit_region_with_drop_equals_saved_model(models, batched, tmp_path, capsys):
    inputs = random_inputs(1, SIZE, seed=8)
    images.save_image(tmp_path / "a.png", inputs["source"][0])
    images.save_image(tmp_path / "b.png", inputs["exemplar"][0])
    code, out, err = _cli(
        capsys,
        "edit",
        f"--server=127.0.0.1:{batched.port}",
        "--model_name=ebgan",
        f"--source={tmp_path / 'a.png'}",
        f"--exemplar={tmp_path / 'b.png'}",
        "--region=mouth",
        "--drop=Mustache",
        f"--output={tmp_path / 'out.png'}",
    )
    assert (code, err) == (0, "") and "edit_filtered" in out
    mask = region_mask(template_landmarks(SIZE), "mouth", SIZE).numpy()[None]
    attributes = np.array([[0.0, 1.0, 1.0]], np.float32)  # Mustache dropped
    expected = _reference(models["ebgan"], "edit_filtered", dict(inputs, mask=mask, attributes=attributes))
    np.testing.assert_array_equal(images.load_image(tmp_path / "out.png"), expected[0])
    images.save_image(tmp_path / "mask.png", (mask[0, ..., 0] * 255).astype(np.uint8))
    code, out, err = _cli(
        capsys,
        "edit",
        f"--server=127.0.0.1:{batched.port}",
        "--model_name=plain",
        f"--source={tmp_path / 'a.png'}",
        f"--exemplar={tmp_path / 'b.png'}",
        f"--mask={tmp_path / 'mask.png'}",
        f"--output={tmp_path / 'plain.png'}",
    )
    assert code == 0
    np.testing.assert_array_equal(
        images.load_image(tmp_path / "plain.png"), _reference(models["plain"], "edit", dict(inputs, mask=mask))[0]
    )


def test_cli_metadata_and_status(batched, capsys):
    code, out, _ = _cli(capsys, "metadata", f"--server=127.0.0.1:{batched.port}", "--model_name=ebgan")
    assert code == 0
    assert f"input  source: uint8 [N,{SIZE},{SIZE},3]" in out and "attribute_names: Mustache, Smiling" in out
    code, out, _ = _cli(capsys, "status", f"--server=127.0.0.1:{batched.port}", "--model_name=ebgan")
    assert (code, out.strip()) == (0, "version 1: AVAILABLE")


def test_cli_errors_are_one_line_and_exit_1(batched, tmp_path, capsys):
    inputs = random_inputs(1, SIZE)
    images.save_image(tmp_path / "a.png", inputs["source"][0])
    images.save_image(tmp_path / "big.png", np.zeros([SIZE * 2, SIZE * 2, 3], np.uint8))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    live = f"--server=127.0.0.1:{batched.port}"
    edit = [
        "edit",
        live,
        f"--source={tmp_path / 'a.png'}",
        f"--exemplar={tmp_path / 'a.png'}",
        f"--output={tmp_path / 'out.png'}",
    ]
    cases = [
        (["status", f"--server=127.0.0.1:{_free_port()}"], "cannot reach the model server"),
        (["status", live, "--model_name=nope"], "NOT_FOUND"),
        ([*edit, "--region=mouth", "--drop=Beard"], "Unknown attribute(s) 'Beard'"),
        ([*edit, "--region=mouth", "--model_name=plain", "--drop=Mustache"], "no attribute filtering"),
        ([*edit, "--region=mouth", "--drop=Mustache", "--signature=edit"], "--signature=edit_filtered"),
        ([*edit, "--region=chin"], "Unknown region(s) 'chin'"),
        ([*edit, "--region=mouth", f"--mask={tmp_path / 'a.png'}"], "exactly one of --region"),
        (
            [
                *edit[:2],
                f"--source={tmp_path / 'junk.png'}",
                f"--exemplar={tmp_path / 'a.png'}",
                "--region=mouth",
                f"--output={tmp_path / 'out.png'}",
            ],
            "not an image file",
        ),
        (
            [
                *edit[:2],
                f"--source={tmp_path / 'big.png'}",
                f"--exemplar={tmp_path / 'a.png'}",
                "--region=mouth",
                f"--output={tmp_path / 'out.png'}",
            ],
            f"expected {SIZE}x{SIZE}",
        ),
        (["status", live, "--version=1", "--version_label=stable"], "not both"),
        (["frobnicate", live], "give one command"),
    ]
    for args, message in cases:
        code, out, err = _cli(capsys, *args)
        assert code == 1, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, err)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow  # two fresh Python processes importing TensorFlow
def test_console_entry_points_report_errors_without_traceback(tmp_path):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "ebgan_tf.serving.client",
            "status",
            f"--server=127.0.0.1:{_free_port()}",
            "--timeout=5",
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 1 and "cannot reach the model server" in down.stderr
    assert "Traceback" not in down.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "ebgan_tf.serving.main", f"--model_base_path={tmp_path / 'none'}", "--port=0"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "is not a directory" in missing.stderr
    assert "Traceback" not in missing.stderr
