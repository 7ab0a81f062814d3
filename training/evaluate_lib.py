"""The library behind `ebgan-eval`: edit quality against the synthetic renderer's ground truth and baselines.

A method under evaluation is a `Method`: a function edit(source, exemplar, mask, transfer) -> edited image, so
trained models, baselines and test fakes are measured the same way. Inputs are float32 in [-1, 1] (mask in {0, 1},
transfer [N, n] of 1 = transfer / 0 = filter out, or None); the output is anything convertible to such an array.

Pairs: the first N faces of the test split; the exemplar of face i is face i + 1 (mod N). The mask is the region of
the SOURCE's landmarks, unjittered, as a user's edit. Image metrics are computed on the uint8 pixels a user gets
(data range 255; L1 in 0..255 pixel units; PSNR capped at MAX_PSNR so identical regions average). Per region:

  reconstruction       edit(A, A, M) against A, inside M
  transfer             edit(A, B, M) against the renderer's "A with region R from B", inside M (synthetic only)
  attribute_transfer   the evaluation classifier's reading of the region's attributes on edit(A, B, M) against
                       B's labels, per attribute and mean
  filtering            (methods with transfer switches) for each attribute, the exemplars that have it are edited
                       with its switch at 0: leak rate (still read as present), agreement on the other
                       attributes, PSNR against the render with the attribute forced off (synthetic only)
  outside_max_diff     largest pixel difference to A outside M over every edit (must be 0)
  ground_truth         the classifier on the renderer's swaps: the ceiling of the attribute metrics
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import os
import tempfile
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import tensorflow as tf

from ebgan_tf import images, metrics, visualize
from ebgan_tf.config import parse_regions
from ebgan_tf.data import masks, pipeline, synthetic
from ebgan_tf.models.generator import composite
from ebgan_tf.models.trainer import EBGANTrainer
from training import callbacks
from training.eval_classifier import dataset_preset, load_eval_classifier
from training.run_config import load_trained, run_config_from_dir

MAX_PSNR = 100.0  # dB; identical regions (infinite PSNR) count as this
METRIC_BATCH = 64  # images per chunk of metric computation (bounds the memory of SSIM)
IMAGE_METRICS = ("psnr", "ssim", "l1")
# Targets of issue 7 for a synthetic64 mouth model trained for 30 minutes on a 2-core CPU.
TARGET_RECONSTRUCTION_PSNR = 28.0
TARGET_ATTRIBUTE_ACCURACY = 0.90
TARGET_LEAK_RATE = 0.10
REPORT_FILES = ("report.md", "report.json", "grid.png")
VARIANT_NAMES = {"ebgan": "EBGAN", "att_ebgan": "Att-EBGAN"}

EditFn = Callable[[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"], Any]


@dataclasses.dataclass(frozen=True)
class Method:
    """An editing method in the report. `role` is "model" (held to the targets) or "baseline"."""

    name: str
    edit: EditFn
    role: str = "model"
    attribute_names: tuple[str, ...] = ()  # its transfer switches, in order; () = it cannot filter attributes
    identity_reconstruction: bool = False  # B = A returns A by construction: no reconstruction score


class AttributeReader(Protocol):
    """The evaluation classifier: bool labels [N, n] over `attribute_names` of uint8 images [N, S, S, 3]."""

    attribute_names: tuple[str, ...]

    def predict(self, pixels: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class EvalPairs:
    """N test faces as sources; the exemplar of face i is face i + 1 (mod N)."""

    sources: np.ndarray  # uint8 [N, S, S, 3]
    landmarks: np.ndarray  # float32 [N, 5, 2] (x, y) of the sources, after crop and resize
    attributes: dict[str, np.ndarray]  # attribute name -> bool [N] of the sources
    seeds: np.ndarray | None = None  # int64 [N]: synthetic faces' seeds (re-render A and B), else None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def exemplar_index(self) -> np.ndarray:
        return (np.arange(len(self)) + 1) % len(self)

    @property
    def exemplars(self) -> np.ndarray:
        return self.sources[self.exemplar_index]

    def labels(self, names: Sequence[str], exemplar: bool = False) -> np.ndarray:
        """Bool [N, len(names)]: the sources' labels, or the exemplars' if `exemplar`."""
        labels = np.stack([np.asarray(self.attributes[name], bool) for name in names], axis=1)
        return labels[self.exemplar_index] if exemplar else labels


def load_pairs(dataset: str, data_dir: str, image_size: int, num_pairs: int) -> EvalPairs:
    """The first `num_pairs` faces of the test split (fewer if the split is smaller), as the model sees them."""
    if num_pairs < 2:
        raise ValueError(f"--num_pairs must be at least 2, got {num_pairs}.")
    split = pipeline.EVAL_SPLIT[pipeline.validate_dataset(dataset)]
    examples = pipeline.load_examples(dataset, data_dir, split, image_size).take(num_pairs)
    crop = pipeline.default_crop(dataset)

    def prepare(example: dict) -> dict:
        image, landmarks = pipeline.crop_and_resize(
            example["image"], pipeline.example_landmarks(example["landmarks"]), image_size, crop)
        prepared = {"image": image, "landmarks": landmarks, "attributes": example["attributes"]}
        if "seed" in example:
            prepared["seed"] = example["seed"]
        return prepared

    batches = list(examples.map(prepare).batch(256).as_numpy_iterator())
    if not batches or sum(len(batch["image"]) for batch in batches) < 2:
        raise ValueError(f"The {split} split of {dataset} in {data_dir} has fewer than 2 faces: nothing to pair.")
    joined = {key: np.concatenate([batch[key] for batch in batches]) for key in ("image", "landmarks")}
    attributes = {name: np.concatenate([batch["attributes"][name] for batch in batches])
                  for name in batches[0]["attributes"]}
    seeds = np.concatenate([batch["seed"] for batch in batches]) if "seed" in batches[0] else None
    return EvalPairs(joined["image"], joined["landmarks"].astype(np.float32), attributes, seeds)


@functools.lru_cache(maxsize=32)
def _mask_fn(region: str, size: int):
    @tf.function(input_signature=[tf.TensorSpec([None, 5, 2], tf.float32)])
    def region_masks(landmarks):
        return tf.map_fn(lambda points: masks.region_mask(points, region, size), landmarks,
                         fn_output_signature=tf.float32)
    return region_masks


def region_masks(landmarks: np.ndarray, region: str, size: int) -> np.ndarray:
    """Float32 masks [N, S, S, 1] of `region` on each face's landmarks [N, 5, 2] (no jitter)."""
    return _mask_fn(region, size)(tf.constant(landmarks, tf.float32)).numpy()


class SwapTruth:
    """Ground truth from the synthetic renderer: face A (a source's seed) with a region drawn from face B."""

    def __init__(self, pairs: EvalPairs, image_size: int):
        if pairs.seeds is None:
            raise ValueError("Ground-truth swaps need the synthetic faces' seeds.")
        self._seeds = pairs.seeds
        self._exemplar_index = pairs.exemplar_index
        self._size = image_size
        first = synthetic.render_face(self._face(int(pairs.seeds[0])), image_size).image
        if not np.array_equal(first, pairs.sources[0]):
            raise ValueError("The test faces differ from what the renderer draws for their seeds: the data set was "
                             "made by another version of ebgan_tf/data/synthetic.py; prepare it again.")

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _face(seed: int) -> synthetic.FaceParams:
        return synthetic.sample_face(seed)

    def render(self, region: str, indices: Sequence[int], drop: Sequence[str] = ()) -> np.ndarray:
        """uint8 [len(indices), S, S, 3]: source i with `region` from its exemplar, attributes `drop` forced off."""
        faces = [(self._face(int(self._seeds[i])), self._face(int(self._seeds[self._exemplar_index[i]])))
                 for i in indices]
        return np.stack([synthetic.render_swap(a, b, region, self._size, drop=tuple(drop)).image for a, b in faces])


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

    def __init__(self, pairs: EvalPairs, region: str, attribute_names: Sequence[str], reader: AttributeReader,
                 truth: SwapTruth | None, batch_size: int):
        size = pairs.sources.shape[1]
        self.pairs, self.region, self.truth, self.batch_size = pairs, region, truth, batch_size
        self.names = tuple(attribute_names)
        self.masks = region_masks(pairs.landmarks, region, size)
        self.targets = pairs.labels(self.names, exemplar=True)
        self._reader = reader
        self._columns = [reader.attribute_names.index(name) for name in self.names]
        self.swaps = truth.render(region, range(len(pairs))) if truth is not None else None
        self._filtered_truth: dict[str, np.ndarray] = {}

    def read(self, pixels: np.ndarray) -> np.ndarray:
        """The classifier's labels of the region's attributes, bool [N, n_region]."""
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
        predicted, targets, dropped = [], [], []
        psnr = metrics.MetricAccumulator()
        for name in droppable:
            indices = self.holders(name)
            if not indices.size:
                continue
            edited = edit_without(name, indices)
            predicted.append(self.read(edited))
            targets.append(self.targets[indices])
            dropped.append(np.tile(np.array(self.names) == name, (len(indices), 1)))
            if self.truth is not None:
                psnr.update(psnr=metrics.masked_psnr(edited, self.filtered_truth(name), self.masks[indices], 255.0,
                                                     MAX_PSNR))
        if not predicted:
            return None
        predicted, targets, dropped = (np.concatenate(parts) for parts in (predicted, targets, dropped))
        return {
            "leak_rate": _rates(metrics.leak_rate(predicted, dropped), self.names),
            "kept_agreement": _rates(metrics.kept_agreement(predicted, targets, dropped), self.names),
            "psnr": float(psnr.result("psnr")["mean"]) if self.truth is not None else None,
            "edits": int(len(predicted)),
        }

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
        scores = {
            "reconstruction": reconstruction,
            "transfer": image_scores(edited, self.swaps, self.masks) if self.swaps is not None else None,
            "attribute_transfer": _rates(metrics.agreement(self.read(edited), self.targets), self.names),
            "filtering": None,
        }
        droppable = [name for name in self.names if name in method.attribute_names]
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

    def evaluate_truth(self) -> dict | None:
        """The classifier on the renderer's swaps and filtered swaps (synthetic only): the metrics' ceiling."""
        if self.swaps is None:
            return None
        return {
            "attribute_transfer": _rates(metrics.agreement(self.read(self.swaps), self.targets), self.names),
            "filtering": self.filtering(self.names, lambda name, indices: self.filtered_truth(name)),
        }


def target_checks(region: str, result: dict) -> list[dict]:
    """Issue 7's targets for every model of one region's result: target, value, met, and the margin."""
    baselines = [name for name, scores in result["methods"].items() if scores["role"] == "baseline"]
    checks = []

    def check(method: str, target: str, value: float | None, threshold: float | None, higher_is_better: bool):
        if value is None or threshold is None:
            return
        margin = value - threshold if higher_is_better else threshold - value
        met = margin > 0 if target.startswith("transfer") else margin >= 0
        checks.append({"region": region, "method": method, "target": target, "value": value,
                       "threshold": threshold, "met": bool(met), "margin": margin})

    for name, scores in result["methods"].items():
        if scores["role"] != "model":
            continue
        if scores["reconstruction"]:
            check(name, "reconstruction PSNR >= 28 dB", scores["reconstruction"]["psnr"], TARGET_RECONSTRUCTION_PSNR,
                  True)
        baseline_psnrs = [result["methods"][b]["transfer"]["psnr"] for b in baselines
                          if result["methods"][b]["transfer"]]
        if scores["transfer"] and baseline_psnrs:
            check(name, "transfer PSNR above every baseline", scores["transfer"]["psnr"], max(baseline_psnrs), True)
        check(name, "attribute transfer accuracy >= 90%", scores["attribute_transfer"]["mean"],
              TARGET_ATTRIBUTE_ACCURACY, True)
        if scores["filtering"]:
            check(name, "filter leak rate <= 10%", scores["filtering"]["leak_rate"]["mean"], TARGET_LEAK_RATE, False)
    return checks


def evaluate(methods: Sequence[Method], pairs: EvalPairs, region_attributes: dict[str, Sequence[str]],
             reader: AttributeReader, truth: SwapTruth | None = None, batch_size: int = 32,
             grid_rows: int = 4) -> tuple[dict, np.ndarray]:
    """Scores every method on every region of `region_attributes` (region -> attributes the classifier reads).

    Returns the results {"regions": {region: {"attributes", "methods": {name: scores}, "ground_truth"}},
    "targets": [...]} (JSON-ready) and a uint8 grid of the first `grid_rows` pairs per region.
    """
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"Method names must be unique, got {names}.")
    missing = sorted({name for attributes in region_attributes.values() for name in attributes
                      if name not in reader.attribute_names})
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
            result["methods"][method.name] = {"role": method.role, **scores}
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


# ------------------------------------------------------------------------------------------------ methods


def model_method(trainer: EBGANTrainer, name: str) -> Method:
    """The trained model's `edit` (Att-EBGAN: with its attribute switches)."""
    edit = tf.function(trainer.edit, reduce_retracing=True)
    switches = trainer.attribute_names if trainer.classifier is not None else ()
    return Method(name, lambda source, exemplar, mask, transfer: edit(source, exemplar, mask, transfer).numpy(),
                  role="model", attribute_names=switches)


def zero_code_method(trainer: EBGANTrainer, name: str) -> Method:
    """Exemplar-free inpainting baseline: the model's generator with the exemplar code zeroed."""

    @tf.function(reduce_retracing=True)
    def inpaint(source, mask):
        features = trainer.generator.encode(source, mask)
        code_shape = tf.concat([tf.shape(features[-1])[:3], [trainer.encoder.code_channels]], axis=0)
        return composite(trainer.generator.decode(features, tf.zeros(code_shape)), source, mask)

    return Method(name, lambda source, exemplar, mask, transfer: inpaint(source, mask).numpy(), role="baseline")


def naive_paste(source: np.ndarray, exemplar: np.ndarray, mask: np.ndarray, transfer=None) -> np.ndarray:
    """B's pixels inside the mask, A's outside."""
    return exemplar * mask + source * (1.0 - mask)


NAIVE_PASTE = Method("naive paste", naive_paste, role="baseline", identity_reconstruction=True)


def method_names(variants: Sequence[str], model_dirs: Sequence[str]) -> list[str]:
    """Display names of models: the variant's ("Att-EBGAN"), plus the directory's name when two would clash."""
    names = [VARIANT_NAMES[variant] for variant in variants]
    return [f"{name} ({os.path.basename(os.path.normpath(path))})" if names.count(name) > 1 else name
            for name, path in zip(names, model_dirs)]


def trained_step(model_dir: str) -> int:
    """The training step of the run's latest checkpoint (the final weights are saved at that step), else 0."""
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return callbacks.checkpoint_step(latest) if latest else 0


# ------------------------------------------------------------------------------------------------ reports


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _decimal(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(report: dict) -> str:
    """The report as Markdown: set-up, one table per region, per-attribute tables, the targets."""
    classifier = report.get("classifier", {})
    accuracy = classifier.get("test_accuracy") or {}
    lines = ["# Edit-quality report", ""]
    lines += [f"- data: {report.get('dataset')} {report.get('split', 'test')} split, {report.get('num_pairs')} "
              f"pairs (exemplar of face i = face i+1), {report.get('image_size')} px, masks from the source's "
              "landmarks (unjittered)"]
    for model in report.get("models", []):
        lines.append(f"- {model['name']}: `{model['model_dir']}` ({model['variant']}, regions "
                     f"{','.join(model['regions'])}, step {model['step']})")
    if classifier:
        lines.append(f"- evaluation classifier: `{classifier.get('dir')}`, test accuracy on real images "
                     f"{_percent(accuracy.get('mean'))} mean, {_percent(accuracy.get('min'))} min")
    if report.get("date"):
        lines.append(f"- date: {report['date']}")
    lines += ["", "PSNR in dB (capped at 100), L1 in 0..255 pixel units, all inside the mask; attribute metrics "
              "read by the evaluation classifier; filtering drops one attribute at a time.", ""]
    header = ["method", "rec. PSNR", "rec. SSIM", "rec. L1", "transfer PSNR", "transfer SSIM", "transfer L1",
              "attribute acc.", "leak rate", "kept agreement", "filtered PSNR", "max diff outside"]
    for region, result in report["regions"].items():
        lines += [f"## Region: {region}", ""]
        rows = []
        for name, scores in result["methods"].items():
            rec, transfer, filtering = scores["reconstruction"] or {}, scores["transfer"] or {}, scores["filtering"]
            rows.append([name, _decimal(rec.get("psnr"), 2), _decimal(rec.get("ssim"), 3), _decimal(rec.get("l1"), 2),
                         _decimal(transfer.get("psnr"), 2), _decimal(transfer.get("ssim"), 3),
                         _decimal(transfer.get("l1"), 2), _percent(scores["attribute_transfer"]["mean"]),
                         _percent(filtering["leak_rate"]["mean"]) if filtering else "—",
                         _percent(filtering["kept_agreement"]["mean"]) if filtering else "—",
                         _decimal(filtering["psnr"], 2) if filtering else "—", f"{scores['outside_max_diff']:g}"])
        truth = result["ground_truth"]
        if truth:
            filtering = truth["filtering"]
            rows.append(["ground truth (classifier ceiling)", *["—"] * 6,
                         _percent(truth["attribute_transfer"]["mean"]),
                         _percent(filtering["leak_rate"]["mean"]) if filtering else "—",
                         _percent(filtering["kept_agreement"]["mean"]) if filtering else "—", "—", "—"])
        lines += _table(header, rows) + [""]
        attributes = result["attributes"]
        per_attribute = [[name, *(_percent(scores["attribute_transfer"]["per_attribute"][a]) for a in attributes)]
                         for name, scores in result["methods"].items()]
        if truth:
            per_attribute.append(["ground truth", *(_percent(truth["attribute_transfer"]["per_attribute"][a])
                                                    for a in attributes)])
        lines += ["Attribute transfer accuracy per attribute:", ""] + _table(["method", *attributes], per_attribute)
        leaks = [[name, *(_percent(scores["filtering"]["leak_rate"]["per_attribute"][a]) for a in attributes)]
                 for name, scores in result["methods"].items() if scores["filtering"]]
        if truth and truth["filtering"]:
            leaks.append(["ground truth", *(_percent(truth["filtering"]["leak_rate"]["per_attribute"][a])
                                            for a in attributes)])
        if leaks:
            lines += ["", "Leak rate per attribute (switched off for exemplars that have it):", ""]
            lines += _table(["method", *attributes], leaks)
        lines.append("")
    if report["targets"]:
        lines += ["## Targets (issue 7)", ""]
        rows = [[check["region"], check["method"], check["target"], _format_target_value(check),
                 "met" if check["met"] else f"missed by {_format_margin(check)}"] for check in report["targets"]]
        lines += _table(["region", "method", "target", "value", "result"], rows) + [""]
    return "\n".join(lines)


def _format_target_value(check: dict) -> str:
    if "PSNR" in check["target"]:
        return f"{check['value']:.2f} dB" + (f" (best baseline {check['threshold']:.2f} dB)"
                                             if "baseline" in check["target"] else "")
    return _percent(check["value"])


def _format_margin(check: dict) -> str:
    if "PSNR" in check["target"]:
        return f"{abs(check['margin']):.2f} dB"
    return f"{100 * abs(check['margin']):.1f} points"


def _write_text(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise


def scalars(report: dict) -> dict[str, float]:
    """Every number of the region tables, keyed "region/method/section_metric" (for TensorBoard)."""
    values = {}
    for region, result in report["regions"].items():
        rows = dict(result["methods"])
        if result["ground_truth"]:
            rows["ground truth"] = result["ground_truth"]
        for name, scores in rows.items():
            prefix = f"{region}/{name.replace(' ', '_')}"
            for section in ("reconstruction", "transfer"):
                for metric, value in (scores.get(section) or {}).items():
                    values[f"{prefix}/{section}_{metric}"] = value
            values[f"{prefix}/attribute_accuracy"] = scores["attribute_transfer"]["mean"]
            if scores.get("filtering"):
                values[f"{prefix}/leak_rate"] = scores["filtering"]["leak_rate"]["mean"]
                values[f"{prefix}/kept_agreement"] = scores["filtering"]["kept_agreement"]["mean"]
                if scores["filtering"]["psnr"] is not None:
                    values[f"{prefix}/filtered_psnr"] = scores["filtering"]["psnr"]
            if "outside_max_diff" in scores:
                values[f"{prefix}/outside_max_diff"] = scores["outside_max_diff"]
    return {tag: value for tag, value in values.items() if value is not None}


def write_report(output_dir: str, report: dict, grid: np.ndarray, step: int = 0) -> None:
    """Writes report.md, report.json and grid.png (each atomically) and the TensorBoard summaries in logs/."""
    os.makedirs(output_dir, exist_ok=True)
    _write_text(os.path.join(output_dir, "report.json"), json.dumps(report, indent=2, allow_nan=False) + "\n")
    _write_text(os.path.join(output_dir, "report.md"), markdown(report))
    images.save_image(os.path.join(output_dir, "grid.png"), grid)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs"))
    with writer.as_default():
        for tag, value in scalars(report).items():
            callbacks.write_scalar(tag, value, step)
        callbacks.write_image("grid", grid, step)
    writer.close()


# ------------------------------------------------------------------------------------------------ command


def evaluate_models(model_dirs: Sequence[str], data_dir: str, classifier_dir: str, output_dir: str,
                    dataset: str | None = None, regions: Sequence[str] | None = None, num_pairs: int = 500,
                    batch_size: int = 32, grid_rows: int = 4) -> dict:
    """`ebgan-eval`: loads the trained runs and the evaluation classifier, scores the models and the baselines on
    the test split, writes the report into `output_dir` and returns it.

    Raises ValueError / FileNotFoundError for user errors (unknown dataset or region, a directory without a
    model or classifier, mismatched image sizes, missing data), before anything is written.
    """
    if not model_dirs:
        raise ValueError("No model directory given.")
    if dataset is not None:
        pipeline.validate_dataset(dataset)
    if regions is not None:
        parse_regions(regions)
    configs = [run_config_from_dir(model_dir) for model_dir in model_dirs]
    sizes = {config.model_config().image_size for config in configs}
    if len(sizes) > 1:
        raise ValueError(f"The models differ in image size ({', '.join(map(str, sorted(sizes)))} px); "
                         "compare models of one size.")
    image_size = sizes.pop()
    dataset = pipeline.validate_dataset(dataset or configs[0].dataset)
    regions = parse_regions(regions or configs[0].regions)
    classifier = load_eval_classifier(classifier_dir)
    if classifier.config.dataset != dataset or classifier.image_size != image_size:
        raise ValueError(f"The evaluation classifier in {classifier_dir} reads {classifier.config.dataset} at "
                         f"{classifier.image_size} px; the evaluation needs {dataset} at {image_size} px.")
    preset = dataset_preset(dataset)
    region_attributes = {region: preset.region_attributes[region] for region in regions}
    pairs = load_pairs(dataset, data_dir, image_size, num_pairs)
    truth = SwapTruth(pairs, image_size) if pairs.seeds is not None else None

    trainers = [load_trained(model_dir) for model_dir in model_dirs]
    names = method_names([trainer.variant for trainer in trainers], model_dirs)
    methods = [model_method(trainer, name) for trainer, name in zip(trainers, names)]
    methods.append(NAIVE_PASTE)
    methods += [zero_code_method(trainer, f"zero exemplar code ({name})") for trainer, name in zip(trainers, names)]
    results, grid = evaluate(methods, pairs, region_attributes, classifier, truth, batch_size, grid_rows)
    report = {
        "dataset": dataset, "split": pipeline.EVAL_SPLIT[dataset], "num_pairs": len(pairs), "image_size": image_size,
        "date": datetime.date.today().isoformat(), "max_psnr": MAX_PSNR,
        "models": [{"name": name, "model_dir": model_dir, "variant": config.variant, "regions": list(config.regions),
                    "step": trained_step(model_dir)} for name, model_dir, config in zip(names, model_dirs, configs)],
        "classifier": {"dir": classifier_dir, "attribute_names": list(classifier.attribute_names),
                       "test_accuracy": classifier.test_accuracy},
        **results,
    }
    write_report(output_dir, report, grid, step=report["models"][0]["step"])
    return report
