"""Helpers for the benchmark scripts in ``benchmarks/``: the BENCHMARKS.md writer."""

from __future__ import annotations

import re
import time
from pathlib import Path

from workbench.device import versions

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

_HEADER = """# Benchmarks

Every table below was produced by the command printed above it, on the project's build machine
(2 CPU cores, no GPU, threads pinned to 1 unless stated), with the peers run side by side in the
same process. Numbers are measurements, misses included; rerun the command to refresh a section.
"""


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the source checkout (benchmarks are not installed)."""
    return ROOT / "benchmarks"


def write_section(title: str, markdown: str, command: str, path: Path | None = None) -> Path:
    """Replace (or append) the ``## <title>`` section of BENCHMARKS.md."""
    path = path or BENCHMARKS_MD
    text = path.read_text() if path.exists() else _HEADER
    v = versions()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = (
        f"## {title}\n\n"
        f"Command: `{command}`  \n"
        f"Measured {stamp}; numpy {v.get('numpy')}, torch {v.get('torch', '-')}, "
        f"workbench {v.get('workbench')}.\n\n{markdown.strip()}\n"
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + body
    path.write_text(text.rstrip() + "\n")
    return path


def markdown_table(
    rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".3g"
) -> str:
    """Render a list of dicts as a GitHub markdown table."""
    if not rows:
        return "_no rows_"
    columns = columns or list(rows[0])

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
