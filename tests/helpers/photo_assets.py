"""Test assets for photo editing (tests/editing/test_faces.py, test_edit_cli.py): a real photo, synthetic faces on
larger canvases at known similarity transforms, and a tiny exported (untrained) model."""

from __future__ import annotations

import dataclasses
import math
import os

import keras
import numpy as np
import skimage.data
from scipy import ndimage

from ebgan_tf import faces
from ebgan_tf.config import get_preset
from ebgan_tf.data import synthetic
from tests.helpers.tiny import IMAGE_SIZE as TINY_SIZE, TINY_CONFIG

# scikit-image ships this photo (Eileen Collins, NASA; public domain) inside its package: no download.
ASTRONAUT = os.path.join(os.path.dirname(skimage.data.__file__), "astronaut.png")


def template(size: int, count: int = 16) -> np.ndarray:
    """Mean landmarks of synthetic faces at `size` (what training records as the landmark template)."""
    return np.mean([synthetic.face_landmarks(synthetic.sample_face(seed), size) for seed in range(count)], axis=0)


def export_tiny_model(export_base: str, variant: str = "ebgan") -> str:
    """An untrained tiny model (regions: mouth) exported as a SavedModel; returns the version directory."""
    from ebgan_tf.export.saved_model import export_saved_model
    from ebgan_tf.models.trainer import build_trainer

    keras.utils.set_random_seed(0)
    trainer = build_trainer(dataclasses.replace(get_preset("synthetic64"), model=TINY_CONFIG), variant, ["mouth"])
    trainer.build_all()
    return export_saved_model(trainer, export_base, "tiny", template(TINY_SIZE), 1)


def similarity(scale: float, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    """[2, 3] matrix: rotate by `degrees` (clockwise on screen), scale, then shift."""
    angle = math.radians(degrees)
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.concatenate([rotation, np.asarray(shift, np.float64)[:, None]], axis=1)


@dataclasses.dataclass(frozen=True)
class Canvas:
    image: np.ndarray  # uint8 [H, W, 3]
    landmarks: np.ndarray  # true landmarks [5, 2] of the pasted face, canvas pixels
    face_to_canvas: np.ndarray  # [2, 3]
    face: synthetic.RenderedFace  # the face before pasting


def paste_face(
    seed: int,
    face_size: int,
    scale: float,
    degrees: float,
    canvas_shape: tuple[int, int],
    offset: tuple[float, float] = (0.0, 0.0),
    background: int = 90,
) -> Canvas:
    """Synthetic face `seed` rendered at face_size, scaled/rotated about its centre and placed at the canvas centre
    plus `offset`, on a flat grey canvas (height, width)."""
    face = synthetic.render_face(synthetic.sample_face(seed), face_size)
    height, width = canvas_shape
    matrix = similarity(scale, degrees, (0.0, 0.0))
    centre = faces.transform_points(matrix, [[face_size / 2, face_size / 2]])[0]
    matrix[:, 2] = np.array([width / 2 + offset[0], height / 2 + offset[1]]) - centre
    to_face = faces.invert(matrix)
    pasted = faces.warp(face.image, to_face, (width, height))
    inside = faces.warp(np.full((face_size, face_size), 255, np.uint8), to_face, (width, height), nearest=True)
    image = np.where(inside[..., None] > 0, pasted, np.uint8(background)).astype(np.uint8)
    return Canvas(image, faces.transform_points(matrix, face.landmarks), matrix, face)


def seam_band(crop: faces.FaceCrop, feather: float = faces.DEFAULT_FEATHER) -> int:
    """Width in photo pixels of the seam band that paste_back blends over."""
    return max(1, math.ceil(feather / math.sqrt(np.linalg.det(crop.matrix[:, :2]))))


def allowed_to_change(shape: tuple[int, int], photo_to_crop: np.ndarray, region: np.ndarray, band: int) -> np.ndarray:
    """bool [H, W]: photo pixels whose centre falls in the crop's `region` (bool [S, S]), grown by the seam band
    (+1 pixel for rounding). Computed without faces.warp / paste_back."""
    height, width = shape
    ys, xs = np.mgrid[:height, :width] + 0.5
    points = faces.transform_points(photo_to_crop, np.stack([xs.ravel(), ys.ravel()], 1))
    cols, rows = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    size = region.shape[0]
    valid = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    inside = np.zeros(len(points), bool)
    inside[valid] = region[rows[valid], cols[valid]]
    distance = ndimage.distance_transform_edt(~inside.reshape(height, width))
    return distance <= band * math.sqrt(2) + 1
