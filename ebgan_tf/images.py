"""Safe image I/O and the one uint8 <-> [-1, 1] pixel conversion of the project.

`load_image` turns any readable image file into uint8 RGB [H, W, 3] or raises `ImageError` naming the path and the
problem (`decode_image` does the same for a file's bytes, e.g. an upload); `save_image` writes atomically (temporary
file in the target directory, then `os.replace`), so a failed write never leaves a partial file. `to_float` /
`to_uint8` convert pixels for numpy arrays and TensorFlow tensors alike: models work in [-1, 1], files and the
serving API in uint8.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, TypeAlias, overload

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from ebgan_tf.files import write_atomically

PathLike: TypeAlias = str | os.PathLike
ArrayOrTensor: TypeAlias = np.ndarray | tf.Tensor

# Images with more pixels than this are refused before decoding (decompression bombs); 8192 x 8192 fits.
MAX_PIXELS = 8192 * 8192

# Transparent pixels are composited onto this background when an image with alpha is converted to RGB.
BACKGROUND = (255, 255, 255)

# Encoder options per format: high-quality JPEG, lossless WebP (edits keep their exact pixels).
SAVE_OPTIONS: dict[str, dict] = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}


class ImageError(ValueError):
    """An image file cannot be read or written; the message names the path and the problem."""


class NotAnImageError(ImageError):
    """The data is not an image in a format Pillow reads (or one of the formats asked for)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed, found from its header before decoding; `size` is (width, height),
    or None when Pillow's own decompression-bomb check refused it."""

    def __init__(self, message: str, size: tuple[int, int] | None = None):
        super().__init__(message)
        self.size = size


class CorruptImageError(ImageError):
    """The image's header reads but its pixels cannot be decoded (corrupt, truncated) or converted to RGB."""


@overload
def to_float(image: np.ndarray) -> np.ndarray: ...


@overload
def to_float(image: tf.Tensor) -> tf.Tensor: ...


def to_float(image: ArrayOrTensor) -> ArrayOrTensor:
    """uint8 pixels [0, 255] -> float32 in [-1, 1] (numpy in, numpy out; tensor in, tensor out)."""
    if tf.is_tensor(image):
        return tf.cast(image, tf.float32) / 127.5 - 1.0
    return np.asarray(image, np.float32) / np.float32(127.5) - np.float32(1.0)


@overload
def to_uint8(image: np.ndarray) -> np.ndarray: ...


@overload
def to_uint8(image: tf.Tensor) -> tf.Tensor: ...


def to_uint8(image: ArrayOrTensor) -> ArrayOrTensor:
    """float pixels in [-1, 1] -> uint8 [0, 255], clipped and rounded (exact inverse of `to_float` on uint8)."""
    if tf.is_tensor(image):
        scaled = (tf.cast(image, tf.float32) + 1.0) * 127.5
        return tf.cast(tf.round(tf.clip_by_value(scaled, 0.0, 255.0)), tf.uint8)
    scaled = (np.asarray(image, np.float32) + np.float32(1.0)) * np.float32(127.5)
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 [H, W, 3]: alpha composited onto BACKGROUND, 16/32-bit and float scaled to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, np.float64)
        gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)  # 16-bit range 0..65535
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "F":
        gray = np.clip(np.round(np.asarray(image, np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, BACKGROUND + (255,))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), np.uint8)


def _open(
    source: str | BinaryIO, label: str, max_pixels: int, formats: list[str] | tuple[str, ...] | None
) -> Image.Image:
    """Opens and fully decodes an image (first frame, EXIF orientation applied); the pixel count is checked from the
    header before decoding. Errors are ImageErrors whose message starts with `label`."""
    try:
        stream = Image.open(source, formats=formats)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{label}: image is too large ({error}).") from None
    except Image.UnidentifiedImageError:
        raise NotAnImageError(f"{label}: not an image file (or a format Pillow cannot read).") from None
    except OSError as error:
        raise ImageError(f"{label}: cannot be read ({error.strerror or error}).") from None
    with stream:
        width, height = stream.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{label}: image is too large ({width}x{height} pixels; the limit is {max_pixels} pixels).",
                (width, height),
            )
        try:
            stream.load()
            return ImageOps.exif_transpose(stream)
        except (OSError, SyntaxError, ValueError) as error:
            raise CorruptImageError(f"{label}: corrupt or truncated image file ({error}).") from None


def _pixels(image: Image.Image, label: str) -> np.ndarray:
    try:
        return _to_rgb(image)
    except ValueError as error:
        raise CorruptImageError(f"{label}: cannot convert colour mode {image.mode} to RGB ({error}).") from None


def open_image(path: PathLike) -> Image.Image:
    """Opens and fully decodes an image file (first frame, EXIF orientation applied) or raises ImageError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file.")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image file.")
    return _open(path, path, MAX_PIXELS, None)


def decode_image(
    data: bytes, max_pixels: int = MAX_PIXELS, formats: list[str] | tuple[str, ...] | None = None, label: str = "image"
) -> np.ndarray:
    """An image file's bytes as uint8 RGB [H, W, 3], converted as `load_image` converts files.

    `formats` limits the accepted formats (Pillow names such as "PNG", "JPEG"); the pixel count is read from the
    header and checked against `max_pixels` before anything is decoded. Raises NotAnImageError, ImageTooLargeError,
    CorruptImageError (all ImageErrors), messages starting with `label`.
    """
    if not data:
        raise NotAnImageError(f"{label}: empty file.")
    return _pixels(_open(io.BytesIO(data), label, max_pixels, formats), label)


def load_image(path: PathLike, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Reads an image file as uint8 RGB [H, W, 3].

    Args:
      path: the image file (any format Pillow reads: PNG, JPEG, BMP, GIF, TIFF, WebP, ...).
      size: if given, the image must be exactly this size (an int for square, or (height, width)).

    Raises:
      ImageError: missing file, not an image, corrupt/truncated, too many pixels, or the wrong size.
    """
    pixels = _pixels(open_image(path), os.fspath(path))
    if size is not None:
        expected = _size_pair(size)
        if pixels.shape[:2] != expected:
            raise ImageError(
                f"{os.fspath(path)}: image is {pixels.shape[0]}x{pixels.shape[1]} (height x width); "
                f"expected {expected[0]}x{expected[1]}."
            )
    return pixels


def _format_for(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    formats = Image.registered_extensions()
    if extension not in formats:
        raise ImageError(f"{path}: unknown image file extension {extension!r}; use .png, .jpg, .bmp or .webp.")
    return formats[extension]


def save_image(path: PathLike, image: np.ndarray) -> None:
    """Writes uint8 [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] atomically; the format follows the extension.

    Missing parent directories are created. On any failure the target is left as it was.
    """
    path = os.fspath(path)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"{path}: pixels must be uint8, got {image.dtype} (convert with ebgan_tf.images.to_uint8).")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)) or 0 in image.shape:
        raise ImageError(f"{path}: expected an image [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {image.shape}.")
    image_format = _format_for(path)

    def write(temporary: str) -> None:
        Image.fromarray(image).save(temporary, format=image_format, **SAVE_OPTIONS.get(image_format, {}))

    try:
        write_atomically(path, write)
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot write the image ({getattr(error, 'strerror', None) or error}).") from None
