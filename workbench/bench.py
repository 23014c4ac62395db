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


def write_section(
    title: str,
    markdown: str,
    command: str,
    path: Path | None = None,
    supersedes: tuple[str, ...] = (),
) -> Path:
    """Replace (or append) the ``## <title>`` section of BENCHMARKS.md.

    ``supersedes`` lists title prefixes of partial sections whose rows this run measures again
    (``"PDE: rerun of "`` for a whole PDE run): they are removed, so that regenerating the file
    leaves no older partial section beside the new one.
    """
    path = path or BENCHMARKS_MD
    text = path.read_text() if path.exists() else _HEADER
    keep = f"## {title}\n"  # the section being written is replaced below, not dropped
    for prefix in supersedes:
        old = re.compile(rf"^## {re.escape(prefix)}.*?\n.*?(?=^## |\Z)", re.S | re.M)
        text = old.sub(lambda m: m.group(0) if m.group(0).startswith(keep) else "", text)
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


def bootstrap_ci(
    values, stat=None, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` (default: the mean) over ``values``.

    Resamples the cases (slices, seeds, patients) with replacement ``n_boot`` times with a
    seeded generator, so a rerun prints the same interval. Returns ``(lo, hi)``; NaN for
    fewer than two finite values.
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    stat = stat or np.mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = np.array([stat(x[i]) for i in idx])
    a = (1.0 - level) / 2.0
    return float(np.quantile(boots, a)), float(np.quantile(boots, 1.0 - a))


def paired_bootstrap(
    a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Paired comparison of two methods on the same cases: mean of ``a - b`` with its interval.

    ``p_better`` is the bootstrap fraction of resamples with a positive mean difference (a
    one-sided support for "a is better", not a p-value). Cases where either value is not finite
    are dropped from both.
    """
    import numpy as np

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size < 2:
        return {
            "diff": float("nan"),
            "lo": float("nan"),
            "hi": float("nan"),
            "p_better": float("nan"),
            "n": int(d.size),
        }
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    al = (1.0 - level) / 2.0
    return {
        "diff": float(d.mean()),
        "lo": float(np.quantile(means, al)),
        "hi": float(np.quantile(means, 1.0 - al)),
        "p_better": float((means > 0).mean()),
        "n": int(d.size),
    }


def fmt_ci(mean: float, lo: float, hi: float, fmt: str = ".2f") -> str:
    """``"31.20 [30.85, 31.61]"``: a mean with its interval, for the markdown tables."""
    return f"{format(mean, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]"


class CheckFailed(AssertionError):
    """A ``--check`` (``make bench-quick``) correctness failure: not converged, NaN, peer missing."""


def check(condition: bool, message: str) -> None:
    """Correctness gate for ``make bench-quick``: raise :class:`CheckFailed` (never about time)."""
    if not condition:
        raise CheckFailed(message)
