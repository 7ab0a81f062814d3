"""What the page sends, checked: uploaded image bytes (limits before decoding), painted masks, and the images kept
in memory between requests (uploads are never written to disk). Also the gallery of built-in synthetic faces."""

from __future__ import annotations

import collections
import dataclasses
import email
import email.message
import functools
import secrets
import threading

import numpy as np

from ebgan_tf import faces, images
from ebgan_tf.data import synthetic

# Formats the page accepts (Pillow reads more, but these are what browsers show).
ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
GALLERY_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
GALLERY_SIZE = 256  # pixels; the built-in faces are drawn at this size


class WebError(Exception):
    """A request the page gets an answer in words for: HTTP status, message, the input it concerns, and a kind."""

    def __init__(self, status: int, message: str, field: str | None = None, kind: str = "invalid"):
        super().__init__(message)
        self.status, self.message, self.field, self.kind = status, message, field, kind


def uploaded_file(body: bytes, content_type: str | None, field: str) -> bytes:
    """The file of an upload: the body itself (what the page sends), or the one file part of a
    multipart/form-data body (an HTML form, `curl -F photo=@me.jpg`)."""
    message = email.message.Message()
    message["Content-Type"] = content_type or "application/octet-stream"
    if message.get_content_maintype() != "multipart":
        return body
    if message.get_content_subtype() != "form-data":
        raise WebError(
            400,
            f"A multipart upload must be multipart/form-data, not {message.get_content_type()}.",
            field,
            "bad_multipart",
        )
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 70:
        raise WebError(
            400,
            "The multipart/form-data body has no boundary (or one over 70 characters) in its Content-Type.",
            field,
            "bad_multipart",
        )
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise WebError(
            400,
            "The multipart/form-data body does not hold its boundary's parts (wrong boundary, or "
            "the body is cut short).",
            field,
            "bad_multipart",
        )
    files = []
    for chunk in chunks[1:-1]:
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise WebError(400, "A part of the multipart/form-data body has no headers.", field, "bad_multipart")
        part = email.message_from_bytes(head.lstrip(b" \t").removeprefix(b"\r\n") + b"\r\n\r\n")
        if part.get_param("filename", header="content-disposition") is not None:
            files.append(content)
    if len(files) != 1:
        raise WebError(
            400,
            f"The multipart/form-data body has {len(files)} files; send exactly one photo (a part with a filename).",
            field,
            "bad_multipart",
        )
    return files[0]


def decode_image(data: bytes, max_pixels: int, field: str, exact_size: int | None = None) -> np.ndarray:
    """Image file bytes -> uint8 RGB [H, W, 3] through `ebgan_tf.images.decode_image` (format checked and pixel count
    read from the header before the pixels are decoded; EXIF orientation applied), its errors in the page's words;
    with `exact_size`, the image must be `exact_size` x `exact_size`."""
    if not data:
        raise WebError(400, "The file is empty.", field, "not_image")
    must_be = f"it must be {exact_size}x{exact_size}, the aligned face of this model" if exact_size else None
    try:
        pixels = images.decode_image(data, max_pixels, ACCEPTED_FORMATS, field)
    except images.ImageTooLargeError as error:
        size = "x".join(map(str, error.size)) + " pixels" if error.size else "too many pixels"
        limit = must_be or f"the limit is {max_pixels / 1e6:g} megapixels. Scale it down and try again"
        raise WebError(413, f"The {field} image is too large: {size}; {limit}.", field, "too_large") from None
    except images.CorruptImageError:
        raise WebError(400, "The image file is damaged or cut short and cannot be read.", field, "not_image") from None
    except images.ImageError:
        raise WebError(
            400,
            f"This file is not an image the editor can read (use {', '.join(ACCEPTED_FORMATS)}).",
            field,
            "not_image",
        ) from None
    if exact_size is not None and pixels.shape[:2] != (exact_size, exact_size):
        raise WebError(400, f"The {field} is {pixels.shape[1]}x{pixels.shape[0]} pixels; {must_be}.", field)
    return pixels


def decode_mask(data: bytes, size: int) -> np.ndarray:
    """A painted mask (PNG of the aligned source crop: light = edit) -> float32 [size, size, 1] of 0/1."""
    # A few times the mask's pixels may be decoded to say that its size is wrong; more is refused from the header.
    mask = decode_image(data, 16 * size * size, "mask", exact_size=size)
    on = mask.mean(axis=-1) > 127.5
    if not on.any():
        raise WebError(400, "The mask is empty: pick a region or paint where to edit.", "mask", "empty_mask")
    return on.astype(np.float32)[..., None]


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """An uploaded (or built-in) image and its faces, detected once on upload."""

    pixels: np.ndarray
    faces: tuple[faces.Face, ...]
    name: str


class ImageStore:
    """The latest `capacity` images, in memory, by an unguessable id (older ones are forgotten)."""

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._images: collections.OrderedDict[str, StoredImage] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, image: StoredImage) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._images[key] = image
            while len(self._images) > self._capacity:
                self._images.popitem(last=False)
        return key

    def get(self, key: str, field: str) -> StoredImage:
        with self._lock:
            if key not in self._images:
                raise WebError(
                    404,
                    "This photo is no longer on the server (it was replaced by newer uploads or the "
                    "server restarted); add it again.",
                    field,
                    "gone",
                )
            self._images.move_to_end(key)
            return self._images[key]


@functools.cache
def gallery_face(index: int) -> StoredImage:
    """Built-in face number `index`: a synthetic face drawn by the project, with its exact landmarks as its face."""
    if not 0 <= index < len(GALLERY_SEEDS):
        raise WebError(404, f"There is no built-in face {index}; there are {len(GALLERY_SEEDS)}.", None, "gone")
    rendered = synthetic.render_face(synthetic.sample_face(GALLERY_SEEDS[index]), GALLERY_SIZE)
    landmarks = np.asarray(rendered.landmarks, np.float32)
    (left, top), (right, bottom) = landmarks.min(axis=0), landmarks.max(axis=0)
    margin = 0.6 * (right - left)
    box = (
        float(left - margin),
        float(top - 1.2 * margin),
        float(right - left + 2 * margin),
        float(bottom - top + 1.8 * margin),
    )
    return StoredImage(rendered.image, (faces.Face(box, 1.0, landmarks),), f"built-in face {index + 1}")
