"""Readers and writers for EELS spectrum images and spectra.

Formats: ``.npy``/``.npz`` (numpy, no pickle), HyperSpy HDF5 (``.hspy``/``.h5``/``.hdf5``, read and
written with h5py, HyperSpy not needed), EMSA/MAS text (``.msa``/``.ems``, single spectra) and Gatan
DigitalMicrograph ``.dm3``/``.dm4`` (read-only, by the project's own reader
:mod:`workbench.io.gatan_dm`; the optional GPL extra ``rosettasciio`` is asked only for image data
types that reader does not decode, such as packed-complex FFTs).

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
from workbench.io.h5_sandbox import h5_preflight
from workbench.io.limits import h5_damage

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
# axes: which one is the energy-loss axis
# ------------------------------------------------------------------------------------------

#: unit -> factor to eV (matched case-insensitively, except meV, which is not MeV)
ENERGY_UNITS = {"ev": 1.0, "kev": 1e3}
#: units that say an axis is a wavelength, a length or a reciprocal length, never an energy loss
LENGTH_UNITS = {
    "nm", "µm", "μm", "um", "mm", "cm", "m", "pm", "a", "å", "angstrom", "1/nm", "nm^-1",
    "1/a", "1/å", "1/µm", "1/um", "px", "pixel", "pixels",
}  # fmt: skip
#: signal types of other spectroscopies (HyperSpy/RosettaSciIO names, lower case): exact names
#: and prefixes (EDS_TEM, EDS_SEM, CL_SEM, ...)
OTHER_SIGNALS = {"cl", "pl", "raman", "xps", "luminescence", "cathodoluminescence", "wds", "xrf"}
OTHER_PREFIXES = ("eds", "edx", "cl_", "luminescence", "cathodolum")


def _other_spectroscopy(signal_type: str) -> bool:
    low = signal_type.strip().lower()
    return low in OTHER_SIGNALS or low.startswith(OTHER_PREFIXES)


def _units(a: dict[str, Any]) -> str:
    """An axis's units; HyperSpy's and traits' markers of no units count as none."""
    u = str(a.get("units") or "").strip()
    if u.endswith(")") and "(" in u:  # ISO 22029 EMSA: "Energy Loss (eV)"
        u = u[u.rindex("(") + 1 : -1].strip()
    return "" if u in ("<undefined>", "undefined", "None", "<Undefined>") else u


def _energy_factor(units: str) -> float | None:
    u = str(units or "").strip()
    if u == "meV":
        return 1e-3
    return ENERGY_UNITS.get(u.lower())


def _axis_name(a: dict[str, Any], i: int) -> str:
    name = str(a.get("name") or f"axis {i}")
    units = _units(a)
    return f"{name} ({units})" if units else name


def _post_to_signal1d(post_process: Any) -> bool:
    """True when RosettaSciIO asks the caller to turn the signal into 1-D spectra.

    The post-processing steps are callables on a HyperSpy signal (``s.to_signal1D()`` for Gatan
    spectrum images). HyperSpy is not needed to honour them: the step's code names the method.
    """
    for step in post_process or ():
        names: tuple[str, ...] = ()
        if isinstance(step, str):
            names = (step,)
        else:
            code = getattr(step, "__code__", None)
            names = tuple(getattr(code, "co_names", ())) if code is not None else ()
            names += (str(getattr(step, "__name__", "")),)
        if any(n in ("to_signal1D", "as_signal1D", "to_spectrum") for n in names):
            return True
    return False


def energy_axis(
    shape: tuple[int, ...],
    axes: list[dict[str, Any]],
    *,
    signal_type: str = "",
    record_by: str = "",
    to_signal1d: bool = False,
    filename: str = "file",
) -> tuple[int, np.ndarray, list[str]]:
    """Find the energy-loss axis of a signal of the given shape: (its index, eV values, notes).

    The energy axis is found by its units (eV, keV or meV, converted to eV), not by its
    position, because readers differ in axis order: RosettaSciIO returns Gatan spectrum images
    as (E, y, x) with a ``to_signal1D`` post-processing step, HyperSpy files put the signal axis
    last. The signal axes, when the file says which they are (``navigate`` flags, or the
    ``record_by`` of older files), must be exactly one unless the reader's post-processing turns
    the signal into spectra. An axis without units is taken for the energy only when the signal
    type says EELS and it is the one signal axis.

    Parameters
    ----------
    shape : tuple of int
        The signal's array shape, any axis order.
    axes : list of dict
        One per array axis, in array order: ``size``, ``offset``, ``scale``, ``units``,
        optionally ``name``, ``navigate`` and ``axis`` (explicit, possibly non-uniform values).
    signal_type, record_by : str
        ``metadata.Signal`` entries ("EELS", "CL", ...; "spectrum" or "image").
    to_signal1d : bool
        The reader's post-processing makes the signal 1-D (the energy axis becomes the signal).

    Returns
    -------
    ie : int
        Index of the energy axis in ``shape``.
    energy : ndarray (shape[ie],)
        Energy loss in eV (as stored: :func:`to_spectrum_image` flips a decreasing axis).
    notes : list of str
        What was assumed, for the user.

    Raises
    ------
    InputError
        No energy axis (an image, a wavelength or length axis), two signal axes, two energy
        axes, a spectroscopy other than EELS, more than two navigation axes.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    notes: list[str] = []
    if len(axes) != ndim:
        raise InputError(
            f"{filename}: the file describes {len(axes)} axes for {ndim}-D data {shape}"
        )
    st = str(signal_type or "").strip()
    if st and _other_spectroscopy(st):
        raise InputError(
            f"{filename}: signal type {st!r}, not EELS: the EELS detectors need an energy-loss spectrum image"
        )
    flags = [a.get("navigate") for a in axes]
    if any(f is not None for f in flags):
        sig = [i for i, f in enumerate(flags) if f is not None and not bool(f)]
    elif str(record_by).lower() == "spectrum":
        sig = [ndim - 1] if ndim else []
    elif str(record_by).lower() == "image":
        sig = list(range(max(ndim - 2, 0), ndim))
    else:
        sig = None  # the file does not say: the units decide
    shape_txt = " x ".join(_axis_name(a, i) for i, a in enumerate(axes))
    if sig is not None and len(sig) >= 2 and not to_signal1d:
        names = ", ".join(_axis_name(axes[i], i) for i in sig)
        raise InputError(
            f"{filename}: {len(sig)} signal axes ({names}): an image or a 2-D signal, not a "
            "spectrum per pixel; give a spectrum image (one energy-loss signal axis)"
        )
    factors = [_energy_factor(_units(a)) for a in axes]
    energy_axes = [i for i, f in enumerate(factors) if f is not None]
    if len(energy_axes) > 1:
        raise InputError(
            f"{filename}: {len(energy_axes)} energy axes ({shape_txt}); expected one energy-loss axis"
        )
    if energy_axes:
        ie = energy_axes[0]
        factor = factors[ie]
    else:
        cand = sig if sig is not None and not to_signal1d else None
        units = [_units(axes[i]) for i in (cand or [])]
        if cand is not None and len(cand) == 1 and not units[0] and st.upper().startswith("EELS"):
            ie, factor = cand[0], 1.0
            notes.append(f"the energy axis ({_axis_name(axes[ie], ie)}) has no units; assumed eV")
        else:
            look = cand if cand else range(len(axes))
            lengthy = [
                _axis_name(axes[i], i) for i in look if _units(axes[i]).lower() in LENGTH_UNITS
            ]
            if cand and lengthy:
                raise InputError(
                    f"{filename}: the signal axis is {lengthy[0]}, a wavelength or length, not an "
                    "energy loss in eV: not an EELS spectrum image"
                )
            raise InputError(
                f"{filename}: no energy axis in eV or keV ({shape_txt}): an image or an "
                "uncalibrated signal, not an EELS spectrum image"
            )
    a = axes[ie]
    n = shape[ie]
    vals = a.get("axis")
    if vals is not None and np.size(vals) == n:
        energy = np.asarray(vals, np.float64).ravel() * factor
    else:
        try:
            off, scale = float(a.get("offset", 0.0) or 0.0), float(a.get("scale", 1.0))
        except (TypeError, ValueError):
            raise InputError(
                f"{filename}: the energy axis has a non-numeric offset or scale"
            ) from None
        energy = (off + scale * np.arange(n, dtype=np.float64)) * factor
    if factor != 1.0:
        notes.append(f"energy axis converted from {a.get('units')} to eV")
    if ndim - 1 > 2:
        nav = tuple(s for i, s in enumerate(shape) if i != ie)
        raise InputError(
            f"{filename}: {ndim - 1} navigation axes {nav}; expected a map (y, x), a line "
            "scan or a spectrum"
        )
    return ie, energy, notes


def to_spectrum_image(
    data: np.ndarray, axes: list[dict[str, Any]], **kw: Any
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The cube (ny, nx, nE) and its energy axis (eV, increasing), found as :func:`energy_axis`.

    Navigation axes keep their array order; a line scan becomes (1, n, nE), a spectrum
    (1, 1, nE). A decreasing energy axis is flipped together with the data.
    """
    data = np.asarray(data)
    ie, energy, notes = energy_axis(data.shape, axes, **kw)
    data = np.moveaxis(data, ie, -1)
    if energy.size > 1 and np.all(np.diff(energy) < 0):
        energy, data = energy[::-1], data[..., ::-1]
    nav = data.shape[:-1]
    cube = data.reshape((1,) * (2 - len(nav)) + tuple(nav) + (data.shape[-1],))
    return cube, energy, notes


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


AXIS_SCALARS = ("name", "units", "scale", "offset", "size", "navigate")


def _scalar_attr(v: Any, key: str, i: int, filename: str) -> Any:
    """An axis attribute that must be one value: a 1-element array is unwrapped, more refused
    (a file whose scale or navigate flag is an array is malformed, and guessing one is unsafe)."""
    if key not in AXIS_SCALARS:
        return v
    if isinstance(v, (list, tuple, np.ndarray)):
        arr = np.asarray(v, dtype=object).ravel()
        if arr.size != 1:
            raise InputError(
                f"{filename}: axis-{i} attribute {key!r} holds {arr.size} values; expected one"
            )
        v = arr[0]
        v = v.item() if isinstance(v, np.generic) else v
    if key in ("scale", "offset", "size") and not isinstance(v, (int, float, np.number)):
        try:
            v = float(str(v).strip())
        except ValueError:
            raise InputError(
                f"{filename}: axis-{i} attribute {key!r} is {str(v)[:20]!r}, not a number"
            ) from None
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


@dataclass
class SignalInfo:
    """One signal of a multi-signal file, for the choice (page) or ``signal=`` (CLI)."""

    index: int
    title: str
    shape: tuple[int, ...]
    signal_type: str = ""
    usable: bool = False
    reason: str = ""

    def label(self) -> str:
        kind = "EELS spectrum image" if self.usable else (self.reason or "not usable")
        return f"{self.index}: {self.title!r} {'x'.join(map(str, self.shape))} ({kind})"


def _pick_signal(infos: list[SignalInfo], signal: str | int | None, filename: str) -> int:
    """Index of the signal to read: the one asked for, else the only usable one."""
    if signal not in (None, ""):
        s = str(signal).strip()
        for info in infos:
            if s == info.title:
                return info.index
        if s.lstrip("-").isdigit() and 0 <= int(s) < len(infos):
            return int(s)
        titles = "; ".join(i.label() for i in infos)
        raise InputError(f"{filename}: no signal {s!r}; the file holds {titles}")
    if len(infos) == 1:
        return 0
    usable = [i for i in infos if i.usable]
    if len(usable) == 1:
        return usable[0].index
    listing = "; ".join(i.label() for i in infos)
    raise InputError(
        f"{filename} holds {len(infos)} signals, choose one with signal=INDEX or TITLE: {listing}"
    )


def _hspy_signal_md(g: Any) -> tuple[str, str, dict[str, Any]]:
    """(signal_type, record_by, metadata dict) of one /Experiments group, new or old layout."""
    md: dict[str, Any] = {}
    for name in ("metadata", "mapped_parameters"):
        if name in g:
            md = _group_to_dict(g[name])
            break
    sig = md.get("Signal", {}) if isinstance(md.get("Signal"), dict) else {}
    signal_type = str(sig.get("signal_type", md.get("signal_type", "")) or "")
    record_by = str(sig.get("record_by", md.get("record_by", "")) or "")
    return signal_type, record_by, md


def _hspy_axes(g: Any, ndim: int, filename: str, title: str) -> list[dict[str, Any]]:
    axes = []
    for i in range(ndim):
        a = g.get(f"axis-{i}")
        if a is None:
            raise InputError(f"{filename}: signal {title!r} has no axis-{i} metadata")
        ad = {k: _scalar_attr(_attr(v), k, i, filename) for k, v in a.attrs.items()}
        if "axis" in a:
            ad["axis"] = np.asarray(a["axis"][()], dtype=np.float64)
        axes.append(ad)
    return axes


def _hspy_info(index: int, title: str, g: Any, filename: str) -> SignalInfo:
    import h5py

    if not isinstance(g, h5py.Group):
        return SignalInfo(index, title, (), reason="not a signal group")
    dset = g.get("data")
    if dset is None or not hasattr(dset, "shape"):
        return SignalInfo(index, title, (), reason="no data")
    info = SignalInfo(index, title, tuple(int(s) for s in dset.shape))
    try:
        signal_type, record_by, _ = _hspy_signal_md(g)
        info.signal_type = signal_type
        axes = _hspy_axes(g, len(info.shape), filename, title)
        _describe(info, axes, record_by, False, filename)
    except InputError as e:
        info.reason = _short(e)
    return info


def _short(e: Exception) -> str:
    return str(e).split(": ", 1)[-1].split(";")[0].split(":")[0][:60]


def _describe(
    info: SignalInfo, axes: list[dict[str, Any]], record_by: str, to1d: bool, filename: str
) -> None:
    """Mark a signal usable when it resolves to an EELS map of more than one pixel."""
    ie, _, _ = energy_axis(
        info.shape,
        axes,
        signal_type=info.signal_type,
        record_by=record_by,
        to_signal1d=to1d,
        filename=filename,
    )
    pixels = int(np.prod([s for i, s in enumerate(info.shape) if i != ie]))
    info.usable = pixels > 1
    if not info.usable:
        info.reason = "a single spectrum"


def list_signals(raw: bytes, filename: str) -> list[SignalInfo]:
    """The signals of a HyperSpy or Gatan file (for the page's signal picker)."""
    ext = os.path.splitext(filename.lower())[1].lstrip(".")
    if ext in ("hspy", "h5", "hdf5"):
        import h5py

        try:
            h5_preflight(raw, filename, "workbench.io.eels:list_signals")
            f = h5py.File(io.BytesIO(raw), "r")
        except Exception:  # noqa: BLE001
            return []
        try:
            with f, h5_damage(filename):
                exp = f.get("Experiments")
                if not isinstance(exp, h5py.Group):
                    return []
                return [_hspy_info(i, t, exp[t], filename) for i, t in enumerate(exp.keys())]
        except InputError:  # a damaged file: read_any says why
            return []
    if ext in ("dm3", "dm4"):
        try:
            items = _dm_items(raw, filename)
        except InputError:
            return []
        return [_rsciio_info(i, it, filename) for i, it in enumerate(items)]
    return []


def read_hspy(
    source: Any, filename: str = "data.hspy", *, signal: str | int | None = None
) -> EELSData:
    """Read a HyperSpy HDF5 file with h5py (HyperSpy not needed).

    The energy axis is found by its units (see :func:`to_spectrum_image`); the signal axes come
    from the ``navigate`` flags or, in older files, from ``metadata.Signal.record_by``. A file
    with several signals needs ``signal`` (index or title) unless exactly one of them is an
    EELS spectrum image.
    """
    import h5py

    if isinstance(source, (bytes, bytearray)):
        h5_preflight(source, filename, "workbench.io.eels:read_hspy", signal=signal)
    src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        f = h5py.File(src, "r")
    except Exception:  # noqa: BLE001
        raise InputError(f"{filename}: not a readable HDF5 file") from None
    with f, h5_damage(filename):
        exp = f.get("Experiments")
        if exp is None:
            # plain HDF5: a dataset 'data' and 'energy' at the root
            if "data" in f:
                ds = f["data"]
                if not isinstance(ds, h5py.Dataset):
                    raise InputError(f"{filename}: /data is a group, not an array")
                # size-checked before anything is read (a small file can declare a huge array)
                if ds.size * max(ds.dtype.itemsize, 4) > max_bytes():
                    raise InputError(
                        f"{filename}: cube of {ds.size * 4 / 2**20:.0f} MB exceeds the "
                        f"{max_bytes() / 2**20:.0f} MB limit (raise WORKBENCH_EELS_MAX_MB)"
                    )
                extra = {}
                for key in ("energy", "truth"):
                    if key in f:
                        obj = f[key]
                        if not isinstance(obj, h5py.Dataset) or obj.size > 4 * ds.size + 16:
                            raise InputError(
                                f"{filename}: /{key} is not an array of the cube's size"
                            )
                        extra[key] = obj[()]
                data = ds[()]
                truth = extra["truth"].astype(bool) if "truth" in extra else None
                return EELSData(data, extra.get("energy"), {"source": filename}, truth)
            raise InputError(
                f"{filename}: no /Experiments group (HyperSpy layout) and no /data dataset"
            )
        if not isinstance(exp, h5py.Group):
            raise InputError(f"{filename}: /Experiments is not a group (damaged HyperSpy file?)")
        titles = list(exp.keys())
        if not titles:
            raise InputError(f"{filename}: /Experiments is empty")
        notices: list[str] = []
        if len(titles) == 1 and signal in (None, ""):
            k = 0
        else:
            infos = [_hspy_info(i, t, exp[t], filename) for i, t in enumerate(titles)]
            k = _pick_signal(infos, signal, filename)
            if signal in (None, ""):
                notices.append(
                    f"the file holds {len(titles)} signals; read {titles[k]!r}, the only EELS "
                    "spectrum image (choose another with signal=)"
                )
        title = titles[k]
        g = exp[title]
        if not isinstance(g, h5py.Group):
            raise InputError(f"{filename}: /Experiments/{title} is not a signal group")
        if "data" not in g or not hasattr(g["data"], "shape"):
            raise InputError(f"{filename}: /Experiments/{title} has no 'data' dataset")
        dset = g["data"]
        if dset.size * 4 > max_bytes():
            raise InputError(
                f"{filename}: cube of {dset.size * 4 / 2**20:.0f} MB exceeds the "
                f"{max_bytes() / 2**20:.0f} MB limit (raise WORKBENCH_EELS_MAX_MB)"
            )
        signal_type, record_by, md = _hspy_signal_md(g)
        axes = _hspy_axes(g, len(dset.shape), filename, title)
        try:
            data = dset[()]
        except OSError as e:
            raise InputError(
                f"{filename}: cannot read data ({e}); Blosc files need 'hdf5plugin'"
            ) from None
        cube, energy, notes = to_spectrum_image(
            data, axes, signal_type=signal_type, record_by=record_by, filename=filename
        )
        meta = {
            "source": filename,
            "title": title,
            "signal_type": signal_type,
            "axes": [{k: v for k, v in ax.items() if k != "axis"} for ax in axes],
            "notices": notices + notes,
        }
        if md:
            meta["metadata"] = md
        truth = None
        if "truth" in g:
            truth = g["truth"][()].astype(bool)
    return EELSData(cube, energy, meta, truth)


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
    for key in ("NPOINTS", "NCOLUMNS", "XPERCHAN", "OFFSET"):
        if key in header:
            v = header[key].split()[0].rstrip(",") if header[key].split() else ""
            try:
                float(v)
            except ValueError:
                what = "is empty" if not v else f"is {header[key][:20]!r}, not a number"
                raise InputError(f"{filename}: header field #{key} {what}") from None
            header[key] = v
    dtype = header.get("DATATYPE", "Y").upper()
    if "NPOINTS" in header and int(float(header["NPOINTS"])) > (
        len(values) // 2 if dtype.startswith("XY") else len(values)
    ):
        raise InputError(
            f"{filename}: #NPOINTS says {header['NPOINTS']} points but the data hold fewer"
        )
    try:
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
            x = float(header.get("OFFSET", 0.0) or 0.0) + float(header["XPERCHAN"]) * np.arange(
                y.size
            )
    except ValueError:
        raise InputError(
            f"{filename}: a malformed number in the #NPOINTS/#XPERCHAN/#OFFSET header"
        ) from None
    # EMSA signal types: ELS is EELS; CLS (cathodoluminescence), EDS, WDS, ... are refused
    stype = header.get("SIGNALTYPE", "").strip()
    stype = "EELS" if stype.upper() in ("ELS", "EELS") else stype
    cube, x, notes = to_spectrum_image(
        y,
        [
            {
                "name": "x",
                "units": header.get("XUNITS", "eV").strip() or "eV",
                "axis": x,
                "navigate": False,
            }
        ],
        signal_type=stype,
        filename=filename,
    )
    meta = {"source": filename, "msa": header, "notices": notes}
    return EELSData(cube, x, meta)


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
# Gatan DigitalMicrograph (own reader; RosettaSciIO, an optional GPL extra, for what it lacks)
# ------------------------------------------------------------------------------------------


def _rsciio_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("rsciio") is not None


def _dm_items(raw: bytes, filename: str) -> list[dict[str, Any]]:
    """The signal dicts of a ``.dm3``/``.dm4`` file, read by :mod:`workbench.io.gatan_dm`.

    RosettaSciIO is asked only when the built-in reader says the content is unsupported
    (:class:`~workbench.io.gatan_dm.DMUnsupported`) and it is installed; a malformed file is
    refused with the built-in reader's one-line error.
    """
    from workbench.io import gatan_dm

    try:
        return gatan_dm.read_items(raw, filename)
    except gatan_dm.DMUnsupported:
        if _rsciio_available():
            return _rsciio_items(raw, filename)
        raise


def _rsciio_items(raw: bytes, filename: str) -> list[dict[str, Any]]:
    """RosettaSciIO's list of signal dicts for a ``.dm3``/``.dm4`` file (imported lazily)."""
    try:
        from rsciio.digitalmicrograph import file_reader  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(
            f"{filename}: this .dm3/.dm4 content needs the optional GPL extra "
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
            msg = " ".join(str(e).split())[:120]
            raise InputError(
                f"{filename}: RosettaSciIO could not read it ({type(e).__name__}: {msg})"
            ) from None
    return list(items or [])


def read_dm(raw: bytes, filename: str = "data.dm4", *, signal: str | int | None = None) -> EELSData:
    """Read ``.dm3``/``.dm4`` with the built-in reader (RosettaSciIO only for unsupported data)."""
    return from_rsciio(_dm_items(raw, filename), filename, signal=signal)


def _rsciio_signal(it: dict[str, Any]) -> tuple[str, str, str]:
    md = it.get("metadata") or {}
    sig = md.get("Signal", {}) if isinstance(md, dict) else {}
    gen = md.get("General", {}) if isinstance(md, dict) else {}
    return (
        str(sig.get("signal_type", "") or ""),
        str(sig.get("record_by", "") or ""),
        str(gen.get("title", "") or ""),
    )


def _rsciio_info(index: int, it: dict[str, Any], filename: str) -> SignalInfo:
    signal_type, record_by, title = _rsciio_signal(it)
    shape = tuple(int(s) for s in np.shape(it.get("data")))
    info = SignalInfo(index, title or f"signal {index}", shape, signal_type)
    try:
        _describe(
            info,
            list(it.get("axes") or []),
            record_by,
            _post_to_signal1d(it.get("post_process")),
            filename,
        )
    except InputError as e:
        info.reason = _short(e)
    return info


def from_rsciio(
    items: list[dict[str, Any]], filename: str = "file", *, signal: str | int | None = None
) -> EELSData:
    """Adapt RosettaSciIO's list of signal dicts to an :class:`EELSData`.

    Each dict holds ``data``, ``axes`` (array order: ``size``, ``offset``, ``scale``, ``units``,
    ``name``, sometimes ``navigate``), ``metadata`` (``Signal.signal_type``/``record_by``,
    ``General.title``) and ``post_process``, steps on a HyperSpy signal. Gatan spectrum images
    come as (E, y, x) with a ``to_signal1D`` step that makes the energy axis the signal axis;
    that step is honoured and the energy axis is found by its units (:func:`energy_axis`).
    """
    if not items:
        raise InputError(f"{filename}: file holds no signal")
    notices: list[str] = []
    if len(items) == 1 and signal in (None, ""):
        k = 0
    else:
        infos = [_rsciio_info(i, it, filename) for i, it in enumerate(items)]
        k = _pick_signal(infos, signal, filename)
        if signal in (None, ""):
            notices.append(
                f"the file holds {len(items)} signals; read {infos[k].title!r}, the only EELS "
                "spectrum image (choose another with signal=)"
            )
    it = items[k]
    signal_type, record_by, title = _rsciio_signal(it)
    data = np.asarray(it.get("data"))
    cube, energy, notes = to_spectrum_image(
        data,
        list(it.get("axes") or []),
        signal_type=signal_type,
        record_by=record_by,
        to_signal1d=_post_to_signal1d(it.get("post_process")),
        filename=filename,
    )
    meta = {
        "source": filename,
        "title": title,
        "signal_type": signal_type,
        "metadata": it.get("metadata", {}),
        "notices": notices + notes,
    }
    return EELSData(cube, energy, meta)


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
    signal: str | int | None = None,
) -> EELSData:
    """Read by extension and validate; calibration overrides apply when given.

    ``signal`` chooses one signal (index or title) of a multi-signal HyperSpy or Gatan file.
    """
    ext = os.path.splitext(filename.lower())[1].lstrip(".")
    if ext in ("npz", "npy"):
        d = read_numpy(raw, filename, axis_order=axis_order, offset=offset, dispersion=dispersion)
    elif ext in ("hspy", "h5", "hdf5"):
        d = read_hspy(raw, filename, signal=signal)
    elif ext in ("msa", "ems", "txt"):
        d = read_msa(raw, filename)
    elif ext in ("dm3", "dm4"):
        d = read_dm(raw, filename, signal=signal)
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
        raise InputError(
            f"{filename}: the truth mask has shape {tuple(d.truth.shape)} but the map is "
            f"{d.data.shape[0]} x {d.data.shape[1]}; fix or remove it"
        )
    return d
