"""`make bench`: runs every benchmark section, prints one table and records it in docs/BENCHMARKS.md.

Each section is a module of this package with `run() -> list[(measure, value)]`. The table of this run replaces
the "Latest `make bench`" part of docs/BENCHMARKS.md (the rest of that file, hand-written notes, is kept).
Figures come from one run on a shared machine: compare ratios within the table, not absolute times across runs.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
import time

from ebgan_tf.files import write_text_atomically

# Order matters: peak first (the reference of every share of peak), training before pipeline (its consumption),
# targets last (it reads what the others measured).
SECTIONS: tuple[str, ...] = (
    "peak",
    "training",
    "export",
    "composed",
    "resampling",
    "pipeline",
    "celeba",
    "serving",
    "web",
    "targets",
)
REPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "BENCHMARKS.md")
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


def run_sections(names: tuple[str, ...] = SECTIONS) -> list[tuple[str, str, str]]:
    """(section, measure, value) rows of every section, in order; prints progress as it goes."""
    rows = []
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        rows += [(name, measure, value) for measure, value in module.run()]
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def markdown(rows: list[tuple[str, str, str]], minutes: float | None = None) -> str:
    """The table of a run, with the command, date, machine and (if given) the run's length."""
    length = f", {minutes:.1f} min" if minutes is not None else ""
    lines = [
        f"Command: `make bench` (`python -m benchmarks.run`), {datetime.date.today().isoformat()}, "
        f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}{length}.",
        "",
        "| section | measure | value |",
        "|---|---|---|",
    ]
    lines += [f"| {section} | {measure} | {value} |" for section, measure, value in rows]
    return "\n".join(lines)


def record(table: str, path: str = REPORT) -> None:
    """Replaces the marked part of `path` with `table` (appends it the first time), atomically."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{BEGIN}\n## Latest `make bench`\n\n{table}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_text_atomically(path, text)


def main() -> int:
    names = tuple(sys.argv[1:]) or SECTIONS
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        print(f"benchmarks: unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    rows = run_sections(names)
    table = markdown(rows, (time.perf_counter() - started) / 60)
    print(table)
    if names == SECTIONS:
        record(table)
        print(f"Recorded in {REPORT}")
    else:
        print(f"Not recorded in {REPORT}: only a full run (no section names) replaces its table.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
