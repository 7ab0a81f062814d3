"""Hostile and careless clients of ebgan-web: the cases of tests/web/test_web_hostile.py by class, each with the
answers it may get and the words its JSON error must contain, and the fuzzing strategies (hypothesis) over the JSON
bodies, multipart uploads and damaged image files.

`python -m tests.helpers.web_probe` serves the contract fixture in-process, tries every case and a number of fuzzed
requests, and prints the web part of the table of docs/hardening.md.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import io
import json
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tests.helpers import hostile_probe
from tests.helpers.hostile_probe import Answer, Case, exchange, http_post

CLIENT_ANSWERS = {"HTTP 200", "HTTP 400", "HTTP 404", "HTTP 405", "HTTP 408", "HTTP 413", "HTTP 414", "HTTP 431"}
UPLOAD_ENDPOINTS = ("/api/images?field=source", "/api/gallery/0", "/api/crop", "/api/edit", "/api/compose")
JSON_ENDPOINTS = ("/api/crop", "/api/edit", "/api/compose")


@dataclasses.dataclass(frozen=True)
class WebTarget:
    """A running ebgan-web: its port, limits, model size, two registered images to edit with, and the name of a
    model of it that composes parts (edit_composed; its default model does not)."""

    port: int
    max_message_bytes: int
    max_pixels: int
    timeout_seconds: float  # the largest of its header/body/idle timeouts
    max_connections: int
    image_size: int
    source: str = ""
    exemplar: str = ""
    host: str = "127.0.0.1"
    composer: str = "parts"  # as export_composing_model names it

    def as_rest(self) -> hostile_probe.Target:
        """The same server as hostile_probe's slow-client cases take it."""
        return hostile_probe.Target(
            0,
            self.port,
            self.image_size,
            0,
            0,
            self.max_message_bytes,
            self.timeout_seconds,
            self.max_connections,
            self.host,
            "/api/models",
        )


def send(target: WebTarget, data: bytes, half_close: bool = True, pace: float = 0.0) -> Answer:
    return exchange(target.host, target.port, data, half_close, pace, target.timeout_seconds * 3 + 20.0)


def post(target: WebTarget, path: str, body: bytes | Any, content_type: str | None = None, **headers) -> Answer:
    """A POST of raw bytes, or of any other value as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = content_type or ("application/json" if not isinstance(body, bytes) else "application/octet-stream")
    return send(target, http_post(path, data, {"Content-Type": kind, **headers}))


def get(target: WebTarget, path: str) -> Answer:
    return send(target, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def register(target: WebTarget) -> WebTarget:
    """The target with two built-in faces registered as its source and exemplar."""
    answers = [post(target, f"/api/gallery/{index}", b"") for index in (0, 1)]
    if any(answer.status != "HTTP 200" for answer in answers):
        raise RuntimeError(f"The built-in faces could not be registered: {answers}")
    ids = [answer.json()["image"] for answer in answers]
    return dataclasses.replace(target, source=ids[0], exemplar=ids[1])


def serving(target: WebTarget, within_seconds: float = 10.0) -> bool:
    """The server still answers: the models, and an aligned crop of the source. Connection slots that a case held
    are freed by the server's threads after the client closes them, so a 503 is retried for `within_seconds`."""
    deadline = time.monotonic() + within_seconds
    while True:
        models = get(target, "/api/models").status
        if models == "HTTP 200":
            return post(target, "/api/crop", {"image": target.source}).status == "HTTP 200"
        if models != "HTTP 503" or time.monotonic() > deadline:
            return False
        time.sleep(0.2)


# --- files --------------------------------------------------------------------------------------------------------


def encoded(image: np.ndarray | Image.Image, format_: str, **options) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format=format_, **options)
    return buffer.getvalue()


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, [height, width, 3], dtype=np.uint8)


def declared_png(width: int, height: int) -> bytes:
    """A complete, tiny PNG whose header declares width x height pixels (its one IDAT holds a few rows at most)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def mask_url(mask: np.ndarray | bytes) -> str:
    """A PNG data URL of a 0/1 mask (or of given file bytes), as the page sends it."""
    data = mask if isinstance(mask, bytes) else encoded((mask > 0).astype(np.uint8) * 255, "PNG")
    return "data:image/png;base64," + base64.b64encode(data).decode()


def multipart(parts: list[tuple[str, bytes]], boundary: str = "EbganBoundary") -> bytes:
    """A multipart/form-data body of (Content-Disposition parameters, content) parts."""
    lines = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
        for disposition, content in parts
    )
    return lines + f"--{boundary}--\r\n".encode()


def _small_files() -> dict[str, bytes]:
    """Valid small files of every accepted format (faceless noise), for damaging."""
    pixels = noise(48, 48, 3)
    return {
        "PNG": encoded(pixels, "PNG"),
        "JPEG": encoded(pixels, "JPEG", quality=90),
        "GIF": encoded(pixels, "GIF"),
        "BMP": encoded(pixels, "BMP"),
        "WEBP": encoded(pixels, "WEBP"),
        "PNG 16-bit": encoded(Image.fromarray(pixels[..., 0].astype(np.uint16) * 257), "PNG"),
    }


SMALL_FILES = _small_files()


# --- the cases ----------------------------------------------------------------------------------------------------


def _case(kind: str, name: str, send_: Callable[[WebTarget], Answer], expected: str, words: str = "") -> Case:
    return Case(kind, name, send_, frozenset(expected.split("|")), words)


def _framing_cases(path: str) -> list[Case]:
    kind = "framing (every upload endpoint)"
    return [
        _case(
            kind,
            f"{path}: Content-Length over --max_message_bytes",
            lambda t: send(t, http_post(path, b"", {"Content-Length": str(t.max_message_bytes + 1)}), half_close=False),
            "HTTP 413",
            "too large",
        ),
        _case(
            kind,
            f"{path}: no Content-Length",
            lambda t: send(t, http_post(path, b"{}", {"Content-Length": None})),
            "HTTP 400",
            "Content-Length",
        ),
        _case(
            kind,
            f"{path}: Content-Length -1",
            lambda t: send(t, http_post(path, b"{}", {"Content-Length": "-1"})),
            "HTTP 400",
            "Content-Length",
        ),
        _case(
            kind,
            f"{path}: Content-Length abc",
            lambda t: send(t, http_post(path, b"{}", {"Content-Length": "abc"})),
            "HTTP 400",
            "Content-Length",
        ),
        _case(
            kind,
            f"{path}: two Content-Length",
            lambda t: send(t, http_post(path, b"{}").replace(b"\r\n\r\n", b"\r\nContent-Length: 1\r\n\r\n", 1)),
            "HTTP 400",
            "2 Content-Length headers",
        ),
        _case(
            kind,
            f"{path}: chunked body",
            lambda t: send(
                t, http_post(path, b"2\r\n{}\r\n0\r\n\r\n", {"Content-Length": None, "Transfer-Encoding": "chunked"})
            ),
            "HTTP 400",
            "Transfer-Encoding",
        ),
        _case(
            kind,
            f"{path}: body shorter than Content-Length, half-close",
            lambda t: send(t, http_post(path, b"{}", {"Content-Length": "100"})),
            "HTTP 400",
            "ended after 2 of 100 bytes",
        ),
        _case(
            kind,
            f"{path}: body shorter than Content-Length, kept open",
            lambda t: send(t, http_post(path, b"{}", {"Content-Length": "100"}), half_close=False),
            "HTTP 408",
            "did not arrive",
        ),
    ]


_IMAGES = "image files (POST /api/images)"
_MULTIPART = "multipart uploads (POST /api/images)"
_JSON_KIND = f"JSON bodies (POST {', '.join(JSON_ENDPOINTS)})"
_COMPOSE_KIND = "composed edits (POST /api/compose)"
_UPLOAD = "/api/images?field=source"


def _upload(data: bytes, content_type: str | None = None) -> Callable[[WebTarget], Answer]:
    return lambda t: post(t, _UPLOAD, data, content_type)


def _changed(target: WebTarget, body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`body` with `changes` made: a value, or a function of the target giving it; None leaves the field out."""
    body.update({key: value(target) if callable(value) else value for key, value in changes.items()})
    return {key: value for key, value in body.items() if value is not None}


def _edit_body(target: WebTarget) -> dict[str, Any]:
    """A good edit: the target's source by its exemplar, in the mouth."""
    return {"source": {"image": target.source}, "exemplar": {"image": target.exemplar}, "region": "mouth"}


def _edit(**changes) -> Callable[[WebTarget], Answer]:
    """An edit of the target's source by its exemplar (mouth), with fields changed (None: left out)."""
    return lambda target: post(target, "/api/edit", _changed(target, _edit_body(target), changes))


def _part(**changes) -> Callable[[WebTarget], dict[str, Any]]:
    """One part of a composed edit: the mouth from the target's exemplar at half strength, with fields changed."""
    return lambda target: _changed(
        target, {"region": "mouth", "exemplar": {"image": target.exemplar}, "strength": 0.5}, changes
    )


def _compose_body(target: WebTarget, parts: list[Any]) -> dict[str, Any]:
    """A composed edit of the target's source on its composing model."""
    return {"model": target.composer, "source": {"image": target.source}, "parts": parts}


def _compose(*parts: Callable[[WebTarget], Any], **changes) -> Callable[[WebTarget], Answer]:
    """A composed edit of `parts` (default: one `_part()`), with fields of the body changed (None: left out)."""

    def send_(target: WebTarget) -> Answer:
        body = _compose_body(target, [part(target) for part in parts or (_part(),)])
        return post(target, "/api/compose", _changed(target, body, changes))

    return send_


def _mask(build: Callable[[int], bytes | np.ndarray]) -> Callable[[WebTarget], str]:
    return lambda target: mask_url(build(target.image_size))


def _corner(size: int) -> np.ndarray:
    mask = np.zeros([size, size])
    mask[:3, :3] = 1
    return mask


_16BIT = encoded(Image.fromarray(np.full([40, 40], 30000, np.uint16)), "PNG")
_CMYK = encoded(Image.fromarray(noise(40, 40)).convert("CMYK"), "JPEG")
_GIF2 = encoded(Image.fromarray(noise(40, 40)), "GIF", save_all=True, append_images=[Image.fromarray(noise(40, 40, 1))])

CASES: tuple[Case, ...] = (
    _case("well-formed requests", "GET /api/models", lambda t: get(t, "/api/models"), "HTTP 200"),
    _case("well-formed requests", "POST /api/gallery/2", lambda t: post(t, "/api/gallery/2", b""), "HTTP 200"),
    _case("well-formed requests", "POST /api/crop", lambda t: post(t, "/api/crop", {"image": t.source}), "HTTP 200"),
    _case("well-formed requests", "POST /api/edit (region)", _edit(), "HTTP 200"),
    _case(
        "well-formed requests",
        "POST /api/compose (a region and a painted part)",
        _compose(_part(), _part(region=None, mask=_mask(_corner), strength=1, drop=["Mustache"])),
        "HTTP 200",
    ),
    *(case for path in UPLOAD_ENDPOINTS for case in _framing_cases(path)),
    _case(_IMAGES, "tiny PNG declaring 30000x30000", _upload(declared_png(30000, 30000)), "HTTP 413", "pixels"),
    _case(
        _IMAGES,
        "PNG declaring 2000x2000 (over --max_pixels)",
        _upload(declared_png(2000, 2000)),
        "HTTP 413",
        "2000x2000",
    ),
    _case(_IMAGES, "a text file", _upload(b"These are notes, not a photo.\n"), "HTTP 400", "not an image"),
    _case(_IMAGES, "an empty file", _upload(b""), "HTTP 400", "empty"),
    _case(
        _IMAGES,
        "JPEG cut in half",
        _upload(SMALL_FILES["JPEG"][: len(SMALL_FILES["JPEG"]) // 2]),
        "HTTP 400",
        "damaged",
    ),
    _case(
        _IMAGES, "PNG cut in half", _upload(SMALL_FILES["PNG"][: len(SMALL_FILES["PNG"]) // 2]), "HTTP 400", "damaged"
    ),
    _case(_IMAGES, "TIFF (not accepted)", _upload(encoded(noise(40, 40), "TIFF")), "HTTP 400", "not an image"),
    _case(
        _IMAGES,
        "SVG",
        _upload(
            b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle r="9"/></svg>', "image/svg+xml"
        ),
        "HTTP 400",
        "not an image",
    ),
    _case(_IMAGES, "1x1 PNG", _upload(encoded(noise(1, 1), "PNG")), "HTTP 400", "no face"),
    _case(_IMAGES, "1x3000 PNG", _upload(encoded(noise(1, 3000), "PNG")), "HTTP 400", "no face"),
    _case(_IMAGES, "16-bit grey PNG", _upload(_16BIT), "HTTP 400", "no face"),
    _case(_IMAGES, "CMYK JPEG", _upload(_CMYK), "HTTP 400", "no face"),
    _case(_IMAGES, "GIF of two frames", _upload(_GIF2), "HTTP 400", "no face"),
    _case(
        _MULTIPART,
        "no boundary",
        _upload(multipart([('name="photo"; filename="a.png"', SMALL_FILES["PNG"])]), "multipart/form-data"),
        "HTTP 400",
        "boundary",
    ),
    _case(
        _MULTIPART,
        "wrong boundary",
        _upload(
            multipart([('name="photo"; filename="a.png"', SMALL_FILES["PNG"])]), "multipart/form-data; boundary=Other"
        ),
        "HTTP 400",
        "boundary",
    ),
    _case(
        _MULTIPART,
        "no file part",
        _upload(multipart([('name="note"', b"hello")]), "multipart/form-data; boundary=EbganBoundary"),
        "HTTP 400",
        "0 files",
    ),
    _case(
        _MULTIPART,
        "two files",
        _upload(
            multipart(
                [('name="a"; filename="a.png"', SMALL_FILES["PNG"]), ('name="b"; filename="b.png"', SMALL_FILES["PNG"])]
            ),
            "multipart/form-data; boundary=EbganBoundary",
        ),
        "HTTP 400",
        "2 files",
    ),
    _case(
        _MULTIPART,
        "part without headers",
        _upload(b"--EbganBoundary\r\nno headers here--EbganBoundary--", "multipart/form-data; boundary=EbganBoundary"),
        "HTTP 400",
        "boundary",
    ),
    _case(
        _MULTIPART,
        "multipart/mixed",
        _upload(
            multipart([('name="a"; filename="a.png"', SMALL_FILES["PNG"])]), "multipart/mixed; boundary=EbganBoundary"
        ),
        "HTTP 400",
        "form-data",
    ),
    _case(
        _MULTIPART,
        "one faceless photo",
        _upload(
            multipart([('name="a"; filename="a.png"', SMALL_FILES["PNG"])]),
            "multipart/form-data; boundary=EbganBoundary",
        ),
        "HTTP 400",
        "no face",
    ),
    *(
        _case(
            _JSON_KIND,
            f"{path}: not JSON",
            lambda t, path=path: post(t, path, b"{nope", "application/json"),
            "HTTP 400",
            "not valid JSON",
        )
        for path in JSON_ENDPOINTS
    ),
    *(
        _case(
            _JSON_KIND,
            f"{path}: JSON nested 50000 deep",
            lambda t, path=path: post(t, path, b"[" * 50000 + b"]" * 50000, "application/json"),
            "HTTP 400",
            "nested too deeply",
        )
        for path in JSON_ENDPOINTS
    ),
    _case(_JSON_KIND, "a list, not an object", lambda t: post(t, "/api/edit", [1, 2]), "HTTP 400", "JSON object"),
    _case(_JSON_KIND, "model is a list", _edit(model=["ebgan"]), "HTTP 400", "model"),
    _case(_JSON_KIND, "model is an object", _edit(model={"name": "ebgan"}), "HTTP 400", "model"),
    _case(_JSON_KIND, "unknown model", _edit(model="nope"), "HTTP 404", "No model named 'nope'"),
    _case(_JSON_KIND, "unknown photo id", _edit(source={"image": "forgotten"}), "HTTP 404", "no longer on the server"),
    _case(
        _JSON_KIND,
        "photo id of 100 kB",
        _edit(exemplar={"image": "x" * 100_000}),
        "HTTP 404",
        "no longer on the server",
    ),
    _case(_JSON_KIND, "photo id is a number", _edit(source={"image": 7}), "HTTP 400", "source photo"),
    _case(_JSON_KIND, "face is a string", _edit(source=lambda t: {"image": t.source, "face": "0"}), "HTTP 400", "face"),
    _case(
        _JSON_KIND,
        "face 1e400 (infinite)",
        lambda t: post(
            t,
            "/api/crop",
            json.dumps({"image": t.source}).replace("}", ', "face": 1e400}').encode(),
            "application/json",
        ),
        "HTTP 400",
        "face",
    ),
    _case(_JSON_KIND, "face 10^30", _edit(source=lambda t: {"image": t.source, "face": 10**30}), "HTTP 400", "face"),
    _case(_JSON_KIND, "face -1", _edit(source=lambda t: {"image": t.source, "face": -1}), "HTTP 400", "face"),
    _case(
        _JSON_KIND,
        "a number of 5000 digits",
        lambda t: post(t, "/api/crop", b'{"face": ' + b"9" * 5000 + b"}", "application/json"),
        "HTTP 400",
        "not valid JSON",
    ),
    _case(_JSON_KIND, "region is a number", _edit(region=5), "HTTP 400", "region"),
    _case(_JSON_KIND, "region is a list of numbers", _edit(region=[1, 2]), "HTTP 400", "region"),
    _case(_JSON_KIND, "unknown region", _edit(region="chin"), "HTTP 400", "chin"),
    _case(_JSON_KIND, "region and mask both", _edit(mask=_mask(_corner)), "HTTP 400", "exactly one"),
    _case(_JSON_KIND, "drop is a string", _edit(drop="Mustache"), "HTTP 400", "drop must be a list"),
    _case(_JSON_KIND, "drop names an unknown attribute", _edit(drop=["Beard"]), "HTTP 400", "Beard"),
    _case(_JSON_KIND, "mask is a number", _edit(region=None, mask=5), "HTTP 400", "PNG data URL"),
    _case(
        _JSON_KIND, "mask of broken base64", _edit(region=None, mask="data:image/png;base64,A*A="), "HTTP 400", "base64"
    ),
    _case(
        _JSON_KIND,
        "mask is a text file",
        _edit(region=None, mask=_mask(lambda size: b"not a mask")),
        "HTTP 400",
        "not an image",
    ),
    _case(
        _JSON_KIND,
        "mask twice the model's size",
        _edit(region=None, mask=_mask(lambda size: np.ones([2 * size, 2 * size]))),
        "HTTP 400",
        "it must be",
    ),
    _case(
        _JSON_KIND,
        "mask declaring 30000x30000",
        _edit(region=None, mask=_mask(lambda size: declared_png(30000, 30000))),
        "HTTP 413",
        "it must be",
    ),
    _case(
        _JSON_KIND,
        "mask painted faint grey (nothing on)",
        _edit(region=None, mask=_mask(lambda size: encoded(np.full([size, size], 100, np.uint8), "PNG"))),
        "HTTP 400",
        "empty",
    ),
    _case(
        _JSON_KIND,
        "mask painted only in a corner, outside the face",
        _edit(region=None, mask=_mask(_corner)),
        "HTTP 200",
    ),
    _case(
        _COMPOSE_KIND, "a string, not an object", lambda t: post(t, "/api/compose", "parts"), "HTTP 400", "JSON object"
    ),
    _case(_COMPOSE_KIND, "the default model (no edit_composed)", _compose(model=None), "HTTP 400", "cannot compose"),
    _case(_COMPOSE_KIND, "unknown model", _compose(model="nope"), "HTTP 404", "No model named 'nope'"),
    _case(_COMPOSE_KIND, "no source", _compose(source=None), "HTTP 400", "Add a source photo first"),
    _case(_COMPOSE_KIND, "no parts", _compose(parts=None), "HTTP 400", "at least one part"),
    _case(_COMPOSE_KIND, "parts is a string", _compose(parts="mouth"), "HTTP 400", "parts must be a list"),
    _case(_COMPOSE_KIND, "parts is an object", _compose(parts=_part()), "HTTP 400", "parts must be a list"),
    _case(_COMPOSE_KIND, "parts is empty", _compose(parts=[]), "HTTP 400", "at least one part"),
    _case(_COMPOSE_KIND, "1000 parts", _compose(*[_part()] * 1000), "HTTP 400", "Too many parts: 1000"),
    _case(
        _COMPOSE_KIND, "a part is a string", _compose(parts=["mouth"]), "HTTP 400", "Part 1: A part must be an object"
    ),
    _case(
        _COMPOSE_KIND,
        "a part without region or mask",
        _compose(_part(region=None)),
        "HTTP 400",
        "Part 1: Pick a region",
    ),
    _case(
        _COMPOSE_KIND,
        "a part with region and mask both",
        _compose(_part(mask=_mask(_corner))),
        "HTTP 400",
        "exactly one of mask and region",
    ),
    _case(
        _COMPOSE_KIND,
        "second part of an unknown region",
        _compose(_part(), _part(region="chin")),
        "HTTP 400",
        "Part 2: Unknown region(s) 'chin'",
    ),
    _case(_COMPOSE_KIND, "region is a number", _compose(_part(region=5)), "HTTP 400", "Regions must be"),
    _case(_COMPOSE_KIND, "strength is a string", _compose(_part(strength="0.5")), "HTTP 400", 'got "0.5"'),
    _case(_COMPOSE_KIND, "strength is true", _compose(_part(strength=True)), "HTTP 400", "got true"),
    _case(_COMPOSE_KIND, "strength NaN", _compose(_part(strength=float("nan"))), "HTTP 400", "got NaN"),
    _case(
        _COMPOSE_KIND, "strength 1e400 (infinite)", _compose(_part(strength=float("inf"))), "HTTP 400", "got Infinity"
    ),
    _case(
        _COMPOSE_KIND,
        "strength 1.5",
        _compose(_part(strength=1.5)),
        "HTTP 400",
        "from 0 (the source's own region) to 1",
    ),
    _case(_COMPOSE_KIND, "strength -0.1", _compose(_part(strength=-0.1)), "HTTP 400", "got -0.1"),
    _case(_COMPOSE_KIND, "strength 10^30", _compose(_part(strength=10**30)), "HTTP 400", "got 1" + "0" * 30),
    _case(
        _COMPOSE_KIND, "a part without exemplar", _compose(_part(exemplar=None)), "HTTP 400", "Part 1: Choose the face"
    ),
    _case(
        _COMPOSE_KIND,
        "exemplar is a string",
        _compose(_part(exemplar=lambda t: t.exemplar)),
        "HTTP 400",
        "Choose the face",
    ),
    _case(
        _COMPOSE_KIND,
        "exemplar of an unknown photo id",
        _compose(_part(exemplar={"image": "forgotten"})),
        "HTTP 404",
        "no longer on the server",
    ),
    _case(
        _COMPOSE_KIND,
        "exemplar face 3 of a one-face photo",
        _compose(_part(exemplar=lambda t: {"image": t.exemplar, "face": 3})),
        "HTTP 400",
        "Face 3 does not exist",
    ),
    _case(_COMPOSE_KIND, "mask is a number", _compose(_part(region=None, mask=5)), "HTTP 400", "PNG data URL"),
    _case(
        _COMPOSE_KIND,
        "mask of broken base64",
        _compose(_part(region=None, mask="data:image/png;base64,A*A=")),
        "HTTP 400",
        "base64",
    ),
    _case(
        _COMPOSE_KIND,
        "mask is a text file",
        _compose(_part(region=None, mask=_mask(lambda size: b"not a mask"))),
        "HTTP 400",
        "not an image",
    ),
    _case(
        _COMPOSE_KIND,
        "mask twice the model's size",
        _compose(_part(region=None, mask=_mask(lambda size: np.ones([2 * size, 2 * size])))),
        "HTTP 400",
        "it must be",
    ),
    _case(
        _COMPOSE_KIND,
        "mask declaring 30000x30000",
        _compose(_part(region=None, mask=_mask(lambda size: declared_png(30000, 30000)))),
        "HTTP 413",
        "it must be",
    ),
    _case(
        _COMPOSE_KIND,
        "mask all black (nothing on)",
        _compose(_part(region=None, mask=_mask(lambda size: np.zeros([size, size])))),
        "HTTP 400",
        "The mask is empty",
    ),
    _case(_COMPOSE_KIND, "drop is a string", _compose(_part(drop="Mustache")), "HTTP 400", "drop must be a list"),
    _case(_COMPOSE_KIND, "drop names an unknown attribute", _compose(_part(drop=["Beard"])), "HTTP 400", "Beard"),
    _case(
        "HTTP protocol",
        "DELETE method",
        lambda t: send(t, b"DELETE /api/models HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP 405",
        "DELETE",
    ),
    _case(
        "HTTP protocol", "HTTP/0.9 'GET /'", lambda t: send(t, b"GET /\r\n", half_close=False), "HTTP 400", "HTTP/0.9"
    ),
    _case(
        "HTTP protocol",
        "request line of 70000 bytes",
        lambda t: send(t, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"),
        "HTTP 414",
        "65536",
    ),
    _case(
        "HTTP protocol",
        "200 headers",
        lambda t: send(
            t, b"GET /api/models HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % index for index in range(200)) + b"\r\n"
        ),
        "HTTP 431",
        "headers",
    ),
    _case(
        "HTTP protocol",
        "a header line of 70000 bytes",
        lambda t: send(t, b"GET /api/models HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"),
        "HTTP 431",
        "too long",
    ),
    _case("HTTP protocol", "unknown POST path", lambda t: post(t, "/api/nothing", b"{}"), "HTTP 404", "Nothing at"),
    _case(
        "slow and silent clients",
        "headers at one byte per 50 ms",
        lambda t: Answer(hostile_probe._slow_headers(t.as_rest())),
        "HTTP 408",
    ),  # pylint: disable=protected-access
    _case(
        "slow and silent clients",
        "silent connection",
        lambda t: send(t, b"", half_close=False),
        "HTTP 408",
        "did not arrive",
    ),
    _case(
        "slow and silent clients",
        "idle keep-alive after a request",
        lambda t: Answer(hostile_probe._idle_keep_alive(t.as_rest())),
        "closed",
    ),  # pylint: disable=protected-access
    _case(
        "slow and silent clients",
        "one connection over --max_connections",
        lambda t: Answer(hostile_probe._too_many_connections(t.as_rest())),
        "HTTP 503",
    ),  # pylint: disable=protected-access
)


def check(case: Case, answer: Answer) -> str | None:
    """What is wrong with `answer` to `case` (None: nothing): its status, or an error that is not JSON or does not
    name the problem."""
    if answer.status not in case.expected:
        return f"answered {answer.status} {answer.body[:200]!r}, expected {sorted(case.expected)}"
    if answer.status.startswith("HTTP ") and answer.status != "HTTP 200" and answer.body:
        body = answer.json()
        if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
            return f"the error is not JSON with an 'error': {answer.body[:200]!r}"
        if case.words.lower() not in body["error"].lower():
            return f"the error {body['error']!r} does not say {case.words!r}"
    return None


# --- fuzzing strategies -------------------------------------------------------------------------------------------

_FIELDS = ["model", "source", "exemplar", "image", "face", "mask", "region", "drop", "field", "parts"]
_PART_FIELDS = ["exemplar", "mask", "region", "strength", "drop"]


def _fuzzed_fields(draw, body: dict[str, Any], fields: list[str], values) -> dict[str, Any]:
    """`body` with up to three of `fields` left out or replaced by a drawn value."""
    for key in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(values)
    return body


@st.composite
def fuzzed_json(draw, target: WebTarget) -> tuple[str, bytes]:
    """(path, body) for /api/crop, /api/edit or /api/compose: random JSON, or a good body with fields (and fields
    of its one to three parts) replaced by random JSON (photo ids, mask data URLs and strengths among the values)."""
    path = draw(st.sampled_from(JSON_ENDPOINTS))
    values = hostile_probe.JSON_VALUES | st.sampled_from(
        [
            target.source,
            target.exemplar,
            {"image": target.source},
            {"image": target.exemplar, "face": 0},
            mask_url(_corner(target.image_size)),
            mask_url(b"\x89PNG\r\n"),
            "mouth",
            ["Mustache"],
            0.5,
            target.composer,
        ]
    )
    if draw(st.booleans()):
        return path, json.dumps(draw(values)).encode()
    body: dict[str, Any]
    if path == "/api/crop":
        body = {"image": target.source}
    elif path == "/api/edit":
        body = _edit_body(target)
    else:
        parts = [_fuzzed_fields(draw, _part()(target), _PART_FIELDS, values) for _ in range(draw(st.integers(1, 3)))]
        body = _compose_body(target, parts)
    return path, json.dumps(_fuzzed_fields(draw, body, _FIELDS, values)).encode()


@st.composite
def fuzzed_multipart(draw) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart upload: boundaries, part headers and contents at random."""
    boundary = draw(st.text("abcXYZ019-_'()+,./:=? ", min_size=0, max_size=80))
    header_boundary = draw(st.sampled_from([boundary, boundary + "x", ""]))
    subtype = draw(st.sampled_from(["form-data", "form-data", "mixed"]))
    content_type = f"multipart/{subtype}" + (f'; boundary="{header_boundary}"' if header_boundary else "")
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        'name="photo"; filename="a.png"',
                        'name="photo"',
                        'filename=""',
                        "name=x; filename*=utf-8",
                        "",
                        'name="a"; filename="b"; filename="c"',
                    ]
                ),
                st.sampled_from(list(SMALL_FILES.values())) | st.binary(max_size=64),
            ),
            max_size=3,
        )
    )
    body = multipart(parts, boundary)
    cut = draw(st.integers(0, len(body)))
    return content_type, body[:cut] if draw(st.booleans()) else body


@st.composite
def damaged_files(draw) -> bytes:
    """A small valid file of an accepted format, cut short and/or with bytes overwritten at random."""
    data = bytearray(draw(st.sampled_from(list(SMALL_FILES.values()))))
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=8)):
        data[position] = value
    return bytes(data[: draw(st.integers(1, len(data)))] if draw(st.booleans()) else data)


def fuzz(target: WebTarget, examples: int, record: Callable[[str, str], None]) -> None:
    """Sends `examples` fuzzed JSON bodies, multipart uploads and damaged files; `record(kind, answer)` gets every
    answer's status."""
    quiet = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @quiet
    @given(fuzzed_json(target))
    def json_cases(request):
        record("fuzzed JSON bodies (hypothesis)", post(target, request[0], request[1], "application/json").status)

    @quiet
    @given(fuzzed_multipart())
    def multipart_cases(request):
        record("fuzzed multipart uploads (hypothesis)", post(target, _UPLOAD, request[1], request[0]).status)

    @quiet
    @given(damaged_files())
    def file_cases(data):
        record("damaged image files (hypothesis)", post(target, _UPLOAD, data).status)

    json_cases()
    multipart_cases()
    file_cases()


# --- the figure -------------------------------------------------------------------------------------------------


def main() -> int:
    """Serves the contract fixture (32 px Att-EBGAN) and an untrained composing model in ebgan-web, tries every case
    and 200 fuzzed requests of each kind, and prints a markdown table: class, cases tried, how they were answered."""
    from ebgan_tf.serving.request_limits import RequestLimits
    from ebgan_tf.serving.web.app import WebApp, WebOptions, WebServer
    from ebgan_tf.serving.web.models import ModelSet
    from tests.helpers.contract_model import export_contract_model
    from tests.helpers.served_models import export_composing_model

    answers: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with tempfile.TemporaryDirectory() as base:
        models = ModelSet.load(
            [export_contract_model(base, "ebgan", image_size=32), export_composing_model(f"{base}/composing")]
        )
        limits = RequestLimits(
            max_message_bytes=1_000_000,
            header_timeout_seconds=1.0,
            body_timeout_seconds=1.0,
            idle_timeout_seconds=1.0,
            max_connections=8,
        )
        options = WebOptions(limits=limits, max_pixels=1_000_000)
        server = WebServer(WebApp(models, options), "127.0.0.1", 0).start()
        try:
            target = register(
                WebTarget(server.port, limits.max_message_bytes, options.max_pixels, 1.0, limits.max_connections, 32)
            )
            for case in CASES:
                answer = case.send(target)
                wrong = check(case, answer)
                answers[case.kind][answer.status if wrong is None else f"WRONG {answer.status}"] += 1
            fuzz(target, 200, lambda kind, answer: answers[kind].update([answer]))
        finally:
            server.stop()
    hostile_probe.print_table(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
