"""Edit faces in ordinary photos: detect, align to the model's crop, edit, and paste the edit back.

    editor = Editor.load("exports/ebgan/1")
    photo, exemplar = load_image("me.jpg"), load_image("friend.png")
    edited = edit_photo(editor, photo, exemplar, regions=["mouth"])      # same size as `photo`

Faces and CelebA's five landmarks come from MTCNN (the `mtcnn` package; its weights ship inside the package, nothing
is downloaded). A similarity transform (rotation, uniform scale, shift; no reflection) fitted by least squares maps
the five landmarks onto the model's landmark template, which gives the aligned crop. The region mask is built on
the face's own landmarks in the crop (as the masks of the training data were), the model edits the crop, and the
edited region is warped back with the inverse transform and blended in over a feathered seam. Outside the region
and its seam band the output is the input, pixel for pixel.

Coordinates are pixels as in `ebgan_tf.data.masks`: x to the right, y down, pixel (row i, column j) centred at
(j + 0.5, i + 0.5). All image warps go through `warp` (PIL's affine transform, which uses that convention).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageFilter

from ebgan_tf import images
from ebgan_tf.config import parse_regions
from ebgan_tf.data import masks
from ebgan_tf.editing import CropEditor, ModelInfo

# Photos are scaled down to at most this many pixels on their longer side for detection (MTCNN's time grows with
# the pixel count: about 1.5 s at 1024 px, 50 s at 4096 px on 2 CPU cores); landmarks are scaled back up.
DETECTION_MAX_SIDE = 1024

# How the edited region is blended back: over a band this many model pixels wide around the region.
DEFAULT_FEATHER = 2.0

# --align modes: "auto" treats an image of exactly the model's size as already aligned and detects in any other;
# "detect" always detects; "none" never does (the image must be an aligned crop at the model's size).
ALIGN_MODES: tuple[str, ...] = ("auto", "detect", "none")

# Bicubic sampling reads two pixels either side of a sample point; the paste-back keeps clear of the crop's edge.
_BICUBIC_REACH = 2


class NoFaceError(ValueError):
    """No face was found in an image."""


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face, in the photo's pixel coordinates."""

    box: tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    landmarks: np.ndarray  # float32 [5, 2] (x, y) in CelebA order: lefteye, righteye, nose, leftmouth, rightmouth

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """A face at the model's alignment: the crop, the face's landmarks in it, and the map from the image."""

    image: np.ndarray  # uint8 [S, S, 3]
    landmarks: np.ndarray  # float32 [5, 2] in crop pixels
    matrix: np.ndarray  # float64 [2, 3]: image (x, y, 1) -> crop (x, y)
    aligned_input: bool = False  # True: the image was given already aligned (the crop is the image itself)


# ------------------------------------------------------------------------------------------------ detection


@functools.cache
def _detector():
    """One MTCNN instance per process (building it loads three networks); imported only when needed."""
    from mtcnn import MTCNN

    return MTCNN()


def detect_faces(image: np.ndarray) -> list[Face]:
    """Faces in a uint8 RGB image [H, W, 3], largest (box area) first; [] if there are none.

    Landmarks follow CelebA's convention: `lefteye` is the eye on the image's left (MTCNN's "left_eye"). MTCNN's
    coordinates are used as they are (whether they mean pixel centres or corners is below its accuracy).
    """
    image = _check_rgb(image, "image")
    height, width = image.shape[:2]
    factor = max(1.0, max(height, width) / DETECTION_MAX_SIDE)
    small = image
    if factor > 1.0:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    rows = np.asarray(_detector().detect_faces(small, box_format="xyxy", output_type="numpy"), np.float64)
    if rows.shape[0] == 0:
        return []
    # Columns: image id, x1, y1, x2, y2, confidence, x of the five landmarks, y of the five landmarks.
    scale = np.array([width / small.shape[1], height / small.shape[0]])
    found = []
    for row in rows:
        x1, y1 = row[1:3] * scale
        x2, y2 = row[3:5] * scale
        landmarks = np.stack([row[6:11], row[11:16]], axis=1) * scale
        found.append(
            Face((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), float(row[5]), landmarks.astype(np.float32))
        )
    return sorted(found, key=lambda face: face.area, reverse=True)


def choose_face(faces: Sequence[Face], index: int = 0, name: str = "image") -> Face:
    """faces[index] with clear errors: NoFaceError when there is none, ValueError for an index out of range."""
    if not faces:
        raise NoFaceError(
            f"{name}: no face found. Faces must be roughly upright, unobstructed and at least 20 "
            f"pixels (in photos over {DETECTION_MAX_SIDE} pixels: 1/50 of the longer side) across; an "
            "image that is already an aligned face crop can be given at the model's size (or with "
            "--align=none)."
        )
    if not 0 <= index < len(faces):
        raise ValueError(
            f"{name}: face index {index} is out of range: {len(faces)} face(s) found, valid indices "
            f"0..{len(faces) - 1} (largest first; list them with --list_faces)."
        )
    return faces[index]


# ------------------------------------------------------------------------------------------------ geometry


def similarity_transform(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The rotation + uniform scale + shift (no reflection) that maps `points` [N, 2] onto `targets` [N, 2] with
    the least squared error (Umeyama, 1991), as a float64 [2, 3] matrix: target = M @ (x, y, 1)."""
    points, targets = np.asarray(points, np.float64), np.asarray(targets, np.float64)
    if points.shape != targets.shape or points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"Need matching point sets [N, 2] with N >= 2, got {points.shape} and {targets.shape}.")
    point_mean, target_mean = points.mean(axis=0), targets.mean(axis=0)
    centred, target_centred = points - point_mean, targets - target_mean
    variance = np.mean(np.sum(centred**2, axis=1))
    if variance < 1e-12:
        raise ValueError("The landmarks all lie on one point; no transform can be fitted.")
    u, singular, vt = np.linalg.svd(target_centred.T @ centred / len(points))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / variance
    shift = target_mean - scale * rotation @ point_mean
    return np.concatenate([scale * rotation, shift[:, None]], axis=1)


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of an affine [2, 3] matrix."""
    full = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(matrix: np.ndarray, points: ArrayLike) -> np.ndarray:
    """Applies an affine [2, 3] matrix to points [N, 2]."""
    points = np.asarray(points, np.float64)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def _scale_of(matrix: np.ndarray) -> float:
    """The (uniform) scale factor of a similarity matrix."""
    return math.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2])))


def warp(image: np.ndarray, to_source: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resamples `image` (uint8 [H, W] or [H, W, 3]) onto a (width, height) grid: output pixel centre p takes the
    value at to_source @ (p, 1) in the image. Bicubic, with a box pre-filter when shrinking by 2x or more (no
    aliasing on large photos); `nearest` for masks. Points outside the image are black (0)."""
    image = np.asarray(image, np.uint8)
    to_source = np.asarray(to_source, np.float64).copy()
    factor = 1 if nearest else int(_scale_of(to_source))
    # Only the part of the image that the output grid reads (plus the filters' reach) is resampled.
    width, height = size
    reach = _BICUBIC_REACH * factor + 1
    corners = transform_points(to_source, [[0, 0], [width, 0], [0, height], [width, height]])
    left, top = (max(0, math.floor(value) - reach) for value in corners.min(axis=0))
    right = min(image.shape[1], math.ceil(corners[:, 0].max()) + reach)
    bottom = min(image.shape[0], math.ceil(corners[:, 1].max()) + reach)
    if right <= left or bottom <= top:
        return np.zeros((height, width) + image.shape[2:], np.uint8)
    source = Image.fromarray(image[top:bottom, left:right])
    to_source[:, 2] -= [left, top]
    if factor > 1:
        source = source.reduce(factor)  # pixel centre j*f + f/2 -> j + 1/2: coordinates divide by f
        to_source /= factor
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return np.asarray(source.transform(size, Image.Transform.AFFINE, tuple(to_source.ravel()), resample))


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> FaceCrop:
    """The size x size crop whose face landmarks best match `template` [5, 2] (least-squares similarity)."""
    matrix = similarity_transform(landmarks, template)
    crop = warp(image, invert(matrix), (size, size))
    return FaceCrop(crop, transform_points(matrix, landmarks).astype(np.float32), matrix)


def is_aligned_input(image: np.ndarray, size: int, align: str = "auto") -> bool:
    """Whether `face_crop` takes `image` as an aligned crop (no detection) under the `align` mode."""
    if align not in ALIGN_MODES:
        raise ValueError(f"Unknown align mode {align!r}; valid modes: {', '.join(ALIGN_MODES)}.")
    return align == "none" or (align == "auto" and np.shape(image)[:2] == (size, size))


def face_crop(
    image: np.ndarray,
    info: ModelInfo,
    align: str = "auto",
    face_index: int = 0,
    name: str = "image",
    faces: Sequence[Face] | None = None,
) -> FaceCrop:
    """The model-ready crop of one face of `image` (uint8 RGB [H, W, 3]).

    `align` (see ALIGN_MODES): "auto" takes an image of exactly the model's size as already aligned (its landmarks
    are the template) and detects the face in any other; "detect" always detects; "none" requires an aligned image.
    `face_index` picks among the detected faces, largest first. `faces`: the image's faces if already detected
    (detect once, align for any model later).
    """
    image = _check_rgb(image, name)
    size = info.image_size
    if is_aligned_input(image, size, align):
        if image.shape[:2] != (size, size):
            raise ValueError(
                f"{name}: image is {image.shape[0]}x{image.shape[1]}; without alignment it must be "
                f"the model's size {size}x{size} (leave out --align=none to detect the face)."
            )
        return FaceCrop(image, info.landmark_template, np.eye(2, 3), aligned_input=True)
    face = choose_face(detect_faces(image) if faces is None else faces, face_index, name)
    return align_face(image, face.landmarks, info.landmark_template, size)


# ------------------------------------------------------------------------------------------------ masks


def mask_to_crop(mask: np.ndarray, crop: FaceCrop, size: int) -> np.ndarray:
    """A mask in the image's coordinates (bool/float [H, W] or [H, W, 1], > 0.5 = edit) -> float32 [S, S, 1] in
    the crop (nearest-neighbour). Raises ValueError when nothing of the mask falls inside the face crop."""
    on = (np.asarray(mask, np.float32).reshape(np.shape(mask)[:2]) > 0.5).astype(np.uint8) * 255
    warped = warp(on, invert(crop.matrix), (size, size), nearest=True) > 127
    if not warped.any():
        raise ValueError(
            "The mask does not overlap the face crop: nothing to edit (white or opaque pixels mark the "
            "region, in the photo's coordinates)."
        )
    return warped.astype(np.float32)[..., None]


def load_photo_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A user's mask image in photo coordinates: bool [H, W] (True = edit), which must have `shape` (height, width).

    Same reading rules as `masks.load_mask_image` (opaque pixels of an image with transparency, else light ones),
    EXIF orientation applied as for photos.
    """
    path = os.fspath(path)
    image = images.open_image(path)
    if image.mode not in masks.MASK_IMAGE_MODES:
        raise ValueError(
            f"{path}: mask images must be black-and-white, grayscale, palette, RGB or RGBA "
            f"(modes {', '.join(masks.MASK_IMAGE_MODES)}); got mode {image.mode}."
        )
    if (image.height, image.width) != tuple(shape):
        raise ValueError(
            f"{path}: mask image is {image.height}x{image.width} (height x width); it must have the "
            f"source photo's size {shape[0]}x{shape[1]}."
        )
    on = masks._mask_on(image)
    if not on.any():
        raise ValueError(f"{path}: the mask is empty, nothing to edit (white or opaque pixels mark the region).")
    return on


# ------------------------------------------------------------------------------------------------ paste-back


def paste_back(
    photo: np.ndarray, edited: np.ndarray, region: np.ndarray, crop: FaceCrop, feather: float = DEFAULT_FEATHER
) -> np.ndarray:
    """Warps the edited crop's `region` ([S, S, 1], > 0.5) back into `photo` and blends it over a seam band.

    The band is `feather` crop pixels (at least one photo pixel) wide around the warped region; the blend weight
    falls linearly across it. Photo pixels farther than the band from the region are returned unchanged. The part
    of the region within the band width plus bicubic reach of the crop's edge is not pasted (no black fill leaks in).
    """
    photo = _check_rgb(photo, "photo")
    if feather < 0:
        raise ValueError(f"feather must be >= 0, got {feather}.")
    size = edited.shape[0]
    scale = _scale_of(crop.matrix)  # crop pixels per photo pixel
    band = max(1, math.ceil(feather / scale))  # photo pixels
    inside = np.asarray(region).reshape(size, size) > 0.5
    margin = math.ceil(band * scale) + _BICUBIC_REACH * max(1, int(scale)) + 1  # warp() shrinks by int(scale)
    inside[:margin], inside[size - margin :], inside[:, :margin], inside[:, size - margin :] = (
        False,
        False,
        False,
        False,
    )
    if not inside.any():
        return photo.copy()
    rows, cols = np.nonzero(inside)
    corners = np.array(
        [
            [cols.min(), rows.min()],
            [cols.max() + 1, rows.min()],
            [cols.min(), rows.max() + 1],
            [cols.max() + 1, rows.max() + 1],
        ],
        np.float64,
    )
    photo_corners = transform_points(invert(crop.matrix), corners)
    height, width = photo.shape[:2]
    left, top = (max(0, math.floor(value) - band - 1) for value in photo_corners.min(axis=0))
    right = min(width, math.ceil(photo_corners[:, 0].max()) + band + 1)
    bottom = min(height, math.ceil(photo_corners[:, 1].max()) + band + 1)
    if right <= left or bottom <= top:
        return photo.copy()
    window = (right - left, bottom - top)
    to_crop = crop.matrix.copy()
    to_crop[:, 2] += crop.matrix[:, :2] @ [left, top]  # window pixel (u, v) is photo pixel (u + left, v + top)
    pasted = warp(edited, to_crop, window).astype(np.float32)
    hard_weight = Image.fromarray(warp(inside.astype(np.uint8) * 255, to_crop, window, nearest=True))
    weight = np.asarray(hard_weight.filter(ImageFilter.BoxBlur(band)), np.float32)[..., None] / 255.0
    result = photo.copy()
    original = photo[top:bottom, left:right].astype(np.float32)
    result[top:bottom, left:right] = np.round(original * (1.0 - weight) + pasted * weight).astype(np.uint8)
    return result


# ------------------------------------------------------------------------------------------------ editing


def edit_photo(
    editor: CropEditor,
    source: np.ndarray,
    exemplar: np.ndarray,
    regions: Sequence[str] | str | None = None,
    mask: np.ndarray | None = None,
    attributes: np.ndarray | None = None,
    source_face: int = 0,
    exemplar_face: int = 0,
    align: str = "auto",
    feather: float = DEFAULT_FEATHER,
    names: tuple[str, str] = ("source", "exemplar"),
) -> np.ndarray:
    """Edits one face of the photo `source` with the same region of a face of `exemplar` (uint8 RGB images).

    Give `regions` (names, on the source face's own landmarks) or `mask` (in the source image's coordinates,
    [H, W] or [H, W, 1], > 0.5 = edit). `attributes` as for `Editor.edit`; `names` name the images in errors.
    Returns uint8 [H, W, 3] like `source`: with the edited region pasted back, or the model's output when the
    source was given aligned.
    """
    if (regions is None) == (mask is None):
        raise ValueError("Give exactly one of regions and mask.")
    size = editor.info.image_size
    region_names = parse_regions(regions) if regions is not None else None
    source_crop = face_crop(source, editor.info, align, source_face, names[0])
    exemplar_crop = face_crop(exemplar, editor.info, align, exemplar_face, names[1])
    if region_names is not None:
        crop_mask = masks.region_mask(source_crop.landmarks, region_names, size).numpy()
    else:
        assert mask is not None  # exactly one of regions and mask
        if np.shape(mask)[:2] != np.shape(source)[:2]:
            raise ValueError(
                f"The mask is {np.shape(mask)[0]}x{np.shape(mask)[1]}; it must have the size of "
                f"{names[0]}, {np.shape(source)[0]}x{np.shape(source)[1]} (height x width)."
            )
        crop_mask = mask_to_crop(mask, source_crop, size)
    return edit_crops(editor, source, source_crop, exemplar_crop, crop_mask, attributes, feather)


def edit_crops(
    editor: CropEditor,
    source: np.ndarray,
    source_crop: FaceCrop,
    exemplar_crop: FaceCrop,
    crop_mask: np.ndarray,
    attributes: np.ndarray | None = None,
    feather: float = DEFAULT_FEATHER,
) -> np.ndarray:
    """Edits aligned crops of the photo `source` and an exemplar with a mask in the source crop ([S, S, 1], > 0.5
    = edit) and pastes the edit back into `source` (or returns the model's output for an aligned source)."""
    edited = editor.edit(source_crop.image, exemplar_crop.image, crop_mask, attributes)
    if source_crop.aligned_input:
        return edited
    return paste_back(source, edited, crop_mask, source_crop, feather)


def compose_crops(
    editor: CropEditor,
    source: np.ndarray,
    source_crop: FaceCrop,
    exemplar_crops: Sequence[FaceCrop],
    part_masks: np.ndarray,
    strengths: Sequence[float] | None = None,
    attributes: Sequence[np.ndarray | None] | None = None,
    feather: float = DEFAULT_FEATHER,
) -> np.ndarray:
    """`edit_crops` for a composed edit (`Editor.edit_composed`): part k fills part_masks[k] ([K, S, S, 1] in the
    source crop) from exemplar_crops[k] at strengths[k] with attributes[k]; the union of the parts is pasted back
    into `source` (or the model's output is returned for an aligned source)."""
    part_masks = np.asarray(part_masks, np.float32)
    edited = editor.edit_composed(
        source_crop.image, np.stack([crop.image for crop in exemplar_crops]), part_masks, strengths, attributes
    )
    if source_crop.aligned_input:
        return edited
    return paste_back(source, edited, part_masks.max(axis=0), source_crop, feather)


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise ValueError(
            f"{name} must be a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape} "
            "(read files with ebgan_tf.images.load_image)."
        )
    return image
