"""Readers and writers for optimal-transport inputs and plans (no pickle anywhere).

Accepted uploads
----------------
- ``.npz`` with arrays ``a``, ``b``, ``C`` (a cost matrix), or ``X``, ``Y`` (point clouds, shape
  (n, d) and (m, d)) with optional weights ``a``, ``b``; or ``source``, ``target`` (two 2-D images).
- ``.csv`` point clouds, one file, header required: ``side,x,y[,w]`` (any number of coordinate
  columns; ``side`` is ``a``/``b``, ``source``/``target`` or ``0``/``1``; ``w`` optional weights).
- ``.npy`` an array of shape (2, H, W): two images (source, target) as densities.
- ``.png`` one image holding two densities side by side: left half source, right half target
  (brighter = more mass; colour is converted to grey).
"""

from __future__ import annotations

import csv
import io

import numpy as np

from workbench.errors import InputError

MAX_BYTES = 200 * 1024 * 1024


def _check_size(data: bytes) -> None:
    if len(data) > MAX_BYTES:
        raise InputError(
            f"file too large ({len(data) / 2**20:.0f} MB > {MAX_BYTES / 2**20:.0f} MB)"
        )
    if len(data) == 0:
        raise InputError("empty file")


def read_npz(data: bytes) -> dict[str, np.ndarray]:
    from workbench.io.limits import load_npz_arrays

    _check_size(data)
    return load_npz_arrays(data, "the NPZ file")


def read_npy(data: bytes) -> np.ndarray:
    from workbench.io.limits import load_npy_array

    _check_size(data)
    return load_npy_array(data, "the NPY file")


_SIDES = {"a": 0, "source": 0, "0": 0, "s": 0, "b": 1, "target": 1, "1": 1, "t": 1}


def read_csv_clouds(
    data: bytes,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Parse ``side,x,y[,w]`` into (X, Y, a or None, b or None)."""
    _check_size(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("CSV is not UTF-8 text") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    except csv.Error as exc:  # e.g. a lone carriage return inside a field
        raise InputError(f"CSV is malformed ({exc})") from None
    if len(rows) < 3:
        raise InputError("CSV needs a header 'side,x,y[,w]' and at least one point per side")
    header = [h.strip().lower() for h in rows[0]]
    if "side" not in header:
        raise InputError("CSV header must name a 'side' column (side,x,y[,w])")
    iside = header.index("side")
    iw = next((header.index(k) for k in ("w", "weight", "mass") if k in header), None)
    icoords = [i for i in range(len(header)) if i not in (iside, iw)]
    if not icoords:
        raise InputError("CSV has no coordinate columns")
    sides, coords, weights = [], [], []
    for lineno, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise InputError(f"CSV line {lineno}: {len(r)} fields, header has {len(header)}")
        s = r[iside].strip().lower()
        if s not in _SIDES:
            raise InputError(
                f"CSV line {lineno}: side {r[iside]!r} is not a/b, source/target or 0/1"
            )
        sides.append(_SIDES[s])
        try:
            coords.append([float(r[i]) for i in icoords])
            if iw is not None:
                weights.append(float(r[iw]))
        except ValueError:
            raise InputError(f"CSV line {lineno}: non-numeric value") from None
    side = np.array(sides)
    pts = np.array(coords, dtype=np.float64)
    X, Y = pts[side == 0], pts[side == 1]
    if len(X) == 0 or len(Y) == 0:
        raise InputError("CSV must contain points on both sides (a and b)")
    if iw is None:
        return X, Y, None, None
    w = np.array(weights, dtype=np.float64)
    return X, Y, w[side == 0], w[side == 1]


def read_png_pair(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A PNG holding two densities side by side -> (left, right) grey images in [0, 1]."""
    from workbench.io.limits import open_image

    _check_size(data)
    img = open_image(data, "the PNG image")
    g = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    if g.shape[1] < 2 or g.shape[1] % 2:
        raise InputError(
            "PNG must hold two densities side by side (even width; left source, right target)"
        )
    h = g.shape[1] // 2
    return g[:, :h], g[:, h:]


def plan_to_coo(P: np.ndarray, threshold: float = 1e-15) -> dict[str, np.ndarray]:
    """Sparse export of a plan: entries above ``threshold`` as (row, col, value) arrays."""
    P = np.asarray(P)
    r, c = np.nonzero(P > threshold)
    return {
        "row": r.astype(np.int64),
        "col": c.astype(np.int64),
        "value": P[r, c],
        "shape": np.array(P.shape),
    }


def write_plan_npz(P: np.ndarray, threshold: float = 1e-15) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **plan_to_coo(P, threshold))
    return buf.getvalue()


def write_plan_csv(P: np.ndarray, threshold: float = 1e-15) -> bytes:
    coo = plan_to_coo(P, threshold)
    lines = ["row,col,value"] + [
        f"{r},{c},{v:.17g}" for r, c, v in zip(coo["row"], coo["col"], coo["value"], strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()
