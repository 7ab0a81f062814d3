"""Hostile and careless clients of ebgan-serve: every case of tests/helpers/hostile_probe.py answered as it must be,
batching off and on, a fuzzer over the gRPC decoder and REST JSON bodies, version directories copied
non-atomically, and SIGTERM with requests in flight."""

from __future__ import annotations

import os
import shutil
import signal
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
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from ebgan_tf.serving import server, server_config
from tests.helpers import hostile_probe
from tests.helpers.contract_model import export_contract_model, random_inputs
from tests.helpers.served_models import export_slow_model, export_untrained_att_ebgan
from tests.helpers.tiny import IMAGE_SIZE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMITS = hostile_probe.LIMITS
FUZZ_EXAMPLES = 60  # per kind and server: bounded, so that `make test` stays short


@pytest.fixture(scope="module")
def export_base(tmp_path_factory) -> str:
    base = str(tmp_path_factory.mktemp("hostile"))
    export_untrained_att_ebgan(base)
    return base


@pytest.fixture(scope="module", params=["unbatched", "batched"])
def target(request, export_base):
    batching = (
        server_config.BatchingOptions(max_batch_size=8, batch_timeout_micros=2000, num_batch_threads=2)
        if request.param == "batched"
        else None
    )
    options = server_config.ServerOptions(
        models=(server_config.ModelSource("ebgan", f"{export_base}/ebgan"),),
        port=0,
        rest_api_port=0,
        batching=batching,
        file_system_poll_wait_seconds=0,
        limits=LIMITS,
    )
    running = server.ModelServer(options).start()
    with open(f"{export_base}/ebgan/1/assets/attributes.txt") as handle:
        attributes = len(handle.read().split())
    yield hostile_probe.Target(
        running.port,
        running.rest_port,
        IMAGE_SIZE,
        attributes,
        LIMITS.max_batch_rows,
        LIMITS.max_message_bytes,
        LIMITS.body_timeout_seconds,
        LIMITS.max_connections,
    )
    running.stop()


def _serving(target: hostile_probe.Target) -> bool:
    """The server still answers: health SERVING and a good request OK."""
    with grpc.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    good = hostile_probe.grpc_answer(target, hostile_probe.predict_request(hostile_probe.valid_inputs(target)))
    return health.status == health_pb2.HealthCheckResponse.SERVING and good == "OK"


@pytest.mark.parametrize("case", hostile_probe.CASES, ids=[case.name for case in hostile_probe.CASES])
def test_each_hostile_case_gets_its_answer_and_the_server_keeps_serving(target, case):
    started = time.monotonic()
    assert case.send(target) in case.expected
    assert time.monotonic() - started < 20  # answered at once or after a timeout, never by computing for long
    assert _serving(target)


def test_declared_size_attack_is_refused_without_allocating(target):
    request = hostile_probe._amplified(target)  # pylint: disable=protected-access
    assert request.ByteSize() < 400
    started = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "declares shape [4096" in error.value.details() and "carries 1" in error.value.details()
    assert time.monotonic() - started < 5


def test_client_errors_name_the_input(target):
    size = target.image_size
    cases = [
        (
            hostile_probe._with(
                target,
                source=hostile_probe.declared(  # pylint: disable=protected-access
                    hostile_probe.U8, [1, size, size, 3], int_val=[300] * (size * size * 3)
                ),
            ),
            "'source'",
            "uint8",
        ),
        (
            hostile_probe._with(
                target,
                mask=hostile_probe.declared(  # pylint: disable=protected-access
                    hostile_probe.F32, [1, size, size, 1], int_val=[1] * (size * size)
                ),
            ),
            "'mask' (float32) carries its values in int_val",
            "float32 values go in float_val",
        ),
        (
            hostile_probe._with(
                target,
                source=hostile_probe.declared(  # pylint: disable=protected-access
                    hostile_probe.U8, [1, size, size, 3], int64_val=[9] * (size * size * 3)
                ),
            ),
            "'source' (uint8)",
            "uint8 values go in int_val",
        ),
        (
            hostile_probe._with(
                target,
                attributes=hostile_probe._poisoned(  # pylint: disable=protected-access
                    "attributes", float("nan")
                ),
            ),
            "attributes values must be finite and in [0, 1]",
            "",
        ),
        (hostile_probe._with(target, target.max_batch_rows + 1), "--max_batch_rows", ""),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request, first, second in cases:
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(request, timeout=30)
            assert first in error.value.details() and second in error.value.details()


def test_long_names_are_refused_and_echoed_cut(target):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    requests = [
        hostile_probe._named(target, name="m" * 2**20),  # pylint: disable=protected-access
        hostile_probe._extra_inputs(target, 20000),  # pylint: disable=protected-access
        hostile_probe._output_filters(target, 100000),
    ]  # pylint: disable=protected-access
    with grpc.insecure_channel(
        f"127.0.0.1:{target.grpc_port}", options=[("grpc.max_send_message_length", 64 * 2**20)]
    ) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request, words in zip(requests, ("longer than 256 characters", "20004 inputs", "100000 output filters")):
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(request, timeout=30)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
            assert words in error.value.details() and len(error.value.details()) < 400
    answer = hostile_probe.exchange(
        target.host,
        target.rest_port,
        hostile_probe.http_post("/v1/models/" + "m" * 300 + ":predict", hostile_probe.rest_body(target)),
    )
    assert answer.status == "HTTP 400" and "longer than 256 characters" in answer.json()["error"]
    assert len(answer.body) < 400


def test_half_open_streams_are_bounded_and_ended_while_other_clients_are_answered(target):
    seen = hostile_probe.half_open_streams(target, connections=1, streams=32, wait=30)
    assert seen.max_concurrent_streams == LIMITS.grpc_max_concurrent_streams
    assert seen.meanwhile == "OK"
    assert seen.ended == {"DEADLINE_EXCEEDED": LIMITS.grpc_max_concurrent_streams}
    # More calls waiting for their message than --grpc_max_pending_messages: the longest-waiting are ended at once.
    seen = hostile_probe.half_open_streams(target, connections=3, streams=32, wait=30)
    assert seen.meanwhile == "OK"
    assert set(seen.ended) == {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
    assert seen.ended["DEADLINE_EXCEEDED"] <= LIMITS.grpc_max_pending_messages
    assert _serving(target)


def test_big_legal_rest_body_is_refused_before_it_is_parsed(target):
    body = hostile_probe.big_legal_body(target)
    assert len(body) > target.max_message_bytes * 0.8
    answer = hostile_probe.exchange(target.host, target.rest_port, hostile_probe.http_post(hostile_probe.PREDICT, body))
    assert answer.status == "HTTP 413"
    assert "JSON values and arrays" in answer.json()["error"]  # counted in the raw body: refused before parsing
    assert "--max_batch_rows" in answer.json()["error"]


def test_fuzzed_grpc_requests_and_rest_bodies_get_client_errors_at_worst(target):
    answers: list[tuple[str, str]] = []
    hostile_probe.fuzz(target, FUZZ_EXAMPLES, lambda kind, answer: answers.append((kind, answer)))
    assert len(answers) >= 2 * FUZZ_EXAMPLES * 0.9
    expected = {"gRPC": hostile_probe.CLIENT_ERRORS_GRPC, "REST": hostile_probe.CLIENT_ERRORS_HTTP}
    wrong = [(kind, answer) for kind, answer in answers if answer not in expected["gRPC" if "gRPC" in kind else "REST"]]
    assert not wrong
    assert {answer for kind, answer in answers if "gRPC" in kind} & {"OK", "INVALID_ARGUMENT"}
    assert _serving(target)


# --- versions copied non-atomically ---------------------------------------------------------------------------


def _status(port: int, name: str) -> dict[int, tuple[str, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return {
        row.version: (get_model_status_pb2.ModelVersionStatus.State.Name(row.state), row.status.error_message)
        for row in response.model_version_status
    }


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _partial_copy(tmp_path) -> tuple[str, str]:
    """A complete version 1 and, beside it, version 2 with only its saved_model.pb; returns (source, target)."""
    complete = export_contract_model(str(tmp_path / "staging"), "ebgan", 2, 16, "ebgan", seed=3)
    export_contract_model(str(tmp_path), "ebgan", 1, 16, "ebgan")
    target = tmp_path / "ebgan" / "2"
    target.mkdir()
    shutil.copy(os.path.join(complete, "saved_model.pb"), target / "saved_model.pb")
    return complete, str(target)


def _start_polling(tmp_path, retry_seconds: float, retries: int = 5) -> server.ModelServer:
    options = server_config.ServerOptions(
        models=(server_config.ModelSource("ebgan", str(tmp_path / "ebgan")),),
        port=0,
        file_system_poll_wait_seconds=0.2,
        load_retry_interval_seconds=retry_seconds,
        max_num_load_retries=retries,
    )
    return server.ModelServer(options).start()


def test_version_copied_non_atomically_is_loaded_once_its_files_change(tmp_path):
    complete, target = _partial_copy(tmp_path)
    running = _start_polling(tmp_path, retry_seconds=3600)
    try:
        _wait_for(lambda: _status(running.port, "ebgan").get(2, ("", ""))[0] == "END")
        state, message = _status(running.port, "ebgan")[2]
        assert "attempt 1" in message and "when its files change" in message
        time.sleep(1.0)  # no change, long interval: not retried
        assert "attempt 1" in _status(running.port, "ebgan")[2][1]
        for entry in os.listdir(complete):
            if entry != "saved_model.pb":
                copy = shutil.copytree if os.path.isdir(os.path.join(complete, entry)) else shutil.copy
                copy(os.path.join(complete, entry), os.path.join(target, entry))
        _wait_for(lambda: _status(running.port, "ebgan")[2][0] == "AVAILABLE")
        assert _status(running.port, "ebgan")[2][1] == ""
    finally:
        running.stop()


def test_failed_version_is_retried_after_the_interval_until_the_retries_are_used_up(tmp_path):
    _partial_copy(tmp_path)
    running = _start_polling(tmp_path, retry_seconds=0.3, retries=2)
    try:
        _wait_for(lambda: "retries used up" in _status(running.port, "ebgan").get(2, ("", ""))[1])
        assert "attempt 3" in _status(running.port, "ebgan")[2][1]
        time.sleep(1.0)
        assert "attempt 3" in _status(running.port, "ebgan")[2][1]
        assert _status(running.port, "ebgan")[1][0] == "AVAILABLE"
    finally:
        running.stop()


def test_odd_version_directories_are_skipped_and_the_rest_keep_serving(tmp_path):
    complete = export_contract_model(str(tmp_path / "staging"), "ebgan", 1, 16, "ebgan")
    export_contract_model(str(tmp_path), "ebgan", 1, 16, "ebgan")
    running = _start_polling(tmp_path, retry_seconds=3600)
    try:
        for odd in ("99999999999999999999", "\u00b2", "-3", "7a"):
            shutil.copytree(complete, tmp_path / "ebgan" / odd)
        shutil.copytree(complete, tmp_path / "ebgan" / "0042")  # decimal, leading zeros: version 42, as TF Serving
        _wait_for(lambda: _status(running.port, "ebgan").get(42, ("", ""))[0] == "AVAILABLE")
        assert set(_status(running.port, "ebgan")) == {1, 42}
        target = hostile_probe.Target(running.port, 0, 16, 0, 8, 2**20, 1.0, 1)
        request = hostile_probe.predict_request(random_inputs(1, 16), "edit")
        assert hostile_probe.grpc_answer(target, request) == "OK"
        shutil.rmtree(tmp_path / "ebgan" / "0042")  # polling still works: the version is unloaded
        _wait_for(lambda: _status(running.port, "ebgan")[42][0] == "END")
        assert hostile_probe.grpc_answer(target, request) == "OK"
    finally:
        running.stop()


def test_connections_waiting_to_be_accepted_at_shutdown_are_answered_503(target):
    from ebgan_tf.serving.http_base import LimitedHandler, LimitedHTTPServer

    class Handler(LimitedHandler):
        def handle_request(self, post: bool) -> None:
            self.send_json(200, {})

    http_server = LimitedHTTPServer(("127.0.0.1", 0), Handler, LIMITS)
    serving = threading.Thread(target=http_server.serve_forever, daemon=True)
    serving.start()
    http_server.shutdown()  # the accept loop has stopped, as in ModelServer.stop: new connections wait unaccepted
    waiting = [socket.create_connection(http_server.server_address, timeout=10) for _ in range(3)]
    for sock in waiting:
        sock.sendall(b"GET /v1/models/ebgan HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http_server.refuse_waiting() == 3
    http_server.server_close()
    for sock in waiting:
        with sock:
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert b"shutting down" in answer


# --- SIGTERM with requests in flight ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spin_over_rest(port: int, seconds: float, answers: dict, key: str) -> None:
    body = f'{{"inputs": {{"seconds": [{seconds:g}]}}}}'.encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/slow:predict", data=body)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answers[key] = response.status
    except urllib.error.HTTPError as error:
        answers[key] = error.code
    except OSError as error:
        answers[key] = type(error).__name__


def _spin_over_grpc(port: int, seconds: float, answers: dict, key: str) -> None:
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["seconds"].CopyFrom(tf.make_tensor_proto(np.array([seconds], np.float32)))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
            answers[key] = "OK"
        except grpc.RpcError as error:
            answers[key] = error.code().name


COMPUTING = "Computing slow version"  # ebgan_tf.serving.core's debug line when a request starts computing


def _read_lines(stream, lines: list[str]) -> None:
    for line in iter(stream.readline, b""):
        lines.append(line.decode(errors="replace"))


@pytest.mark.slow
def test_sigterm_answers_or_fails_requests_in_flight_and_exits_within_the_grace_period(tmp_path):
    export_slow_model(str(tmp_path))
    port, rest_port, grace = _free_port(), _free_port(), 8.0
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ebgan_tf.serving.main",
            f"--model_base_path={tmp_path / 'slow'}",
            "--model_name=slow",
            f"--port={port}",
            f"--rest_api_port={rest_port}",
            f"--shutdown_grace_seconds={grace}",
            "--verbosity=1",
            # TensorFlow runs a call's ops on its inter-op threads (one per core by default): on 2 cores the two
            # 30-second spins would hold both, and a short request would wait for them, past the grace period.
            "--tensorflow_inter_op_parallelism=8",
        ],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        answers: dict = {}
        _wait_for(lambda: _spin_over_rest(rest_port, 0.0, answers, "ready") or answers.get("ready") == 200, 300)
        computing = sum(COMPUTING in line for line in list(lines))
        threads = [
            threading.Thread(target=function, args=(where, seconds, answers, key))
            for function, where, seconds, key in (
                (_spin_over_grpc, port, 30.0, "grpc long"),
                (_spin_over_rest, rest_port, 30.0, "rest long"),
                (_spin_over_grpc, port, 3.0, "grpc short"),
                (_spin_over_rest, rest_port, 3.0, "rest short"),
            )
        ]
        for thread in threads:
            thread.start()
        # Every request in flight: the server logged that it started computing each (however busy the machine).
        _wait_for(lambda: sum(COMPUTING in line for line in list(lines)) >= computing + 4, 120)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ebgan-serve still running 60 s after SIGTERM; answers {answers}; output:\n{''.join(lines)}")
        took = time.monotonic() - signalled
        for thread in threads:
            thread.join(30)
    finally:
        process.kill()
        process.wait()
        reader.join(10)
    output = "".join(lines)
    assert status == 0, output
    assert (
        f"ebgan-serve: serving slow: gRPC on 127.0.0.1:{port}, REST on port {rest_port}; TensorFlow threads "
        "intra-op default, inter-op 8 (Ctrl-C or SIGTERM stops)"
    ) in output, output
    assert "ebgan-serve: stopping (grace period 8 s)" in output, output
    assert took < grace + 5.0, (took, output)
    assert answers["grpc short"] == "OK" and answers["rest short"] == 200, answers
    assert answers["grpc long"] == "UNAVAILABLE" and answers["rest long"] == 503, answers
