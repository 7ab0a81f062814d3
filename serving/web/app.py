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
    POST /api/compose                 {"model", "source": {...}, "parts": [{"region" or "mask", "exemplar": {...},
                                      "strength", "drop"}, ...]} -> image/png (the model's edit_composed)

Faces are detected once, on upload (`ebgan_tf.faces.detect_faces`); an edit aligns the chosen faces for the chosen
model, edits and pastes back (`ebgan_tf.faces.edit_crops`, `compose_crops`). Each result is kept like an upload
(with the source's faces), its id in the X-Image header, so that the next edit can start from it. Errors are JSON
{"error", "field", "kind"} with the REST API's statuses: 400 bad input, 404 unknown model or image, 413 too large,
503 model server unreachable.
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
from ebgan_tf.serving.limits import parse_json
from ebgan_tf.serving.request_limits import RequestLimits
from ebgan_tf.serving.web import DEFAULT_LIMITS
from ebgan_tf.serving.web.inputs import (
    GALLERY_SEEDS,
    ImageStore,
    StoredImage,
    WebError,
    decode_image,
    decode_mask,
    gallery_face,
    uploaded_file,
)
from ebgan_tf.serving.web.models import ModelSet

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self' blob:; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PNG_COMPRESS_LEVEL = 1  # lossless either way; level 1 encodes a 1024 px photo several times faster than 6
MAX_PARTS = 8  # parts of one composed edit (six regions, and a painted mask may add more)


@dataclasses.dataclass(frozen=True)
class WebOptions:
    # The HTTP limits (body size, timeouts, connections), as the shared front-end layer (ebgan_tf.serving.http_base)
    # takes them; ebgan-web's flags of the same names set them.
    limits: RequestLimits = DEFAULT_LIMITS
    max_pixels: int = 40_000_000
    stored_images: int = 64
    feather: float = faces.DEFAULT_FEATHER
    # Edits run on this many worker threads (0 = one per CPU core), first come first served; more edits at once
    # wait their turn. One per core: an edit's work (warps, the model, PNG encoding) keeps one core busy, and eight
    # edits time-sharing two cores each take four times as long as their turn would.
    edit_workers: int = 0


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
    return {
        "box": [round(value, 1) for value in face.box],
        "confidence": round(face.confidence, 4),
        "landmarks": np.round(face.landmarks, 1).tolist(),
    }


class WebApp:
    """The endpoints, independent of HTTP: each takes parsed input and returns (content type, body bytes)."""

    def __init__(self, models: ModelSet, options: WebOptions = WebOptions()):
        self.models = models
        self.options = options
        self.store = ImageStore(options.stored_images)
        self._detect_lock = threading.Lock()  # one MTCNN instance; its calls are not made concurrently
        self._edit_workers = concurrent.futures.ThreadPoolExecutor(
            options.edit_workers or os.cpu_count() or 1, "ebgan-web-edit"
        )

    def close(self) -> None:
        """Stops the edit workers (after the edits under way)."""
        self._edit_workers.shutdown()

    # -- models and gallery

    def describe_models(self) -> dict[str, Any]:
        described = []
        for name in self.models.names:
            model = self.models.get(name)
            info = model.info
            described.append(
                {
                    "name": name,
                    "version": model.version,
                    "variant": info.variant,
                    "image_size": info.image_size,
                    "attributes": list(info.attribute_names),
                    "filtering": info.variant == ATT_EBGAN,
                    "classifies": model.classifies,
                    "composes": model.composes,
                    "path": model.path,
                }
            )
        return {"default": self.models.default, "models": described, "regions": list(REGIONS), "max_parts": MAX_PARTS}

    @staticmethod
    def describe_gallery() -> dict[str, Any]:
        return {
            "faces": [
                {"index": index, "name": f"Built-in face {index + 1}", "url": f"/api/gallery/{index}.png"}
                for index in range(len(GALLERY_SEEDS))
            ]
        }

    # -- images

    def _register(self, image: StoredImage) -> dict[str, Any]:
        key = self.store.add(image)
        height, width = image.pixels.shape[:2]
        return {
            "image": key,
            "name": image.name,
            "width": width,
            "height": height,
            "faces": [_face_json(face) for face in image.faces],
        }

    def upload(self, data: bytes, field: str) -> dict[str, Any]:
        """Decodes an uploaded photo and detects its faces (once: edits reuse them)."""
        pixels = decode_image(data, self.options.max_pixels, field)
        with self._detect_lock:
            found = faces.detect_faces(pixels)
        if not found:
            raise WebError(
                400,
                "No face was found in this photo. Use a photo with an upright, unobstructed face at "
                "least 20 pixels across.",
                field,
                "no_face",
            )
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
        field = body["field"] if body.get("field") in ("source", "exemplar") else "source"
        _, crop = self._crop(model, body, field)
        size = model.info.image_size
        region_masks = {
            name: png_data_url(
                (masks.region_mask(crop.landmarks, name, size).numpy()[..., 0] > 0.5).astype(np.uint8) * 255
            )
            for name in REGIONS
        }
        return {
            "size": size,
            "crop": png_data_url(crop.image),
            "masks": region_masks,
            "reading": _reading(model, crop.image),
        }

    def edit(self, body: dict[str, Any]) -> tuple[bytes, str, float]:
        """Edits the source photo; returns the full-size result as PNG, the id it is kept under (an edit may start
        from it) and the milliseconds it took (its turn on an edit worker included)."""
        return self._on_worker(self._edit, body)

    def compose(self, body: dict[str, Any]) -> tuple[bytes, str, float]:
        """A composed edit of the source photo (each part from its own face at its own strength, one
        edit_composed call); answers as `edit`."""
        return self._on_worker(self._compose, body)

    def _on_worker(self, task, body: dict[str, Any]) -> tuple[bytes, str, float]:
        started = time.perf_counter()
        data, key = self._edit_workers.submit(task, body).result()
        return data, key, (time.perf_counter() - started) * 1000

    def _edit(self, body: dict[str, Any]) -> tuple[bytes, str]:
        model = self.models.get(body.get("model"))
        source, source_crop = self._crop(model, body.get("source"), "source")
        _, exemplar_crop = self._crop(model, body.get("exemplar"), "exemplar")
        crop_mask = _crop_mask(body, source_crop, model.info)
        edited = faces.edit_crops(
            model,
            source.pixels,
            source_crop,
            exemplar_crop,
            crop_mask,
            _attributes(model.info, body.get("drop")),
            self.options.feather,
        )
        return self._keep(source, edited)

    def _compose(self, body: dict[str, Any]) -> tuple[bytes, str]:
        model = self.models.get(body.get("model"))
        if not model.composes:
            raise WebError(
                400,
                f"The model {model.name} cannot compose parts: its export has no edit_composed "
                "signature (it was written by an older ebgan-export). Export the model again, or edit "
                "one part at a time.",
                "model",
                "no_composed",
            )
        source, source_crop = self._crop(model, body.get("source"), "source")
        parts = body.get("parts")
        if not isinstance(parts, list) or not parts:
            raise WebError(
                400,
                "parts must be a list of at least one part, each with a region (or a mask), the "
                "exemplar face it comes from, a strength and the attributes to drop.",
                "parts",
            )
        if len(parts) > MAX_PARTS:
            raise WebError(
                400, f"Too many parts: {len(parts)}; one edit composes at most {MAX_PARTS}.", "parts", "too_many_parts"
            )
        crops: dict[str, faces.FaceCrop] = {}  # each exemplar face aligned once, however many parts it fills
        checked = []
        for number, part in enumerate(parts, 1):
            try:
                checked.append(self._part(model, part, source_crop, crops))
            except WebError as error:
                raise WebError(error.status, f"Part {number}: {error.message}", f"part-{number}", error.kind) from None
        exemplars, part_masks, strengths, attributes = zip(*checked)
        edited = faces.compose_crops(
            model,
            source.pixels,
            source_crop,
            exemplars,
            np.stack(part_masks),
            list(strengths),
            list(attributes),
            self.options.feather,
        )
        return self._keep(source, edited)

    def _part(
        self, model, part: Any, source_crop: faces.FaceCrop, crops: dict[str, faces.FaceCrop]
    ) -> tuple[faces.FaceCrop, np.ndarray, float, np.ndarray | None]:
        """One part of a composed edit, checked: its exemplar crop, mask, strength and attribute vector."""
        if not isinstance(part, dict):
            raise WebError(400, "A part must be an object with region (or mask), exemplar, strength and drop.")
        reference, strength = part.get("exemplar"), part.get("strength", 1.0)
        if not isinstance(reference, dict) or not isinstance(reference.get("image"), str):
            raise WebError(400, "Choose the face it comes from (exemplar: {image, face}).", kind="missing")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise WebError(
                400,
                "The strength must be a number from 0 (the source's own region) to 1 (the "
                f"exemplar's); got {json.dumps(strength)}.",
            )
        key = json.dumps([reference["image"], reference.get("face", 0)])
        if key not in crops:
            crops[key] = self._crop(model, reference, "exemplar")[1]
        return (
            crops[key],
            _crop_mask(part, source_crop, model.info),
            float(strength),
            _attributes(model.info, part.get("drop")),
        )

    def _keep(self, source: StoredImage, edited: np.ndarray) -> tuple[bytes, str]:
        """The result as PNG, and the id it is kept under (with the source's faces: an edit moves no landmark)."""
        key = self.store.add(StoredImage(edited, source.faces, source.name))
        return png_bytes(edited), key


def _crop_mask(body: dict[str, Any], source_crop: faces.FaceCrop, info) -> np.ndarray:
    """The mask of an edit (or a part) in the source crop: its painted "mask" or its named "region"(s)."""
    if (body.get("mask") is None) == (body.get("region") is None):
        raise WebError(400, "Pick a region or paint a mask (give exactly one of mask and region).", "mask")
    if body.get("mask") is not None:
        return decode_mask(_data_url_bytes(body["mask"], "mask"), info.image_size)
    try:
        regions = parse_regions(body["region"])
    except ValueError as error:
        raise WebError(400, str(error), "mask") from None
    return masks.region_mask(source_crop.landmarks, regions, info.image_size).numpy()


def _attributes(info, drop: Any) -> np.ndarray | None:
    """The `attributes` vector of an edit's (or a part's) "drop" list (`ModelInfo.attributes_from`, the one mapping
    of drop/keep): None when nothing is filtered out."""
    drop = drop or []
    if not isinstance(drop, list) or not all(isinstance(name, str) for name in drop):
        raise WebError(400, "drop must be a list of attribute names.", "attributes")
    if drop and info.variant != ATT_EBGAN:
        raise WebError(
            400,
            f"This is an {info.variant} model: it cannot filter out attributes. Switch every "
            "attribute on, or choose an Att-EBGAN model.",
            "attributes",
            "no_filtering",
        )
    try:
        return info.attributes_from(drop=drop)
    except ValueError as error:
        raise WebError(400, str(error), "attributes") from None


def _reading(model, image: np.ndarray) -> list[dict[str, Any]] | None:
    """The classifier's reading of an aligned face, per attribute: probability and whether the edit's gate transfers
    it (probability > 0.5); None for a model without a classifier."""
    if not model.classifies:
        return None
    probabilities = model.classify(image)
    return [
        {"attribute": name, "probability": round(float(probability), 4), "present": bool(probability > 0.5)}
        for name, probability in zip(model.info.attribute_names, probabilities)
    ]


_GALLERY_PNG = re.compile(r"^/api/gallery/(\d+)\.png$")
_GALLERY_ADD = re.compile(r"^/api/gallery/(\d+)$")


def _error_body(error: Exception) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of a failed request, in the page's words."""
    if isinstance(error, WebError):
        return error.status, {"error": error.message, "field": error.field, "kind": error.kind}
    if isinstance(error, ServingError):
        status = HTTP_STATUS.get(error.code, 500)
        kind = {503: "unavailable", 413: "too_large"}.get(status, "invalid")
        message = (
            f"The model server cannot be reached ({error.message}). Check that it is running."
            if status == 503
            else error.message
        )
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
                name = "index.html" if path == "/" else path[len("/static/") :] if path.startswith("/static/") else ""
                file = os.path.join(STATIC_DIR, name)
                if not name or "/" in name or name.startswith(".") or not os.path.isfile(file):
                    raise WebError(404, f"Nothing at {path}.")
                with open(file, "rb") as stream:
                    self._send(
                        200, STATIC_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"), stream.read()
                    )

        def _post(self, path: str) -> None:
            if path == "/api/images":
                data = uploaded_file(self.read_body(), self.headers.get("Content-Type"), self._field())
                self._json(200, app.upload(data, self._field()))
            elif match := _GALLERY_ADD.match(path):
                self.read_body()
                self._json(200, app.add_gallery_face(int(match.group(1))))
            elif path == "/api/crop":
                self._json(200, app.crop(self._json_body()))
            elif path in ("/api/edit", "/api/compose"):
                edit = app.edit if path == "/api/edit" else app.compose
                data, key, milliseconds = edit(self._json_body())
                self._send(200, "image/png", data, {"X-Edit-Milliseconds": f"{milliseconds:.0f}", "X-Image": key})
            else:
                self.read_body()
                raise WebError(404, f"Nothing at POST {path}.")

    return Handler


class WebServer:
    """The editor's HTTP server on a background thread (port 0 = any free port)."""

    def __init__(self, app: WebApp, host: str = "127.0.0.1", port: int = 8080):
        self.app = app
        self._server = LimitedHTTPServer((host, port), web_handler(app), app.options.limits)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ebgan-web", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])  # a str already (typeshed allows bytes)
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.app.close()
