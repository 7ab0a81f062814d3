"""Tests of safe image I/O, pixel conversion (ebgan_tf/images.py) and grids (ebgan_tf/visualize.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ebgan_tf import images, visualize


def random_image(height=20, width=30, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def test_float_conversion_round_trip_numpy_and_tensor():
    pixels = np.arange(256, dtype=np.uint8)
    floats = images.to_float(pixels)
    assert floats.dtype == np.float32 and floats.min() == -1.0 and floats.max() == 1.0
    np.testing.assert_array_equal(images.to_uint8(floats), pixels)
    tensor = images.to_float(tf.constant(pixels))
    assert tf.is_tensor(tensor)
    np.testing.assert_array_equal(tensor.numpy(), floats)
    np.testing.assert_array_equal(images.to_uint8(tensor).numpy(), pixels)


def test_to_uint8_clips_and_rounds():
    values = np.array([-3.0, -1.0, 0.0, 0.004, 1.0, 7.0], np.float32)
    np.testing.assert_array_equal(images.to_uint8(values), [0, 0, 128, 128, 255, 255])
    np.testing.assert_array_equal(images.to_uint8(tf.constant(values)).numpy(), [0, 0, 128, 128, 255, 255])


@pytest.mark.parametrize("extension", [".png", ".bmp", ".tiff", ".webp"])
def test_lossless_round_trip(tmp_path, extension):
    image = random_image()
    path = tmp_path / "sub" / "dir" / f"image{extension}"
    images.save_image(path, image)
    np.testing.assert_array_equal(images.load_image(path), image)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    assert (os.stat(path).st_mode & 0o777) == 0o644


def test_jpeg_and_grayscale_save(tmp_path):
    smooth = np.stack([*np.meshgrid(np.arange(30) * 8, np.arange(20) * 12), np.full((20, 30), 90)], -1)
    image = smooth.astype(np.uint8)
    images.save_image(tmp_path / "a.jpg", image)
    loaded = images.load_image(tmp_path / "a.jpg", size=(20, 30))
    assert loaded.shape == (20, 30, 3) and np.abs(loaded.astype(int) - image).mean() < 4
    image = random_image()
    images.save_image(tmp_path / "g.png", image[..., :1])
    np.testing.assert_array_equal(images.load_image(tmp_path / "g.png"), np.repeat(image[..., :1], 3, axis=-1))


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_modes_convert_to_rgb(tmp_path, mode):
    gray = np.zeros((8, 8), np.uint8)
    gray[:4] = 255
    if mode == "I;16":
        source = Image.fromarray(gray.astype(np.uint16) * 257)
    else:
        source = Image.fromarray(gray).convert(mode)
    path = tmp_path / ("a.tiff" if mode == "CMYK" else "a.png")
    source.save(path)
    loaded = images.load_image(path)
    assert loaded.shape == (8, 8, 3) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded[..., 0], gray)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    loaded = images.load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(loaded[3, 0], [255, 255, 255])


def test_load_errors_name_the_path_and_the_problem(tmp_path, monkeypatch):
    with pytest.raises(images.ImageError, match="missing.png: no such file"):
        images.load_image(tmp_path / "missing.png")
    with pytest.raises(images.ImageError, match="is a directory"):
        images.load_image(tmp_path)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(images.ImageError, match="text.png: not an image"):
        images.load_image(tmp_path / "text.png")
    images.save_image(tmp_path / "whole.png", random_image(64, 64))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(images.ImageError, match="cut.png: corrupt or truncated"):
        images.load_image(tmp_path / "cut.png")
    with pytest.raises(images.ImageError, match="whole.png: image is 64x64.*expected 32x32"):
        images.load_image(tmp_path / "whole.png", size=32)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(images.ImageError, match="too large"):
        images.load_image(tmp_path / "whole.png")


def test_decode_image_reads_bytes_as_load_image_reads_files(tmp_path):
    for mode in ("RGBA", "L", "P"):
        path = tmp_path / f"{mode}.png"
        Image.fromarray(random_image(channels=4)).convert(mode).save(path)
        np.testing.assert_array_equal(images.decode_image(path.read_bytes()), images.load_image(path))
    png = (tmp_path / "RGBA.png").read_bytes()
    with pytest.raises(images.ImageTooLargeError, match=r"upload: image is too large \(30x20 pixels") as raised:
        images.decode_image(png, max_pixels=599, label="upload")
    assert raised.value.size == (30, 20)
    assert images.decode_image(png, max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(images.NotAnImageError, match="upload: not an image file"):
        images.decode_image(b"plain text, not pixels", label="upload")
    with pytest.raises(images.NotAnImageError, match="empty file"):
        images.decode_image(b"")
    with pytest.raises(images.NotAnImageError):  # a real PNG, but only JPEG is accepted
        images.decode_image(png, formats=["JPEG"])
    with pytest.raises(images.CorruptImageError, match="corrupt or truncated"):
        images.decode_image(png[: len(png) // 2])


def test_save_errors_leave_nothing_behind(tmp_path):
    target = tmp_path / "out.png"
    images.save_image(target, random_image(seed=1))
    before = target.read_bytes()
    with pytest.raises(images.ImageError, match="cannot write"):
        images.save_image(tmp_path / "out.jpg", random_image(channels=4))  # JPEG has no alpha
    with pytest.raises(images.ImageError, match="uint8"):
        images.save_image(target, random_image().astype(np.float32))
    with pytest.raises(images.ImageError, match="expected an image"):
        images.save_image(target, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(images.ImageError, match="unknown image file extension '.xyz'"):
        images.save_image(tmp_path / "out.xyz", random_image())
    assert sorted(os.listdir(tmp_path)) == ["out.png"] and target.read_bytes() == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(images.ImageError, match="cannot write"):
        images.save_image(tmp_path / "file" / "below.png", random_image())


def test_image_grid_layout():
    a, b = np.full((10, 12, 3), 10, np.uint8), np.full((10, 12, 1), 200, np.uint8)
    grid = visualize.image_grid([[a, b], [b]], pad=2)
    assert grid.shape == (2 + 2 * 12, 2 + 2 * 14, 3)
    np.testing.assert_array_equal(grid[2:12, 2:14], a)
    np.testing.assert_array_equal(grid[2:12, 16:28, 0], b[..., 0])
    np.testing.assert_array_equal(grid[14:24, 2:14, 1], b[..., 0])
    assert (grid[14:24, 16:28] == visualize.BACKGROUND).all()  # the short row's missing cell is blank


def test_image_grid_labels_add_space_and_ink():
    cells = [[np.zeros((16, 16, 3), np.uint8)] * 2] * 2
    plain = visualize.image_grid(cells)
    labelled = visualize.image_grid(cells, row_labels=["Smiling\nMustache", "none"], col_labels=["image", "mask"])
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] > plain.shape[1]
    label_area = labelled[:, : labelled.shape[1] - plain.shape[1]]
    assert (label_area < 128).any()  # some text was drawn
    with pytest.raises(ValueError, match="row labels"):
        visualize.image_grid(cells, row_labels=["one"])
    with pytest.raises(ValueError, match="uint8"):
        visualize.image_grid([[np.zeros((4, 4, 3), np.float32)]])


def test_overlay_mask():
    image = np.full((4, 4, 3), 100, np.uint8)
    mask = np.zeros((4, 4, 1), np.float32)
    mask[0, 0] = 1.0
    out = visualize.overlay_mask(image, mask, color=(255, 0, 0), alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [178, 50, 50])
    np.testing.assert_array_equal(out[1:, 1:], image[1:, 1:])
    with pytest.raises(ValueError, match="does not match"):
        visualize.overlay_mask(image, np.zeros((3, 3)))
