"""Dataclass configs and named presets.

A preset fixes everything that shapes a model (image size, widths, attribute lists) and the paper's training
defaults (loss weights 100/10/10, Adam 1e-4, batch 32). Command lines start from a preset and override fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

# The 40 CelebA attribute names, in the order of list_attr_celeba.txt.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)

# CelebA's five landmarks, in the order of list_landmarks_align_celeba.txt.
LANDMARK_NAMES: tuple[str, ...] = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")

# Named editing regions; masks for them are built from the five landmarks (ebgan_tf/data/masks.py).
REGIONS: tuple[str, ...] = ("mouth", "eyes", "brows", "nose", "components", "face")

# Attributes a region shows, for the synthetic renderer (every one is drawn inside its region).
SYNTHETIC_REGION_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "mouth": ("Mustache", "Goatee", "Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Big_Lips"),
    "eyes": ("Eyeglasses", "Narrow_Eyes"),
    "brows": ("Bushy_Eyebrows", "Arched_Eyebrows"),
    "nose": ("Big_Nose", "Pointy_Nose"),
}

# Attributes a region shows on real CelebA faces.
CELEBA_REGION_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "mouth": ("Mustache", "Goatee", "Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Big_Lips", "No_Beard"),
    "eyes": ("Eyeglasses", "Narrow_Eyes", "Bags_Under_Eyes"),
    "brows": ("Bushy_Eyebrows", "Arched_Eyebrows"),
    "nose": ("Big_Nose", "Pointy_Nose"),
}


def _with_composites(parts: dict[str, tuple[str, ...]], face_extra: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Adds `components` (union of the four parts) and `face` (components plus face-wide attributes)."""
    components = tuple(name for region in ("eyes", "brows", "nose", "mouth") for name in parts[region])
    return {**parts, "components": components, "face": components + face_extra}


CODE_POOLINGS: tuple[str, ...] = ("spatial", "global", "parts")
CODE_INJECTIONS: tuple[str, ...] = ("bottleneck", "all_scales")
GENERATORS: tuple[str, ...] = ("unet", "paper")
EXEMPLAR_MASKS: tuple[str, ...] = ("source", "own")
EXEMPLAR_ALIGNMENTS: tuple[str, ...] = ("none", "landmarks", "eyes_mouth")
EXEMPLAR_RESAMPLINGS: tuple[str, ...] = ("bilinear", "bicubic")
CLS_LABELS: tuple[str, ...] = ("exemplar", "region")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network sizes. Widths double at each downsampling step up to `max_width`."""

    image_size: int = 64
    base_width: int = 32
    max_width: int = 256
    code_downsamplings: int = 3  # image_size / 2**code_downsamplings = spatial size of the codes
    code_channels_per_attribute: int = 8  # Att-EBGAN: channels of one attribute's block of Z^B
    ebgan_code_channels: int = 64  # EBGAN: channels of the (ungated) exemplar code Z^B
    # Att-EBGAN: channels of Z^B outside every attribute block, always transferred: the region's content that no
    # label names (lip colour, mouth width), as MulGAN's attribute-irrelevant part. 0 = the paper's blocks only.
    ungated_code_channels: int = 0
    discriminator_width: int = 32
    classifier_width: int = 32
    # How E summarises the exemplar's region: "spatial" keeps the code map (h x w cells, the paper's Z^B as a
    # feature map), "global" averages it over the mask into one vector per image (pose-free: the generator places
    # the region from the mask and the context), "parts" averages it per face part (eyes, brows, nose, mouth, skin:
    # one vector each, from the exemplar's own part layout), and each part's vector feeds the generator only inside
    # the source's mask of that part (as SEAN's per-region style codes).
    code_pooling: str = "spatial"
    # Where G_dec reads the exemplar code: "bottleneck" (concatenated to Z^A only, as in the paper) or
    # "all_scales" (also modulating every decoder level: x * (1 + gamma(Z)) + beta(Z), as SPADE / StyleMapGAN).
    code_injection: str = "bottleneck"
    # The generator's shape: "unet" (G_enc reads the masked source and the mask; G_dec also takes G_enc's features
    # at every level, U-Net skips) or "paper" (exactly the paper's G_enc(A * (1 - M)) -> Z^A, G_dec(Z^A, Z^B'):
    # no mask channel, no skips).
    generator: str = "unet"
    # How E sees the exemplar: "none" (as it is), "landmarks" (warped onto the source's five landmarks by the
    # least-squares similarity and read through the source's mask, so that a spatial code lies in the source's pose)
    # or "eyes_mouth" (warped by the affine map that puts its eyes and its mouth's centre exactly on the source's,
    # read the same way). Landmarks an edit is not given are estimated. Not with per-part codes, which are pose-free
    # already.
    exemplar_alignment: str = "none"
    # How the aligned exemplar is resampled: "bilinear", or "bicubic" (Keys' cubic convolution), which blurs a thin
    # feature (a nose's outline) less at a fraction of a pixel's shift. Only with an `exemplar_alignment`.
    exemplar_resampling: str = "bilinear"

    def __post_init__(self):
        for name, valid in (
            ("code_pooling", CODE_POOLINGS),
            ("code_injection", CODE_INJECTIONS),
            ("generator", GENERATORS),
            ("exemplar_alignment", EXEMPLAR_ALIGNMENTS),
            ("exemplar_resampling", EXEMPLAR_RESAMPLINGS),
        ):
            if getattr(self, name) not in valid:
                raise ValueError(f"Unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}.")
        if self.exemplar_alignment != "none" and self.code_pooling == "parts":
            raise ValueError(
                f"exemplar_alignment={self.exemplar_alignment!r} needs code_pooling 'spatial' or 'global', not 'parts'."
            )
        if self.exemplar_resampling != "bilinear" and self.exemplar_alignment == "none":
            raise ValueError(
                f"exemplar_resampling={self.exemplar_resampling!r} needs an exemplar_alignment: nothing is resampled."
            )


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The paper's weights of L_G = adv * L_adv_g + rec * L_rec + cyc * L_cyc + cls * L_cls_g (+ hole_rec * L_hole).

    `adv` is 1 in the paper. With L_rec a per-pixel mean, the adversarial term dominates the masked region early in
    training (the composite exposes only those pixels to D); short CPU runs such as the demo lower it.
    """

    rec: float = 100.0
    cyc: float = 10.0
    cls: float = 10.0
    adv: float = 1.0
    # Beside the paper's terms: L1 of the reconstruction inside the mask only, normalised by the mask's area (the
    # paper's L_rec averages over the whole image, where the hole is a tenth of the pixels).
    hole_rec: float = 0.0
    # Stop the gradient of L_cyc's target Z^B = E(B, M), so E cannot satisfy L_cyc by making every code the same
    # (the paper leaves it open; with gradients on both sides the code collapses to a constant).
    detach_cycle_target: bool = False
    # False: L_cyc updates the generator only, never the encoder (BicycleGAN's latent regression), so E cannot
    # satisfy it through E(A^b) either. True: the paper's joint update of E and G.
    cycle_trains_encoder: bool = True
    # With cycle_trains_encoder=False: take out of the encoder's update only L_cyc's gradient through the weights
    # of E(A^b) (E held fixed there: one more forward and backward pass of E alone), not L_cyc's whole gradient
    # (a second backward pass through E(A^b), G and E(B)); L_cyc still reaches E through the code G was given.
    cycle_fixed_encoder: bool = False
    # Att-EBGAN: probability that an attribute the exemplar has is switched off in a training pair (its gate 0 and
    # the classification target 0), so that the model learns what a filtered edit looks like. 0 = the paper's.
    gate_dropout: float = 0.0
    # Beside hole_rec: the mean squared error inside the mask (the error PSNR measures), normalised likewise.
    hole_rec_l2: float = 0.0
    # Which mask E reads the exemplar through in a training pair: "source" (the source's mask, E(B, M_A), the paper's)
    # or "own" (the same region and jitter drawn on the exemplar's own landmarks, E(B, M_B)).
    exemplar_mask: str = "source"
    # In the reconstruction pair (B = A), the hole of A is recoloured (per-image random gain and offset per channel
    # up to this much) in the exemplar and in the target, so the generator must take the hole's colours from the
    # code, not from the context around it (the neck tells the face's skin tone). 0 = off.
    reconstruction_colour_jitter: float = 0.0
    # The landmark estimator learns from the source warped by a random similarity (shift up to this fraction of the
    # image, scale within 1 +- this, rotation within +- this many radians), its landmarks moved alike, so it cannot
    # memorise the training faces' integer landmarks: its estimates, which place an aligned exemplar in an edit,
    # come closer to where the landmarks really are. 0 = off.
    landmark_jitter: float = 0.0
    # The generator's adversarial weight in the rows whose region is the whole face (None = adv, as in every other
    # row). Real faces have the skin of their neck, so on the face the adversarial loss pays the generator for keeping
    # the source's skin instead of taking the exemplar's (docs/EXPERIMENTS.md, "The face's colour").
    face_adv: float | None = None
    # Beside L_cyc: A's region drawn into B by A's code, B^a = G(B, Z'^A) (in the mask `exemplar_mask` names), then
    # taken back, G(A, E(B^a)), and compared with A inside the hole (L1, normalised like hole_rec): pixel supervision
    # of the transfer path, which otherwise learns only from L_cyc, L_adv_g and (Att-EBGAN) L_cls_g. 0 = off.
    swap_back: float = 0.0
    # Beside the paper's terms: the unfiltered edit (every attribute the exemplar shows transferred) follows a trained
    # teacher's edit of the same pair inside the hole (L1, normalised like hole_rec; the teacher is the run in
    # RunConfig.teacher, e.g. an EBGAN for an Att-EBGAN): pixel supervision of the transfer path by a model that
    # transfers better. 0 = off.
    teacher: float = 0.0
    # The labels L_cls_g asks C to read on an Att-EBGAN edit: "exemplar" (B's on every attribute, some switched off
    # by the gate dropout: eq. 3 of the paper) or "region" (those on the attributes the row's region shows, A's on
    # the others, which the edit does not touch: a brows edit of a face with bangs is not asked to lose them).
    cls_labels: str = "exemplar"
    # Whether L_cls_g's classifier reads the composite of the edit (what a user receives: the generated pixels inside
    # the mask, the source's outside) instead of the whole generated image, whose pixels outside the mask no loss of
    # the transfer path holds to the source: there the generator can paint what C reads and the composite drops.
    cls_on_composite: bool = False

    def __post_init__(self):
        if self.exemplar_mask not in EXEMPLAR_MASKS:
            raise ValueError(f"Unknown exemplar_mask {self.exemplar_mask!r}; valid: {', '.join(EXEMPLAR_MASKS)}.")
        if self.cls_labels not in CLS_LABELS:
            raise ValueError(f"Unknown cls_labels {self.cls_labels!r}; valid: {', '.join(CLS_LABELS)}.")
        if not 0.0 <= self.landmark_jitter < 0.5:
            raise ValueError(f"landmark_jitter must be in [0, 0.5), got {self.landmark_jitter}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation defaults (the paper's: Adam, lr 1e-4, global batch 32)."""

    batch_size: int = 32
    learning_rate: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    loss_weights: LossWeights = LossWeights()
    same_exemplar_share: float = 0.1  # share of pairs in a batch that use B = A
    # Exponential moving average of the encoder's and generator's weights, used for evaluation and export (the
    # final weights); the momentum per step, 0 = no average (the last step's weights).
    ema_decay: float = 0.0
    # The learning rate falls linearly to 0 over this last share of the run's steps (0 = constant).
    lr_decay_fraction: float = 0.0


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named bundle of model, training and data settings."""

    name: str
    dataset: str
    model: ModelConfig
    train: TrainConfig
    region_attributes: dict[str, tuple[str, ...]]
    default_regions: tuple[str, ...] = ("mouth",)
    deviations: tuple[str, ...] = ()  # where it departs from the paper's method and defaults, and the measured reason

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def attributes_for(self, regions: Sequence[str]) -> tuple[str, ...]:
        """Attribute names a model trained on `regions` classifies and gates: the union, in preset order."""
        validate_regions(regions)
        names: list[str] = []
        for region in regions:
            for name in self.region_attributes[region]:
                if name not in names:
                    names.append(name)
        return tuple(names)


# The recipe that makes the exemplar drive the edit, measured in docs/EXPERIMENTS.md ("Making the exemplar count").
# Per-part codes, the exemplar under its own mask and the weight average: docs/EXPERIMENTS.md ("The composite regions").
RECIPE_MODEL: dict[str, Any] = dict(code_pooling="parts", code_injection="all_scales", ungated_code_channels=16)
RECIPE_LOSSES = LossWeights(
    hole_rec=100.0,
    detach_cycle_target=True,
    cycle_trains_encoder=False,
    cycle_fixed_encoder=True,
    gate_dropout=0.25,
    cls=1.0,
    exemplar_mask="own",
    face_adv=0.0,
)
RECIPE_AVERAGING: dict[str, Any] = dict(ema_decay=0.99, lr_decay_fraction=0.3)
RECIPE_DEVIATIONS: tuple[str, ...] = (
    "detach_cycle_target, cycle_trains_encoder=False: when L_cyc trains the encoder, the encoder returns one code "
    "for every face (code spread -> 0.04, exemplar gain 0 dB)",
    "hole_rec=100: the hole is a tenth of the image, so eq. 1 alone barely asks for the exemplar's content",
    "code_pooling=parts, code_injection=all_scales: one code per face part, read at every decoder level inside that "
    "part (one code for four parts blends them: components +0.6 dB, face +0.6 dB at 2000 steps)",
    "exemplar_mask=own: E reads the exemplar through its own landmarks' mask, not the source's",
    "cycle_fixed_encoder=True: E(A^b) with E's weights held fixed, a cheaper step (8.0 vs 11.8 min per 600 steps)",
    "ema_decay=0.99, lr_decay_fraction=0.3: a weight average for evaluation and export and a falling learning rate "
    "(checkpoints swung by 1-2 dB without them)",
    "face_adv=0: no adversarial loss in the whole face's rows, where it paid the generator for keeping the source's "
    "skin (its neck tells it) instead of the exemplar's (continuing the shipped run: face +1.5 dB in 600 steps, "
    "mouth and components unchanged)",
    "ungated_code_channels=16: what no label names (lip colour, mouth width) reaches Att-EBGAN's generator",
    "gate_dropout=0.25, cls=1: Att-EBGAN learns what a filtered edit looks like",
    "learning_rate=5e-4, batch_size=16: the paper's 1e-4 and 32 move too little in an hour of CPU training",
)
SYNTHETIC_PRESET_ATTRIBUTES = _with_composites(
    SYNTHETIC_REGION_ATTRIBUTES, ("Male", "Pale_Skin", "Rosy_Cheeks", "Bangs")
)
CELEBA_PRESET_ATTRIBUTES = _with_composites(
    CELEBA_REGION_ATTRIBUTES, ("Male", "Pale_Skin", "Rosy_Cheeks", "Young", "Heavy_Makeup")
)
# Sized for a CPU: about 1.2M parameters (docs/BENCHMARKS.md).
SYNTHETIC64_MODEL = ModelConfig(
    image_size=64, base_width=16, max_width=64, code_downsamplings=3, discriminator_width=16, classifier_width=16
)
CELEBA128_MODEL = ModelConfig(
    image_size=128, base_width=64, max_width=512, code_downsamplings=4, discriminator_width=64, classifier_width=64
)

PRESETS: dict[str, Preset] = {
    "synthetic64": Preset(
        name="synthetic64",
        dataset="synthetic_faces",
        model=dataclasses.replace(SYNTHETIC64_MODEL, **RECIPE_MODEL),
        train=TrainConfig(batch_size=16, learning_rate=5e-4, loss_weights=RECIPE_LOSSES, **RECIPE_AVERAGING),
        region_attributes=SYNTHETIC_PRESET_ATTRIBUTES,
        deviations=RECIPE_DEVIATIONS,
    ),
    "celeba128": Preset(
        name="celeba128",
        dataset="celeb_a",
        model=dataclasses.replace(CELEBA128_MODEL, **RECIPE_MODEL),
        # The paper's lr 1e-4 and batch 32 (GPU training).
        train=TrainConfig(loss_weights=RECIPE_LOSSES, **RECIPE_AVERAGING),
        region_attributes=CELEBA_PRESET_ATTRIBUTES,
        deviations=RECIPE_DEVIATIONS[:-1],
    ),
    # The paper's method and defaults exactly, for comparison (their exemplar code collapses: see deviations above).
    "synthetic64_paper": Preset(
        name="synthetic64_paper",
        dataset="synthetic_faces",
        model=SYNTHETIC64_MODEL,
        train=TrainConfig(),
        region_attributes=SYNTHETIC_PRESET_ATTRIBUTES,
    ),
    "celeba128_paper": Preset(
        name="celeba128_paper",
        dataset="celeb_a",
        model=CELEBA128_MODEL,
        train=TrainConfig(),
        region_attributes=CELEBA_PRESET_ATTRIBUTES,
    ),
}

EBGAN = "ebgan"
ATT_EBGAN = "att_ebgan"  # EBGAN with the attribute gate: the variant that can filter attributes
VARIANTS: tuple[str, ...] = (EBGAN, ATT_EBGAN)
VARIANT_NAMES: dict[str, str] = {EBGAN: "EBGAN", ATT_EBGAN: "Att-EBGAN"}  # as the paper and reports write them


def get_preset(name: str) -> Preset:
    """Returns the named preset; an unknown name is a ValueError listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}.")
    return PRESETS[name]


def validate_variant(variant: str) -> str:
    """Returns `variant` if known, else raises a ValueError listing the valid ones."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}.")
    return variant


def parse_regions(text: str | Sequence[str]) -> tuple[str, ...]:
    """Parses 'mouth,eyes' (or a list) into validated region names, each named once."""
    if not isinstance(text, str) and not (
        isinstance(text, (list, tuple)) and all(isinstance(name, str) for name in text)
    ):
        raise ValueError(
            f"Regions must be a comma-separated string or a list of names, got {text!r:.80}; valid "
            f"regions: {', '.join(REGIONS)}."
        )
    names = [part.strip() for part in text.split(",")] if isinstance(text, str) else list(text)
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"No region given; valid regions: {', '.join(REGIONS)}.")
    validate_regions(names)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"Region(s) {', '.join(map(repr, twice))} named more than once in {','.join(names)!r}.")
    return tuple(names)


def validate_region_weights(weights: Sequence[float], regions: Sequence[str]) -> tuple[float, ...]:
    """`weights` as floats if there is one per region, all finite, none negative and one above 0; else a ValueError."""
    weights = tuple(float(weight) for weight in weights)
    if len(weights) != len(regions):
        raise ValueError(
            f"--region_weights needs one weight per region: {len(weights)} for the {len(regions)} regions "
            f"{','.join(regions)}."
        )
    if not all(math.isfinite(weight) for weight in weights) or min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"Region weights must be finite, not negative, and one above 0, got {weights}.")
    return weights


def validate_regions(regions: Sequence[str]) -> None:
    """Raises a ValueError naming every unknown region and listing the valid ones."""
    unknown = [name for name in regions if name not in REGIONS]
    if unknown:
        raise ValueError(f"Unknown region(s) {', '.join(map(repr, unknown))}; valid regions: {', '.join(REGIONS)}.")


def validate_attribute_names(names: Sequence[str], valid: Sequence[str]) -> tuple[str, ...]:
    """Raises a ValueError naming every name not in `valid` and listing the valid ones."""
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ValueError(f"Unknown attribute(s) {', '.join(map(repr, unknown))}; valid attributes: {', '.join(valid)}.")
    return tuple(names)
