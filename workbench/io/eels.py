"""Readers and writers for EELS spectrum images and spectra.

Formats: ``.npy``/``.npz`` (numpy, no pickle), HyperSpy HDF5 (``.hspy``/``.h5``/``.hdf5``, read and
written with h5py, HyperSpy not needed), EMSA/MAS text (``.msa``/``.ems``, single spectra) and, only
when the optional GPL extra ``rosettasciio`` is installed, Gatan ``.dm3``/``.dm4`` (read-only).

Every reader returns an :class:`EELSData` with the cube as (ny, nx, nE) and the energy axis in eV;
:func:`validate` turns malformed input into a one-line :class:`~workbench.errors.InputError`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import InputError

#: Largest cube accepted (bytes as float32); override with WORKBENCH_EELS_MAX_MB.
DEFAULT_MAX_MB = 1024


def max_bytes() -> int:
    try:
        return int(float(os.environ.get("WORKBENCH_EELS_MAX_MB", DEFAULT_MAX_MB)) * 2**20)
    except ValueError:
        return DEFAULT_MAX_MB * 2**20


@dataclass
class EELSData:
    """A cube (ny, nx, nE) with its energy axis (eV) and metadata."""

    data: np.ndarray
    energy: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    truth: np.ndarray | None = None


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------


def validate(
    data: Any, energy: Any, *, what: str = "spectrum image"
) -> tuple[np.ndarray, np.ndarray]:
    """Check shape, axis and values; return (float32 cube (ny, nx, nE), float64 energy)."""
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise InputError(f"{what}: data must be numeric, got dtype {data.dtype}")
    if data.ndim == 1:
        data = data[None, None, :]
    elif data.ndim == 2:
        data = data[None, :, :]
    if data.ndim != 3:
        raise InputError(
            f"{what}: expected a (ny, nx, nE) cube or a spectrum, got {data.ndim} dimensions {data.shape}"
        )
    if data.size * 4 > max_bytes():
        raise InputError(
            f"{what}: cube of {data.size * 4 / 2**20:.0f} MB exceeds the {max_bytes() / 2**20:.0f} MB limit "
            "(crop or bin it first, or raise WORKBENCH_EELS_MAX_MB)"
        )
    if min(data.shape) < 1 or data.shape[2] < 8:
        raise InputError(f"{what}: need at least 8 energy channels, got shape {data.shape}")
    if energy is None:
        raise InputError(f"{what}: no energy axis (give 'energy' or an offset and dispersion)")
    energy = np.asarray(energy, dtype=np.float64).ravel()
    if energy.size != data.shape[2]:
        raise InputError(
            f"{what}: energy axis has {energy.size} values but the cube has {data.shape[2]} channels"
        )
    if not np.all(np.isfinite(energy)):
        raise InputError(f"{what}: energy axis contains NaN or infinite values")
    if np.any(np.diff(energy) <= 0):
        raise InputError(f"{what}: energy axis must be strictly increasing")
    data = data.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):
        raise InputError(f"{what}: data contain NaN or infinite values")
    return data, energy


def energy_from_calibration(n: int, offset: float, dispersion: float) -> np.ndarray:
    if not dispersion or dispersion <= 0:
        raise InputError("dispersion must be positive (eV per channel)")
    return float(offset) + float(dispersion) * np.arange(n, dtype=np.float64)


def _reorder(data: np.ndarray, axis_order: str) -> np.ndarray:
    order = axis_order.replace(" ", "").replace(",", "").lower()
    if data.ndim != 3 or order in ("", "yxe"):
        return data
    if sorted(order) != ["e", "x", "y"]:
        raise InputError(f"axis_order must be a permutation of 'yxE', got {axis_order!r}")
    return np.transpose(data, [order.index(c) for c in "yxe"])


# ------------------------------------------------------------------------------------------
# numpy
# ------------------------------------------------------------------------------------------


def read_numpy(
    raw: bytes,
    filename: str = "data.npz",
    *,
    axis_order: str = "yxE",
    offset: float | None = None,
    dispersion: float | None = None,
) -> EELSData:
    """``.npy`` (cube only: give offset/dispersion) or ``.npz`` with ``data`` and ``energy``."""
    from workbench.io.limits import check_npz, load_npy_array, load_npz_arrays

    truth = None
    meta: dict[str, Any] = {"source": filename}
    if raw.startswith(b"PK\x03\x04"):
        keys = set(check_npz(raw, filename, ()))
        key = next((k for k in ("data", "counts", "si", "cube", "arr_0") if k in keys), None)
        if key is None:
            raise InputError(
                f"{filename}: .npz must contain an array named 'data' (found {sorted(keys)})"
            )
        wanted = [key, "energy", "truth", "mask", "offset", "dispersion"]
        obj = load_npz_arrays(raw, filename, [k for k in wanted if k in keys])
        data = obj[key]
        energy = obj.get("energy")
        for tk in ("truth", "mask"):
            if tk in obj:
                truth = np.asarray(obj[tk]).astype(bool)
        try:
            if energy is None and offset is None and "offset" in obj:
                offset = float(obj["offset"])
            if energy is None and dispersion is None and "dispersion" in obj:
                dispersion = float(obj["dispersion"])
        except (TypeError, ValueError):
            raise InputError(
                f"{filename}: 'offset' and 'dispersion' must be single numbers"
            ) from None
    elif raw.startswith(b"\x93NUMPY"):
        data, energy = load_npy_array(raw, filename), None
    else:
        raise InputError(f"{filename}: not a readable numpy file")
    data = _reorder(np.asarray(data), axis_order)
    if energy is None and dispersion is not None:
        energy = energy_from_calibration(data.shape[-1], offset or 0.0, dispersion)
    return EELSData(data, energy, meta, truth)


def write_npz(target: Any, data: np.ndarray, energy: np.ndarray, **arrays: np.ndarray) -> None:
    np.savez_compressed(target, data=data, energy=energy, **arrays)


# ------------------------------------------------------------------------------------------
# HyperSpy HDF5
# ------------------------------------------------------------------------------------------


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.dtype.kind == "S":
        return [x.decode("utf-8", "replace") for x in v.ravel()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _group_to_dict(g: Any, depth: int = 0) -> dict[str, Any]:
    import h5py

    out: dict[str, Any] = {k: _attr(v) for k, v in g.attrs.items()}
    if depth > 8:
        return out
    for k, v in g.items():
        if isinstance(v, h5py.Group):
            out[k] = _group_to_dict(v, depth + 1)
    return out


def read_hspy(source: Any, filename: str = "data.hspy") -> EELSData:
    """Read a HyperSpy HDF5 file with h5py; the energy axis is the one with ``navigate = False``."""
    import h5py

    src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        f = h5py.File(src, "r")
    except Exception:  # noqa: BLE001
        raise InputError(f"{filename}: not a readable HDF5 file") from None
    with f:
        exp = f.get("Experiments")
        if exp is None:
            # plain HDF5: a dataset 'data' and 'energy' at the root
            if "data" in f:
                data = f["data"][()]
                energy = f["energy"][()] if "energy" in f else None
                truth = f["truth"][()].astype(bool) if "truth" in f else None
                return EELSData(data, energy, {"source": filename}, truth)
            raise InputError(
                f"{filename}: no /Experiments group (HyperSpy layout) and no /data dataset"
            )
        titles = list(exp.keys())
        if not titles:
            raise InputError(f"{filename}: /Experiments is empty")
        g = exp[titles[0]]
        if "data" not in g:
            raise InputError(f"{filename}: /Experiments/{titles[0]} has no 'data' dataset")
        dset = g["data"]
        if dset.size * 4 > max_bytes():
            raise InputError(
                f"{filename}: cube of {dset.size * 4 / 2**20:.0f} MB exceeds the "
                f"{max_bytes() / 2**20:.0f} MB limit (raise WORKBENCH_EELS_MAX_MB)"
            )
        try:
            data = dset[()]
        except OSError as e:
            raise InputError(
                f"{filename}: cannot read data ({e}); Blosc files need 'hdf5plugin'"
            ) from None
        axes = []
        for i in range(data.ndim):
            a = g.get(f"axis-{i}")
            if a is None:
                raise InputError(f"{filename}: missing axis-{i} metadata")
            ad = {k: _attr(v) for k, v in a.attrs.items()}
            if "axis" in a:
                ad["axis"] = np.asarray(a["axis"][()], dtype=np.float64)
            axes.append(ad)
        sig = [i for i, a in enumerate(axes) if not bool(a.get("navigate", True))]
        if len(sig) != 1:
            raise InputError(
                f"{filename}: expected exactly one signal (energy) axis, found {len(sig)}"
            )
        ie = sig[0]
        a = axes[ie]
        n = data.shape[ie]
        if "axis" in a and np.size(a["axis"]) == n:
            energy = np.asarray(a["axis"], dtype=np.float64)
        else:
            energy = float(a.get("offset", 0.0)) + float(a.get("scale", 1.0)) * np.arange(n)
        units = str(a.get("units", "eV"))
        if units.lower() == "kev":
            energy = energy * 1000.0
        nav = [i for i in range(data.ndim) if i != ie]
        data = np.moveaxis(data, ie, -1)
        # HyperSpy stores navigation in array order (y, x); keep it
        meta = {
            "source": filename,
            "title": titles[0],
            "axes": [{k: v for k, v in ax.items() if k != "axis"} for ax in axes],
        }
        if "metadata" in g:
            meta["metadata"] = _group_to_dict(g["metadata"])
        meta["nav_axes"] = nav
        truth = None
        if "truth" in g:
            truth = g["truth"][()].astype(bool)
    return EELSData(data, energy, meta, truth)


def _set_attrs(g: Any, d: dict[str, Any]) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            _set_attrs(g.require_group(k), v)
        elif v is not None:
            g.attrs[k] = v


def write_hspy(
    target: Any,
    data: np.ndarray,
    energy: np.ndarray | None = None,
    *,
    title: str = "EELS",
    signal_type: str = "EELS",
    metadata: dict[str, Any] | None = None,
    spatial_scale: float = 1.0,
    spatial_units: str = "px",
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write HyperSpy's HDF5 layout (``file_format = "HyperSpy"``).

    With ``energy`` the last axis is the signal (energy) axis and the others navigate (an SI
    (y, x, E) or a spectrum (E,)); without it the array is written as an image signal (score maps,
    masks), all axes signal axes.
    """
    import h5py

    with h5py.File(target, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.2"
        g = f.create_group("Experiments").create_group(title)
        arr = np.asarray(data)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        g.create_dataset("data", data=arr, compression="gzip", compression_opts=4)
        names = (
            ["y", "x"][-(arr.ndim - 1) :]
            if energy is not None and arr.ndim > 1
            else ["y", "x"][-arr.ndim :]
        )
        for i in range(arr.ndim):
            a = g.create_group(f"axis-{i}")
            is_energy = energy is not None and i == arr.ndim - 1
            if is_energy:
                e = np.asarray(energy, np.float64)
                d = np.diff(e)
                a.attrs["name"] = "Energy loss"
                a.attrs["units"] = "eV"
                a.attrs["offset"] = float(e[0])
                a.attrs["scale"] = float(d.mean()) if d.size else 1.0
                if d.size and np.ptp(d) > 1e-6 * abs(d.mean()):
                    a.create_dataset("axis", data=e)
                a.attrs["navigate"] = False
            else:
                a.attrs["name"] = names[i] if i < len(names) else f"axis{i}"
                a.attrs["units"] = spatial_units
                a.attrs["offset"] = 0.0
                a.attrs["scale"] = float(spatial_scale)
                a.attrs["navigate"] = energy is not None
            a.attrs["size"] = int(arr.shape[i])
        md = {
            "General": {"title": title},
            "Signal": {
                "signal_type": signal_type if energy is not None else "",
                "record_by": "spectrum" if energy is not None else "image",
            },
        }
        for k, v in (metadata or {}).items():
            if isinstance(v, dict):
                md.setdefault(k, {}).update(v)
            else:
                md[k] = v
        _set_attrs(g.create_group("metadata"), md)
        g.create_group("original_metadata")
        for k, v in (extra or {}).items():
            g.create_dataset(k, data=np.asarray(v))


# ------------------------------------------------------------------------------------------
# EMSA / MAS
# ------------------------------------------------------------------------------------------


def read_msa(raw: bytes | str, filename: str = "spectrum.msa") -> EELSData:
    """Parse an EMSA/MAS spectral data file (Y or XY data); keV axes are converted to eV."""
    text = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else raw
    header: dict[str, str] = {}
    values: list[float] = []
    in_data = False
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            key, _, val = s[1:].partition(":")
            key = key.strip().upper()
            key = key.split("-")[0] if key.startswith("SPECTRUM") else key
            if key == "SPECTRUM":
                in_data = True
                continue
            if key == "ENDOFDATA":
                break
            header[key] = val.strip()
            continue
        if in_data:
            for tok in s.replace(",", " ").split():
                try:
                    values.append(float(tok))
                except ValueError:
                    raise InputError(
                        f"{filename}: bad number {tok!r} in the data section"
                    ) from None
    if "FORMAT" not in header and not values:
        raise InputError(f"{filename}: not an EMSA/MAS file (no #FORMAT / #SPECTRUM)")
    if not values:
        raise InputError(f"{filename}: no data after #SPECTRUM")
    dtype = header.get("DATATYPE", "Y").upper()
    ncol = int(float(header.get("NCOLUMNS", "1") or 1))
    if dtype.startswith("XY"):
        if len(values) % 2:
            raise InputError(f"{filename}: XY data with an odd number of values")
        xy = np.asarray(values).reshape(-1, 2)
        x, y = xy[:, 0], xy[:, 1]
    else:
        y = np.asarray(values, np.float64)
        n = int(float(header.get("NPOINTS", y.size)))
        y = y[:n] if ncol <= 1 else y[: n * ncol]
        if "XPERCHAN" not in header:
            raise InputError(f"{filename}: Y data need #XPERCHAN (dispersion)")
        x = float(header.get("OFFSET", 0.0)) + float(header["XPERCHAN"]) * np.arange(y.size)
    units = header.get("XUNITS", "eV").strip().lower()
    if units == "kev":
        x = x * 1000.0
    meta = {"source": filename, "msa": header}
    return EELSData(y[None, None, :], x, meta)


def write_msa(
    target: Any,
    spectrum: np.ndarray,
    energy: np.ndarray,
    *,
    title: str = "spectrum",
    yunits: str = "counts",
    beam_kv: float | None = None,
) -> str:
    """Write a single spectrum as EMSA/MAS text (DATATYPE XY when the axis is non-uniform)."""
    y = np.asarray(spectrum, np.float64).ravel()
    e = np.asarray(energy, np.float64).ravel()
    d = np.diff(e)
    uniform = d.size == 0 or np.ptp(d) <= 1e-6 * abs(d.mean())
    lines = [
        "#FORMAT      : EMSA/MAS Spectral Data File",
        "#VERSION     : 1.0",
        f"#TITLE       : {title}",
        "#DATE        : ",
        "#TIME        : ",
        "#OWNER       : inverse-workbench",
        f"#NPOINTS     : {y.size}",
        "#NCOLUMNS    : 1",
        "#XUNITS      : eV",
        f"#YUNITS      : {yunits}",
        f"#DATATYPE    : {'Y' if uniform else 'XY'}",
        f"#XPERCHAN    : {float(d.mean()) if d.size else 1.0:.10g}",
        f"#OFFSET      : {float(e[0]):.10g}",
        "#SIGNALTYPE  : EELS",
    ]
    if beam_kv is not None:
        lines.append(f"#BEAMKV      : {beam_kv:g}")
    lines.append("#SPECTRUM    : Spectral Data Starts Here")
    if uniform:
        lines += [f"{v:.8g}," for v in y]
    else:
        lines += [f"{a:.10g}, {v:.8g}" for a, v in zip(e, y, strict=True)]
    lines.append("#ENDOFDATA   : ")
    text = "\r\n".join(lines) + "\r\n"
    if target is not None:
        if isinstance(target, (str, os.PathLike)):
            with open(target, "w", encoding="latin-1", newline="") as fh:
                fh.write(text)
        else:
            target.write(
                text.encode("latin-1")
                if isinstance(target, io.BufferedIOBase | io.BytesIO)
                else text
            )
    return text


# ------------------------------------------------------------------------------------------
# Gatan DigitalMicrograph (optional GPL extra)
# ------------------------------------------------------------------------------------------


def read_dm(raw: bytes, filename: str = "data.dm4") -> EELSData:
    """Read ``.dm3``/``.dm4`` through RosettaSciIO when installed (optional extra, GPL-3)."""
    try:
        from rsciio.digitalmicrograph import file_reader  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(
            f"{filename}: reading .dm3/.dm4 needs the optional GPL extra "
            "(pip install 'inverse-workbench[gpl]', i.e. rosettasciio); export to .hspy or .npz instead"
        ) from None
    import tempfile

    suffix = os.path.splitext(filename)[1] or ".dm4"
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(raw)
        tmp.flush()
        try:
            items = file_reader(tmp.name)
        except Exception as e:  # noqa: BLE001
            raise InputError(
                f"{filename}: RosettaSciIO could not read it ({type(e).__name__}: {e})"
            ) from None
    return from_rsciio(items, filename)


def from_rsciio(items: list[dict[str, Any]], filename: str = "file") -> EELSData:
    """Adapt RosettaSciIO's list of dicts (data, axes, metadata) to an :class:`EELSData`."""
    if not items:
        raise InputError(f"{filename}: file holds no signal")
    it = items[0]
    data = np.asarray(it["data"])
    axes = it.get("axes", [])
    sig = [i for i, a in enumerate(axes) if not a.get("navigate", True)]
    ie = sig[-1] if sig else data.ndim - 1
    a = axes[ie] if axes else {}
    n = data.shape[ie]
    if "axis" in a and np.size(a["axis"]) == n:
        energy = np.asarray(a["axis"], np.float64)
    else:
        energy = float(a.get("offset", 0.0)) + float(a.get("scale", 1.0)) * np.arange(n)
    if str(a.get("units", "eV")).lower() == "kev":
        energy = energy * 1000.0
    return EELSData(
        np.moveaxis(data, ie, -1), energy, {"source": filename, "metadata": it.get("metadata", {})}
    )


# ------------------------------------------------------------------------------------------
# dispatch
# ------------------------------------------------------------------------------------------

UPLOAD_TYPES = ("npz", "npy", "hspy", "h5", "hdf5", "msa", "ems", "dm3", "dm4")


def read_any(
    raw: bytes,
    filename: str,
    *,
    axis_order: str = "yxE",
    offset: float | None = None,
    dispersion: float | None = None,
) -> EELSData:
    """Read by extension and validate; calibration overrides apply when given."""
    ext = os.path.splitext(filename.lower())[1].lstrip(".")
    if ext in ("npz", "npy"):
        d = read_numpy(raw, filename, axis_order=axis_order, offset=offset, dispersion=dispersion)
    elif ext in ("hspy", "h5", "hdf5"):
        d = read_hspy(raw, filename)
    elif ext in ("msa", "ems", "txt"):
        d = read_msa(raw, filename)
    elif ext in ("dm3", "dm4"):
        d = read_dm(raw, filename)
    else:
        raise InputError(
            f"{filename}: unsupported file type .{ext}; use one of {', '.join(UPLOAD_TYPES)}"
        )
    data = np.asarray(d.data)
    if (
        d.energy is not None
        and (offset is not None or dispersion is not None)
        and ext not in ("npy",)
    ):
        e = np.asarray(d.energy, np.float64)
        disp = (
            dispersion
            if dispersion is not None
            else (float(np.diff(e).mean()) if e.size > 1 else 1.0)
        )
        off = offset if offset is not None else float(e[0])
        d.energy = energy_from_calibration(data.shape[-1], off, disp)
    d.data, d.energy = validate(data, d.energy, what=filename)
    if d.truth is not None and d.truth.shape != d.data.shape[:2]:
        d.truth = None
    return d
