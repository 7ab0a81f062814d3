"""The web editor's server: the page, its assets, and the JSON endpoints, over the HTTP layer of http_base (h11).

    GET  /                            the page (static/index.html, app.js, style.css: shipped in the package)
    GET  /api/models                  models offered: name, version, variant, image size, attributes
    GET  /api/gallery                 built-in synthetic faces; GET /api/gallery/<n>.png is one of them
    POST /api/images?field=source     body: an image file -> {"image": id, "width", "height", "faces": [...]}
    POST /api/gallery/<n>             a built-in face, answered as an upload
    POST /api/crop                    {"model", "image", "face", "field"} -> the aligned crop, its region masks (PNG)
                                      and the classifier's reading of the face (Att-EBGAN exports with classify)
    POST /api/edit                    {"model", "source": {"image", "face"}, "exemplar": {...}, "mask" (PNG data
                                      URL of the aligned crop, light = edit) or "region", "drop": [...]} -> image/png

Faces are detected once, on upload (`ebgan_tf.faces.detect_faces`); an edit aligns the chosen faces for the chosen
model, edits and pastes back (`ebgan_tf.faces.edit_crops`). Errors are JSON {"error", "field", "kind"} with the
REST API's statuses: 400 bad input, 404 unknown model or image, 413 too large, 503 model server unreachable.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import dataclasses
import io
import json
import os
import re
import threading
import time
import urllib.parse
from typing import Any

import numpy as np
from PIL import Image

from ebgan_tf import faces
from ebgan_tf.config import ATT_EBGAN, REGIONS, parse_regions
from ebgan_tf.data import masks
from ebgan_tf.serving.errors import ServingError
from ebgan_tf.serving.http_base import HTTP_STATUS, LimitedHandler, LimitedHTTPServer
from ebgan_tf.serving.limits import RequestLimits, parse_json
from ebgan_tf.serving.web.inputs import (GALLERY_SEEDS, ImageStore, StoredImage, WebError, decode_image, decode_mask,
                                gallery_face, uploaded_file)
from ebgan_tf.serving.web.models import ModelSet

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".json": "application/json", ".png": "image/png"}
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                                               "connect-src 'self' blob:; object-src 'none'; frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PNG_COMPRESS_LEVEL = 1  # lossless either way; level 1 encodes a 1024 px photo several times faster than 6


@dataclasses.dataclass(frozen=True)
class WebOptions:
    max_request_bytes: int = 48 * 1024 * 1024  # a 40-megapixel camera JPEG (max_pixels) is 15-35 MB
    max_pixels: int = 40_000_000
    stored_images: int = 64
    feather: float = faces.DEFAULT_FEATHER
    header_timeout_seconds: float = 10.0  # the request line and headers must arrive within this
    body_timeout_seconds: float = 30.0  # the body must arrive, and each answer be taken, within this
    idle_timeout_seconds: float = 60.0  # a kept-alive connection without a new request is closed
    max_connections: int = 64  # connections open at once; more are answered 503 and closed
    # Edits run on this many worker threads (0 = one per CPU core), first come first served; more edits at once
    # wait their turn. One per core: an edit's work (warps, the model, PNG encoding) keeps one core busy, and eight
    # edits time-sharing two cores each take four times as long as their turn would.
    edit_workers: int = 0

    @property
    def limits(self) -> RequestLimits:
        """The HTTP limits, in the form the shared front-end layer (ebgan_tf.serving.http_base) takes."""
        return RequestLimits(max_message_bytes=self.max_request_bytes,
                             header_timeout_seconds=self.header_timeout_seconds,
                             body_timeout_seconds=self.body_timeout_seconds,
                             idle_timeout_seconds=self.idle_timeout_seconds, max_rest_connections=self.max_connections)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _data_url_bytes(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("data:image/png;base64,"):
        raise WebError(400, "The mask must be a PNG data URL (data:image/png;base64,...).", field)
    try:
        return base64.b64decode(value.split(",", 1)[1], validate=True)
    except binascii.Error:
        raise WebError(400, "The mask's data URL is not valid base64.", field) from None


def _face_json(face: faces.Face) -> dict[str, Any]:
    return {"box": [round(value, 1) for value in face.box], "confidence": round(face.confidence, 4),
            "landmarks": np.round(face.landmarks, 1).tolist()}


class WebApp:
    """The endpoints, independent of HTTP: each takes parsed input and returns (content type, body bytes)."""

    def __init__(self, models: ModelSet, options: WebOptions = WebOptions()):
        self.models = models
        self.options = options
        self.store = ImageStore(options.stored_images)
        self._detect_lock = threading.Lock()  # one MTCNN instance; its calls are not made concurrently
        self._edit_workers = concurrent.futures.ThreadPoolExecutor(options.edit_workers or os.cpu_count() or 1,
                                                                  "ebgan-web-edit")

    def close(self) -> None:
        """Stops the edit workers (after the edits under way)."""
        self._edit_workers.shutdown()

    # -- models and gallery

    def describe_models(self) -> dict[str, Any]:
        described = []
        for name in self.models.names:
            model = self.models.get(name)
            info = model.info
            described.append({"name": name, "version": model.version, "variant": info.variant,
                              "image_size": info.image_size, "attributes": list(info.attribute_names),
                              "filtering": info.variant == ATT_EBGAN, "classifies": model.classifies,
                              "path": model.path})
        return {"default": self.models.default, "models": described, "regions": list(REGIONS)}

    @staticmethod
    def describe_gallery() -> dict[str, Any]:
        return {"faces": [{"index": index, "name": f"Built-in face {index + 1}", "url": f"/api/gallery/{index}.png"}
                          for index in range(len(GALLERY_SEEDS))]}

    # -- images

    def _register(self, image: StoredImage) -> dict[str, Any]:
        key = self.store.add(image)
        height, width = image.pixels.shape[:2]
        return {"image": key, "name": image.name, "width": width, "height": height,
                "faces": [_face_json(face) for face in image.faces]}

    def upload(self, data: bytes, field: str) -> dict[str, Any]:
        """Decodes an uploaded photo and detects its faces (once: edits reuse them)."""
        pixels = decode_image(data, self.options.max_pixels, field)
        with self._detect_lock:
            found = faces.detect_faces(pixels)
        if not found:
            raise WebError(400, "No face was found in this photo. Use a photo with an upright, unobstructed face at "
                           "least 20 pixels across.", field, "no_face")
        return self._register(StoredImage(pixels, tuple(found), field))

    def add_gallery_face(self, index: int) -> dict[str, Any]:
        return self._register(gallery_face(index))

    # -- crops and edits

    def _crop(self, model, reference: Any, field: str) -> tuple[StoredImage, faces.FaceCrop]:
        if not isinstance(reference, dict) or not isinstance(reference.get("image"), str):
            raise WebError(400, f"Add a {field} photo first.", field, "missing")
        stored = self.store.get(reference["image"], field)
        index = reference.get("face", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(stored.faces):
            raise WebError(400, f"Face {index} does not exist: the {field} has {len(stored.faces)} face(s).", field)
        crop = faces.face_crop(stored.pixels, model.info, "detect", index, field, faces=stored.faces)
        return stored, crop

    def crop(self, body: dict[str, Any]) -> dict[str, Any]:
        """The aligned crop of one face for the model, with a mask per named region (for the overlay) and, for a
        model with a classifier, its reading of the face (null otherwise)."""
        model = self.models.get(body.get("model"))
        field = body.get("field") if body.get("field") in ("source", "exemplar") else "source"
        _, crop = self._crop(model, body, field)
        size = model.info.image_size
        region_masks = {name: png_data_url((masks.region_mask(crop.landmarks, name, size).numpy()[..., 0] > 0.5)
                                           .astype(np.uint8) * 255) for name in REGIONS}
        return {"size": size, "crop": png_data_url(crop.image), "masks": region_masks,
                "reading": _reading(model, crop.image)}

    def edit(self, body: dict[str, Any]) -> tuple[bytes, float]:
        """Edits the source photo; returns the full-size result as PNG and the milliseconds it took (its turn on an
        edit worker included)."""
        started = time.perf_counter()
        data = self._edit_workers.submit(self._edit, body).result()
        return data, (time.perf_counter() - started) * 1000

    def _edit(self, body: dict[str, Any]) -> bytes:
        model = self.models.get(body.get("model"))
        info = model.info
        source, source_crop = self._crop(model, body.get("source"), "source")
        _, exemplar_crop = self._crop(model, body.get("exemplar"), "exemplar")
        if (body.get("mask") is None) == (body.get("region") is None):
            raise WebError(400, "Pick a region or paint a mask (give exactly one of mask and region).", "mask")
        if body.get("mask") is not None:
            crop_mask = decode_mask(_data_url_bytes(body["mask"], "mask"), info.image_size)
        else:
            try:
                regions = parse_regions(body["region"])
            except ValueError as error:
                raise WebError(400, str(error), "mask") from None
            crop_mask = masks.region_mask(source_crop.landmarks, regions, info.image_size).numpy()
        drop = body.get("drop") or []
        if not isinstance(drop, list) or not all(isinstance(name, str) for name in drop):
            raise WebError(400, "drop must be a list of attribute names.", "attributes")
        if drop and info.variant != ATT_EBGAN:
            raise WebError(400, f"This is an {info.variant} model: it cannot filter out attributes. Switch every "
                           "attribute on, or choose an Att-EBGAN model.", "attributes", "no_filtering")
        try:
            transfer = info.transfer_vector(drop=drop)
        except ValueError as error:
            raise WebError(400, str(error), "attributes") from None
        edited = faces.edit_crops(model, source.pixels, source_crop, exemplar_crop, crop_mask, transfer,
                                  self.options.feather)
        return png_bytes(edited)


def _reading(model, image: np.ndarray) -> list[dict[str, Any]] | None:
    """The classifier's reading of an aligned face, per attribute: probability and whether the edit's gate transfers
    it (probability > 0.5); None for a model without a classifier."""
    if not model.classifies:
        return None
    probabilities = model.classify(image)
    return [{"attribute": name, "probability": round(float(probability), 4), "present": bool(probability > 0.5)}
            for name, probability in zip(model.info.attribute_names, probabilities)]


_GALLERY_PNG = re.compile(r"^/api/gallery/(\d+)\.png$")
_GALLERY_ADD = re.compile(r"^/api/gallery/(\d+)$")


def _error_body(error: Exception) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of a failed request, in the page's words."""
    if isinstance(error, WebError):
        return error.status, {"error": error.message, "field": error.field, "kind": error.kind}
    if isinstance(error, ServingError):
        status = HTTP_STATUS.get(error.code, 500)
        kind = {503: "unavailable", 413: "too_large"}.get(status, "invalid")
        message = (f"The model server cannot be reached ({error.message}). Check that it is running."
                   if status == 503 else error.message)
        return status, {"error": message, "field": "model" if status in (404, 503) else None, "kind": kind}
    if isinstance(error, faces.NoFaceError):
        return 400, {"error": str(error), "field": None, "kind": "no_face"}
    if isinstance(error, ValueError):
        return 400, {"error": str(error), "field": None, "kind": "invalid"}
    return 500, {"error": f"The server failed: {type(error).__name__}: {error}", "field": None, "kind": "internal"}


def web_handler(app: WebApp) -> type:
    class Handler(LimitedHandler):
        """The page, its assets and the JSON endpoints."""

        default_headers = {"Cache-Control": "no-store", **SECURITY_HEADERS}

        def handle_request(self, post: bool) -> None:
            (self._post if post else self._get)(urllib.parse.urlsplit(self.path).path)

        def error_answer(self, error: Exception) -> tuple[int, dict[str, Any]]:
            return _error_body(error)

        def _send(self, status: int, content_type: str, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_answer(status, content_type, data, headers)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self.send_json(status, body)

        def _json_body(self) -> dict[str, Any]:
            body = parse_json(self.read_body())
            if not isinstance(body, dict):
                raise WebError(400, "The request body must be a JSON object.")
            return body

        def _field(self) -> str:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            return "exemplar" if query.get("field") == ["exemplar"] else "source"

        def _get(self, path: str) -> None:
            if path == "/api/models":
                self._json(200, app.describe_models())
            elif path == "/api/gallery":
                self._json(200, app.describe_gallery())
            elif match := _GALLERY_PNG.match(path):
                self._send(200, "image/png", png_bytes(gallery_face(int(match.group(1))).pixels))
            else:
                name = "index.html" if path == "/" else path[len("/static/"):] if path.startswith("/static/") else ""
                file = os.path.join(STATIC_DIR, name)
                if not name or "/" in name or name.startswith(".") or not os.path.isfile(file):
                    raise WebError(404, f"Nothing at {path}.")
                with open(file, "rb") as stream:
                    self._send(200, STATIC_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"),
                               stream.read())

        def _post(self, path: str) -> None:
            if path == "/api/images":
                data = uploaded_file(self.read_body(), self.headers.get("Content-Type"), self._field())
                self._json(200, app.upload(data, self._field()))
            elif match := _GALLERY_ADD.match(path):
                self.read_body()
                self._json(200, app.add_gallery_face(int(match.group(1))))
            elif path == "/api/crop":
                self._json(200, app.crop(self._json_body()))
            elif path == "/api/edit":
                data, milliseconds = app.edit(self._json_body())
                self._send(200, "image/png", data, {"X-Edit-Milliseconds": f"{milliseconds:.0f}"})
            else:
                self.read_body()
                raise WebError(404, f"Nothing at POST {path}.")

    return Handler


class WebServer:
    """The editor's HTTP server on a background thread (port 0 = any free port)."""

    def __init__(self, app: WebApp, host: str = "127.0.0.1", port: int = 8080):
        self.app = app
        self._server = LimitedHTTPServer((host, port), web_handler(app), app.options.limits, "--max_request_bytes",
                                         "--max_connections")
        self._thread = threading.Thread(target=self._server.serve_forever, name="ebgan-web", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}/"

    def start(self) -> "WebServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.app.close()
