"""Seeded synthetic core-loss EELS spectrum images with planted Fe-L chemical-shift anomalies.

Forward model of one pixel p (expected counts per channel), following the EELS spec §1.2::

    lambda_p(E) = d * t_p * [B(E) + c_O * S_O(E) + c_Fe,p * S_Fe(E - dE_p)]  (*)  G_FWHM(E)
    Y_p,k ~ Poisson(lambda_p(E_k))

B is a power law, S_O an arctan step plus a near-edge Gaussian at 532 eV, S_Fe the Fe L3/L2 white
lines (708 / 721 eV, Gaussian sigma 1.2 / 1.5 eV, area ratio 3) plus arctan continuum steps with
2:1 heights; G is the instrument's Gaussian resolution. The shift is applied to the analytic model
*before* broadening and sampling, so sub-channel shifts are exact. The dose is set by ``n_pk``: the
expected Fe-L3 white-line counts above background at t = 1, c_Fe = 0.5; B(708 eV) = n_pk / p2b.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

# Edge table (onsets / white-line maxima, eV) used for markers and defaults.
EDGES: dict[str, float] = {
    "O K": 532.0,
    "Mn L3": 640.0,
    "Mn L2": 651.0,
    "Fe L3": 708.0,
    "Fe L2": 721.0,
    "Co L3": 779.0,
    "Ni L3": 855.0,
}


@dataclass
class SynthParams:
    """Every knob of the generator (recorded in the problem's meta)."""

    ny: int = 64
    nx: int = 64
    e_min: float = 650.0
    e_max: float = 750.0
    dispersion: float = 0.3
    n_pk: float = 45.0  # dose: Fe-L3 counts above background at t=1, c_Fe=0.5
    p2b: float = 0.25  # peak-to-background at 708 eV
    bg_exponent: float = 3.0
    fwhm: float = 0.8  # instrument resolution (eV)
    fe_l3: float = 708.0
    fe_l2: float = 721.0
    sigma_l3: float = 1.2
    sigma_l2: float = 1.5
    l3_l2_ratio: float = 3.0
    step_width: float = 1.5
    o_edge: float = 532.0
    c_o: float = 0.6
    t_range: tuple[float, float] = (0.7, 1.3)
    c_range: tuple[float, float] = (0.25, 0.75)
    smooth: float = 8.0  # correlation length (px) of the thickness and Fe maps
    shift: float = 1.0  # dE (eV) inside the discs
    signed: bool = False  # random sign per disc
    fraction: float = 0.03  # target anomalous fraction
    r_min: float = 3.0
    r_max: float = 6.0
    border: int = 2
    gain: float = 1.0
    read_noise: float = 0.0
    spike_rate: float = 0.0  # probability per pixel of one spike
    seed: int = 0
    keep_clean: bool = False  # also return the noise-free lambda cube
    discs: list = field(default_factory=list)


def energy_axis(e_min: float, e_max: float, dispersion: float) -> np.ndarray:
    n = int(math.floor((e_max - e_min) / dispersion + 1e-9)) + 1
    return e_min + dispersion * np.arange(n, dtype=np.float64)


def _step(e: np.ndarray, onset: float, width: float) -> np.ndarray:
    return 0.5 + np.arctan((e - onset) / width) / np.pi


def _gauss(e: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((e - mu) / sigma) ** 2)


def fe_profile(e: np.ndarray, p: SynthParams) -> np.ndarray:
    """Unbroadened Fe L2,3 shape: white lines (area ratio L3:L2) + 2:1 arctan steps."""
    a3 = 1.0
    a2 = (p.sigma_l3 / p.sigma_l2) / p.l3_l2_ratio  # so that area(L3)/area(L2) = ratio
    lines = a3 * _gauss(e, p.fe_l3, p.sigma_l3) + a2 * _gauss(e, p.fe_l2, p.sigma_l2)
    steps = 0.25 * (
        2.0 / 3.0 * _step(e, p.fe_l3, p.step_width) + 1.0 / 3.0 * _step(e, p.fe_l2, p.step_width)
    )
    return lines + steps


def o_profile(e: np.ndarray, p: SynthParams) -> np.ndarray:
    # arctan step whose continuum decays as (E / onset)^-2, plus the near-edge peak
    tail = np.clip(e / p.o_edge, 1.0, None) ** -2.0
    return 0.3 * _step(e, p.o_edge, p.step_width) * tail + 0.7 * _gauss(e, p.o_edge, 2.0)


def _broaden(fine: np.ndarray, de: float, fwhm: float) -> np.ndarray:
    if fwhm <= 0:
        return fine
    return gaussian_filter(fine, fwhm / 2.3548200450309493 / de, mode="nearest")


class SpectralModel:
    """Broadened component spectra on a fine grid, evaluated at arbitrary (shifted) energies."""

    def __init__(self, p: SynthParams, energy: np.ndarray) -> None:
        self.p = p
        de = 0.01
        lo, hi = energy[0] - 30.0, energy[-1] + 30.0
        self.fine = np.arange(lo, hi + de, de)
        fe = _broaden(fe_profile(self.fine, p), de, p.fwhm)
        # scale so that the L3 maximum above background is n_pk at c_Fe = 0.5, t = 1
        m = fe_profile(np.array([p.fe_l3]), p)[0]
        near = np.abs(self.fine - p.fe_l3) < 3.0
        m = fe[near].max() if near.any() else m
        self.fe = fe * (p.n_pk / (0.5 * m))
        e_ref = float(energy[0])
        bg = (self.fine / e_ref) ** (-p.bg_exponent)
        bg_708 = (p.fe_l3 / e_ref) ** (-p.bg_exponent)
        self.bg = _broaden(bg, de, p.fwhm) * (p.n_pk / p.p2b) / bg_708
        o = _broaden(o_profile(self.fine, p), de, p.fwhm)
        self.o = o * p.c_o * p.n_pk / max(o.max(), 1e-12)

    def at(self, comp: np.ndarray, e: np.ndarray) -> np.ndarray:
        return np.interp(e, self.fine, comp)


def smooth_field(
    rng: np.random.Generator, ny: int, nx: int, length: float, lo: float, hi: float
) -> np.ndarray:
    """Smooth random field scaled to [lo, hi]."""
    f = gaussian_filter(rng.standard_normal((ny, nx)), max(length, 0.5), mode="wrap")
    f = (f - f.min()) / max(f.max() - f.min(), 1e-12)
    return lo + (hi - lo) * f


def place_discs(
    rng: np.random.Generator,
    ny: int,
    nx: int,
    fraction: float,
    r_min: float,
    r_max: float,
    border: int,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Non-overlapping discs until the anomalous fraction reaches ``fraction``."""
    mask = np.zeros((ny, nx), bool)
    discs: list[dict[str, float]] = []
    if fraction <= 0:
        return mask, discs
    target = fraction * ny * nx
    yy, xx = np.mgrid[0:ny, 0:nx]
    for _ in range(2000):
        have = mask.sum()
        if have >= target:
            break
        r = rng.uniform(r_min, r_max)
        # do not overshoot much: shrink the last disc to the remaining area (r >= 1.5)
        r = min(r, max(1.5, math.sqrt((target - have) / math.pi) + 0.5))
        lo_y, hi_y = border + r, ny - 1 - border - r
        lo_x, hi_x = border + r, nx - 1 - border - r
        if hi_y < lo_y or hi_x < lo_x:
            lo_y, hi_y, lo_x, hi_x = 0, ny - 1, 0, nx - 1
        cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
        if any(math.hypot(cy - d["y"], cx - d["x"]) < r + d["r"] + 1 for d in discs):
            continue
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if not disc.any():
            continue
        mask |= disc
        discs.append({"y": float(cy), "x": float(cx), "r": float(r)})
    return mask, discs


def generate(p: SynthParams | None = None, **kw: Any) -> dict[str, Any]:
    """Generate one spectrum image.

    Returns
    -------
    dict with ``data`` (ny, nx, nE) float32 counts, ``energy`` (nE,), ``truth`` (ny, nx) bool,
    ``shift_map`` (ny, nx) eV, ``thickness``, ``c_fe``, optional ``clean`` (noise-free lambda),
    and ``params`` (a JSON-able dict of every parameter, achieved fraction and the disc list).

    Examples
    --------
    >>> out = generate(ny=16, nx=16, shift=2.0, fraction=0.05, seed=1)
    >>> out["data"].shape[:2], bool(out["truth"].any())
    ((16, 16), True)
    """
    p = SynthParams(**kw) if p is None else p
    ss = np.random.SeedSequence(p.seed)
    r_maps, r_disc, r_noise = (np.random.default_rng(s) for s in ss.spawn(3))
    energy = energy_axis(p.e_min, p.e_max, p.dispersion)
    model = SpectralModel(p, energy)
    t = smooth_field(r_maps, p.ny, p.nx, p.smooth, *p.t_range)
    c = smooth_field(r_maps, p.ny, p.nx, p.smooth, *p.c_range)
    truth, discs = place_discs(r_disc, p.ny, p.nx, p.fraction, p.r_min, p.r_max, p.border)
    shift_map = np.zeros((p.ny, p.nx))
    yy, xx = np.mgrid[0 : p.ny, 0 : p.nx]
    for d in discs:
        s = p.shift * (r_disc.choice([-1.0, 1.0]) if p.signed else 1.0)
        d["shift"] = float(s)
        shift_map[(yy - d["y"]) ** 2 + (xx - d["x"]) ** 2 <= d["r"] ** 2] = s
    base = model.at(model.bg, energy) + model.at(model.o, energy)
    lam = np.empty((p.ny, p.nx, energy.size), np.float64)
    fe_by_shift = {s: model.at(model.fe, energy - s) for s in np.unique(shift_map)}
    for s, fe in fe_by_shift.items():
        sel = shift_map == s
        lam[sel] = base[None, :] + (c[sel] / 0.5)[:, None] * 0.5 * fe[None, :]
    lam *= t[..., None]
    counts = r_noise.poisson(lam).astype(np.float64)
    if p.spike_rate > 0:
        hit = r_noise.random((p.ny, p.nx)) < p.spike_rate
        for iy, ix in zip(*np.nonzero(hit), strict=True):
            k = r_noise.integers(0, energy.size - 3)
            w = r_noise.integers(1, 4)
            counts[iy, ix, k : k + w] += r_noise.uniform(10, 100) * lam[iy, ix, k : k + w]
    counts = counts * p.gain
    if p.read_noise > 0:
        counts = counts + r_noise.normal(0.0, p.read_noise, counts.shape)
    params = asdict(p)
    params["discs"] = discs
    params["achieved_fraction"] = float(truth.mean())
    params["n_energy"] = int(energy.size)
    out = {
        "data": counts.astype(np.float32),
        "energy": energy,
        "truth": truth,
        "shift_map": shift_map,
        "thickness": t,
        "c_fe": c,
        "params": params,
    }
    if p.keep_clean:
        out["clean"] = lam.astype(np.float32)
    return out
