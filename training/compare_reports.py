r"""Compares two ebgan-eval reports: every number of their region tables, and every target, old beside new.

  python -m ebgan_tf.training.compare_reports --old=models/reports/eval_500 --new=models/reports/eval_500.new

`make models` writes its new records beside the old ones (`<record>.new`) and runs this on each, so that what a
retraining or re-export changed is seen before the new records replace the old (`make models-keep`).
"""

from __future__ import annotations

import json
import os

from absl import flags

from ebgan_tf.cli import check_no_arguments, reports_errors, require_flags, run_main
from ebgan_tf.evaluation.report import scalars, table


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_string("old", None, "Directory of the old report (report.json); required.")
    flags.DEFINE_string("new", None, "Directory of the new report (report.json); required.")


FLAGS = flags.FLAGS


def _read(directory: str) -> dict:
    path = os.path.join(directory, "report.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No report.json in {directory}.")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def compare(old: dict, new: dict) -> str:
    """Markdown: the numbers that differ (old, new, new - old), the targets whose result differs, and a count."""
    before, after = scalars(old), scalars(new)
    rows, same = [], 0
    for tag in sorted(set(before) | set(after)):
        was, now = before.get(tag), after.get(tag)
        if was == now:
            same += 1
            continue
        change = f"{now - was:+.4f}" if was is not None and now is not None else "—"
        rows.append([tag, _number(was), _number(now), change])

    def results(report: dict) -> dict[tuple[str, str, str], str]:
        return {
            (check["region"], check["method"], check["target"]): "met" if check["met"] else "missed"
            for check in report.get("targets", [])
        }

    old_targets, new_targets = results(old), results(new)
    target_rows = [
        [*key, old_targets.get(key, "—"), new_targets.get(key, "—")]
        for key in sorted(set(old_targets) | set(new_targets))
        if old_targets.get(key) != new_targets.get(key)
    ]
    lines = table(["number", "old", "new", "change"], rows) + [""] if rows else []
    if target_rows:
        lines += table(["region", "method", "target", "old", "new"], target_rows) + [""]
    lines.append(f"{len(rows)} numbers changed, {same} unchanged; {len(target_rows)} target results changed.")
    return "\n".join(lines)


@reports_errors("compare_reports", ValueError, OSError)
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    require_flags("old", "new")
    print(f"{FLAGS.old} -> {FLAGS.new}:\n{compare(_read(FLAGS.old), _read(FLAGS.new))}")
    return 0


def run() -> None:
    """Entry point of `python -m ebgan_tf.training.compare_reports`."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
