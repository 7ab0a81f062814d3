"""Edit-quality metrics, in NumPy, over batches of images.

Images are [N, H, W, C] (or one image [H, W, C]), uint8 or float; `data_range` is the span of the pixel scale
(255 for uint8, 2 for floats in [-1, 1], 1 for floats in [0, 1]). Masks are [N, H, W, 1] (or [H, W, 1]) with
values in {0, 1} (1 = edited region), broadcast over channels. Image metrics return one value per image: a
float64 array [N], or a scalar for a single image. Arithmetic is in float64, so uint8 inputs never wrap.

| metric | definition (per image unless said) | identical | empty region |
|---|---|---|---|
| `masked_l1(a, b, mask)` | mean abs(a - b) over mask pixels and channels, pixel units | 0 | ValueError |
| `masked_psnr(a, b, mask, data_range)` | 10 log10(data_range^2 / MSE) over the mask | inf / max_psnr | ValueError |
| `masked_ssim(a, b, mask, data_range)` | mean of `ssim_map` over mask pixels | 1 | ValueError |
| `ssim_map(a, b, data_range)` | SSIM at every pixel, averaged over channels [N, H, W] | 1 | - |
| `max_abs_diff_outside(a, b, mask)` | max abs(a - b) where mask == 0 | 0 | 0 (full mask) |
| `agreement(pred, target)` | per attribute: fraction of examples with pred == target | 1 | ValueError |
| `leak_rate(pred, dropped)` | per attribute: fraction of forced-off cases still predicted 1 | - | NaN |
| `kept_agreement(pred, target, dropped)` | `agreement` over the pairs not forced off | 1 | NaN |

SSIM follows Wang et al. 2004 as `tf.image.ssim` does: Gaussian window 11 x 11, sigma 1.5, K1 0.01, K2 0.03,
population statistics; at the borders the window sees the image mirrored (scipy's "reflect" mode, as skimage), so
every pixel has a value and a mask may touch the border. The windows read the whole image, not only the mask.

SSIM against the references: with the 5-pixel border excluded from the mask (the pixels whose 11 x 11 window lies
inside the image), `masked_ssim` is the mean that `tf.image.ssim` and skimage's `structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` report (measured: within 1e-6 of tf's float32,
1e-15 of skimage); with a full mask it is the mean of skimage's full SSIM map (`full=True`) and differs from their
scores only through the border pixels (measured up to 0.03 on 64 x 64 images).

Attribute labels are [N, n] arrays of {0, 1} (bool or numbers). Attribute metrics return `AttributeRates`
(per attribute [n] and their mean; attributes with no eligible example are NaN and left out of the mean).
`MetricAccumulator` keeps running mean / min / max of per-example values over a stream of batches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import overload

import numpy as np
from numpy.typing import ArrayLike

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


@overload
def _images_and_mask(
    a: ArrayLike, b: ArrayLike, mask: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]: ...


@overload
def _images_and_mask(a: ArrayLike, b: ArrayLike, mask: None = None) -> tuple[np.ndarray, np.ndarray, None, bool]: ...


def _images_and_mask(
    a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """Float64 [N,H,W,C] images, float64 [N,H,W,1] mask, and whether the input was a single image."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"Images differ in shape: {a.shape} vs {b.shape}.")
    if a.ndim not in (3, 4):
        raise ValueError(f"Images must be [N, H, W, C] or [H, W, C]; got shape {a.shape}.")
    single = a.ndim == 3
    a, b = (np.asarray(x, np.float64)[None] if single else np.asarray(x, np.float64) for x in (a, b))
    if mask is None:
        return a, b, None, single
    mask = np.asarray(mask, np.float64)
    mask = mask[None] if single else mask
    if mask.shape != a.shape[:-1] + (1,):
        raise ValueError(f"Mask shape {mask.shape} does not match images {a.shape}: expected {a.shape[:-1] + (1,)}.")
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("Mask values must be 0 or 1 (1 = edited region).")
    return a, b, mask, single


def _pixel_counts(mask: np.ndarray) -> np.ndarray:
    """Number of mask pixels per image [N]; raises ValueError naming the images whose mask is empty."""
    counts = mask.sum(axis=(1, 2, 3))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(f"Mask is empty (no pixel == 1) for image(s) {empty.tolist()}: masked metrics are undefined.")
    return counts


def _per_image(values: np.ndarray, single: bool) -> np.ndarray:
    return values[0] if single else values


def masked_l1(a: ArrayLike, b: ArrayLike, mask: ArrayLike) -> np.ndarray:
    """Mean absolute difference over the mask pixels (all channels), in the images' pixel units; [N]."""
    a, b, mask, single = _images_and_mask(a, b, mask)
    counts = _pixel_counts(mask) * a.shape[-1]
    return _per_image(np.sum(np.abs(a - b) * mask, axis=(1, 2, 3)) / counts, single)


def masked_psnr(
    a: ArrayLike, b: ArrayLike, mask: ArrayLike, data_range: float = 255.0, max_psnr: float | None = None
) -> np.ndarray:
    """PSNR in dB over the mask pixels; [N]. Identical regions give inf, or `max_psnr` when given (for averaging)."""
    a, b, mask, single = _images_and_mask(a, b, mask)
    counts = _pixel_counts(mask) * a.shape[-1]
    mse = np.sum(np.square(a - b) * mask, axis=(1, 2, 3)) / counts
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(float(data_range) ** 2 / mse)
    if max_psnr is not None:
        psnr = np.minimum(psnr, max_psnr)
    return _per_image(psnr, single)


def _gaussian_window() -> np.ndarray:
    offsets = np.arange(SSIM_WINDOW_SIZE) - (SSIM_WINDOW_SIZE - 1) / 2
    window = np.exp(-0.5 * np.square(offsets / SSIM_SIGMA))
    return window / window.sum()


def _gaussian_filter(images: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over axes -3 and -2 (H, W) of [..., H, W, C], mirror-padded ("same" size)."""
    window = _gaussian_window()
    radius = SSIM_WINDOW_SIZE // 2
    pad = [(0, 0)] * (images.ndim - 3) + [(radius, radius), (radius, radius), (0, 0)]
    padded = np.pad(images, pad, mode="symmetric")
    height, width = images.shape[-3], images.shape[-2]
    rows = sum(w * padded[..., k : k + height, :, :] for k, w in enumerate(window))
    return sum(w * rows[..., :, k : k + width, :] for k, w in enumerate(window))


def ssim_map(a: ArrayLike, b: ArrayLike, data_range: float = 255.0) -> np.ndarray:
    """Per-pixel SSIM, averaged over channels: [N, H, W] (or [H, W] for one image)."""
    a, b, _, single = _images_and_mask(a, b)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = _gaussian_filter(np.stack([a, b, a * a, b * b, a * b]))
    luminance_num = 2.0 * mean_a * mean_b
    luminance_den = np.square(mean_a) + np.square(mean_b)
    luminance = (luminance_num + c1) / (luminance_den + c1)
    contrast_structure = (2.0 * mean_ab - luminance_num + c2) / (mean_aa + mean_bb - luminance_den + c2)
    return _per_image(np.mean(luminance * contrast_structure, axis=-1), single)


def masked_ssim(a: ArrayLike, b: ArrayLike, mask: ArrayLike, data_range: float = 255.0) -> np.ndarray:
    """Mean of `ssim_map` over the mask pixels; [N]. The windows see the whole image, not only the mask."""
    a, b, mask, single = _images_and_mask(a, b, mask)
    counts = _pixel_counts(mask)
    return _per_image(np.sum(ssim_map(a, b, data_range) * mask[..., 0], axis=(1, 2)) / counts, single)


def colour_share(edited: ArrayLike, source: ArrayLike, target: ArrayLike, mask: ArrayLike) -> float:
    """How far the mean colour inside the mask moved from `source`'s toward `target`'s, pooled over the images:
    sum((e - s) . (t - s)) / sum(|t - s|^2) of the per-image mean RGB e, s, t (1: all the way to the target's
    colour, 0: the source's colour kept). NaN when no target differs from its source in mean colour."""
    target, _, _, _ = _images_and_mask(target, source, mask)
    edited, source, mask, _ = _images_and_mask(edited, source, mask)
    counts = _pixel_counts(mask)[:, None]

    def mean_colour(images: np.ndarray) -> np.ndarray:
        return np.sum(images * mask, axis=(1, 2)) / counts

    moved, wanted = mean_colour(edited) - mean_colour(source), mean_colour(target) - mean_colour(source)
    total = float(np.sum(wanted * wanted))
    return float(np.sum(moved * wanted)) / total if total > 0 else math.nan


def max_abs_diff_outside(a: ArrayLike, b: ArrayLike, mask: ArrayLike) -> np.ndarray:
    """Largest abs(a - b) over pixels where mask == 0 (0 when the mask covers everything); [N]."""
    a, b, mask, single = _images_and_mask(a, b, mask)
    return _per_image(np.max(np.abs(a - b) * (1.0 - mask), axis=(1, 2, 3)), single)


@dataclasses.dataclass(frozen=True)
class AttributeRates:
    """A rate per attribute ([n], NaN where no example was eligible) and the mean over the defined ones."""

    per_attribute: np.ndarray
    mean: float


def _labels(name: str, labels: ArrayLike) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name} must be [N, n_attributes]; got shape {labels.shape}.")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"{name} must hold 0/1 labels (threshold classifier outputs first).")
    return labels.astype(bool)


def _rates(hits: np.ndarray, eligible: np.ndarray, what: str) -> AttributeRates:
    """Per-attribute fraction of eligible examples that are hits."""
    counts = eligible.sum(axis=0)
    if not counts.any():
        raise ValueError(f"No example is eligible for {what}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        per_attribute = (hits & eligible).sum(axis=0) / counts
    per_attribute = np.where(counts > 0, per_attribute, np.nan)
    return AttributeRates(per_attribute=per_attribute, mean=float(np.nanmean(per_attribute)))


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"Label arrays differ in shape: {shapes}.")


def agreement(pred_labels: ArrayLike, target_labels: ArrayLike) -> AttributeRates:
    """Fraction of examples whose predicted label equals the target label, per attribute and mean."""
    pred, target = _labels("pred_labels", pred_labels), _labels("target_labels", target_labels)
    _same_shape(pred_labels=pred, target_labels=target)
    return _rates(pred == target, np.ones_like(pred), "agreement (no examples)")


def leak_rate(pred_labels: ArrayLike, dropped_mask: ArrayLike) -> AttributeRates:
    """Per attribute, the fraction of the cases where it was forced off (dropped_mask == 1) that still show it.

    Mark as dropped only attributes the exemplar has and the user switched off; attributes never dropped are NaN.
    """
    pred, dropped = _labels("pred_labels", pred_labels), _labels("dropped_mask", dropped_mask)
    _same_shape(pred_labels=pred, dropped_mask=dropped)
    return _rates(pred, dropped, "leak rate (dropped_mask has no 1)")


def kept_agreement(pred_labels: ArrayLike, target_labels: ArrayLike, dropped_mask: ArrayLike) -> AttributeRates:
    """`agreement` over the (example, attribute) pairs that were not forced off (dropped_mask == 0)."""
    pred, target = _labels("pred_labels", pred_labels), _labels("target_labels", target_labels)
    dropped = _labels("dropped_mask", dropped_mask)
    _same_shape(pred_labels=pred, target_labels=target, dropped_mask=dropped)
    return _rates(pred == target, ~dropped, "kept agreement (every label is dropped)")


class MetricAccumulator:
    """Running mean, min and max of named per-example values ([N] or [N, ...]) over a stream of batches."""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._sum: dict[str, np.ndarray] = {}
        self._min: dict[str, np.ndarray] = {}
        self._max: dict[str, np.ndarray] = {}

    def update(self, **values: ArrayLike) -> None:
        """Adds one batch of values per name, e.g. `update(psnr=masked_psnr(...), l1=masked_l1(...))`."""
        for name, batch in values.items():
            batch = np.atleast_1d(np.asarray(batch, np.float64))
            if not batch.shape[0]:
                continue
            if name not in self._count:
                self._count[name] = 0
                self._sum[name] = np.zeros(batch.shape[1:])
                self._min[name] = np.full(batch.shape[1:], np.inf)
                self._max[name] = np.full(batch.shape[1:], -np.inf)
            if batch.shape[1:] != self._sum[name].shape:
                raise ValueError(
                    f"'{name}' values have shape {batch.shape[1:]} per example, "
                    f"earlier batches {self._sum[name].shape}."
                )
            self._count[name] += batch.shape[0]
            self._sum[name] = self._sum[name] + batch.sum(axis=0)
            self._min[name] = np.minimum(self._min[name], batch.min(axis=0))
            self._max[name] = np.maximum(self._max[name], batch.max(axis=0))

    def result(self, name: str) -> dict[str, np.ndarray | int]:
        """{"mean", "min", "max", "count"} of the values seen under `name`."""
        if name not in self._count:
            raise KeyError(f"No values for '{name}'; known: {sorted(self._count)}.")
        count = self._count[name]
        return {"mean": self._sum[name] / count, "min": self._min[name], "max": self._max[name], "count": count}

    def results(self) -> dict[str, dict[str, np.ndarray | int]]:
        """`result` of every name seen."""
        return {name: self.result(name) for name in self._count}
