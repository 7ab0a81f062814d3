"""Hostile and careless clients of ebgan-web: every case of tests/helpers/web_probe.py answered with its status and a
JSON error naming the problem while the server keeps serving, oversized images refused before decoding, a fuzzer
over the JSON bodies (composed edits among them), multipart uploads and damaged files, and a good multipart upload."""

from __future__ import annotations

import time

import pytest
from PIL import ImageFile

from ebgan_tf.serving.request_limits import RequestLimits
from ebgan_tf.serving.web.app import WebApp, WebOptions, WebServer
from ebgan_tf.serving.web.models import ModelSet
from tests.helpers import hostile_probe, web_probe

OPTIONS = WebOptions(
    limits=RequestLimits(
        max_message_bytes=1_000_000,
        header_timeout_seconds=1.0,
        body_timeout_seconds=1.0,
        idle_timeout_seconds=1.0,
        max_connections=8,
    ),
    max_pixels=1_000_000,
)
FUZZ_EXAMPLES = 40  # per kind: bounded, so that `make test` stays short


@pytest.fixture(scope="module")
def target(model_paths, composing_path):
    """ebgan-web with small limits and timeouts on the contract fixture (the default) and the composing model
    `parts`, two built-in faces registered."""
    models = ModelSet.load([model_paths["ebgan"], composing_path])
    server = WebServer(WebApp(models, OPTIONS), "127.0.0.1", 0).start()
    yield web_probe.register(
        web_probe.WebTarget(
            server.port,
            OPTIONS.limits.max_message_bytes,
            OPTIONS.max_pixels,
            1.0,
            OPTIONS.limits.max_connections,
            models.get(None).info.image_size,
        )
    )
    server.stop()


@pytest.mark.parametrize("case", web_probe.CASES, ids=[case.name for case in web_probe.CASES])
def test_each_hostile_case_gets_its_answer_in_words_and_the_server_keeps_serving(target, case):
    started = time.monotonic()
    answer = case.send(target)
    assert web_probe.check(case, answer) is None, web_probe.check(case, answer)
    assert time.monotonic() - started < 30  # answered at once or after a timeout
    assert web_probe.serving(target)


@pytest.mark.parametrize("width, height", [(30000, 30000), (2000, 2000)])
@pytest.mark.parametrize("where", ["upload", "mask"])
def test_images_over_the_pixel_limit_are_refused_before_decoding(target, monkeypatch, width, height, where):
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or original(image))
    png = web_probe.declared_png(width, height)
    assert len(png) < 200
    if where == "upload":
        answer = web_probe.post(target, "/api/images", png)
    else:
        answer = web_probe.post(
            target,
            "/api/edit",
            {
                "source": {"image": target.source},
                "exemplar": {"image": target.exemplar},
                "mask": web_probe.mask_url(png),
            },
        )
    assert answer.status in ("HTTP 413", "HTTP 400") and answer.json()["field"] in ("source", "mask")
    assert not decoded
    assert web_probe.post(target, "/api/images", web_probe.SMALL_FILES["PNG"]).status == "HTTP 400"  # no face
    assert set(decoded) == {(48, 48)}  # the spy sees what is decoded
    assert web_probe.serving(target)


def test_a_good_multipart_upload_is_read_like_the_file_itself(target, photos):
    with open(photos["astronaut"], "rb") as stream:
        data = stream.read()
    body = web_probe.multipart([('name="note"', b"my photo"), ('name="photo"; filename="me.png"', data)])
    answer = web_probe.post(target, "/api/images?field=exemplar", body, "multipart/form-data; boundary=EbganBoundary")
    assert answer.status == "HTTP 200", answer.body
    plain = web_probe.post(target, "/api/images?field=exemplar", data).json()
    found = answer.json()
    assert (found["width"], found["height"], len(found["faces"])) == (plain["width"], plain["height"], 1)
    assert found["faces"][0]["box"] == plain["faces"][0]["box"]


def test_fuzzed_json_bodies_multipart_uploads_and_damaged_files_get_client_errors_at_worst(target):
    answers: list[tuple[str, str]] = []
    web_probe.fuzz(target, FUZZ_EXAMPLES, lambda kind, answer: answers.append((kind, answer)))
    assert len(answers) >= 3 * FUZZ_EXAMPLES * 0.9
    assert not [(kind, answer) for kind, answer in answers if answer not in web_probe.CLIENT_ANSWERS]
    assert "HTTP 400" in {answer for kind, answer in answers if "JSON" in kind}
    assert web_probe.serving(target)


def test_a_get_carrying_a_request_as_its_body_gets_one_answer(target):
    """The declared body of a GET is never read as a second request, and malformed header lines are 400."""
    hidden = b"GET /api/nothing-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    request = b"GET /api/models HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(hidden), hidden)
    assert hostile_probe.every_answer(target.as_rest(), request) == "HTTP 200"
    for header in (b"Transfer-Encoding : chunked", b"no colon here"):
        answer = web_probe.exchange(
            target.host, target.port, b"GET /api/models HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nX-After: 1\r\n\r\n"
        )
        assert answer.status == "HTTP 400", (header, answer)
    assert web_probe.serving(target)
