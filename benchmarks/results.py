"""Figures one section measures and a later section needs (e.g. training consumption for the pipeline's target).

Sections run in one process (benchmarks/run.py), so a plain dictionary carries them; a section run alone finds
the figures of sections that did not run missing and says so.
"""

from __future__ import annotations

MEASURED: dict[str, float] = {}


def target_row(
    name: str, value: float | None, threshold: float, unit: str = "", at_most: bool = False
) -> tuple[str, str]:
    """(measure, value) row of a target: the figure, the threshold and whether it is met."""
    comparison = "<=" if at_most else ">="
    measure = f"target: {name} {comparison} {threshold:g}{unit}"
    if value is None:
        return measure, "not measured (its section did not run)"
    met = value <= threshold if at_most else value >= threshold
    return measure, f"{value:.2f}{unit} ({'met' if met else 'MISSED'})"
