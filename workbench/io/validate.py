"""Checks shared by every reader: size, finiteness, shape, dtype."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from workbench.errors import InputError

#: Largest upload or input file accepted, in bytes (``WORKBENCH_MAX_UPLOAD_MB``, default 1024).
MAX_BYTES = int(float(os.environ.get("WORKBENCH_MAX_UPLOAD_MB", "1024")) * 2**20)


def read_input(path: str | os.PathLike) -> bytes:
    """Read a user file after checking it exists and is not absurdly large."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file: {p}")
    if not p.is_file():
        raise InputError(f"not a regular file: {p}")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"{p.name} is empty")
    check_size(size, p.name)
    return p.read_bytes()


def check_size(nbytes: int, name: str = "file") -> None:
    if nbytes > MAX_BYTES:
        raise InputError(
            f"{name} is {nbytes / 2**20:.0f} MiB; the limit is {MAX_BYTES / 2**20:.0f} MiB "
            "(set WORKBENCH_MAX_UPLOAD_MB to change it)"
        )


def check_finite(a: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise InputError(f"{what} contains {bad} NaN or infinite value(s)")
    return a


def check_ndim(a: np.ndarray, ndim: int | tuple[int, ...], what: str) -> np.ndarray:
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise InputError(f"{what} must be {want}, got shape {a.shape}")
    return a


def check_numeric(a: np.ndarray, what: str, complex_ok: bool = True) -> np.ndarray:
    kinds = "biufc" if complex_ok else "biuf"
    if a.dtype.kind not in kinds:
        raise InputError(f"{what} must be numeric, got dtype {a.dtype}")
    return a


def check_elements(n: int, limit: float, what: str) -> None:
    if n > limit:
        raise InputError(f"{what} has {n:,} elements; the limit is {int(limit):,}")


def load_npz(data: bytes, filename: str = "file.npz") -> dict[str, np.ndarray]:
    """Arrays of an NPZ/NPY upload, size-checked from their headers first; refuses pickled objects."""
    from workbench.io.limits import load_npy_array, load_npz_arrays

    if data.startswith(b"\x93NUMPY"):
        return {"data": load_npy_array(data, filename)}
    if data.startswith(b"PK\x03\x04"):
        return load_npz_arrays(data, filename)
    raise InputError(f"{filename} is not a valid NPY/NPZ file")
