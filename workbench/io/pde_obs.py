"""Scattered observations of a PDE solution as CSV: ``x[,y],u`` rows after optional header lines
``# key: value`` (``problem``, ``sigma`` and known inputs such as ``w``).

    # problem: nlpoisson1d_param
    # sigma: 0.05
    # w: 1.5
    x,u
    -0.71,0.512
    ...

Parsed as text, validated before anything is computed: size, encoding, header, numbers, finite
values, row count. Never evaluates anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workbench.errors import InputError

MAX_BYTES = 2_000_000
MAX_ROWS = 100_000


@dataclass
class Observations:
    points: np.ndarray  # (n, d)
    values: np.ndarray  # (n,)
    header: dict[str, str] = field(default_factory=dict)

    @property
    def sigma(self) -> float | None:
        return None if "sigma" not in self.header else _number(self.header["sigma"], "sigma")


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{what}: {text[:30]!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{what}: values must be finite")
    return v


def read_observations(data: bytes, filename: str = "observations.csv") -> Observations:
    """Parse an observations CSV (see the module docstring); raise InputError on any fault."""
    if len(data) > MAX_BYTES:
        raise InputError(f"{filename}: too large (limit {MAX_BYTES // 1_000_000} MB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{filename}: not UTF-8 text") from None
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    columns: list[str] | None = None
    for k, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, val = line[1:].partition(":")
            if sep:
                header[key.strip().lower()] = val.strip()
            continue
        cells = [c.strip() for c in line.split(",")]
        if columns is None:
            columns = [c.lower() for c in cells]
            if columns not in (["x", "u"], ["x", "y", "u"], ["x", "t", "u"]):
                raise InputError(
                    f"{filename}: the first row must be the header x,u or x,y,u (got {line[:40]!r})"
                )
            continue
        if len(cells) != len(columns):
            raise InputError(
                f"{filename}: line {k} has {len(cells)} values, expected {len(columns)}"
            )
        rows.append(cells)
        if len(rows) > MAX_ROWS:
            raise InputError(f"{filename}: more than {MAX_ROWS} rows")
    if columns is None or not rows:
        raise InputError(f"{filename}: no observations (expected a header x,u and rows of numbers)")
    arr = np.array([[_number(c, f"{filename} line") for c in r] for r in rows], float)
    return Observations(points=arr[:, :-1], values=arr[:, -1], header=header)


def write_observations(points: np.ndarray, values: np.ndarray, header: dict | None = None) -> bytes:
    """The inverse of :func:`read_observations`."""
    pts = np.asarray(points, float).reshape(len(values), -1)
    names = ["x", "y"][: pts.shape[1]] + ["u"]
    lines = [f"# {k}: {v}" for k, v in (header or {}).items()] + [",".join(names)]
    lines += [",".join(repr(float(v)) for v in (*p, u)) for p, u in zip(pts, values, strict=True)]
    return ("\n".join(lines) + "\n").encode()
