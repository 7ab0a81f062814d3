"""Scoring: every method on every region against ground truth, and the targets.

A method under evaluation is a `Method`: a function edit(source, exemplar, mask, transfer) -> edited image, so
trained models, baselines and test fakes are measured the same way. Inputs are float32 in [-1, 1] (mask in {0, 1},
transfer [N, n] of 1 = transfer / 0 = filter out, or None); the output is anything convertible to such an array.

Pairs: the first N faces of the test split; the exemplar of face i is face i + 1 (mod N). The mask is the region of
the SOURCE's landmarks, unjittered, as a user's edit. Image metrics are computed on the uint8 pixels a user gets
(data range 255; L1 in 0..255 pixel units; PSNR capped at MAX_PSNR so identical regions average). Per region:

  reconstruction       edit(A, A, M) against A, inside M
  transfer             edit(A, B, M) against the renderer's "A with region R from B", inside M (synthetic only);
                       its exemplar_gain is that PSNR minus the PSNR of edit(A, C, M) with another face C against
                       the same ground truth (0 dB: the exemplar does not help)
  code_spread          (models) std of E(B, M) over the test exemplars / mean |E(B, M)|, per attribute block and
                       mean: 0 when the encoder returns one code for every face
  attribute_transfer   (with an evaluation classifier) the classifier's reading of the region's attributes on edit(A, B, M) against
                       B's labels, per attribute and mean
  filtering            (methods with transfer switches) for each attribute, the exemplars that have it are edited
                       with its switch at 0: leak rate (still read as present), agreement on the other
                       attributes, PSNR against the render with the attribute forced off (synthetic only)
  outside_max_diff     largest pixel difference to A outside M over every edit (must be 0)
  ground_truth         the classifier on the renderer's swaps: the ceiling of the attribute metrics
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import numpy as np
import tensorflow as tf

from ebgan_tf import images, metrics, visualize
from ebgan_tf.evaluation.methods import Method
from ebgan_tf.evaluation.pairs import EvalPairs, SwapTruth, region_masks
from ebgan_tf.models import losses

MAX_PSNR = 100.0  # dB; identical regions (infinite PSNR) count as this
METRIC_BATCH = 64  # images per chunk of metric computation (bounds the memory of SSIM)
IMAGE_METRICS = ("psnr", "ssim", "l1")
# Targets for a synthetic64 mouth model trained for at most an hour on a 2-core CPU (docs/evaluation.md).
TARGET_CODE_SPREAD = 0.2
TARGET_EXEMPLAR_GAIN = 3.0  # dB
TARGET_RECONSTRUCTION_PSNR = 28.0
TARGET_TRANSFER_PSNR = {"ebgan": 24.0, "att_ebgan": 22.0}
TARGET_MARGIN_OVER_ZERO_CODE = {"ebgan": 4.0}  # dB above the model's own exemplar-free baseline
TARGET_ATTRIBUTE_ACCURACY = 0.90
TARGET_LEAK_RATE = 0.10
# Whole regions of several parts: the transfer must beat every baseline by this margin (dB).
COMPOSITE_REGIONS = ("components", "face")
TARGET_COMPOSITE_MARGIN = 3.0
# The paper's Fig. 8: Att-EBGAN filters the exemplar's mustache out of the mouth and keeps the rest of it.
TARGET_ATTRIBUTE_LEAK = {"Mustache": 0.05}
NO_CLASSIFIER_NOTE = ("Attribute metrics need an evaluation classifier: train one with `ebgan-eval-classifier "
                      "--dataset=... --data_dir=... --output_dir=DIR` and pass --classifier_dir=DIR.")


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
        totals.update(psnr=metrics.masked_psnr(edited[part], target[part], mask[part], 255.0, MAX_PSNR),
                      ssim=metrics.masked_ssim(edited[part], target[part], mask[part], 255.0),
                      l1=metrics.masked_l1(edited[part], target[part], mask[part]))
    return {name: float(totals.result(name)["mean"]) for name in IMAGE_METRICS}


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _rates(rates: metrics.AttributeRates, names: Sequence[str]) -> dict:
    return {"per_attribute": {name: _number(value) for name, value in zip(names, rates.per_attribute)},
            "mean": _number(rates.mean)}


class _RegionEvaluation:
    """Everything about one region shared by the methods: masks, ground truth, the classifier's columns."""

    def __init__(self, pairs: EvalPairs, region: str, attribute_names: Sequence[str],
                 reader: AttributeReader | None, truth: SwapTruth | None, batch_size: int):
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
            self._filtered_truth[name] = self.truth.render(self.region, self.holders(name), drop=(name,))
        return self._filtered_truth[name]

    def run(self, method: Method, exemplars: np.ndarray, indices: np.ndarray | None = None,
            transfer: np.ndarray | None = None) -> np.ndarray:
        """uint8 edits of the sources (all, or `indices`) with `exemplars` (same rows), in batches."""
        rows = np.arange(len(self.pairs)) if indices is None else indices
        sources, masks_ = self.pairs.sources[rows], self.masks[rows]
        edited = []
        for part in _chunks(len(rows), self.batch_size):
            switches = None if transfer is None else transfer[part]
            output = method.edit(images.to_float(sources[part]), images.to_float(exemplars[part]), masks_[part],
                                 switches)
            edited.append(images.to_uint8(np.asarray(output, np.float32)))
        return np.concatenate(edited)

    def outside(self, edited: np.ndarray, indices: np.ndarray | None = None) -> float:
        rows = np.arange(len(self.pairs)) if indices is None else indices
        return max(float(np.max(metrics.max_abs_diff_outside(edited[part], self.pairs.sources[rows][part],
                                                             self.masks[rows][part])))
                   for part in _chunks(len(rows), METRIC_BATCH))

    def filtering(self, droppable: Sequence[str], edit_without: Callable[[str, np.ndarray], np.ndarray]) -> dict | None:
        """Leak rate, kept agreement and PSNR against the filtered truth, dropping each of `droppable` in turn
        for the exemplars that have it; `edit_without(name, indices)` returns those edits (uint8)."""
        predicted, targets, dropped, psnrs = [], [], [], {}
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
        psnr_mean = (sum(psnrs[name] * counts[name] for name in psnrs) / sum(counts.values())
                     if self.truth is not None else None)
        targets, dropped = np.concatenate(targets), np.concatenate(dropped)
        common = {"psnr": psnr_mean, "psnr_per_attribute": psnrs or None, "edits": int(len(targets))}
        if self._reader is None:
            return {"leak_rate": None, "kept_agreement": None, **common}
        predicted = np.concatenate(predicted)
        return {
            "leak_rate": _rates(metrics.leak_rate(predicted, dropped), self.names),
            "kept_agreement": _rates(metrics.kept_agreement(predicted, targets, dropped), self.names),
            **common,
        }

    def filtered_truth_psnr(self, name: str, edited: np.ndarray) -> float:
        """Mean PSNR of `edited` (the edits of `holders(name)`) against their renders with `name` forced off."""
        indices = self.holders(name)
        return float(np.mean(metrics.masked_psnr(edited, self.filtered_truth(name), self.masks[indices], 255.0,
                                                 MAX_PSNR)))

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
        transfer = None
        if self.swaps is not None:
            transfer = image_scores(edited, self.swaps, self.masks)
            other = self.run(method, self.pairs.other_exemplars)
            outside = max(outside, self.outside(other))
            transfer["other_exemplar_psnr"] = image_scores(other, self.swaps, self.masks)["psnr"]
            transfer["exemplar_gain"] = transfer["psnr"] - transfer["other_exemplar_psnr"]
        read = self.read(edited)
        scores = {
            "reconstruction": reconstruction,
            "transfer": transfer,
            "code_spread": self.code_spread(method),
            "attribute_transfer": _rates(metrics.agreement(read, self.targets), self.names) if read is not None
            else None,
            "filtering": None,
        }
        droppable = [name for name in self.names if name in method.attribute_names]
        scores["unfiltered_psnr_per_attribute"] = None
        if self.truth is not None and not droppable:
            # What a method that cannot filter scores against the filtered renders: the bar for filtering.
            scores["unfiltered_psnr_per_attribute"] = {
                name: self.filtered_truth_psnr(name, edited[self.holders(name)])
                for name in self.names if self.holders(name).size} or None
        if droppable:
            outside_filtered = [0.0]

            def edit_without(name: str, indices: np.ndarray) -> np.ndarray:
                transfer = np.ones([len(indices), len(method.attribute_names)], np.float32)
                transfer[:, method.attribute_names.index(name)] = 0.0
                filtered = self.run(method, exemplars[indices], indices, transfer)
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
        codes = np.concatenate([method.code(images.to_float(self.pairs.exemplars[part]), self.masks[part])
                                for part in _chunks(len(self.pairs), self.batch_size)])
        spread = losses.code_spread(tf.constant(codes), blocks).numpy()
        names = method.attribute_names or ("code",)
        return {"per_block": {name: float(value) for name, value in zip(names, spread)}, "mean": float(spread.mean())}

    def evaluate_truth(self) -> dict | None:
        """The classifier on the renderer's swaps and filtered swaps (synthetic only): the metrics' ceiling."""
        if self.swaps is None or self._reader is None:
            return None
        return {
            "attribute_transfer": _rates(metrics.agreement(self.read(self.swaps), self.targets), self.names),
            "filtering": self.filtering(self.names, lambda name, indices: self.filtered_truth(name)),
        }


def target_checks(region: str, result: dict) -> list[dict]:
    """The targets (docs/evaluation.md) for every model of one region's result: target, value, met, and the margin."""
    methods = result["methods"]
    baselines = [name for name, scores in methods.items() if scores["role"] == "baseline"]
    checks = []

    def check(method: str, target: str, value: float | None, threshold: float | None, higher_is_better: bool):
        if value is None or threshold is None:
            return
        margin = value - threshold if higher_is_better else threshold - value
        met = margin > 0 if target.startswith("transfer PSNR above") else margin >= 0
        checks.append({"region": region, "method": method, "target": target, "value": value,
                       "threshold": threshold, "met": bool(met), "margin": margin})

    for name, scores in methods.items():
        if scores["role"] != "model":
            continue
        variant, transfer = scores.get("variant", ""), scores["transfer"]
        if scores.get("code_spread"):
            check(name, f"code spread >= {TARGET_CODE_SPREAD:g}", scores["code_spread"]["mean"], TARGET_CODE_SPREAD,
                  True)
        if transfer:
            check(name, f"exemplar gain >= +{TARGET_EXEMPLAR_GAIN:g} dB", transfer["exemplar_gain"],
                  TARGET_EXEMPLAR_GAIN, True)
            if variant in TARGET_TRANSFER_PSNR and region == "mouth":
                check(name, f"transfer PSNR >= {TARGET_TRANSFER_PSNR[variant]:g} dB", transfer["psnr"],
                      TARGET_TRANSFER_PSNR[variant], True)
            zero_code = methods.get(f"zero exemplar code ({name})", {}).get("transfer")
            if variant in TARGET_MARGIN_OVER_ZERO_CODE and zero_code and region == "mouth":
                margin = TARGET_MARGIN_OVER_ZERO_CODE[variant]
                check(name, f"transfer PSNR >= zero-code baseline + {margin:g} dB", transfer["psnr"],
                      zero_code["psnr"] + margin, True)
            # Its baselines: the naive paste and its own zero-code inpainting (not another model's).
            own = [b for b in baselines if not b.startswith("zero exemplar code (") or b == f"zero exemplar code ({name})"]
            baseline_psnrs = [methods[b]["transfer"]["psnr"] for b in own if methods[b]["transfer"]]
            if baseline_psnrs and region in COMPOSITE_REGIONS:
                check(name, f"transfer PSNR >= every baseline + {TARGET_COMPOSITE_MARGIN:g} dB", transfer["psnr"],
                      max(baseline_psnrs) + TARGET_COMPOSITE_MARGIN, True)
            elif baseline_psnrs:
                check(name, "transfer PSNR above every baseline", transfer["psnr"], max(baseline_psnrs), True)
        if scores["reconstruction"] and variant != "att_ebgan":
            check(name, f"reconstruction PSNR >= {TARGET_RECONSTRUCTION_PSNR:g} dB", scores["reconstruction"]["psnr"],
                  TARGET_RECONSTRUCTION_PSNR, True)
        if scores["attribute_transfer"]:
            check(name, "attribute transfer accuracy >= 90%", scores["attribute_transfer"]["mean"],
                  TARGET_ATTRIBUTE_ACCURACY, True)
        filtering = scores["filtering"]
        if filtering and filtering["leak_rate"]:
            check(name, "filter leak rate <= 10%", filtering["leak_rate"]["mean"], TARGET_LEAK_RATE, False)
            for attribute, limit in TARGET_ATTRIBUTE_LEAK.items():
                check(name, f"{attribute} leak rate <= {100 * limit:g}%",
                      filtering["leak_rate"]["per_attribute"].get(attribute), limit, False)
        zero_code_unfiltered = methods.get(f"zero exemplar code ({name})", {}).get("unfiltered_psnr_per_attribute")
        if filtering and filtering["psnr_per_attribute"] and zero_code_unfiltered:
            for attribute in TARGET_ATTRIBUTE_LEAK:
                check(name, f"PSNR without {attribute} above the zero-code baseline's",
                      filtering["psnr_per_attribute"].get(attribute), zero_code_unfiltered.get(attribute), True)
    return checks


def evaluate(methods: Sequence[Method], pairs: EvalPairs, region_attributes: dict[str, Sequence[str]],
             reader: AttributeReader | None, truth: SwapTruth | None = None, batch_size: int = 32,
             grid_rows: int = 4) -> tuple[dict, np.ndarray]:
    """Scores every method on every region of `region_attributes` (region -> attributes the classifier reads).

    Returns the results {"regions": {region: {"attributes", "methods": {name: scores}, "ground_truth"}},
    "targets": [...]} (JSON-ready) and a uint8 grid of the first `grid_rows` pairs per region.
    """
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"Method names must be unique, got {names}.")
    missing = sorted({name for attributes in region_attributes.values() for name in attributes
                      if reader is not None and name not in reader.attribute_names})
    if missing:
        raise ValueError(f"The evaluation classifier does not read {', '.join(missing)} (it reads "
                         f"{', '.join(reader.attribute_names)}); train one with those attributes.")
    regions, targets, grid_rows_ = {}, [], []
    for region, attribute_names in region_attributes.items():
        evaluation = _RegionEvaluation(pairs, region, attribute_names, reader, truth, batch_size)
        result = {"attributes": list(evaluation.names), "methods": {}, "ground_truth": evaluation.evaluate_truth()}
        samples = []
        for method in methods:
            scores, edited = evaluation.evaluate(method)
            result["methods"][method.name] = {"role": method.role, "variant": method.variant, **scores}
            samples.append(edited[:grid_rows])
        regions[region] = result
        targets += target_checks(region, result)
        for i in range(min(grid_rows, len(pairs))):
            row = [pairs.sources[i], pairs.exemplars[i], visualize.overlay_mask(pairs.sources[i], evaluation.masks[i])]
            row += [evaluation.swaps[i]] if evaluation.swaps is not None else []
            grid_rows_.append((f"{region} #{i}", row + [sample[i] for sample in samples]))
    columns = ["source", "exemplar", "mask"] + (["ground truth"] if truth is not None else []) + names
    grid = visualize.image_grid([row for _, row in grid_rows_], row_labels=[label for label, _ in grid_rows_],
                                col_labels=[label.replace(" (", "\n(") for label in columns])
    return {"regions": regions, "targets": targets}, grid
