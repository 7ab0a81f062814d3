"""Scoring: every method on every region against ground truth, and the targets (evaluation/targets.py).

A method under evaluation is a `Method`: a function edit(source, exemplar, mask, attributes) -> edited image, so
trained models, baselines and test fakes are measured the same way. Inputs are float32 in [-1, 1] (mask in {0, 1},
attributes [N, n] of 1 = transfer / 0 = filter out, or None); the output is anything convertible to such an array.

Pairs: the first N faces of the test split; the exemplar of face i is face i + 1 (mod N). The mask is the region of
the SOURCE's landmarks, unjittered, as a user's edit. Image metrics are computed on the uint8 pixels a user gets
(data range 255; L1 in 0..255 pixel units; PSNR capped at MAX_PSNR so identical regions average). Per region:

  reconstruction       edit(A, A, M) against A, inside M
  transfer             edit(A, B, M) against the renderer's "A with region R from B", inside M (synthetic only);
                       its exemplar_gain is that PSNR minus the PSNR of edit(A, C, M) with another face C against
                       the same ground truth (0 dB: the exemplar does not help); its colour_share is how far the
                       region's mean colour moved from A's toward the ground truth's (1: all the way, 0: A's kept)
  code_spread          (models) std of E(B, M) over the test exemplars / mean |E(B, M)|, per attribute block and
                       mean: 0 when the encoder returns one code for every face
  attribute_transfer   (with an evaluation classifier) the classifier's reading of the region's attributes on
                       edit(A, B, M) against B's labels, per attribute and mean
  filtering            (methods with attribute switches) for each attribute, the exemplars that have it are edited
                       with its switch at 0: leak rate (still read as present), agreement on the other
                       attributes, PSNR against the render with the attribute forced off (synthetic only)
  outside_max_diff     largest pixel difference to A outside M over every edit (must be 0)
  ground_truth         the classifier on the renderer's swaps: the ceiling of the attribute metrics
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from ebgan_tf import images, metrics, visualize
from ebgan_tf.evaluation.methods import Method
from ebgan_tf.evaluation.pairs import EvalPairs, SwapTruth, region_masks
from ebgan_tf.evaluation.targets import TargetTable, load_targets, target_checks
from ebgan_tf.models import losses

MAX_PSNR = 100.0  # dB; identical regions (infinite PSNR) count as this
METRIC_BATCH = 64  # images per chunk of metric computation (bounds the memory of SSIM)
IMAGE_METRICS = ("psnr", "ssim", "l1")
NO_CLASSIFIER_NOTE = (
    "Attribute metrics need an evaluation classifier: train one with `ebgan-eval-classifier "
    "--dataset=... --data_dir=... --output_dir=DIR` and pass --classifier_dir=DIR."
)


class AttributeReader(Protocol):
    """The evaluation classifier: bool labels [N, n] over `attribute_names` of uint8 images [N, S, S, 3]."""

    attribute_names: tuple[str, ...]

    def predict(self, pixels: np.ndarray) -> np.ndarray: ...


def _chunks(count: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, count, size)]


def image_scores(edited: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean masked PSNR (capped), SSIM and L1 of uint8 `edited` against `target`."""
    totals = metrics.MetricAccumulator()
    for part in _chunks(len(edited), METRIC_BATCH):
        totals.update(
            psnr=metrics.masked_psnr(edited[part], target[part], mask[part], 255.0, MAX_PSNR),
            ssim=metrics.masked_ssim(edited[part], target[part], mask[part], 255.0),
            l1=metrics.masked_l1(edited[part], target[part], mask[part]),
        )
    return {name: float(totals.result(name)["mean"]) for name in IMAGE_METRICS}


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _rates(rates: metrics.AttributeRates, names: Sequence[str]) -> dict:
    return {
        "per_attribute": {name: _number(value) for name, value in zip(names, rates.per_attribute)},
        "mean": _number(rates.mean),
    }


class _RegionEvaluation:
    """Everything about one region shared by the methods: masks, ground truth, the classifier's columns."""

    def __init__(
        self,
        pairs: EvalPairs,
        region: str,
        attribute_names: Sequence[str],
        reader: AttributeReader | None,
        truth: SwapTruth | None,
        batch_size: int,
    ):
        size = pairs.sources.shape[1]
        self.pairs, self.region, self.truth, self.batch_size = pairs, region, truth, batch_size
        self.names = tuple(attribute_names)
        self.masks = region_masks(pairs.landmarks, region, size)
        self.targets = pairs.labels(self.names, exemplar=True)
        self._reader = reader
        self._columns = [reader.attribute_names.index(name) for name in self.names] if reader else []
        self.swaps = truth.render(region, range(len(pairs))) if truth is not None else None
        self._filtered_truth: dict[str, np.ndarray] = {}

    def read(self, pixels: np.ndarray) -> np.ndarray | None:
        """The classifier's labels of the region's attributes, bool [N, n_region] (None without a classifier)."""
        if self._reader is None:
            return None
        return np.asarray(self._reader.predict(pixels))[:, self._columns].astype(bool)

    def holders(self, name: str) -> np.ndarray:
        """Indices of the pairs whose exemplar has attribute `name`."""
        return np.flatnonzero(self.targets[:, self.names.index(name)])

    def filtered_truth(self, name: str) -> np.ndarray:
        """The renders of `holders(name)` with `name` forced off (cached)."""
        if name not in self._filtered_truth:
            assert self.truth is not None, "only with a ground truth"
            self._filtered_truth[name] = self.truth.render(self.region, self.holders(name), drop=(name,))
        return self._filtered_truth[name]

    def run(
        self,
        method: Method,
        exemplars: np.ndarray,
        indices: np.ndarray | None = None,
        attributes: np.ndarray | None = None,
    ) -> np.ndarray:
        """uint8 edits of the sources (all, or `indices`) with `exemplars` (same rows), in batches."""
        rows = np.arange(len(self.pairs)) if indices is None else indices
        sources, masks_ = self.pairs.sources[rows], self.masks[rows]
        edited = []
        for part in _chunks(len(rows), self.batch_size):
            switches = None if attributes is None else attributes[part]
            output = method.edit(
                images.to_float(sources[part]), images.to_float(exemplars[part]), masks_[part], switches
            )
            edited.append(images.to_uint8(np.asarray(output, np.float32)))
        return np.concatenate(edited)

    def outside(self, edited: np.ndarray, indices: np.ndarray | None = None) -> float:
        rows = np.arange(len(self.pairs)) if indices is None else indices
        return max(
            float(
                np.max(
                    metrics.max_abs_diff_outside(edited[part], self.pairs.sources[rows][part], self.masks[rows][part])
                )
            )
            for part in _chunks(len(rows), METRIC_BATCH)
        )

    def filtering(self, droppable: Sequence[str], edit_without: Callable[[str, np.ndarray], np.ndarray]) -> dict | None:
        """Leak rate, kept agreement and PSNR against the filtered truth, dropping each of `droppable` in turn
        for the exemplars that have it; `edit_without(name, indices)` returns those edits (uint8)."""
        predicted: list[Any] = []  # the classifier's readings (None without a classifier)
        targets, dropped, psnrs = [], [], {}
        for name in droppable:
            indices = self.holders(name)
            if not indices.size:
                continue
            edited = edit_without(name, indices)
            predicted.append(self.read(edited))
            targets.append(self.targets[indices])
            dropped.append(np.tile(np.array(self.names) == name, (len(indices), 1)))
            if self.truth is not None:
                psnrs[name] = self.filtered_truth_psnr(name, edited)
        if not targets:
            return None
        # The mean over every filtered edit (attributes weighted by how many exemplars have them).
        counts = {name: len(self.holders(name)) for name in psnrs}
        psnr_mean = (
            sum(psnrs[name] * counts[name] for name in psnrs) / sum(counts.values()) if self.truth is not None else None
        )
        target_rows, dropped_rows = np.concatenate(targets), np.concatenate(dropped)
        common = {"psnr": psnr_mean, "psnr_per_attribute": psnrs or None, "edits": int(len(target_rows))}
        if self._reader is None:
            return {"leak_rate": None, "kept_agreement": None, **common}
        predicted_rows = np.concatenate(predicted)
        return {
            "leak_rate": _rates(metrics.leak_rate(predicted_rows, dropped_rows), self.names),
            "kept_agreement": _rates(metrics.kept_agreement(predicted_rows, target_rows, dropped_rows), self.names),
            **common,
        }

    def filtered_truth_psnr(self, name: str, edited: np.ndarray) -> float:
        """Mean PSNR of `edited` (the edits of `holders(name)`) against their renders with `name` forced off."""
        indices = self.holders(name)
        return float(
            np.mean(metrics.masked_psnr(edited, self.filtered_truth(name), self.masks[indices], 255.0, MAX_PSNR))
        )

    def evaluate(self, method: Method) -> tuple[dict, np.ndarray]:
        """The scores of `method` on this region and its transfer edits (uint8)."""
        sources, exemplars = self.pairs.sources, self.pairs.exemplars
        outside = 0.0
        reconstruction = None
        if not method.identity_reconstruction:
            rebuilt = self.run(method, sources)
            reconstruction = image_scores(rebuilt, sources, self.masks)
            outside = self.outside(rebuilt)
        edited = self.run(method, exemplars)
        outside = max(outside, self.outside(edited))
        transfer: dict[str, float | None] | None = None
        if self.swaps is not None:
            own = image_scores(edited, self.swaps, self.masks)
            other = self.run(method, self.pairs.other_exemplars)
            outside = max(outside, self.outside(other))
            other_psnr = image_scores(other, self.swaps, self.masks)["psnr"]
            transfer = {
                **own,
                "other_exemplar_psnr": other_psnr,
                "exemplar_gain": own["psnr"] - other_psnr,
                "colour_share": _number(metrics.colour_share(edited, sources, self.swaps, self.masks)),
            }
        read = self.read(edited)
        scores: dict[str, Any] = {
            "reconstruction": reconstruction,
            "transfer": transfer,
            "code_spread": self.code_spread(method),
            "attribute_transfer": _rates(metrics.agreement(read, self.targets), self.names)
            if read is not None
            else None,
            "filtering": None,
        }
        droppable = [name for name in self.names if name in method.attribute_names]
        scores["unfiltered_psnr_per_attribute"] = None
        if self.truth is not None and not droppable:
            # What a method that cannot filter scores against the filtered renders: the bar for filtering.
            scores["unfiltered_psnr_per_attribute"] = {
                name: self.filtered_truth_psnr(name, edited[self.holders(name)])
                for name in self.names
                if self.holders(name).size
            } or None
        if droppable:
            outside_filtered = [0.0]

            def edit_without(name: str, indices: np.ndarray) -> np.ndarray:
                attributes = np.ones([len(indices), len(method.attribute_names)], np.float32)
                attributes[:, method.attribute_names.index(name)] = 0.0
                filtered = self.run(method, exemplars[indices], indices, attributes)
                outside_filtered.append(self.outside(filtered, indices))
                return filtered

            scores["filtering"] = self.filtering(droppable, edit_without)
            outside = max(outside, *outside_filtered)
        scores["outside_max_diff"] = outside
        return scores, edited

    def code_spread(self, method: Method) -> dict | None:
        """The spread of the method's exemplar codes over the test exemplars (mean and per block), or None."""
        if method.code is None:
            return None
        blocks = len(method.attribute_names) or 1
        codes = np.concatenate(
            [
                method.code(images.to_float(self.pairs.exemplars[part]), self.masks[part])
                for part in _chunks(len(self.pairs), self.batch_size)
            ]
        )
        spread = losses.code_spread(tf.constant(codes), blocks).numpy()
        names = method.attribute_names or ("code",)
        return {"per_block": {name: float(value) for name, value in zip(names, spread)}, "mean": float(spread.mean())}

    def other_truth_psnr(self) -> float | None:
        """The PSNR of the ground truth with the other face's region (face i + 2's) against the ground truth with the
        exemplar's: the transfer PSNR of a perfect edit from the wrong face (None without ground truth)."""
        if self.truth is None or self.swaps is None:
            return None
        other = self.truth.render(self.region, range(len(self.pairs)), other=True)
        return image_scores(other, self.swaps, self.masks)["psnr"]

    def evaluate_truth(self) -> dict | None:
        """The classifier on the renderer's swaps and filtered swaps (synthetic only): the metrics' ceiling."""
        if self.swaps is None or self._reader is None:
            return None
        read = self.read(self.swaps)
        assert read is not None  # with a reader
        return {
            "attribute_transfer": _rates(metrics.agreement(read, self.targets), self.names),
            "filtering": self.filtering(self.names, lambda name, indices: self.filtered_truth(name)),
        }


def evaluate(
    methods: Sequence[Method],
    pairs: EvalPairs,
    region_attributes: Mapping[str, Sequence[str]],
    reader: AttributeReader | None,
    truth: SwapTruth | None = None,
    batch_size: int = 32,
    grid_rows: int = 4,
    targets: TargetTable | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict, np.ndarray]:
    """Scores every method on every region of `region_attributes` (region -> attributes the classifier reads) and
    checks the models against `targets` (default: the project's table, targets.json). `log` (e.g. print) receives
    a line as each method's scores of a region are done.

    Returns the results {"regions": {region: {"attributes", "methods": {name: scores}, "ground_truth"}},
    "targets": [...]} (JSON-ready) and a uint8 grid of the first `grid_rows` pairs per region.
    """
    targets = targets or load_targets()
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"Method names must be unique, got {names}.")
    missing = sorted(
        {
            name
            for attributes in region_attributes.values()
            for name in attributes
            if reader is not None and name not in reader.attribute_names
        }
    )
    if missing:
        assert reader is not None  # only a reader misses attributes
        raise ValueError(
            f"The evaluation classifier does not read {', '.join(missing)} (it reads "
            f"{', '.join(reader.attribute_names)}); train one with those attributes."
        )
    regions, checks, grid_rows_ = {}, [], []
    for number, (region, attribute_names) in enumerate(region_attributes.items(), 1):
        evaluation = _RegionEvaluation(pairs, region, attribute_names, reader, truth, batch_size)
        result: dict[str, Any] = {
            "attributes": list(evaluation.names),
            "methods": {},
            "ground_truth": evaluation.evaluate_truth(),
            "other_truth_psnr": evaluation.other_truth_psnr(),
        }
        samples = []
        for method in methods:
            started = time.monotonic()
            scores, edited = evaluation.evaluate(method)
            if log is not None:
                log(
                    f"{region} (region {number} of {len(region_attributes)}): {method.name} scored on "
                    f"{len(pairs)} pairs in {time.monotonic() - started:.0f} s"
                )
            result["methods"][method.name] = {"role": method.role, "variant": method.variant, **scores}
            samples.append(edited[:grid_rows])
        regions[region] = result
        checks += target_checks(targets, region, result, len(pairs))
        for i in range(min(grid_rows, len(pairs))):
            row = [pairs.sources[i], pairs.exemplars[i], visualize.overlay_mask(pairs.sources[i], evaluation.masks[i])]
            row += [evaluation.swaps[i]] if evaluation.swaps is not None else []
            grid_rows_.append((f"{region} #{i}", row + [sample[i] for sample in samples]))
    columns = ["source", "exemplar", "mask"] + (["ground truth"] if truth is not None else []) + names
    grid = visualize.image_grid(
        [row for _, row in grid_rows_],
        row_labels=[label for label, _ in grid_rows_],
        col_labels=[label.replace(" (", "\n(") for label in columns],
    )
    return {"regions": regions, "targets": checks}, grid
