"""EELS spectrum images: synthetic presets, the upload loader, preprocessing and metrics.

Presets are seeded synthetic Fe-L/O-K cubes from :mod:`workbench.physics.eels.synth` with Fe L2,3
chemical-shift anomalies in discs (truth mask kept). Uploads: ``.npz``/``.npy``, HyperSpy
``.hspy``/``.h5``, EMSA ``.msa`` and Gatan ``.dm3``/``.dm4`` (built-in reader). The same
:class:`Options` (energy crop, calibration override, spike removal, binning, power-law background,
normalisation; generator overrides for presets) apply to presets and uploads.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.io.eels import UPLOAD_TYPES, read_any
from workbench.physics.eels import metrics as EM
from workbench.physics.eels import spectra as SP
from workbench.physics.eels.synth import BENCH_VARIABILITY
from workbench.problems import EELSProblem
from workbench.registry import DomainSpec, Sample, param


@dataclass(frozen=True)
class Options:
    e_min: float | None = param(None, "energy crop start (eV); empty = keep all")
    e_max: float | None = param(None, "energy crop end (eV); empty = keep all")
    offset: float | None = param(
        None, "energy offset override (eV, first channel); needed for .npy", advanced=True
    )
    dispersion: float | None = param(
        None, "dispersion override (eV/channel); needed for .npy", advanced=True
    )
    axis_order: str = param(
        "yxE", "axis order of .npy/.npz arrays (a permutation of yxE)", advanced=True
    )
    signal: str = param(
        "",
        "which signal of a multi-signal .hspy/.dm4 file (index or title); empty = the only EELS spectrum image",
        advanced=True,
    )
    bin: int = param(1, "spatial binning (sum of b x b pixels)", min=1, max=16)
    spikes: bool = param(False, "remove spikes (median filter + robust z threshold)")
    background: str = param(
        "none",
        "power-law background subtraction before scoring (display/analysis; default none)",
        choices=("none", "powerlaw"),
    )
    bg_lo: float = param(660.0, "background fit window start (eV)", advanced=True)
    bg_hi: float = param(700.0, "background fit window end (eV)", advanced=True)
    normalise: str = param("none", "per-spectrum normalisation", choices=("none", "sum", "max"))
    shift: float | None = param(
        None, "presets: override the Fe-L shift (eV)", min=-10.0, max=20.0, advanced=True
    )
    fraction: float | None = param(
        None, "presets: override the anomalous fraction (0-0.5)", min=0.0, max=0.5, advanced=True
    )
    dose: float | None = param(
        None,
        "presets: override N_pk, Fe-L3 counts above background (12/45/180/720)",
        min=0.5,
        max=1e5,
        advanced=True,
    )
    gen_seed: int | None = param(None, "presets: override the generator seed", advanced=True)
    reference: bool = param(
        False, "presets: also generate an anomaly-free reference cube (protocol A)", advanced=True
    )


def preprocess(
    data: np.ndarray,
    energy: np.ndarray,
    truth: np.ndarray | None = None,
    shift_map: np.ndarray | None = None,
    *,
    e_min: float | None = None,
    e_max: float | None = None,
    bin: int = 1,
    spikes: bool = False,
    background: str = "none",
    bg_lo: float = 660.0,
    bg_hi: float = 700.0,
    normalise: str = "none",
    **_: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list[str]]:
    """Crop -> spike removal -> binning -> power-law background -> normalisation."""
    notes: list[str] = []
    if e_min is not None or e_max is not None:
        data, energy = SP.crop(data, energy, e_min, e_max)
    if spikes:
        data, n = SP.remove_spikes(data)
        notes.append(f"spike removal replaced {n} channel(s)")
    if bin > 1:
        if shift_map is not None:
            shift_map = shift_map[
                : shift_map.shape[0] // bin * bin, : shift_map.shape[1] // bin * bin
            ][::bin, ::bin]
        data, truth = SP.bin_spatial(data, bin, truth)
        notes.append(f"binned {bin}x{bin}")
    if background == "powerlaw":
        data, _, warns = SP.subtract_powerlaw(data, energy, bg_lo, bg_hi)
        notes += warns
        notes.append(
            f"power-law background fitted on {bg_lo:g}-{bg_hi:g} eV and subtracted (data are no longer counts)"
        )
    data = SP.normalise(data, normalise)
    return np.ascontiguousarray(data, dtype=np.float32), energy, truth, shift_map, notes


# ------------------------------------------------------------------------------------------
# presets
# ------------------------------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    "small_2eV_5pct": dict(
        ny=32,
        nx=32,
        shift=2.0,
        fraction=0.05,
        seed=1,
        desc="32x32 quick cube, Fe-L shifted by 2 eV in 5% of pixels",
    ),
    "default_1eV_3pct": dict(
        shift=1.0,
        fraction=0.03,
        seed=0,
        desc="64x64, 650-750 eV, Fe-L shift 1 eV in 3% of pixels, mid dose",
    ),
    "shift_0.5eV_3pct": dict(
        shift=0.5,
        fraction=0.03,
        seed=0,
        desc="64x64, Fe-L shift 0.5 eV in 3% (near the detection limit)",
    ),
    "shift_0.25eV_10pct": dict(
        shift=0.25, fraction=0.10, seed=0, desc="64x64, Fe-L shift 0.25 eV (< 1 channel) in 10%"
    ),
    "shift_2eV_1pct": dict(
        shift=2.0, fraction=0.01, seed=0, desc="64x64, Fe-L shift 2 eV in 1% of pixels"
    ),
    "shift_4eV_10pct": dict(
        shift=4.0, fraction=0.10, seed=0, desc="64x64, Fe-L shift 4 eV in 10% of pixels"
    ),
    "low_dose_1eV_3pct": dict(
        shift=1.0, fraction=0.03, n_pk=12.0, seed=0, desc="64x64, 1 eV in 3%, low dose (N_pk = 12)"
    ),
    "wide_400-800eV_2eV_3pct": dict(
        e_min=400.0,
        e_max=800.0,
        shift=2.0,
        fraction=0.03,
        seed=0,
        desc="64x64, 400-800 eV with O K and Fe L, 2 eV in 3%",
    ),
    "ratio_1.6x_5pct": dict(
        anomaly="ratio",
        ratio_factor=1.6,
        fraction=0.05,
        seed=0,
        desc="64x64, Fe L3:L2 white-line ratio x1.6 in 5% (valence change; look for = ratio)",
    ),
    "new_phase_5pct": dict(
        anomaly="phase",
        fraction=0.05,
        seed=0,
        desc="64x64, a new phase in 5%: white lines split by 1.6 eV (reconstruction error)",
    ),
    "realistic_1eV_drift0.3": dict(
        shift=1.0,
        fraction=0.03,
        n_pk=13.5,
        drift=0.3,
        **BENCH_VARIABILITY,
        seed=0,
        desc="64x64, 1 eV shift in 3%, 0.3x dose, 0.3 eV drift + jitter, plural scattering",
    ),
    "paper_protocol_2.4eV": dict(
        ny=192,
        nx=192,
        e_min=420.0,
        e_max=820.0,
        shift=2.4,
        fraction=0.025,
        r_min=8.0,
        r_max=10.0,
        seed=0,
        desc="192x192, 420-820 eV, discs r 8-10 px (~2.5%), 2.4 eV (paper protocol; large)",
    ),
}


def synthetic(
    preset: dict[str, Any] | None = None,
    *,
    shift: float | None = None,
    fraction: float | None = None,
    dose: float | None = None,
    gen_seed: int | None = None,
    reference: bool = False,
    name: str = "synthetic",
    description: str = "",
    **options: Any,
) -> EELSProblem:
    """Build a synthetic problem from generator keywords plus the preprocessing options."""
    from workbench.physics.eels.synth import generate

    kw = {k: v for k, v in (preset or {}).items() if k != "desc"}
    if shift is not None:
        kw["shift"] = float(shift)
    if fraction is not None:
        kw["fraction"] = float(fraction)
    if dose is not None:
        kw["n_pk"] = float(dose)
    if gen_seed is not None:
        kw["seed"] = int(gen_seed)
    g = generate(**kw)
    params = g["params"]
    energy = g["energy"]
    if options.get("offset") is not None or options.get("dispersion") is not None:
        from workbench.io.eels import energy_from_calibration

        energy = energy_from_calibration(
            energy.size,
            options["offset"] if options.get("offset") is not None else energy[0],
            options["dispersion"]
            if options.get("dispersion") is not None
            else float(np.diff(energy).mean()),
        )
    data, energy2, truth, shift_map, notes = preprocess(
        g["data"], energy, g["truth"], g["shift_map"], **options
    )
    ref = None
    if reference:
        rkw = dict(kw, fraction=0.0, shift=0.0, seed=int(kw.get("seed", 0)) + 100_003)
        r = generate(**rkw)
        ref, _, _, _, _ = preprocess(r["data"], energy, None, None, **options)
    meta = {
        "description": description or (preset or {}).get("desc", "synthetic spectrum image"),
        "source": "synthetic",
        "generator": params,
        "dose_n_pk": params["n_pk"],
        "shift_eV": params["shift"],
        "target_fraction": params["fraction"],
        "achieved_fraction": params["achieved_fraction"],
        "units": {"data": "counts", "energy": "eV"},
        "notes": notes,
        "options": _non_default(options),
    }
    return EELSProblem(
        name=name,
        data=data,
        energy=energy2,
        truth=truth,
        shift_map=shift_map,
        reference=ref,
        offset=float(energy2[0]),
        dispersion=float(np.median(np.diff(energy2))),
        meta=meta,
    )


def _preset(name: str, **options: Any) -> EELSProblem:
    return synthetic(PRESETS[name], name=name, **options)


# ------------------------------------------------------------------------------------------
# upload
# ------------------------------------------------------------------------------------------


#: Fewest pixels a detector needs: the PCA baselines fit up to k = 3 components to the pixels
#: and the anomaly scores compare a pixel with the others, so one spectrum is no problem.
MIN_PIXELS = 4


def load(data: bytes, filename: str, **options: Any) -> EELSProblem:
    """Read, validate and preprocess a user file into an :class:`EELSProblem`.

    Refused with a one-line :class:`InputError`: anything the reader refuses (no energy axis,
    two signal axes, wavelength or length units, several signals and no ``signal`` option) and
    maps of fewer than :data:`MIN_PIXELS` pixels (single spectra). Notices of the reader (units
    converted, a signal chosen) go to ``meta["notices"]``.
    """
    d = read_any(
        data,
        filename,
        axis_order=options.get("axis_order", "yxE") or "yxE",
        offset=options.get("offset"),
        dispersion=options.get("dispersion"),
        signal=options.get("signal") or None,
    )
    ny, nx = d.data.shape[:2]
    if ny * nx < MIN_PIXELS:
        what = "a single spectrum (1 pixel)" if ny * nx == 1 else f"a {ny}x{nx}-pixel map"
        raise InputError(
            f"{filename}: {what}; anomaly detection compares the pixels of a spectrum image and "
            f"needs at least {MIN_PIXELS} (a map or a line scan)"
        )
    cube, energy, truth, _, notes = preprocess(d.data, d.energy, d.truth, None, **options)
    if cube.shape[0] * cube.shape[1] < MIN_PIXELS:
        raise InputError(
            f"{filename}: binning {options.get('bin')} leaves {cube.shape[0]}x{cube.shape[1]} "
            f"pixels; at least {MIN_PIXELS} are needed (bin less)"
        )
    notices = [str(n) for n in d.meta.get("notices", [])]
    meta = {
        "description": f"{filename}: {cube.shape[0]}x{cube.shape[1]} pixels x {cube.shape[2]} channels, {energy[0]:.1f}-{energy[-1]:.1f} eV",
        "source": filename,
        "file_meta": _jsonable(d.meta),
        "notes": notices + notes,
        "notices": notices,
        "options": _non_default(options),
    }
    return EELSProblem(
        name=filename,
        data=cube,
        energy=energy,
        truth=truth,
        offset=float(energy[0]),
        dispersion=float(np.median(np.diff(energy))),
        meta=meta,
    )


def attach_low_loss(
    problem: EELSProblem, data: bytes, filename: str, **options: Any
) -> EELSProblem:
    """The problem with the low-loss spectrum image of the same scan (DualEELS) attached.

    With it, alignment (``align`` = auto or on, no reference window given) measures each pixel's
    drift on the zero-loss peak, which chemistry does not change, and moves the core-loss
    spectra by it. Read like the core-loss file (same ``axis_order``; the ``bin`` option bins it
    the same way; energy crop, background and normalisation do not apply). Refused in one line:
    an energy axis that does not hold the zero-loss peak (-4 to 4 eV), a navigation shape other
    than the core-loss map's, a zero-loss peak that is not the largest signal near 0 eV in most
    pixels, or non-finite counts; a file holding several signals is refused by the reader (no
    way to choose one for the low-loss image yet).
    """
    d = read_any(
        data,
        filename,
        axis_order=options.get("axis_order", "yxE") or "yxE",
    )
    cube = np.asarray(d.data, np.float32)
    energy = np.asarray(d.energy, np.float64)
    lo, hi = SP.ZLP_WINDOW
    if not (energy[0] <= lo and energy[-1] >= hi):
        raise InputError(
            f"{filename}: {energy[0]:.1f}-{energy[-1]:.1f} eV does not hold the zero-loss peak "
            f"({lo:g} to {hi:g} eV); a low-loss spectrum image is needed"
        )
    b = int(options.get("bin", 1) or 1)
    cube, _ = SP.bin_spatial(cube, b)
    if cube.shape[:2] != problem.data.shape[:2]:
        ny, nx = problem.data.shape[:2]
        raise InputError(
            f"{filename}: its map is {cube.shape[0]}x{cube.shape[1]} pixels, the core-loss map "
            f"{ny}x{nx}; the low-loss image must come from the same scan"
        )
    if not np.isfinite(cube).all():
        raise InputError(f"{filename}: holds non-finite counts")
    near = (energy >= lo) & (energy <= hi)
    far = (energy > hi) & (energy <= hi + 40.0)
    flat = cube.reshape(-1, energy.size)
    peaked = flat[:, near].max(1) > 3.0 * np.abs(flat[:, far]).max(1, initial=0.0)
    if peaked.mean() < 0.9:
        raise InputError(
            f"{filename}: no zero-loss peak near 0 eV in {100 * (1 - peaked.mean()):.0f} % of its "
            "pixels (the largest counts near 0 eV must stand well above the plasmon region)"
        )
    meta = dict(problem.meta)
    meta["notes"] = [
        *problem.meta.get("notes", []),
        f"low-loss spectrum image {filename} ({energy[0]:.1f}-{energy[-1]:.1f} eV): alignment "
        "uses its zero-loss peak",
    ]
    meta["low_loss_source"] = filename
    return dataclasses.replace(
        problem, low_loss=np.ascontiguousarray(cube), low_loss_energy=energy, meta=meta
    )


#: (lo, hi, what) parameter pairs of the EELS solvers that are windows on the energy axis
WINDOW_PARAMS = (
    ("window_lo", "window_hi", "analysis window"),
    ("edge_lo", "edge_hi", "edge window"),
)


def check(problem: EELSProblem, spec: Any, params: Any) -> None:
    """Refuse solver parameters that do not fit the data before a run starts (one line).

    A PCA detector with k components needs k + 2 pixels: with k >= n - 1 the rank-k fit
    reproduces all n pixels and every score ties. Every window parameter pair of the solver (``window_lo/hi``, ``edge_lo/hi``) must hold at
    least 3 channels of the problem's energy axis, and the edge window must lie inside the
    analysis window; the message names the data's range and the parameters to change.
    """
    energy = np.asarray(problem.energy, np.float64)
    n = int(problem.data.shape[0] * problem.data.shape[1])
    k = getattr(params, "k", None)
    if isinstance(k, int) and k > n - 2:
        # k components through n centred pixels (rank <= n - 1) reproduce every pixel when
        # k >= n - 1: residuals vanish and Hotelling's T^2 is the same for all, so no score
        raise InputError(
            f"{spec.name}: k = {k} components need at least {k + 2} pixels, the map has {n}; "
            f"set --param k={max(n - 2, 1)} or less"
            if n >= 3
            else f"{spec.name}: the map has {n} pixels, too few for PCA scores"
        )
    inner = energy
    for lo_name, hi_name, what in WINDOW_PARAMS:
        if not (hasattr(params, lo_name) and hasattr(params, hi_name)):
            continue
        lo, hi = getattr(params, lo_name), getattr(params, hi_name)
        try:
            sl = SP.window(inner, lo, hi, what=f"{spec.name}: {what}")
        except InputError as exc:
            sug = suggest_windows(energy, type(params)).get(lo_name)
            hint = f" (--param {lo_name}=... {hi_name}=...)"
            if sug is not None:
                s_hi = suggest_windows(energy, type(params))[hi_name]
                hint = f", e.g. --param {lo_name}={sug:g} --param {hi_name}={s_hi:g}"
            raise InputError(f"{exc}{hint}") from None
        inner = inner[sl]


def suggest_windows(energy: np.ndarray, Params: type) -> dict[str, float]:
    """Windows inside the data for a solver whose default windows miss it (for the page and
    the refusal message): the analysis window becomes the whole axis, the edge window its
    middle half. Empty when the defaults fit."""
    import dataclasses

    e = np.asarray(energy, np.float64)
    e0, e1 = float(e[0]), float(e[-1])
    defaults = {f.name: f.default for f in dataclasses.fields(Params)}
    out: dict[str, float] = {}
    inner = e
    for lo_name, hi_name, _ in WINDOW_PARAMS:
        if lo_name not in defaults or hi_name not in defaults:
            continue
        lo, hi = defaults[lo_name], defaults[hi_name]
        try:
            inner = inner[SP.window(inner, lo, hi)]
            continue
        except InputError:
            pass
        a, b = float(inner[0]), float(inner[-1])
        if lo_name == "window_lo":
            out[lo_name], out[hi_name] = round(e0, 1), round(e1, 1)
            inner = e
        else:
            span = b - a
            out[lo_name] = round(a + 0.25 * span, 1)
            out[hi_name] = round(a + 0.75 * span, 1)
    return out


def _non_default(options: dict[str, Any]) -> dict[str, Any]:
    """Options that differ from their defaults (so default options do not change the id)."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(Options)}
    return {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 64 else f"array{v.shape}"
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


# ------------------------------------------------------------------------------------------
# metrics and CLI extras
# ------------------------------------------------------------------------------------------


def evaluate(problem: EELSProblem, result: Any) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), TPR at 1% FPR, Ashman's D of the truth classes and
    F1 / precision / recall of the thresholded mask, when the problem has a truth mask."""
    mask = result.extras.get("mask") if isinstance(result.extras, dict) else None
    return EM.score_metrics(
        np.asarray(result.output), problem.truth, None if mask is None else np.asarray(mask)
    )


def generate_cli(argv: list[str]) -> int:
    """``workbench eels generate --out si.npz [--preset NAME] [--shift 1 --fraction 0.03 ...]``"""
    ap = argparse.ArgumentParser(
        prog="workbench eels generate", description="write a synthetic spectrum image"
    )
    ap.add_argument("--out", required=True, help=".npz or .hspy")
    ap.add_argument("--preset", default="default_1eV_3pct", choices=list(PRESETS))
    ap.add_argument("--shift", type=float)
    ap.add_argument("--fraction", type=float)
    ap.add_argument("--dose", type=float)
    ap.add_argument("--seed", type=int)
    a = ap.parse_args(argv)
    p = synthetic(
        PRESETS[a.preset],
        shift=a.shift,
        fraction=a.fraction,
        dose=a.dose,
        gen_seed=a.seed,
        name=a.preset,
    )
    from workbench.io.eels import write_hspy, write_npz

    if a.out.endswith((".hspy", ".h5", ".hdf5")):
        write_hspy(
            a.out, p.data, p.energy, title=a.preset, extra={"truth": p.truth.astype(np.uint8)}
        )
    else:
        write_npz(a.out, p.data, p.energy, truth=p.truth, shift_map=p.shift_map)
    print(
        f"wrote {a.out}: {p.data.shape}, {p.energy[0]:.1f}-{p.energy[-1]:.1f} eV, anomalous fraction {p.meta['achieved_fraction']:.4f}"
    )
    return 0


DOMAIN = DomainSpec(
    name="eels",
    title="EELS anomaly detection",
    problem_type=EELSProblem,
    key_metric="roc_auc",
    samples=tuple(Sample(n, PRESETS[n]["desc"], partial(_preset, n)) for n in PRESETS),
    evaluate=evaluate,
    figure="workbench.viz.eels:result_figure",
    compare_figure="workbench.viz.eels:compare_figure",
    description=(
        "Core-loss EELS spectrum images (y, x, energy): find pixels whose Fe L2,3 edge is chemically "
        "shifted. PCA baselines (reconstruction error, Hotelling T², bulk-fit) against a 3-D "
        "convolutional VAE (Sultanov, Buban & Klie 2024). Synthetic presets carry a truth mask."
    ),
    load=load,
    check=check,
    upload_types=UPLOAD_TYPES,
    Options=Options,
    commands={"generate": "workbench.datasets.eels:generate_cli"},
)
