"""The project's quality targets as data: a table (targets.json beside this module, or a file given to `ebgan-eval
--targets`) read into `TargetTable`, and the report's target checks of one region's scores.

A table is {"sets": [{"name", "label"?, "min_pairs"?, "targets": [target, ...]}, ...]}; a target is
{"metric", one of "min" / "max" / "over" (with an optional "by" in dB), "attribute"?, "regions"?, "variants"?,
"not_variants"?} (docs/evaluation.md, "Targets").
"""

from __future__ import annotations

import dataclasses
import json
import os

from ebgan_tf.config import REGIONS
from ebgan_tf.evaluation.methods import NAIVE_PASTE

DEFAULT_TARGETS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets.json")
# metric -> (its name in the report, its unit: "dB", "gain" (signed dB), "%" (a rate) or "" (a plain number)).
METRICS = {
    "code_spread": ("code spread", ""),
    "exemplar_gain": ("exemplar gain", "gain"),
    "transfer_psnr": ("transfer PSNR", "dB"),
    "reconstruction_psnr": ("reconstruction PSNR", "dB"),
    "attribute_accuracy": ("attribute transfer accuracy", "%"),
    "leak_rate": ("filter leak rate", "%"),  # with an attribute: that attribute's leak rate
    "filtered_psnr": ("PSNR without {attribute}", "dB"),  # needs an attribute
}
# The baselines a PSNR can be held above: name -> (its words after ">=", its words after "above").
BASELINES = {
    "every_baseline": ("every baseline", "every baseline"),
    "naive_paste": ("naive paste", "the naive paste's"),
    "zero_code": ("zero-code baseline", "the zero-code baseline's"),
}
_TARGET_KEYS = {"metric", "min", "max", "over", "by", "attribute", "regions", "variants", "not_variants"}
_SET_KEYS = {"name", "about", "label", "min_pairs", "targets"}


@dataclasses.dataclass(frozen=True)
class Target:
    """One row of the table: `metric` >= `min`, <= `max`, or above the baseline `over` (by `by` dB, else strictly),
    for the models of `variants` (all if empty) but not `not_variants`, in `regions` (all if empty)."""

    metric: str
    min: float | None = None
    max: float | None = None
    over: str | None = None
    by: float | None = None
    attribute: str | None = None
    regions: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    not_variants: tuple[str, ...] = ()

    def applies(self, region: str, variant: str) -> bool:
        return (
            (not self.regions or region in self.regions)
            and (not self.variants or variant in self.variants)
            and variant not in self.not_variants
        )

    def name(self) -> str:
        """The target as the report names it, e.g. "transfer PSNR >= every baseline + 3 dB"."""
        label, unit = METRICS[self.metric]
        if self.attribute and self.metric == "leak_rate":
            label = f"{self.attribute} leak rate"
        label = label.format(attribute=self.attribute)
        if self.over is not None:
            at_least, above = BASELINES[self.over]
            return f"{label} >= {at_least} + {self.by:g} dB" if self.by is not None else f"{label} above {above}"
        bound = self.min if self.min is not None else self.max
        assert bound is not None  # a target without "over" has "min" or "max"
        amount = {"dB": f"{bound:g} dB", "gain": f"+{bound:g} dB", "%": f"{100 * bound:g}%", "": f"{bound:g}"}[unit]
        return f"{label} {'>=' if self.min is not None else '<='} {amount}"


@dataclasses.dataclass(frozen=True)
class TargetSet:
    """Targets set for one kind of model; they apply to evaluations of at least `min_pairs` pairs."""

    name: str
    targets: tuple[Target, ...]
    label: str = ""  # appended to each target's name in the report, "[label]"
    min_pairs: int = 0


@dataclasses.dataclass(frozen=True)
class TargetTable:
    path: str
    sets: tuple[TargetSet, ...]


def load_targets(path: str | None = None) -> TargetTable:
    """Reads and checks a targets file (default: the project's, targets.json). FileNotFoundError when it is
    missing, ValueError naming the file and the entry when it is not a valid table."""
    path = path or DEFAULT_TARGETS_FILE
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Targets file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"Targets file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sets"), list):
        raise ValueError(f'Targets file {path} must be a JSON object with a list "sets".')
    return TargetTable(path, tuple(_target_set(path, index, entry) for index, entry in enumerate(data["sets"])))


def _target_set(path: str, index: int, entry: object) -> TargetSet:
    where = f"Targets file {path}, set {index + 1}"
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("name"), str)
        or not isinstance(entry.get("targets"), list)
    ):
        raise ValueError(f'{where}: a set is an object with a "name" and a list "targets".')
    _refuse_unknown_keys(where, entry, _SET_KEYS)
    min_pairs = entry.get("min_pairs", 0)
    if not isinstance(min_pairs, int) or isinstance(min_pairs, bool) or min_pairs < 0:
        raise ValueError(f'{where}: "min_pairs" must be a whole number >= 0, got {min_pairs!r}.')
    targets = tuple(
        _target(f"{where} ({entry['name']}), target {number + 1}", target)
        for number, target in enumerate(entry["targets"])
    )
    return TargetSet(entry["name"], targets, str(entry.get("label", "")), min_pairs)


def _refuse_unknown_keys(where: str, entry: dict, known: set[str]) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))}).")


def _target(where: str, entry: object) -> Target:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: a target is a JSON object, got {entry!r}.")
    _refuse_unknown_keys(where, entry, _TARGET_KEYS)
    if entry.get("metric") not in METRICS:
        raise ValueError(f"{where}: unknown metric {entry.get('metric')!r} (known: {', '.join(METRICS)}).")
    bounds = [key for key in ("min", "max", "over") if key in entry]
    if len(bounds) != 1:
        raise ValueError(f'{where}: give exactly one of "min", "max" and "over".')
    for key in ("min", "max", "by"):
        if key in entry and (not isinstance(entry[key], (int, float)) or isinstance(entry[key], bool)):
            raise ValueError(f'{where}: "{key}" must be a number, got {entry[key]!r}.')
    if "over" in entry and entry["over"] not in BASELINES:
        raise ValueError(f"{where}: unknown baseline {entry['over']!r} (known: {', '.join(BASELINES)}).")
    if "over" in entry and entry["metric"] not in ("transfer_psnr", "filtered_psnr"):
        raise ValueError(f"{where}: only transfer_psnr and filtered_psnr can be held above a baseline.")
    if "by" in entry and "over" not in entry:
        raise ValueError(f'{where}: "by" goes with "over".')
    if entry["metric"] == "filtered_psnr" and (
        not isinstance(entry.get("attribute"), str) or entry.get("over") != "zero_code"
    ):
        raise ValueError(f'{where}: filtered_psnr needs an "attribute" and "over": "zero_code".')
    lists = {}
    for key in ("regions", "variants", "not_variants"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f'{where}: "{key}" must be a list of names, got {value!r}.')
        lists[key] = tuple(value)
    unknown = [region for region in lists["regions"] if region not in REGIONS]
    if unknown:
        raise ValueError(f"{where}: unknown region {unknown[0]!r} (known: {', '.join(REGIONS)}).")
    return Target(
        entry["metric"],
        entry.get("min"),
        entry.get("max"),
        entry.get("over"),
        entry.get("by"),
        entry.get("attribute"),
        **lists,
    )


def _value(target: Target, scores: dict) -> float | None:
    """The model's value of the target's metric (None where it was not measured)."""
    transfer, filtering = scores.get("transfer"), scores.get("filtering")
    if target.metric in ("transfer_psnr", "exemplar_gain"):
        return transfer["psnr" if target.metric == "transfer_psnr" else "exemplar_gain"] if transfer else None
    if target.metric == "code_spread":
        return scores["code_spread"]["mean"] if scores.get("code_spread") else None
    if target.metric == "reconstruction_psnr":
        return scores["reconstruction"]["psnr"] if scores.get("reconstruction") else None
    if target.metric == "attribute_accuracy":
        return scores["attribute_transfer"]["mean"] if scores.get("attribute_transfer") else None
    if not filtering:
        return None
    if target.metric == "leak_rate":
        rates = filtering["leak_rate"]
        return (rates["per_attribute"].get(target.attribute) if target.attribute else rates["mean"]) if rates else None
    return (filtering["psnr_per_attribute"] or {}).get(target.attribute)  # filtered_psnr


def _baseline(target: Target, methods: dict, model: str) -> float | None:
    """The PSNR of the baseline the target holds the model above: the naive paste, the model's own zero-code
    baseline (not another model's), or the best of those two (None where none was measured)."""
    assert target.over is not None  # a target held over a baseline
    zero_code = f"zero exemplar code ({model})"
    names = {
        "naive_paste": [NAIVE_PASTE.name],
        "zero_code": [zero_code],
        "every_baseline": [
            name
            for name, scores in methods.items()
            if scores["role"] == "baseline" and (not name.startswith("zero exemplar code (") or name == zero_code)
        ],
    }[target.over]
    if target.metric == "filtered_psnr":
        values = [
            (methods[name].get("unfiltered_psnr_per_attribute") or {}).get(target.attribute)
            for name in names
            if name in methods
        ]
    else:
        values = [methods[name]["transfer"]["psnr"] for name in names if name in methods and methods[name]["transfer"]]
    measured = [value for value in values if value is not None]
    return max(measured) if measured else None


def target_checks(table: TargetTable, region: str, result: dict, num_pairs: int) -> list[dict]:
    """The checks of every model of one region's result against the table: region, method, target (its name),
    value, threshold, met and the margin (positive: by how much it was met)."""
    methods = result["methods"]
    checks = []
    for name, scores in methods.items():
        if scores["role"] != "model":
            continue
        for target_set in table.sets:
            if num_pairs < target_set.min_pairs:
                continue
            for target in target_set.targets:
                if not target.applies(region, scores.get("variant", "")):
                    continue
                value = _value(target, scores)
                if target.over is not None:
                    baseline = _baseline(target, methods, name)
                    threshold = None if baseline is None else baseline + (target.by or 0.0)
                else:
                    threshold = target.min if target.min is not None else target.max
                if value is None or threshold is None:
                    continue
                margin = threshold - value if target.max is not None else value - threshold
                met = margin > 0 if target.over is not None and target.by is None else margin >= 0
                label = f" [{target_set.label}]" if target_set.label else ""
                checks.append(
                    {
                        "region": region,
                        "method": name,
                        "target": target.name() + label,
                        "value": value,
                        "threshold": threshold,
                        "met": bool(met),
                        "margin": margin,
                    }
                )
    return checks
