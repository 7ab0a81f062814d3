"""Procedural synthetic faces: the built-in data set, with CelebA's labels and landmarks.

A face is a `FaceParams`: its seed, the 40 CelebA attributes (the rendered ones set, the rest False) and
continuous style factors. Every attribute and style factor belongs to one region (`ATTRIBUTE_REGIONS`,
`STYLE_REGIONS`): the parts `eyes`, `brows`, `nose`, `mouth`, the `face` (skin, cheeks, stubble, bangs),
the `hair` and `body` around it, and the `frame` (pose and where the mouth sits), which no region edit changes.

Drawing is in face units (the interocular distance d = 1, origin at the eye midpoint, y down), mapped by
the pose onto a supersampled canvas and box-downsampled for smooth edges. Each region is drawn as a layer
clipped to its mask from `masks.region_mask` on the face's landmarks, so a region's attributes and style
change pixels only inside that region's mask. `render_swap` draws "face A with region R from face B": B's
region factors at A's pose, clipped to A's masks, the ground truth for exemplar transfer and filtering.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFilter

from ebgan_tf import config
from ebgan_tf.data import masks

EYE_LINE = 0.41  # height of the eye line at the image centre, as a fraction of the image size
INTEROCULAR = 0.25  # interocular distance at pose_scale 1, as a fraction of the image size
MIN_CANVAS = 256  # faces are drawn on a canvas of at least this size, then box-downsampled

HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair")
FACE_ATTRIBUTES: tuple[str, ...] = ("Male", "Pale_Skin", "Rosy_Cheeks", "Bangs")
DERIVED_ATTRIBUTES: tuple[str, ...] = ("No_Beard",)  # No_Beard = neither Mustache nor Goatee

# Where each rendered attribute changes pixels: a region of masks.region_mask, or "hair" (outside the face mask).
ATTRIBUTE_REGIONS: dict[str, str] = {
    **{name: region for region, names in config.SYNTHETIC_REGION_ATTRIBUTES.items() for name in names},
    "No_Beard": "mouth",
    **{name: "face" for name in FACE_ATTRIBUTES},
    **{name: "hair" for name in HAIR_COLOURS},
}
RENDERED_ATTRIBUTES: tuple[str, ...] = tuple(name for name in config.CELEBA_ATTRIBUTES if name in ATTRIBUTE_REGIONS)

# Probability of each independently sampled binary attribute.
ATTRIBUTE_PROBABILITIES: dict[str, float] = {
    "Male": 0.5,
    "Pale_Skin": 0.3,
    "Rosy_Cheeks": 0.3,
    "Bangs": 0.3,
    "Eyeglasses": 0.3,
    "Narrow_Eyes": 0.3,
    "Bushy_Eyebrows": 0.35,
    "Arched_Eyebrows": 0.35,
    "Big_Nose": 0.35,
    "Pointy_Nose": 0.35,
    "Mustache": 0.3,
    "Goatee": 0.3,
    "Smiling": 0.5,
    "Mouth_Slightly_Open": 0.45,
    "Wearing_Lipstick": 0.35,
    "Big_Lips": 0.35,
}
# Hair colour is one draw: each CelebA colour, or auburn (no hair-colour attribute set).
HAIR_COLOUR_PROBABILITIES: dict[str, float] = {
    "Black_Hair": 0.24,
    "Brown_Hair": 0.24,
    "Blond_Hair": 0.22,
    "Gray_Hair": 0.22,
    "auburn": 0.08,
}

# Continuous style factors: name -> (region, low, high), sampled uniformly. Lengths are in units of d.
STYLE_RANGES: dict[str, tuple[str, float, float]] = {
    "pose_shift_x": ("frame", -0.03, 0.03),  # fraction of the image size
    "pose_shift_y": ("frame", -0.03, 0.03),
    "pose_scale": ("frame", 0.93, 1.07),
    "pose_angle": ("frame", -3.0, 3.0),  # degrees, clockwise on screen
    "mouth_drop": ("frame", 1.0, 1.1),  # eye line to mouth line
    "background_hue": ("body", 0.0, 1.0),
    "background_value": ("body", 0.35, 0.9),
    "clothing_hue": ("body", 0.0, 1.0),
    "clothing_value": ("body", 0.2, 0.8),
    "hair_shade": ("body", 0.0, 1.0),
    "hair_length": ("body", 0.0, 1.0),
    "skin_tone": ("face", 0.0, 1.0),
    "cheek_blush": ("face", 0.0, 0.12),
    "bangs_length": ("face", 0.6, 0.7),
    "eye_width": ("eyes", 0.19, 0.23),
    "eye_height": ("eyes", 0.085, 0.11),
    "eye_tilt": ("eyes", -0.02, 0.03),
    "iris_hue": ("eyes", 0.0, 1.0),
    "glasses_shade": ("eyes", 0.0, 1.0),
    "brow_length": ("brows", 0.48, 0.55),
    "brow_thickness": ("brows", 0.04, 0.06),
    "brow_tilt": ("brows", -0.03, 0.04),
    "brow_shade": ("brows", 0.0, 1.0),
    "nose_width": ("nose", 0.12, 0.15),
    "nose_length": ("nose", 0.57, 0.63),
    "nose_shade": ("nose", 0.5, 1.0),
    "mouth_width": ("mouth", 0.78, 0.9),
    "lip_thickness": ("mouth", 0.07, 0.09),
    "lip_hue": ("mouth", 0.0, 1.0),
    "beard_shade": ("mouth", 0.0, 1.0),
}
# Colours copied at sampling time so they stay with their region: the neck matches the face's skin and the
# bangs match the hair, yet toggling Pale_Skin (face) leaves the neck and a hair colour leaves the bangs alone.
COPIED_COLOURS: dict[str, str] = {"neck": "body", "bangs": "face"}
STYLE_REGIONS: dict[str, str] = {
    **{name: region for name, (region, _, _) in STYLE_RANGES.items()},
    **{
        f"{colour}_{channel}": region
        for colour, region in COPIED_COLOURS.items()
        for channel in ("red", "green", "blue")
    },
}
STYLE_NAMES: tuple[str, ...] = tuple(STYLE_REGIONS)

# Regions drawn as clipped layers, in drawing order (later layers cover earlier ones).
LAYERS: tuple[str, ...] = ("face", "brows", "eyes", "nose", "mouth")

Colour = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class FaceParams:
    """Everything that determines a synthetic face: `render_face(params, size)` draws it at any size."""

    seed: int
    attributes: dict[str, bool]  # all 40 CelebA names; the ones not rendered are False
    style: dict[str, float]  # every name of STYLE_NAMES, pose included


@dataclasses.dataclass(frozen=True)
class RenderedFace:
    """A drawn face: image uint8 [size, size, 3] and landmarks float32 [5, 2] (x, y) in CelebA order."""

    image: np.ndarray
    landmarks: np.ndarray


def sample_face(seed: int) -> FaceParams:
    """Draws the attributes and style of face number `seed` (deterministic)."""
    rng = np.random.default_rng(seed)
    attributes = {name: bool(rng.random() < p) for name, p in ATTRIBUTE_PROBABILITIES.items()}
    hair = rng.choice(list(HAIR_COLOUR_PROBABILITIES), p=list(HAIR_COLOUR_PROBABILITIES.values()))
    attributes.update({name: name == hair for name in HAIR_COLOURS})
    style = {name: float(rng.uniform(low, high)) for name, (_, low, high) in STYLE_RANGES.items()}
    partial = FaceParams(seed, _complete_attributes(attributes), style)
    copies = {"neck": _skin_colour(partial), "bangs": _hair_colour(partial)}
    for colour, rgb in copies.items():
        style.update({f"{colour}_{channel}": value / 255.0 for channel, value in zip(("red", "green", "blue"), rgb)})
    return FaceParams(seed, partial.attributes, style)


def with_attributes(params: FaceParams, overrides: Mapping[str, bool]) -> FaceParams:
    """A copy of `params` with some rendered attributes set; No_Beard follows Mustache and Goatee.

    Setting a hair colour True clears the others; clearing the current one leaves auburn hair (no colour set).
    """
    config.validate_attribute_names(list(overrides), RENDERED_ATTRIBUTES)
    derived = [name for name in overrides if name in DERIVED_ATTRIBUTES]
    if derived:
        raise ValueError(f"{', '.join(derived)} cannot be set: No_Beard is derived (neither Mustache nor Goatee).")
    chosen_hair = [name for name in HAIR_COLOURS if overrides.get(name)]
    if len(chosen_hair) > 1:
        raise ValueError(f"Hair colours are exclusive; got {', '.join(chosen_hair)} all True.")
    attributes = dict(params.attributes)
    if chosen_hair:
        attributes.update({name: False for name in HAIR_COLOURS})
    attributes.update({name: bool(value) for name, value in overrides.items()})
    return dataclasses.replace(params, attributes=_complete_attributes(attributes))


def swap_regions(regions: Sequence[str] | str) -> frozenset[str]:
    """The attribute/style regions an edit of `regions` replaces (components = 4 parts; face = parts + face)."""
    names = config.parse_regions(regions)
    expanded: set[str] = set()
    for name in names:
        if name in ("components", "face"):
            expanded.update(masks.PARTS)
        expanded.add(name)
    expanded.discard("components")
    return frozenset(expanded)


def render_face(params: FaceParams, size: int) -> RenderedFace:
    """Draws `params` as a size x size image, with its five landmarks."""
    return _render(params, size, clip_landmarks=face_landmarks(params, size))


def render_swap(
    face_a: FaceParams, face_b: FaceParams, regions: Sequence[str] | str, size: int, drop: Sequence[str] = ()
) -> RenderedFace:
    """Face A with `regions` drawn from face B: A's pose and everything outside A's region mask; inside it,
    B's attributes and style of those regions, with the attributes named in `drop` forced off.

    The landmarks are those of the drawn face (A's eyes and mouth line, B's mouth width if the mouth is swapped).
    """
    swapped = swap_regions(regions)
    allowed = [
        name for name, region in ATTRIBUTE_REGIONS.items() if region in swapped and name not in DERIVED_ATTRIBUTES
    ]
    outside = [name for name in drop if name not in allowed]
    if outside:
        raise ValueError(
            f"Cannot drop {', '.join(map(repr, outside))}: not an attribute drawn in "
            f"{', '.join(sorted(swapped))}; droppable attributes: {', '.join(allowed)}."
        )
    face_b = with_attributes(face_b, {name: False for name in drop})
    attributes = {
        name: face_b.attributes[name] if ATTRIBUTE_REGIONS.get(name) in swapped else value
        for name, value in face_a.attributes.items()
    }
    style = {
        name: face_b.style[name] if STYLE_REGIONS[name] in swapped else value for name, value in face_a.style.items()
    }
    mixed = FaceParams(face_a.seed, _complete_attributes(attributes), style)
    return _render(mixed, size, clip_landmarks=face_landmarks(face_a, size))


def face_landmarks(params: FaceParams, size: int) -> np.ndarray:
    """The five CelebA landmarks float32 [5, 2] (x, y pixel coordinates, masks.py convention)."""
    style = params.style
    half_mouth = _mouth_width(params) / 2.0
    points = [
        (-0.5, 0.0),
        (0.5, 0.0),
        (0.0, style["nose_length"]),
        (-half_mouth, style["mouth_drop"]),
        (half_mouth, style["mouth_drop"]),
    ]
    return _Pose.of(params, size, factor=1).to_image(points).astype(np.float32)


def _complete_attributes(rendered: Mapping[str, bool]) -> dict[str, bool]:
    """All 40 CelebA names: the rendered ones from `rendered`, No_Beard derived, the rest False."""
    attributes = {name: bool(rendered.get(name, False)) for name in config.CELEBA_ATTRIBUTES}
    attributes["No_Beard"] = not (attributes["Mustache"] or attributes["Goatee"])
    return attributes


# ----------------------------------------------------------------------------------------------- geometry


@dataclasses.dataclass(frozen=True)
class _Pose:
    """Maps face units (d = 1, origin at the eye midpoint, y down) to pixels of a canvas `factor` times larger."""

    origin: np.ndarray  # eye midpoint in output pixels
    unit: float  # d in output pixels
    rotation: np.ndarray  # 2 x 2
    factor: int

    @classmethod
    def of(cls, params: FaceParams, size: int, factor: int) -> _Pose:
        style = params.style
        angle = math.radians(style["pose_angle"])
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        origin = np.array([size * (0.5 + style["pose_shift_x"]), size * (EYE_LINE + style["pose_shift_y"])])
        return cls(origin, size * INTEROCULAR * style["pose_scale"], rotation, factor)

    def to_image(self, points) -> np.ndarray:
        """Face-unit points [N, 2] -> output pixel coordinates [N, 2]."""
        return self.origin + self.unit * np.asarray(points, np.float64).reshape(-1, 2) @ self.rotation.T

    def length(self, value: float) -> float:
        return value * self.unit * self.factor


def _ellipse(cx: float, cy: float, rx: float, ry: float, count: int = 36) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def _band(xs: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Polygon between two curves y = top(x) and y = bottom(x)."""
    return np.concatenate([np.stack([xs, top], 1), np.stack([xs[::-1], bottom[::-1]], 1)])


# ------------------------------------------------------------------------------------------------ colours


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> Colour:
    return cast(Colour, tuple(float(x + (y - x) * t) for x, y in zip(a, b)))


def _palette(stops: Sequence[Sequence[float]], t: float) -> Colour:
    position = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    index = min(int(position), len(stops) - 2)
    return _mix(stops[index], stops[index + 1], position - index)


def _scale(colour: Sequence[float], factor: float) -> Colour:
    return cast(Colour, tuple(float(c * factor) for c in colour))


def _rgb(colour: Sequence[float]) -> tuple[int, int, int]:
    return cast(tuple[int, int, int], tuple(int(round(min(max(c, 0.0), 255.0))) for c in colour))


def _hsv(hue: float, saturation: float, value: float) -> Colour:
    return cast(Colour, tuple(255.0 * c for c in colorsys.hsv_to_rgb(hue, saturation, value)))


def _skin_colour(params: FaceParams) -> Colour:
    skin = _mix((232, 190, 160), (150, 100, 70), params.style["skin_tone"])
    return _mix(skin, (250, 236, 232), 0.72) if params.attributes["Pale_Skin"] else skin


_HAIR_RANGES: dict[str, tuple[Colour, Colour]] = {
    "Black_Hair": ((18, 14, 12), (45, 34, 28)),
    "Brown_Hair": ((85, 50, 28), (135, 90, 52)),
    "Blond_Hair": ((205, 170, 100), (238, 214, 152)),
    "Gray_Hair": ((140, 140, 142), (205, 205, 208)),
    "auburn": ((125, 48, 26), (170, 80, 42)),
}


def _hair_colour(params: FaceParams) -> Colour:
    name = next((name for name in HAIR_COLOURS if params.attributes[name]), "auburn")
    return _mix(*_HAIR_RANGES[name], params.style["hair_shade"])


def _copied_colour(params: FaceParams, colour: str) -> Colour:
    return cast(Colour, tuple(255.0 * params.style[f"{colour}_{channel}"] for channel in ("red", "green", "blue")))


def _mouth_width(params: FaceParams) -> float:
    return params.style["mouth_width"] + (0.1 if params.attributes["Smiling"] else 0.0)


# ------------------------------------------------------------------------------------------------ drawing


@functools.lru_cache(maxsize=16)
def _layer_mask_fn(size: int):
    """A traced function: landmarks float32 [5, 2] -> float32 [len(LAYERS), size, size] masks of the layers."""

    @tf.function(input_signature=[tf.TensorSpec([5, 2], tf.float32)])
    def layer_masks(landmarks):
        return tf.stack([masks.region_mask(landmarks, region, size)[..., 0] for region in LAYERS])

    return layer_masks.get_concrete_function()


class _Painter:
    """Draws on an RGB image that is the window of the canvas starting at canvas pixel `offset`."""

    def __init__(self, image: Image.Image, pose: _Pose, offset: tuple[int, int] | np.ndarray = (0, 0)):
        self.image = image
        self.pose = pose
        self.offset = np.array(offset, np.float64)
        self.draw = ImageDraw.Draw(image)

    def xy(self, points) -> np.ndarray:
        """Face-unit points -> [N, 2] coordinates in this image (pixel j has its centre at j)."""
        return self.pose.to_image(points) * self.pose.factor - 0.5 - self.offset

    def polygon(self, points, colour: Sequence[float]) -> None:
        self.draw.polygon(self.xy(points).ravel().tolist(), fill=_rgb(colour))

    def line(self, points, colour: Sequence[float], width: float, closed: bool = False) -> None:
        points = np.asarray(points)
        if closed:
            points = np.concatenate([points, points[:1]])
        self.draw.line(
            self.xy(points).ravel().tolist(),
            fill=_rgb(colour),
            width=max(1, round(self.pose.length(width))),
            joint="curve",
        )

    def soft(self, shapes: Sequence, colour: Sequence[float], opacity: float, blur: float) -> None:
        """Paints `colour` with `opacity` over the polygons `shapes`, edges blurred over `blur` face units."""
        radius = self.pose.length(blur)
        outlines = [self.xy(points) for points in shapes]
        corners = np.concatenate(outlines)
        low = np.maximum(np.floor(corners.min(0) - 2 * radius - 1), 0).astype(int)
        high = np.minimum(np.ceil(corners.max(0) + 2 * radius + 2), self.image.size).astype(int)
        if np.any(high <= low):
            return
        coverage = Image.new("L", tuple(high - low), 0)
        draw = ImageDraw.Draw(coverage)
        for outline in outlines:
            draw.polygon((outline - low).ravel().tolist(), fill=round(255 * opacity))
        if radius >= 1:
            coverage = coverage.filter(ImageFilter.BoxBlur(radius))
        self.image.paste(_rgb(colour), (*low, *high), coverage)


def _render(params: FaceParams, size: int, clip_landmarks: np.ndarray) -> RenderedFace:
    """Draws `params`, clipping each layer to its region mask on `clip_landmarks`."""
    if size < 16:
        raise ValueError(f"Image size must be at least 16 pixels, got {size}.")
    factor = max(2, -(-MIN_CANVAS // size))
    pose = _Pose.of(params, size, factor)
    canvas = _background(params, size * factor)
    _draw_body(_Painter(canvas, pose), params)
    layer_masks = _layer_mask_fn(size)(tf.constant(clip_landmarks, tf.float32)).numpy()
    for region, mask in zip(LAYERS, layer_masks):
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            continue
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        box = (left * factor, top * factor, right * factor, bottom * factor)
        window = (mask[top:bottom, left:right] * 255).astype(np.uint8)
        clip = Image.fromarray(window).resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.NEAREST)
        layer = canvas.crop(box)
        _LAYER_DRAWERS[region](_Painter(layer, pose, box[:2]), params, clip)
        canvas.paste(layer, box[:2], clip)
    image = np.asarray(canvas.reduce(factor), dtype=np.uint8)
    return RenderedFace(image=image, landmarks=face_landmarks(params, size))


def _background(params: FaceParams, canvas_size: int) -> Image.Image:
    style = params.style
    top = np.array(_hsv(style["background_hue"], 0.25, style["background_value"]))
    bottom = np.array(_hsv(style["background_hue"], 0.3, 0.8 * style["background_value"]))
    column = (top + (bottom - top) * np.linspace(0.0, 1.0, canvas_size)[:, None]).round().astype(np.uint8)
    return Image.fromarray(column[:, None, :]).resize((canvas_size, canvas_size), Image.Resampling.NEAREST)


def _draw_body(paint: _Painter, params: FaceParams) -> None:
    """Clothing, neck and hair: A's in every edit (outside every region mask but the hair's inner edge)."""
    style = params.style
    hair = _hair_colour(params)
    paint.polygon(_ellipse(0.0, 3.0, 2.5, 0.95), _hsv(style["clothing_hue"], 0.5, style["clothing_value"]))
    neck = _copied_colour(params, "neck")
    paint.polygon([(-0.55, 1.0), (0.55, 1.0), (0.62, 2.35), (0.0, 2.5), (-0.62, 2.35)], _scale(neck, 0.88))
    paint.polygon(_ellipse(0.0, -0.05, 1.52, 1.55), hair)  # the head behind the face
    length = 0.5 + 2.0 * style["hair_length"]  # how far the side locks fall below the eye line
    for side in (-1.0, 1.0):
        lock = [
            (side * 1.0, -0.6),
            (side * 1.53, -0.3),
            (side * (1.55 + 0.1 * style["hair_length"]), length),
            (side * 1.3, length + 0.12),
            (side * 1.05, length - 0.1),
        ]
        paint.polygon(lock, hair)
        for offset in (0.15, 0.3):  # a few strands for texture
            xs = side * (1.5 - offset + 0.06 * np.sin(np.linspace(0, 3, 8)))
            paint.line(np.stack([xs, np.linspace(-0.4, length - 0.1, 8)], 1), _scale(hair, 0.8), 0.03)
    for offset in (-0.5, 0.0, 0.5):
        arc = _ellipse(offset * 0.4, -0.15, 1.35 - abs(offset) * 0.3, 1.42, 48)[26:46]
        paint.line(arc, _scale(hair, 0.82), 0.03)


_EDGE_SHADE = [round((255 - value) * 0.9) for value in range(256)]  # blurred mask -> shadow at the face edge


def _draw_face(paint: _Painter, params: FaceParams, clip: Image.Image) -> None:
    """Skin over the whole face mask, shaded at its edge; Male stubble, cheeks, bangs."""
    attributes, style = params.attributes, params.style
    skin = _skin_colour(params)
    paint.image.paste(_rgb(skin), (0, 0, *paint.image.size))
    edge = clip.filter(ImageFilter.BoxBlur(paint.pose.length(0.12))).point(_EDGE_SHADE)
    paint.image.paste(_rgb(_scale(skin, 0.78)), (0, 0, *paint.image.size), edge)
    mouth = style["mouth_drop"]
    if attributes["Male"]:
        jaw = [
            (-1.3, 1.15),
            (-0.8, 1.0),
            (-0.45, 0.8),
            (0.0, mouth - 0.28),
            (0.45, 0.8),
            (0.8, 1.0),
            (1.3, 1.15),
            (1.3, 2.3),
            (-1.3, 2.3),
        ]
        paint.soft([jaw], _mix(skin, (60, 66, 90), 0.3), 1.0, 0.2)
    blush = 0.6 if attributes["Rosy_Cheeks"] else style["cheek_blush"]
    paint.soft([_ellipse(side * 0.64, 0.52, 0.22, 0.14) for side in (-1, 1)], (228, 60, 80), blush, 0.06)
    if attributes["Bangs"]:
        bangs = _copied_colour(params, "bangs")
        xs = np.linspace(-1.5, 1.5, 25)
        fringe = -style["bangs_length"] + 0.05 * np.abs(np.sin(xs * 7.0)) - 0.12 * xs**2
        paint.polygon(_band(xs, np.full_like(xs, -2.2), fringe), bangs)
        for x in np.linspace(-1.2, 1.2, 9):
            end = -style["bangs_length"] - 0.12 * x * x
            paint.line([(x * 0.7, -1.3), (x, end)], _scale(bangs, 0.8), 0.025)


def _draw_brows(paint: _Painter, params: FaceParams, clip: Image.Image) -> None:
    attributes, style = params.attributes, params.style
    colour = _mix((25, 18, 15), (110, 80, 55), style["brow_shade"])
    thickness = 0.11 if attributes["Bushy_Eyebrows"] else style["brow_thickness"]
    u = np.linspace(0.0, 1.0, 16)  # inner end -> outer end
    if attributes["Arched_Eyebrows"]:
        lift = 0.06 * np.clip(1.0 - np.abs(u - 0.6) / 0.6, 0.0, 1.0) ** 0.8
    else:
        lift = 0.02 * np.sin(np.pi * u)
    centre = -0.39 - style["brow_tilt"] * u - lift
    half = 0.5 * thickness * (1.0 - 0.45 * u)
    for side in (-1.0, 1.0):
        xs = side * (0.19 + style["brow_length"] * u)
        paint.polygon(_band(xs, centre - half, centre + half), colour)


def _draw_eyes(paint: _Painter, params: FaceParams, clip: Image.Image) -> None:
    attributes, style = params.attributes, params.style
    skin = _skin_colour(params)
    width = style["eye_width"]
    height = style["eye_height"] * (0.4 if attributes["Narrow_Eyes"] else 1.0)
    u = np.linspace(-1.0, 1.0, 17)  # inner corner -> outer corner
    bulge = (1.0 - u * u) ** 0.8
    base = -style["eye_tilt"] * (u + 1.0) / 2.0
    openings, lids = [], []
    for side in (-1.0, 1.0):
        xs = side * (0.5 + width * u)
        upper, lower = base - height * bulge * (1.0 + 0.12 * u), base + 0.75 * height * bulge
        paint.line(np.stack([xs, upper - 0.035], 1)[4:-3], _scale(skin, 0.82), 0.02)  # lid crease
        openings.append(_band(xs, upper, lower))
        lids.append((np.stack([xs, upper], 1), np.stack([xs, lower], 1)))
    for opening in openings:
        paint.polygon(opening, (240, 238, 232))
    iris = _palette([(85, 50, 25), (125, 92, 45), (75, 115, 70), (70, 105, 165), (110, 118, 128)], style["iris_hue"])
    irises = paint.image.copy()
    iris_paint = _Painter(irises, paint.pose, paint.offset)
    for side in (-1.0, 1.0):
        iris_paint.polygon(_ellipse(side * 0.5, 0.0, 0.078, 0.078, 24), iris)
        iris_paint.polygon(_ellipse(side * 0.5, 0.0, 0.034, 0.034, 16), (15, 12, 12))
    inside = Image.new("L", paint.image.size, 0)
    for opening in openings:
        ImageDraw.Draw(inside).polygon(paint.xy(opening).ravel().tolist(), fill=255)
    paint.image.paste(irises, (0, 0), inside)
    lash = 0.05 if attributes["Narrow_Eyes"] else 0.035
    for upper, lower in lids:
        paint.line(upper, (35, 22, 20), lash)
        paint.line(lower, _scale(skin, 0.7), 0.015)
    if attributes["Eyeglasses"]:
        frame = _mix((12, 12, 16), (75, 42, 25), style["glasses_shade"])
        for side in (-1.0, 1.0):
            paint.line(_ellipse(side * 0.5, 0.015, 0.265, 0.155, 32), frame, 0.06, closed=True)
        paint.line([(-0.23, -0.03), (0.0, -0.06), (0.23, -0.03)], frame, 0.05)


def _draw_nose(paint: _Painter, params: FaceParams, clip: Image.Image) -> None:
    attributes, style = params.attributes, params.style
    skin = _skin_colour(params)
    shadow = _scale(skin, 1.0 - 0.3 * style["nose_shade"])
    tip = style["nose_length"]
    big = attributes["Big_Nose"]
    width = style["nose_width"] * (1.7 if big else 1.0)
    bridge = [
        [
            (side * 0.06, 0.18),
            (side * 0.1, 0.2),
            (side * 0.55 * width + side * 0.03, tip - 0.1),
            (side * 0.5 * width, tip - 0.08),
        ]
        for side in (-1, 1)
    ]
    paint.soft(bridge, shadow, 0.8, 0.025)
    paint.soft([_ellipse(0.0, tip - 0.01, 0.5 * width, 0.07 if big else 0.05)], _scale(skin, 0.84), 0.9, 0.02)
    angles = np.linspace(-1.0, 1.6, 8)
    for side in (-1.0, 1.0):  # outer edges of the wings
        wing = np.stack([side * width * (0.75 + 0.3 * np.cos(angles)), tip - 0.01 + 0.08 * np.sin(angles)], 1)
        paint.line(wing, _scale(shadow, 0.75), 0.035 if big else 0.025)
    if attributes["Pointy_Nose"]:
        paint.line([(0.0, 0.22), (0.0, tip + 0.03)], _scale(skin, 1.15), 0.04)  # bridge highlight
        paint.line(
            [(-0.7 * width, tip - 0.16), (0.0, tip + 0.08), (0.7 * width, tip - 0.16)], _scale(shadow, 0.5), 0.055
        )
    else:
        paint.line(_ellipse(0.0, tip - 0.03, 0.55 * width, 0.065, 24)[1:12], _scale(shadow, 0.85), 0.03)
    nostril = 1.6 if big else 1.0
    for side in (-1.0, 1.0):
        paint.polygon(
            _ellipse(side * 0.42 * width, tip + 0.025, 0.2 * width * nostril, 0.028 * nostril, 16), (70, 38, 32)
        )


def _draw_mouth(paint: _Painter, params: FaceParams, clip: Image.Image) -> None:
    attributes, style = params.attributes, params.style
    line_y = style["mouth_drop"]
    half = _mouth_width(params) / 2.0
    u = np.linspace(-1.0, 1.0, 25)
    xs = half * u
    smiling, open_mouth = attributes["Smiling"], attributes["Mouth_Slightly_Open"]
    curve = line_y + (0.12 if smiling else 0.005) * (1.0 - u * u)
    gap = (0.1 if smiling else 0.07) if open_mouth else (0.045 if smiling else 0.0)  # a smile shows teeth
    thickness = style["lip_thickness"] * (1.7 if attributes["Big_Lips"] else 1.0)
    profile = (1.0 - u * u) ** 0.6
    bow = 1.0 - 0.3 * np.exp(-((u / 0.15) ** 2))  # cupid's bow
    upper_top = curve - 0.5 * gap * profile - thickness * profile * bow
    upper_bottom = curve - 0.5 * gap * profile
    lower_top = curve + 0.5 * gap * profile
    lower_bottom = lower_top + 1.35 * thickness * profile
    beard = _mix((22, 16, 14), (90, 60, 40), style["beard_shade"])
    if attributes["Goatee"]:
        gx = np.linspace(-0.23, 0.23, 13)
        top = np.interp(gx, xs, lower_bottom) + 0.015
        paint.polygon(_band(gx, top, np.maximum(top + 0.08, line_y + 0.49 - 0.12 * (gx / 0.23) ** 2)), beard)
    if open_mouth:
        paint.polygon(_band(xs, upper_bottom, lower_top), (55, 15, 22))
    if smiling:
        teeth = np.abs(u) < 0.75
        depth = (0.5 if open_mouth else 1.0) * gap * profile[teeth]
        paint.polygon(_band(xs[teeth], upper_bottom[teeth], upper_bottom[teeth] + depth), (236, 230, 218))
    if attributes["Wearing_Lipstick"]:
        lips = _mix((208, 18, 42), (165, 8, 62), style["lip_hue"])
    else:
        lips = _mix((188, 112, 112), (150, 86, 76), style["lip_hue"])
    paint.polygon(_band(xs, upper_top, upper_bottom), _scale(lips, 0.9))
    paint.polygon(_band(xs, lower_top, lower_bottom), lips)
    for side in (-1.0, 1.0):
        paint.polygon(_ellipse(side * half, line_y, 0.03, 0.022, 12), _scale(lips, 0.55))
    if attributes["Mustache"]:
        reach = half + 0.06
        mx = np.linspace(-reach, reach, 25)
        bottom = np.interp(mx, xs, upper_top) - 0.01
        bottom = np.where(np.abs(mx) > half, line_y + 0.02, bottom)
        top = line_y - 0.27 + 0.13 * (mx / reach) ** 2
        paint.polygon(_band(mx, top, bottom), beard)


_LAYER_DRAWERS = {
    "face": _draw_face,
    "brows": _draw_brows,
    "eyes": _draw_eyes,
    "nose": _draw_nose,
    "mouth": _draw_mouth,
}
