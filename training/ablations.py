"""The named proxy experiments of `ebgan-ablate`: each one a training configuration, written as the settings it
changes against the synthetic64 preset, so every row of docs/EXPERIMENTS.md reruns with `ebgan-ablate --ablation=NAME`.

The proxy: 64 px synthetic faces, the synthetic64 network (base width 16), one model trained on mouth, components and
face at once unless the ablation names other regions (each example draws one), batch 16, a few hundred steps; scored
on the first test faces.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ebgan_tf.config import ATT_EBGAN, EBGAN


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One proxy configuration: the preset and variant, and what it sets beside the preset's defaults."""

    description: str
    variant: str = ATT_EBGAN
    preset: str = "synthetic64"
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # ModelConfig fields
    losses: dict[str, Any] = dataclasses.field(default_factory=dict)  # LossWeights fields
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # RunConfig fields (ema_decay, learning_rate, ...)
    regions: tuple[str, ...] = ("mouth", "components", "face")  # the regions the model trains on

    def plus(self, description: str, **changes: Any) -> Ablation:
        """This ablation with more settings: model=..., losses=..., train=... (merged), variant=... (replaced)."""
        merged: dict[str, Any] = {
            name: {**getattr(self, name), **changes.get(name, {})} for name in ("model", "losses", "train")
        }
        return dataclasses.replace(
            self, description=description, variant=changes.get("variant", self.variant), **merged
        )


# The recipe before the composite-region experiments (one global code at every decoder level), which the others change.
RECIPE = Ablation(
    "the previous recipe (one global code at every decoder level)",
    model={"code_pooling": "global"},
    losses={"exemplar_mask": "source", "cycle_fixed_encoder": False, "face_adv": None},
    train={"ema_decay": 0.0, "lr_decay_fraction": 0.0},
)
PARTS = RECIPE.plus("per-part codes", model={"code_pooling": "parts"})
PARTS_OWN = PARTS.plus("per-part codes, exemplar under its own mask", losses={"exemplar_mask": "own"})
AVERAGED = {"ema_decay": 0.99, "lr_decay_fraction": 0.3}  # a half-life of 69 steps suits runs of hundreds of steps
# The exemplar aligned to the source, with a code map instead of per-part vectors.
ALIGNED = {"code_pooling": "spatial", "exemplar_alignment": "landmarks"}
ALIGNED_TEXT = "the exemplar warped onto the source's landmarks and coded as an 8x8 map (no per-part pooling)"
CANDIDATE = PARTS_OWN.plus("per-part codes, own mask, weight average and decay", train=AVERAGED)

ABLATIONS: dict[str, Ablation] = {
    "preset": Ablation(
        "the synthetic64 preset as it stands (per-part codes, own mask, weight average and decay, "
        "encoder held fixed in E(A^b), no adversarial loss in the face's rows)"
    ),
    "recipe": RECIPE,
    "recipe_ebgan": RECIPE.plus("the previous recipe, EBGAN", variant=EBGAN),
    "recipe_ema": RECIPE.plus("the previous recipe + weight average and learning-rate decay", train=AVERAGED),
    "parts": PARTS,
    "parts_ebgan": PARTS.plus("per-part codes, EBGAN", variant=EBGAN),
    "parts_own": PARTS_OWN,
    "parts_own_ema": CANDIDATE,
    "parts_own_ema_l2": CANDIDATE.plus(
        "per-part codes, own mask, weight average and decay, + L2 hole term (100)", losses={"hole_rec_l2": 100.0}
    ),
    "parts_own_colour": PARTS_OWN.plus(
        "per-part codes, own mask, recoloured reconstruction hole (0.2)", losses={"reconstruction_colour_jitter": 0.2}
    ),
    "parts_own_ema_fixed": CANDIDATE.plus(
        "per-part codes, own mask, weight average and decay, encoder held fixed in E(A^b) (cheaper step)",
        losses={"cycle_fixed_encoder": True},
    ),
    "parts_own_ema_fixed_ebgan": CANDIDATE.plus(
        "per-part codes, own mask, weight average and decay, encoder held fixed in E(A^b), EBGAN",
        losses={"cycle_fixed_encoder": True},
        variant=EBGAN,
    ),
    "preset_single_parts": Ablation(
        "the synthetic64 preset trained on the single parts too (eyes, brows, nose)",
        regions=("mouth", "components", "face", "eyes", "brows", "nose"),
        losses={"face_adv": None},
    ),
    "preset_face_adversarial": Ablation(
        "the synthetic64 preset with the adversarial loss in the face's rows too (the preset before face_adv=0)",
        losses={"face_adv": None},
    ),
    "preset_ebgan": Ablation("the synthetic64 preset as it stands, EBGAN", variant=EBGAN),
    "preset_ebgan_cyc30": Ablation(
        "the synthetic64 preset, EBGAN, latent cycle weight 30 (10 in the preset)", variant=EBGAN, losses={"cyc": 30.0}
    ),
    "preset_ebgan_code16": Ablation(
        "the synthetic64 preset, EBGAN, a 16-channel exemplar code per part (64 in the preset)",
        variant=EBGAN,
        model={"ebgan_code_channels": 16},
    ),
    "preset_ebgan_aligned": Ablation(f"the synthetic64 preset, EBGAN, {ALIGNED_TEXT}", variant=EBGAN, model=ALIGNED),
    "preset_aligned": Ablation(f"the synthetic64 preset, {ALIGNED_TEXT}", model=ALIGNED),
    "preset_ebgan_swap_back": Ablation(
        "the synthetic64 preset, EBGAN, + swap-back loss (100)", variant=EBGAN, losses={"swap_back": 100.0}
    ),
    "paper": Ablation(
        "the paper's method on the paper's generator (no skips, no mask channel)",
        variant=EBGAN,
        preset="synthetic64_paper",
        model={"generator": "paper"},
    ),
    "paper_unet": Ablation("the paper's method on the U-Net generator", variant=EBGAN, preset="synthetic64_paper"),
}
