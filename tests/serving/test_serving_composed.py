"""`edit_composed` through ebgan-serve (gRPC with EditClient, and REST), with batching on, on an untrained tiny
Att-EBGAN with per-part codes exported by the project's exporter (the contract fixture model has no edit_composed)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from ebgan_tf import images
from ebgan_tf.cli import run_in_process
from ebgan_tf.data import synthetic
from ebgan_tf.editing import Editor
from ebgan_tf.faces import compose_crops, edit_crops, face_crop
from ebgan_tf.serving import client, server, server_config
from ebgan_tf.serving.errors import ServingError
from ebgan_tf.serving.limits import MAX_FREE_SIZE
from ebgan_tf.serving.web.models import LocalModel, RemoteModel
from tests.helpers.crop_editors import crop_editor_mismatches
from tests.helpers.served_models import export_composing_model
from tests.helpers.tiny import IMAGE_SIZE

SIZE = IMAGE_SIZE


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(running server, in-process Editor of the same export)."""
    path = export_composing_model(str(tmp_path_factory.mktemp("composed")))
    config = f'model_config_list {{ config {{ name: "parts" base_path: "{os.path.dirname(path)}" }} }}'
    options = server_config.ServerOptions(
        models=tuple(server_config.parse_model_config(config)),
        port=0,
        rest_api_port=0,
        batching=server_config.BatchingOptions(
            max_batch_size=8, batch_timeout_micros=2000, max_enqueued_batches=100, num_batch_threads=2
        ),
        file_system_poll_wait_seconds=0.2,
    )
    running = server.ModelServer(options).start()
    yield running, Editor.load(path)
    running.stop()


def faces(count: int, seed: int = 40) -> np.ndarray:
    return np.stack([synthetic.render_face(synthetic.sample_face(seed + index), SIZE).image for index in range(count)])


def arguments(editor: Editor) -> dict:
    images = faces(3)
    drop = editor.info.attributes_from(drop=[editor.info.attribute_names[0]])
    return dict(
        source=images[0],
        exemplars=images[1:3],
        masks=np.stack([editor.info.region_mask("eyes"), editor.info.region_mask("mouth")]),
        strengths=[0.6, 1.0],
        attributes=[drop, None],
    )


def test_grpc_edit_composed_equals_the_in_process_editor(served):
    running, editor = served
    given = arguments(editor)
    with client.EditClient(f"127.0.0.1:{running.port}", timeout=60) as connection:
        edited = connection.edit_composed(**given, model_name="parts")
        info = connection.model_info("parts")
        batched = connection.edit_composed(
            given["source"][None],
            given["exemplars"][None],
            given["masks"][None],
            [given["strengths"]],
            [given["attributes"]],
            model_name="parts",
            info=info,
        )
        with pytest.raises(ValueError, match=r"strengths must be in \[0, 1\]"):
            connection.edit_composed(**{**given, "strengths": [0.5, 2.0]}, model_name="parts", info=info)
        metadata = connection.metadata("parts")
    expected = editor.edit_composed(**given)
    np.testing.assert_array_equal(edited, expected)
    np.testing.assert_array_equal(batched[0], expected)
    assert metadata.signatures["edit_composed"].inputs["exemplars"] == client.TensorSpec(
        "uint8", (-1, -1, SIZE, SIZE, 3)
    )


def test_the_servers_graph_check_refuses_a_strength_outside_zero_one(served):
    running, editor = served
    given = arguments(editor)
    inputs = {
        "source": given["source"][None],
        "exemplars": given["exemplars"][None],
        "masks": given["masks"][None],
        "strengths": np.array([[0.5, 1.5]], np.float32),
        "attributes": np.ones([1, 2, len(editor.info.attribute_names)], np.float32),
    }
    with client.EditClient(f"127.0.0.1:{running.port}", timeout=60) as connection:
        with pytest.raises(ServingError, match="strengths values must be finite and in") as error:
            connection.predict(inputs, "parts", "edit_composed")
    assert error.value.code.name == "INVALID_ARGUMENT"


def test_more_parts_than_the_server_takes_is_refused_before_running(served):
    running, editor = served
    parts = MAX_FREE_SIZE + 1
    images = faces(1 + parts)
    inputs = {
        "source": images[:1],
        "exemplars": images[None, 1:],
        "masks": np.ones([1, parts, SIZE, SIZE, 1], np.float32),
        "strengths": np.ones([1, parts], np.float32),
        "attributes": np.ones([1, parts, len(editor.info.attribute_names)], np.float32),
    }
    with client.EditClient(f"127.0.0.1:{running.port}", timeout=60) as connection:
        with pytest.raises(ServingError, match=f"at most {MAX_FREE_SIZE} in a free dimension"):
            connection.predict(inputs, "parts", "edit_composed")


def _rest(running: server.ModelServer, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.rest_port}/v1/models/parts:predict", data=json.dumps(body).encode()
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rest_edit_composed_row_format_as_docs_serving_md_shows(served):
    running, editor = served
    given = arguments(editor)
    n = len(editor.info.attribute_names)
    instance = {
        "source": given["source"].tolist(),
        "exemplars": given["exemplars"].tolist(),
        "masks": given["masks"].tolist(),
        "strengths": [0.6, 1.0],
        "attributes": [given["attributes"][0].tolist(), [1.0] * n],
    }
    status, answer = _rest(running, {"signature_name": "edit_composed", "instances": [instance]})
    assert status == 200, answer
    np.testing.assert_array_equal(np.asarray(answer["predictions"][0], np.uint8), editor.edit_composed(**given))


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_in_process(client.main, client.define_flags, ["ebgan-client", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ebgan_client_edit_with_parts(served, tmp_path, capsys):
    running, editor = served
    images_ = faces(3, seed=70)
    paths = [str(tmp_path / f"{name}.png") for name in "abc"]
    for path, image in zip(paths, images_):
        images.save_image(path, image)
    out = str(tmp_path / "out.png")
    code, printed, err = _cli(
        capsys,
        "edit",
        f"--server=127.0.0.1:{running.port}",
        "--model_name=parts",
        f"--source={paths[0]}",
        f"--part=eyes:{paths[1]}:0.7",
        f"--part=mouth:{paths[2]}",
        f"--output={out}",
        "--timeout=60",
    )
    assert code == 0, err
    assert "signature edit_composed, 2 parts" in printed
    expected = editor.edit_composed(
        images_[0],
        images_[1:],
        np.stack([editor.info.region_mask("eyes"), editor.info.region_mask("mouth")]),
        [0.7, 1.0],
    )
    np.testing.assert_array_equal(images.load_image(out), expected)
    for argv, message in [
        ([f"--part=chin:{paths[1]}"], "Unknown region(s) 'chin'"),
        ([f"--part=eyes:{paths[1]}:2"], "strength must be in [0, 1]"),
        ([f"--part=eyes:{paths[1]}", f"--exemplar={paths[1]}"], "Give --part"),
        ([f"--part=eyes:{tmp_path / 'none.png'}"], "exemplar file not found"),
    ]:
        code, _, err = _cli(
            capsys,
            "edit",
            f"--server=127.0.0.1:{running.port}",
            "--model_name=parts",
            f"--source={paths[0]}",
            f"--output={tmp_path / 'bad.png'}",
            *argv,
        )
        assert code == 1 and err.startswith("ebgan-client: error: ") and message in err, err
    assert not os.path.exists(tmp_path / "bad.png")


def test_every_kind_of_model_is_a_crop_editor_and_edits_alike_through_faces(served):
    """Editor, a served model (EditClient.model) and the web editor's LocalModel and RemoteModel satisfy the
    CropEditor protocol, and faces.edit_crops / compose_crops (typed with it) give the same pixels with each."""
    running, editor = served
    given = arguments(editor)
    info = editor.info
    crops = [face_crop(image, info, "none") for image in (given["source"], *given["exemplars"])]
    drop = given["attributes"][0]
    with client.EditClient(f"127.0.0.1:{running.port}", timeout=60) as connection:
        kinds = {
            "Editor": editor,
            "ServedModel": connection.model("parts"),
            "LocalModel": LocalModel("parts", editor.path),
            "RemoteModel": RemoteModel("parts", connection),
        }
        results = {}
        for kind, model in kinds.items():
            assert crop_editor_mismatches(model) == [], kind
            assert model.info.attribute_names == info.attribute_names, kind
            results[kind] = (
                edit_crops(model, given["source"], crops[0], crops[2], given["masks"][1], drop),
                compose_crops(
                    model, given["source"], crops[0], crops[1:], given["masks"], given["strengths"], given["attributes"]
                ),
                model.classify(given["exemplars"]),
            )
    for kind, (edited, composed, reading) in results.items():
        np.testing.assert_array_equal(
            edited, editor.edit(given["source"], given["exemplars"][1], given["masks"][1], drop), err_msg=kind
        )
        np.testing.assert_array_equal(composed, editor.edit_composed(**given), err_msg=kind)
        np.testing.assert_array_equal(reading, editor.classify(given["exemplars"]), err_msg=kind)
