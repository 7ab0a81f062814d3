"""The web editor's JSON endpoints over HTTP: detection on upload, edits in-process and through gRPC, and every bad
request answered with its status and words while the server keeps serving."""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

from ebgan_tf import faces, images
from ebgan_tf.data import masks
from ebgan_tf.serving.request_limits import RequestLimits
from ebgan_tf.serving.server import ModelServer
from ebgan_tf.serving.server_config import ModelSource, ServerOptions
from ebgan_tf.serving.web.app import WebApp, WebOptions, WebServer
from ebgan_tf.serving.web.inputs import gallery_face
from ebgan_tf.serving.web.models import ModelSet
from tests.helpers.contract_model import export_contract_model
from tests.helpers.photo_assets import allowed_to_change, seam_band

SIZE = 32


def request(base: str, path: str, body: bytes | dict | None = None, content_type: str = "application/octet-stream"):
    """(status, headers, body) of GET (body None) or POST."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = urllib.request.Request(
        base.rstrip("/") + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json" if isinstance(body, dict) else content_type},
    )
    try:
        with urllib.request.urlopen(sent, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def call(base: str, path: str, body: bytes | dict | None = None, content_type: str = "application/octet-stream"):
    """(status, content type, body) of GET (body None) or POST."""
    status, headers, data = request(base, path, body, content_type)
    return status, headers["Content-Type"], data


def upload(base: str, path: str, field: str = "source") -> dict:
    with open(path, "rb") as stream:
        status, _, body = call(base, f"/api/images?field={field}", stream.read())
    assert status == 200, body
    return json.loads(body)


def error_of(status_body: tuple) -> tuple[int, dict]:
    status, content_type, body = status_body
    assert content_type == "application/json"
    return status, json.loads(body)


def mask_url(mask: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def uploaded(web, photos) -> dict[str, dict]:
    return {"source": upload(web.url, photos["astronaut"]), "exemplar": upload(web.url, photos["second"], "exemplar")}


def test_models_endpoint_describes_every_served_model(web):
    status, _, body = call(web.url, "/api/models")
    described = json.loads(body)
    assert status == 200 and described["default"] == "ebgan"
    by_name = {model["name"]: model for model in described["models"]}
    assert by_name["ebgan"]["attributes"] == ["Mustache", "Smiling", "Wearing_Lipstick"]
    assert (by_name["ebgan"]["variant"], by_name["ebgan"]["image_size"], by_name["ebgan"]["version"]) == (
        "att_ebgan",
        SIZE,
        1,
    )
    assert by_name["plain"]["variant"] == "ebgan" and not by_name["plain"]["filtering"]
    assert by_name["ebgan"]["classifies"] and not by_name["plain"]["classifies"]


def test_upload_detects_the_face_once_and_edits_reuse_it(web, uploaded, photos, monkeypatch):
    source = uploaded["source"]
    assert (source["width"], source["height"], len(source["faces"])) == (400, 320, 1)
    x, y, width, height = source["faces"][0]["box"]
    assert 150 < x + width / 2 < 250 and 60 < y + height / 2 < 200  # her face, not the flag or the suit
    monkeypatch.setattr(faces, "detect_faces", lambda image: pytest.fail("an edit ran detection again"))
    status, content_type, body = call(
        web.url,
        "/api/edit",
        {
            "source": {"image": source["image"], "face": 0},
            "exemplar": {"image": uploaded["exemplar"]["image"]},
            "region": "mouth",
        },
    )
    assert (status, content_type) == (200, "image/png"), body
    result = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    original = images.load_image(photos["astronaut"]).astype(int)
    assert result.shape == original.shape
    landmarks = np.asarray(source["faces"][0]["landmarks"], np.float32)
    info = web.app.models.get("ebgan").info
    crop = faces.align_face(original.astype(np.uint8), landmarks, info.landmark_template, SIZE)
    region = masks.region_mask(crop.landmarks, "mouth", SIZE).numpy()[..., 0] > 0
    outside = ~allowed_to_change(original.shape[:2], crop.matrix, region, seam_band(crop))
    assert np.abs(result - original)[~outside].max() > 30
    np.testing.assert_array_equal(result[outside], original[outside])


def test_crop_gives_the_aligned_face_and_a_mask_per_region(web, uploaded):
    status, _, body = call(web.url, "/api/crop", {"image": uploaded["source"]["image"], "face": 0})
    answer = json.loads(body)
    assert status == 200 and answer["size"] == SIZE
    assert set(answer["masks"]) == {"mouth", "eyes", "brows", "nose", "components", "face"}
    crop = Image.open(io.BytesIO(base64.b64decode(answer["crop"].split(",")[1])))
    mouth = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["masks"]["mouth"].split(",")[1]))))
    face = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["masks"]["face"].split(",")[1]))))
    assert crop.size == (SIZE, SIZE) and 0 < (mouth > 0).sum() < (face > 0).sum()
    assert (mouth > 0).nonzero()[0].mean() > SIZE / 2  # the mouth is in the lower half


def data_url_pixels(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",")[1]))).convert("RGB"))


def test_the_exemplar_crop_carries_the_classifiers_reading(web, tmp_path):
    registered = json.loads(call(web.url, "/api/gallery/3", b"")[2])
    status, _, body = call(web.url, "/api/crop", {"image": registered["image"], "field": "exemplar"})
    answer = json.loads(body)
    assert status == 200, body
    probabilities = web.app.models.get("ebgan").classify(data_url_pixels(answer["crop"]))  # PNG: the exact crop
    assert [entry["attribute"] for entry in answer["reading"]] == ["Mustache", "Smiling", "Wearing_Lipstick"]
    np.testing.assert_allclose([entry["probability"] for entry in answer["reading"]], probabilities, atol=5e-5)
    assert [entry["present"] for entry in answer["reading"]] == list(probabilities > 0.5)
    plain = json.loads(call(web.url, "/api/crop", {"model": "plain", "image": registered["image"]})[2])
    assert plain["reading"] is None and plain["size"] == SIZE  # an EBGAN model has no classifier
    older = WebServer(
        WebApp(ModelSet.load([export_contract_model(str(tmp_path), "older", image_size=SIZE, classify=False)])),
        "127.0.0.1",
        0,
    ).start()
    try:  # an Att-EBGAN export from before the classify signature: no reading, and it still edits
        key = older.app.store.add(gallery_face(3))
        assert not json.loads(call(older.url, "/api/models")[2])["models"][0]["classifies"]
        status, _, body = call(older.url, "/api/crop", {"image": key, "field": "exemplar"})
        assert status == 200 and json.loads(body)["reading"] is None
        status, content_type, _ = call(
            older.url,
            "/api/edit",
            {"source": {"image": key}, "exemplar": {"image": key}, "region": "mouth", "drop": ["Mustache"]},
        )
        assert (status, content_type) == (200, "image/png")
    finally:
        older.stop()


def test_a_painted_mask_is_used_as_painted(web, uploaded, monkeypatch):
    received = []
    original = faces.edit_crops
    monkeypatch.setattr(faces, "edit_crops", lambda *args: received.append(args[4]) or original(*args))
    painted = np.zeros([SIZE, SIZE], bool)
    painted[3:9, 5:20] = True
    status, _, body = call(
        web.url,
        "/api/edit",
        {
            "source": {"image": uploaded["source"]["image"]},
            "exemplar": {"image": uploaded["exemplar"]["image"]},
            "mask": mask_url(painted),
            "drop": ["Mustache"],
        },
    )
    assert status == 200, body
    np.testing.assert_array_equal(received[0][..., 0] > 0.5, painted)


@pytest.mark.parametrize("workers", [1, 2])
def test_edits_at_once_are_limited_to_the_edit_workers_and_taken_in_turn(model_set, workers, monkeypatch):
    app = WebApp(model_set, WebOptions(edit_workers=workers))
    key = app.store.add(gallery_face(3))
    running, most, lock = [0], [0], threading.Lock()
    original = faces.edit_crops

    def slow_edit(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return original(*args)

    monkeypatch.setattr(faces, "edit_crops", slow_edit)
    answers = {}

    def edit(index: int) -> None:
        answers[index] = app.edit({"source": {"image": key}, "exemplar": {"image": key}, "region": "mouth"})

    threads = [threading.Thread(target=edit, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    app.close()
    assert most[0] == workers and len(answers) == 4
    assert all(data.startswith(b"\x89PNG") for data, _, _ in answers.values())
    # Milliseconds include the wait for a worker: with one worker, the last edit waited for the three before it.
    waited = sorted(milliseconds for _, _, milliseconds in answers.values())
    assert waited[-1] > (800 if workers == 1 else 400) * 0.9


def test_gallery_faces_are_served_and_edit_like_uploads(web, uploaded):
    status, _, body = call(web.url, "/api/gallery")
    gallery = json.loads(body)["faces"]
    assert status == 200 and len(gallery) >= 4
    status, content_type, png = call(web.url, gallery[2]["url"])
    assert (status, content_type) == (200, "image/png") and Image.open(io.BytesIO(png)).size == (256, 256)
    status, _, body = call(web.url, "/api/gallery/2", b"")
    registered = json.loads(body)
    assert status == 200 and len(registered["faces"]) == 1
    status, _, edited = call(
        web.url,
        "/api/edit",
        {
            "source": {"image": registered["image"]},
            "exemplar": {"image": uploaded["exemplar"]["image"]},
            "region": "eyes",
            "drop": ["Smiling"],
        },
    )
    assert status == 200
    difference = np.abs(np.asarray(Image.open(io.BytesIO(edited)), int) - np.asarray(Image.open(io.BytesIO(png)), int))
    assert difference.max() > 30 and (difference.max(axis=-1) > 0).mean() < 0.2


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR claiming width x height pixels and the start of an IDAT chunk cut short: the header
    reads, decoding fails."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 1000)
        + b"IDAT"
        + b"\0" * 10
    )


@pytest.fixture(scope="module")
def strict(model_set):
    """A second editor on the same models with small limits: 64 kB bodies, 100 000 pixels."""
    options = WebOptions(limits=RequestLimits(max_message_bytes=64_000), max_pixels=100_000)
    server = WebServer(WebApp(model_set, options), "127.0.0.1", 0)
    yield server.start()
    server.stop()


def test_bad_requests_get_their_status_and_words_and_the_server_keeps_serving(web, strict, uploaded, photos):
    def edit(**changes):
        body = {
            "source": {"image": uploaded["source"]["image"]},
            "exemplar": {"image": uploaded["exemplar"]["image"]},
            "region": "mouth",
            **changes,
        }
        return error_of(call(web.url, "/api/edit", body))

    with open(photos["text"], "rb") as stream:
        status, body = error_of(call(web.url, "/api/images?field=exemplar", stream.read()))
    assert (status, body["kind"], body["field"]) == (400, "not_image", "exemplar")
    assert "not an image" in body["error"]
    with open(photos["coffee"], "rb") as stream:
        status, body = error_of(call(web.url, "/api/images", stream.read()))
    assert (status, body["kind"], body["field"]) == (400, "no_face", "source") and "No face" in body["error"]
    status, body = error_of(call(strict.url, "/api/images", b"\0" * 70_000))
    assert (status, body["kind"]) == (413, "too_large") and "too large" in body["error"]
    status, body = error_of(call(strict.url, "/api/images", _png_header(1000, 1000)))  # checked before decoding
    assert (status, body["kind"]) == (413, "too_large") and "1000x1000" in body["error"]
    status, body = error_of(call(web.url, "/api/images", _png_header(100, 100)))
    assert (status, body["kind"]) == (400, "not_image") and "damaged" in body["error"]
    assert edit(model="nope")[0] == 404
    assert edit(source={"image": "forgotten"})[1]["field"] == "source"
    two_faces = upload(web.url, photos["two_faces"], "exemplar")["image"]
    for face in (True, 1.0, "1", 2, -1):  # a face index is a whole number of a detected face, not a boolean
        status, body = edit(exemplar={"image": two_faces, "face": face})
        assert (status, body["field"]) == (400, "exemplar") and "does not exist" in body["error"], face
    status, body = edit(model="plain", drop=["Mustache"])
    assert (status, body["kind"], body["field"]) == (400, "no_filtering", "attributes")
    assert "cannot filter out attributes" in body["error"]
    status, body = edit(drop=["Beard"])
    assert status == 400 and "Beard" in body["error"] and body["field"] == "attributes"
    assert edit(region="chin")[0] == 400
    assert edit(mask="data:image/png;base64,AAAA", region=None)[0] == 400
    assert edit(region=None, mask=mask_url(np.zeros([SIZE, SIZE])))[1]["kind"] == "empty_mask"
    assert error_of(call(web.url, "/api/edit", b"{not json", "application/json"))[0] == 400
    assert call(web.url, "/static/../app.py")[0] == 404
    status, content_type, page = call(web.url, "/")
    assert status == 200 and content_type.startswith("text/html") and b"EBGAN face editor" in page


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_in_front_of_a_grpc_model_server_edits_match_in_process(web, model_paths, uploaded):
    base = model_paths["ebgan"].rsplit("/", 1)[0]
    server = ModelServer(
        ServerOptions(models=(ModelSource("ebgan", base),), host="127.0.0.1", port=0, file_system_poll_wait_seconds=0)
    ).start()
    remote = WebServer(WebApp(ModelSet.remote(f"127.0.0.1:{server.port}", ["ebgan"], 30.0)), "127.0.0.1", 0).start()
    try:
        described = json.loads(call(remote.url, "/api/models")[2])["models"][0]
        assert (described["name"], described["version"], described["variant"]) == ("ebgan", 1, "att_ebgan")
        local_source, local_exemplar = uploaded["source"]["image"], uploaded["exemplar"]["image"]
        stored = [web.app.store.get(key, "source") for key in (local_source, local_exemplar)]
        keys = [remote.app.store.add(image) for image in stored]
        request = {"region": "mouth", "drop": ["Mustache"]}
        status, _, over_grpc = call(
            remote.url, "/api/edit", {**request, "source": {"image": keys[0]}, "exemplar": {"image": keys[1]}}
        )
        _, _, in_process = call(
            web.url, "/api/edit", {**request, "source": {"image": local_source}, "exemplar": {"image": local_exemplar}}
        )
        assert status == 200
        np.testing.assert_array_equal(
            np.asarray(Image.open(io.BytesIO(over_grpc))), np.asarray(Image.open(io.BytesIO(in_process)))
        )
        assert described["classifies"]  # read from the server's GetModelMetadata
        readings = [
            json.loads(call(url, "/api/crop", {"image": key, "field": "exemplar"})[2])["reading"]
            for url, key in ((remote.url, keys[1]), (web.url, local_exemplar))
        ]
        assert readings[0] == readings[1] and len(readings[0]) == 3
    finally:
        remote.stop()
        server.stop()


def test_an_unreachable_model_server_is_a_503_in_words():
    remote = WebServer(WebApp(ModelSet.remote(f"127.0.0.1:{_free_port()}", ["ebgan"], 2.0)), "127.0.0.1", 0).start()
    try:
        status, body = error_of(call(remote.url, "/api/models"))
        assert (status, body["kind"], body["field"]) == (503, "unavailable", "model")
        assert "cannot be reached" in body["error"]
    finally:
        remote.stop()


@pytest.mark.slow  # a server process importing TensorFlow
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_ebgan_web_serves_until_a_stop_signal_then_exits_cleanly(model_paths, number):
    process = subprocess.Popen(
        [sys.executable, "-m", "ebgan_tf.serving.web.main", f"--model={model_paths['ebgan']}", "--port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # "ebgan-web: open http://127.0.0.1:<port>/" once it serves
        assert line.startswith("ebgan-web: open http://127.0.0.1:"), (line, process.stderr.read())
        url = line.split("open ", 1)[1].strip()
        assert call(url, "/api/models")[0] == 200
        process.send_signal(number)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
