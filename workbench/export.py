"""Exports: figures (PNG/SVG/PDF), data (NPZ/HDF5/CSV) and run bundles (zip).

Figures go through plotly + kaleido, which drives the system Chromium; one kaleido server is
started per process on first use so later exports take ~0.3 s instead of ~2 s.
"""

from __future__ import annotations

import io
import json
import threading
import warnings
import zipfile
from typing import Any

import numpy as np

FIGURE_FORMATS = ("png", "svg", "pdf")
DATA_FORMATS = ("npz", "h5", "csv")
MIME = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "npz": "application/octet-stream",
    "h5": "application/x-hdf5",
    "csv": "text/csv",
    "zip": "application/zip",
    "json": "application/json",
    "html": "text/html",
    "nii.gz": "application/gzip",
}

_kaleido_lock = threading.Lock()
_kaleido_started = False


def _ensure_kaleido() -> None:
    global _kaleido_started
    if _kaleido_started:
        return
    import kaleido

    try:
        kaleido.start_sync_server(silence_warnings=True)
    except TypeError:  # older signature
        kaleido.start_sync_server()
    except RuntimeError:  # already running in this process
        pass
    _kaleido_started = True


def figure_bytes(
    fig: Any, fmt: str = "png", width: int = 1000, height: int = 600, scale: float = 2
) -> bytes:
    """Render a plotly figure to PNG, SVG or PDF bytes."""
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}")
    with _kaleido_lock:  # kaleido's sync server is not re-entrant
        _ensure_kaleido()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fig.to_image(
                format=fmt, width=width, height=height, scale=scale if fmt == "png" else 1
            )


def _flat(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in arrays.items():
        if v is None:
            continue
        a = np.asarray(v)
        if a.dtype == object:
            continue
        out[k] = a
    return out


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **_flat(arrays))
    return buf.getvalue()


def hdf5_bytes(arrays: dict[str, Any], attrs: dict[str, Any] | None = None) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for k, a in _flat(arrays).items():
            f.create_dataset(k, data=a, compression="gzip" if a.size > 1024 else None)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v, default=str)
    return buf.getvalue()


def csv_bytes(array: Any, header: list[str] | None = None) -> bytes:
    """A 1-D or 2-D array as CSV (complex arrays as magnitude)."""
    a = np.asarray(array)
    if np.iscomplexobj(a):
        a = np.abs(a)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim > 2:
        raise ValueError(f"CSV holds 1-D or 2-D arrays; this one has shape {a.shape}")
    buf = io.StringIO()
    np.savetxt(buf, a, delimiter=",", header=",".join(header) if header else "", comments="")
    return buf.getvalue().encode()


def table_csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """A list of dicts (a metrics table) as CSV."""
    import csv

    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode()


def data_bytes(arrays: dict[str, Any], fmt: str, primary: str = "output") -> bytes:
    """Arrays as NPZ, HDF5, or (the primary array) CSV."""
    if fmt == "npz":
        return npz_bytes(arrays)
    if fmt == "h5":
        return hdf5_bytes(arrays)
    if fmt == "csv":
        return csv_bytes(arrays[primary])
    raise ValueError(f"data format must be one of {DATA_FORMATS}")


def run_bundle(store: Any, run_id: str, figures: bool = True) -> bytes:
    """A zip with the run's params, metrics, versions, arrays and its figure (PNG + SVG)."""
    from workbench.registry import get_domain, resolve
    from workbench.store import result_to_arrays

    info = store.get(run_id)
    result = store.load_result(run_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("run.json", json.dumps(info.as_dict(), indent=2, default=str))
        z.writestr("params.json", json.dumps(info.params, indent=2, default=str))
        z.writestr("metrics.json", json.dumps(result.metrics, indent=2, default=str))
        z.writestr("versions.json", json.dumps(info.versions, indent=2, default=str))
        arrays = {k: v for k, v in result_to_arrays(result).items() if k != "__json__"}
        z.writestr("result.npz", npz_bytes(arrays))
        if figures and result.output.size:
            try:
                problem = store.load_problem(info.problem_id)
                fig = resolve(get_domain(info.domain).figure)(problem, result)
                z.writestr("figure.png", figure_bytes(fig, "png"))
                z.writestr("figure.svg", figure_bytes(fig, "svg"))
            except Exception as exc:  # a bundle without a figure is still a bundle
                z.writestr("figure_error.txt", f"{type(exc).__name__}: {exc}")
    return buf.getvalue()
