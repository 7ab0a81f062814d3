"""Tests of region masks, their training jitter and user mask images (ebgan_tf/data/masks.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from ebgan_tf import images
from ebgan_tf.config import REGIONS
from ebgan_tf.data import masks

SIZE = 64
# A frontal face on a 64 px image: left eye, right eye, nose, left mouth corner, right mouth corner (x, y).
LANDMARKS = np.array([[24.0, 26.0], [40.0, 26.0], [32.0, 34.0], [26.0, 42.0], [38.0, 42.0]], np.float32)
REGION_POINTS = {"eyes": (0, 1), "nose": (2,), "mouth": (3, 4), "components": (0, 1, 2, 3, 4), "face": (0, 1, 2, 3, 4)}


def on(mask: np.ndarray, point: np.ndarray) -> bool:
    """Whether the pixel that contains `point` (x, y) is in the mask."""
    return bool(mask[int(point[1]), int(point[0]), 0] == 1.0)


@pytest.mark.parametrize("region", REGIONS)
def test_every_region_is_a_binary_mask_inside_the_image(region):
    mask = masks.region_mask(LANDMARKS, region, SIZE).numpy()
    assert mask.shape == (SIZE, SIZE, 1) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert mask[0].sum() == mask[-1].sum() == mask[:, 0].sum() == mask[:, -1].sum() == 0  # not cut by the border
    for index in REGION_POINTS.get(region, ()):
        assert on(mask, LANDMARKS[index]), (region, index)


def test_brows_lie_above_the_eyes():
    rows = np.nonzero(masks.region_mask(LANDMARKS, "brows", SIZE).numpy()[..., 0])[0]
    assert rows.max() < LANDMARKS[0, 1] and rows.min() > 0


def test_mouth_excludes_the_eyes_and_eyes_exclude_the_mouth():
    mouth = masks.region_mask(LANDMARKS, "mouth", SIZE).numpy()
    eyes = masks.region_mask(LANDMARKS, "eyes", SIZE).numpy()
    assert not on(mouth, LANDMARKS[0]) and not on(eyes, LANDMARKS[3])
    assert not np.any(mouth * eyes)


def test_combined_regions_are_the_union():
    union = np.maximum.reduce([masks.region_mask(LANDMARKS, name, SIZE).numpy() for name in ("mouth", "eyes")])
    np.testing.assert_array_equal(masks.region_mask(LANDMARKS, ["mouth", "eyes"], SIZE).numpy(), union)
    parts = np.maximum.reduce([masks.region_mask(LANDMARKS, name, SIZE).numpy() for name in masks.PARTS])
    np.testing.assert_array_equal(masks.region_mask(LANDMARKS, "components", SIZE).numpy(), parts)


def test_a_batch_of_faces_gives_each_face_its_own_mask():
    moved = LANDMARKS + np.array([5.0, -3.0], np.float32)
    wider = (LANDMARKS - LANDMARKS.mean(0)) * 1.3 + LANDMARKS.mean(0)
    batch = np.stack([LANDMARKS, moved, wider])
    jitter = {"scale": 1.1, "shift": (0.05, -0.03)}
    for region in ("mouth", "components"):
        masks_ = masks.region_mask(batch, region, SIZE, **jitter).numpy()
        assert masks_.shape == (3, SIZE, SIZE, 1)
        for face, mask in zip(batch, masks_):
            np.testing.assert_array_equal(mask, masks.region_mask(face, region, SIZE, **jitter).numpy())
        assert not np.array_equal(masks_[0], masks_[1]) and masks_[2].sum() > masks_[0].sum()


def test_unknown_region_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'chin'.*valid regions: mouth, eyes, brows, nose, components, face"):
        masks.region_mask(LANDMARKS, ["mouth", "chin"], SIZE)
    with pytest.raises(ValueError, match="valid regions"):
        masks.random_region_mask(LANDMARKS, "chin", SIZE, seed=[0, 0])


@pytest.mark.parametrize("region", ["mouth", "eyes", "nose"])
@pytest.mark.slow
def test_jitter_changes_the_mask_keeps_its_landmarks_and_is_deterministic(region):
    exact = masks.region_mask(LANDMARKS, region, SIZE).numpy()
    jittered = [masks.random_region_mask(LANDMARKS, region, SIZE, seed=[7, i]).numpy() for i in range(20)]
    assert sum(not np.array_equal(mask, exact) for mask in jittered) >= 18
    assert len({mask.tobytes() for mask in jittered}) >= 15
    for mask in jittered:
        assert all(on(mask, LANDMARKS[index]) for index in REGION_POINTS[region])
    again = masks.random_region_mask(LANDMARKS, region, SIZE, seed=[7, 3]).numpy()
    np.testing.assert_array_equal(again, jittered[3])


@pytest.mark.slow
def test_jitter_bounds_limit_the_mask_area():
    area = masks.region_mask(LANDMARKS, "mouth", SIZE).numpy().sum()
    for i in range(20):
        jittered = masks.random_region_mask(LANDMARKS, "mouth", SIZE, seed=[1, i], max_shift=0.0).numpy().sum()
        assert 0.85**2 * area * 0.9 <= jittered <= 1.15**2 * area * 1.1
    none = masks.random_region_mask(LANDMARKS, "mouth", SIZE, seed=[1, 0], max_scale_jitter=0.0, max_shift=0.0)
    assert none.numpy().sum() == area


def write(path, array, mode=None):
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


def test_mask_image_binarises_and_resizes_nearest(tmp_path):
    gray = np.zeros((128, 128), np.uint8)
    gray[32:64, 64:128] = 200  # light = edit
    gray[64:96, 0:32] = 100  # dark grey = keep
    mask = masks.load_mask_image(write(tmp_path / "m.png", gray), 32)
    assert mask.shape == (32, 32, 1) and mask.dtype == np.float32
    expected = np.zeros((32, 32, 1), np.float32)
    expected[8:16, 16:32] = 1.0
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "P", "RGBA"])
def test_mask_image_modes(tmp_path, mode):
    gray = np.zeros((64, 64), np.uint8)
    gray[10:20, 30:40] = 255
    mask = masks.load_mask_image(write(tmp_path / "m.png", gray, mode), 64)
    np.testing.assert_array_equal(mask[..., 0], gray > 127)


def test_mask_image_alpha_marks_the_region(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but only the painted (opaque) part counts
    rgba[5:9, 5:9, 3] = 255
    mask = masks.load_mask_image(write(tmp_path / "m.png", rgba), 16)
    expected = np.zeros((16, 16), bool)
    expected[1:2, 1:2] = True
    np.testing.assert_array_equal(mask[..., 0], expected)


def test_mask_image_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        masks.load_mask_image(write(tmp_path / "empty.png", np.zeros((64, 64), np.uint8)), 64)
    tiny = np.zeros((256, 256), np.uint8)
    tiny[1, 1] = 255
    with pytest.raises(ValueError, match="empty after resizing to 8x8"):
        masks.load_mask_image(write(tmp_path / "tiny.png", tiny), 8)
    with pytest.raises(ValueError, match="64x32.*square"):
        masks.load_mask_image(write(tmp_path / "wide.png", np.full((32, 64), 255, np.uint8)), 64)
    with pytest.raises(images.ImageError, match="no such file"):
        masks.load_mask_image(tmp_path / "missing.png", 64)
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(images.ImageError, match="bad.png: not an image"):
        masks.load_mask_image(tmp_path / "bad.png", 64)
    with pytest.raises(ValueError, match="mode I;16"):
        masks.load_mask_image(write(tmp_path / "deep.png", np.zeros((8, 8), np.uint16)), 8)


def test_full_mask_image_warns(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = masks.load_mask_image(write(tmp_path / "full.png", np.full((64, 64), 255, np.uint8)), 64)
    assert mask.all()
    assert any("whole image" in str(warning.message) for warning in caught)


@pytest.mark.slow
def test_masks_cover_the_landmarks_of_rendered_faces():
    synthetic = pytest.importorskip("ebgan_tf.data.synthetic")
    for seed in range(12):
        landmarks = synthetic.face_landmarks(synthetic.sample_face(seed), SIZE)
        for region, points in REGION_POINTS.items():
            exact = masks.region_mask(landmarks, region, SIZE).numpy()
            jittered = masks.random_region_mask(landmarks, region, SIZE, seed=[seed, 1]).numpy()
            for mask in (exact, jittered):
                assert all(on(mask, landmarks[index]) for index in points), (seed, region)
                if region != "face":
                    assert mask[0].sum() == mask[-1].sum() == mask[:, 0].sum() == mask[:, -1].sum() == 0


def test_part_layout_puts_each_landmark_in_its_part_and_the_rest_in_the_skin():
    layout = masks.part_layout(LANDMARKS, SIZE).numpy()
    assert layout.shape == (SIZE, SIZE, len(masks.CODE_PARTS)) and set(np.unique(layout)) == {0.0, 1.0}
    np.testing.assert_array_equal(layout.sum(axis=-1), 1.0)
    part_of = {
        index: masks.CODE_PARTS[int(np.argmax(layout[int(y), int(x)]))] for index, (x, y) in enumerate(LANDMARKS)
    }
    assert part_of == {0: "eyes", 1: "eyes", 2: "nose", 3: "mouth", 4: "mouth"}
    skin = masks.CODE_PARTS.index("skin")
    assert layout[0, 0, skin] == layout[-1, -1, skin] == 1.0
    # Every part holds the pixels of its own region mask's centre, and the brows lie above the eyes.
    rows = {part: np.nonzero(layout[..., masks.CODE_PARTS.index(part)])[0].mean() for part in masks.PARTS}
    assert rows["brows"] < rows["eyes"] < rows["nose"] < rows["mouth"]


def test_part_layout_follows_the_landmarks():
    shifted = masks.part_layout(LANDMARKS + np.array([5.0, 3.0], np.float32), SIZE).numpy()
    original = masks.part_layout(LANDMARKS, SIZE).numpy()
    np.testing.assert_array_equal(shifted[3:, 5:], original[:-3, :-5])
