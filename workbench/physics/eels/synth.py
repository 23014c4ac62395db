"""Seeded synthetic core-loss EELS spectrum images with planted anomalies (chemical shift, changed
L3/L2 ratio, new phase) under realistic acquisition variability.

Forward model of one pixel p (expected counts per channel)::

    lambda_p(E) = d t_p [ B_p(E - e_p) + sum_j c_j,p (S_j (*) P_tau_p)(E - e_p - dE_j,p) ] (*) G_FWHM
    Y_p,k ~ Poisson(lambda_p(E_k))

* ``B_p(E) = a_p A (E / E_edge)^(-r_p)``: power-law background with a per-pixel amplitude ``a_p``
  and exponent ``r_p`` (smooth maps); ``A`` gives the peak-to-background ``p2b`` at the main edge.
* ``S_j``: edge shapes from :data:`EDGE_TABLE`. L2,3 edges: Gaussian white lines at L3 and L2 with
  an L3:L2 area ratio plus 2:1 arctan continuum steps; K edges: an arctan step with a decaying
  continuum plus a near-edge peak. ``c_j,p``: smooth concentration maps (mixtures of elements).
* ``P_tau``: plural scattering. A core-loss electron may also lose one or more plasmons, so the
  single-scattering edge is convolved with a low-loss-like kernel: the zero-loss delta plus n-fold
  plasmon peaks at n E_p (Gaussian, width sqrt(n) w_p) with Poisson weights tau^n / n!, where
  tau_p = t / lambda follows the thickness map. Thick pixels get broader, smeared edges.
* ``e_p``: energy drift and zero-loss jitter, a smooth map (amplitude ``drift`` eV) plus white
  noise (sd ``jitter`` eV); every feature of the spectrum moves with it (it is an energy-scale
  offset, not chemistry). With ``zero_loss`` > 0 and an axis that reaches 0 eV, a zero-loss peak
  and its plasmons are added as the reference an aligner can lock onto.
* anomalies (discs, truth mask): ``shift`` moves the main edge by dE (a chemical shift),
  ``ratio`` multiplies its L3:L2 area ratio by ``ratio_factor`` (valence change, total white-line
  area kept), ``phase`` splits each white line into two crystal-field peaks ``phase_split`` eV apart
  (a new phase with other near-edge structure, same area).

All features are built unbroadened on a 0.01 eV grid, broadened by the instrument's Gaussian
``fwhm`` and then interpolated at E_k minus the pixel's offsets, so drift and shifts are exact at
sub-channel scale. The dose ``n_pk`` is the expected main-edge maximum above background at t = 1,
c = 0.5 (45 = the mid dose, 12-720 the historical range; 4.5-450 spans 0.1x-10x).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Edge table (onsets / white-line maxima, eV) used for markers and defaults.
EDGES: dict[str, float] = {
    "C K": 284.0,
    "Ti L3": 457.0,
    "Ti L2": 463.0,
    "N K": 401.0,
    "O K": 532.0,
    "Cr L3": 575.0,
    "Mn L3": 640.0,
    "Mn L2": 651.0,
    "Fe L3": 708.0,
    "Fe L2": 721.0,
    "Co L3": 779.0,
    "Ni L3": 855.0,
    "Cu L3": 931.0,
}


@dataclass(frozen=True)
class Edge:
    """Shape of one ionisation edge: for L2,3 ``onset`` = L3 and ``l2`` = L2 white-line energy;
    for K edges ``onset`` = step onset and ``peak`` = near-edge peak."""

    kind: str  # "L" or "K"
    onset: float
    l2: float = 0.0
    sigma3: float = 1.2
    sigma2: float = 1.5
    ratio: float = 3.0  # L3:L2 area ratio (L) or peak:step weight (K)
    peak: float = 0.0
    peak_sigma: float = 2.0


# White-line energies and L3:L2 ratios are typical oxide values (rounded; e.g. van Aken et al.
# 1998 for Fe, the EELS Atlas for the others); the simulator needs plausible shapes, not tables.
EDGE_TABLE: dict[str, Edge] = {
    "C K": Edge("K", 284.0, peak=285.5, peak_sigma=1.0),
    "N K": Edge("K", 401.0, peak=401.5, peak_sigma=1.5),
    "O K": Edge("K", 532.0, peak=532.0, peak_sigma=2.0),
    "Ti L": Edge("L", 457.0, 463.0, 1.0, 1.3, 1.2),
    "Cr L": Edge("L", 575.0, 584.0, 1.2, 1.4, 2.0),
    "Mn L": Edge("L", 640.0, 651.0, 1.2, 1.5, 2.5),
    "Fe L": Edge("L", 708.0, 721.0, 1.2, 1.5, 3.0),
    "Co L": Edge("L", 779.0, 794.0, 1.3, 1.6, 3.5),
    "Ni L": Edge("L", 855.0, 872.0, 1.3, 1.6, 3.0),
    "Cu L": Edge("L", 931.0, 951.0, 1.3, 1.6, 3.0),
}

ANOMALIES = ("shift", "ratio", "phase")
#: the acquisition variability of ``workbench bench eels`` (and of the presets and test cubes
#: that mimic it): per-pixel background exponent and amplitude, thickness-dependent plural
#: scattering, zero-loss jitter
BENCH_VARIABILITY = dict(
    bg_exponent_sd=0.15,
    bg_amp_range=(0.85, 1.15),
    plural=True,
    t_lambda=(0.2, 0.8),
    jitter=0.03,
)


@dataclass
class SynthParams:
    """Every knob of the generator (recorded in the problem's meta)."""

    ny: int = 64
    nx: int = 64
    e_min: float = 650.0
    e_max: float = 750.0
    dispersion: float = 0.3
    n_pk: float = 45.0  # dose: main-edge counts above background at t=1, c=0.5
    p2b: float = 0.25  # peak-to-background at the main edge
    bg_exponent: float = 3.0
    fwhm: float = 0.8  # instrument resolution (eV)
    edge: str = "Fe L"  # the main edge (carries the anomaly)
    fe_l3: float = 708.0  # main-edge overrides used when edge == "Fe L"
    fe_l2: float = 721.0
    sigma_l3: float = 1.2
    sigma_l2: float = 1.5
    l3_l2_ratio: float = 3.0
    step_width: float = 1.5
    o_edge: float = 532.0
    c_o: float = 0.6  # O K with a uniform concentration (legacy; 0 = none)
    others: tuple = ()  # further edges ((name, weight), ...) each with its own concentration map
    t_range: tuple[float, float] = (0.7, 1.3)
    c_range: tuple[float, float] = (0.25, 0.75)
    smooth: float = 8.0  # correlation length (px) of the thickness and concentration maps
    anomaly: str = "shift"  # shift | ratio | phase
    shift: float = 1.0  # dE (eV) inside the discs (anomaly "shift")
    ratio_factor: float = 1.6  # L3:L2 ratio multiplier (anomaly "ratio")
    phase_split: float = 1.6  # crystal-field splitting (eV) of the white lines (anomaly "phase")
    signed: bool = False  # random sign per disc
    fraction: float = 0.03  # target anomalous fraction
    r_min: float = 3.0
    r_max: float = 6.0
    border: int = 2
    drift: float = 0.0  # amplitude (eV) of the smooth energy-drift map
    jitter: float = 0.0  # sd (eV) of the per-pixel zero-loss jitter
    drift_smooth: float = 12.0  # correlation length (px) of the drift map
    bg_exponent_sd: float = 0.0  # spread of the per-pixel background exponent
    bg_amp_range: tuple[float, float] = (1.0, 1.0)  # per-pixel background amplitude factor
    plural: bool = False  # thickness-dependent plural scattering
    t_lambda: tuple[float, float] = (0.3, 1.2)  # t / lambda over the thickness range
    plasmon: float = 22.0  # plasmon energy (eV)
    plasmon_fwhm: float = 6.0
    zero_loss: float = 0.0  # zero-loss peak height / n_pk (only where the axis reaches 0 eV)
    gain: float = 1.0
    read_noise: float = 0.0
    spike_rate: float = 0.0  # probability per pixel of one spike
    seed: int = 0
    keep_clean: bool = False  # also return the noise-free lambda cube
    # plant the anomaly in every pixel (the same maps, discs and noise streams): the anomalous
    # template of each pixel, e.g. for a likelihood-ratio oracle; truth still marks the discs
    everywhere: bool = False
    discs: list = field(default_factory=list)


def energy_axis(e_min: float, e_max: float, dispersion: float) -> np.ndarray:
    n = int(math.floor((e_max - e_min) / dispersion + 1e-9)) + 1
    return e_min + dispersion * np.arange(n, dtype=np.float64)


def _step(e: np.ndarray, onset: float, width: float) -> np.ndarray:
    return 0.5 + np.arctan((e - onset) / width) / np.pi


def _gauss(e: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((e - mu) / sigma) ** 2)


def main_edge(p: SynthParams) -> Edge:
    if p.edge not in EDGE_TABLE:
        raise ValueError(f"unknown edge {p.edge!r}; choose one of {', '.join(EDGE_TABLE)}")
    if p.edge == "Fe L":
        return Edge("L", p.fe_l3, p.fe_l2, p.sigma_l3, p.sigma_l2, p.l3_l2_ratio)
    return EDGE_TABLE[p.edge]


def edge_profile(
    e: np.ndarray, ed: Edge, step_width: float = 1.5, ratio: float | None = None, split: float = 0.0
) -> np.ndarray:
    """Unbroadened edge shape. L2,3: white lines (area ratio L3:L2, each split into two equal
    peaks ``split`` eV apart when ``split`` > 0) + 2:1 arctan steps. K: step with an (E/onset)^-2
    continuum + near-edge Gaussian (the ``ratio`` multiplies the peak for K edges)."""
    r = ed.ratio if ratio is None else ratio
    if ed.kind == "K":
        tail = np.clip(e / ed.onset, 1.0, None) ** -2.0
        w = 0.7 * (r / ed.ratio if ratio is not None else 1.0)
        if split > 0:
            pk = 0.5 * (
                _gauss(e, ed.peak - split / 2, ed.peak_sigma)
                + _gauss(e, ed.peak + split / 2, ed.peak_sigma)
            )
        else:
            pk = _gauss(e, ed.peak, ed.peak_sigma)
        return 0.3 * _step(e, ed.onset, step_width) * tail + w * pk
    # keep the total white-line area of the reference ratio when the ratio changes
    a_tot = ed.sigma3 * (1.0 + 1.0 / ed.ratio)
    a3 = a_tot / (ed.sigma3 * (1.0 + 1.0 / r))
    a2 = a3 * (ed.sigma3 / ed.sigma2) / r  # area(L3)/area(L2) = r

    def line(mu, s):
        if split > 0:
            return 0.5 * (_gauss(e, mu - split / 2, s) + _gauss(e, mu + split / 2, s))
        return _gauss(e, mu, s)

    lines = a3 * line(ed.onset, ed.sigma3) + a2 * line(ed.l2, ed.sigma2)
    steps = 0.25 * (
        2.0 / 3.0 * _step(e, ed.onset, step_width) + 1.0 / 3.0 * _step(e, ed.l2, step_width)
    )
    return lines + steps


def fe_profile(e: np.ndarray, p: SynthParams) -> np.ndarray:
    """Unbroadened Fe L2,3 shape: white lines (area ratio L3:L2) + 2:1 arctan steps."""
    return edge_profile(
        e, Edge("L", p.fe_l3, p.fe_l2, p.sigma_l3, p.sigma_l2, p.l3_l2_ratio), p.step_width
    )


_PAD = {"nearest": "edge", "constant": "constant", "wrap": "wrap", "reflect": "symmetric"}


def gaussian_filter1d(
    x: np.ndarray, sigma: float, axis: int = -1, mode: str = "reflect", truncate: float = 4.0
) -> np.ndarray:
    """Gaussian smoothing along one axis, the arithmetic of ``scipy.ndimage.gaussian_filter1d``
    (order 0, float64 in and out) term for term, so the same numbers: weights
    ``exp(−x²/2σ²)`` normalised over ``|x| ≤ r = int(truncate σ + 0.5)``, the boundary extended
    by ``mode``, and ``y_i = w_0 x_i + Σ_{j=r..1} (x_{i−j} + x_{i+j}) w_j`` accumulated from the
    outermost pair in, as scipy's symmetric-kernel loop does. Importing ``scipy.ndimage`` took
    longer than building a sample spectrum image with it (``tests/eels/test_synth.py``)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    r = int(truncate * float(sigma) + 0.5)
    k = np.arange(-r, r + 1)
    w = np.exp(-0.5 / (float(sigma) * float(sigma)) * k**2)
    w = w / w.sum()
    n = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1) + [(r, r)]
    xp = np.pad(x, pad, mode=_PAD[mode])
    y = x * w[r]
    for j in range(r, 0, -1):
        y += (xp[..., r - j : r - j + n] + xp[..., r + j : r + j + n]) * w[r + j]
    return np.moveaxis(y, -1, axis)


def gaussian_filter(x: np.ndarray, sigma: float, mode: str = "reflect") -> np.ndarray:
    """:func:`gaussian_filter1d` along every axis in turn (``scipy.ndimage.gaussian_filter``)."""
    for axis in range(np.ndim(x)):
        x = gaussian_filter1d(x, sigma, axis=axis, mode=mode)
    return x


def _broaden(fine: np.ndarray, de: float, fwhm: float) -> np.ndarray:
    if fwhm <= 0:
        return fine
    return gaussian_filter1d(fine, fwhm / 2.3548200450309493 / de, mode="nearest")


def plural_weights(tau: np.ndarray, n_max: int = 4) -> np.ndarray:
    """Poisson weights tau^n / n! e^-tau of n = 0..n_max plasmon losses, renormalised to sum 1
    (the total intensity is carried by the thickness map). Shape tau.shape + (n_max + 1,)."""
    n = np.arange(n_max + 1)
    lw = n * np.log(np.clip(tau, 1e-12, None))[..., None] - np.array(
        [math.lgamma(k + 1) for k in n]
    )
    w = np.exp(lw - lw.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


class SpectralModel:
    """Broadened components on a fine grid (per plasmon order), gathered at per-pixel energies."""

    DE = 0.01

    def __init__(self, p: SynthParams, energy: np.ndarray) -> None:
        self.p = p
        de = self.DE
        self.n_max = 4 if p.plural else 0
        lo = energy[0] - 30.0 - self.n_max * (p.plasmon + 2 * p.plasmon_fwhm)
        hi = energy[-1] + 30.0
        self.lo = lo
        self.fine = np.arange(lo, hi + de, de)
        ed = main_edge(p)
        self.edge = ed
        self.onset = ed.onset
        prof = edge_profile(self.fine, ed, p.step_width)
        main = _broaden(prof, de, p.fwhm)
        near = (self.fine > ed.onset - 3.0) & (
            self.fine < ed.onset + (3.0 if ed.kind == "L" else 10.0)
        )
        m = main[near].max() if near.any() else main.max()
        self.scale = p.n_pk / (0.5 * max(m, 1e-12))
        self.main = self._orders(main * self.scale)
        self.anom = None
        if p.anomaly == "ratio":
            a = edge_profile(self.fine, ed, p.step_width, ratio=ed.ratio * p.ratio_factor)
            self.anom = self._orders(_broaden(a, de, p.fwhm) * self.scale)
        elif p.anomaly == "phase":
            a = edge_profile(self.fine, ed, p.step_width, split=p.phase_split)
            self.anom = self._orders(_broaden(a, de, p.fwhm) * self.scale)
        elif p.anomaly != "shift":
            raise ValueError(f"anomaly must be one of {ANOMALIES}, got {p.anomaly!r}")
        # further edges: (orders, weight) with the maximum scaled to weight * n_pk at c = 0.5
        self.others = []
        extra = list(p.others)
        if p.c_o > 0 and p.edge != "O K":
            extra = [("O K", None), *extra]
        for name, w in extra:
            if name not in EDGE_TABLE:
                raise ValueError(f"unknown edge {name!r}; choose one of {', '.join(EDGE_TABLE)}")
            e2 = EDGE_TABLE[name]
            if name == "O K":
                e2 = Edge("K", p.o_edge, peak=p.o_edge, peak_sigma=2.0)
            o = _broaden(edge_profile(self.fine, e2, p.step_width), de, p.fwhm)
            if w is None:  # legacy O K: uniform concentration c_o
                self.others.append(
                    (name, self._orders(o * p.c_o * p.n_pk / max(o.max(), 1e-12)), None)
                )
            else:
                self.others.append(
                    (
                        name,
                        self._orders(o * float(w) * p.n_pk / (0.5 * max(o.max(), 1e-12))),
                        float(w),
                    )
                )
        self.zlp = None
        if p.zero_loss > 0 and lo < 5.0:
            z = _broaden((np.abs(self.fine) < de / 2).astype(float) / de, de, max(p.fwhm, 0.1))
            z = z / max(z.max(), 1e-12) * p.zero_loss * p.n_pk
            self.zlp = self._orders(z, force=True)

    def _orders(self, comp: np.ndarray, force: bool = False) -> list[np.ndarray]:
        """comp convolved with n-fold plasmon losses, n = 0..n_max."""
        p, de = self.p, self.DE
        n_max = 4 if (force and p.plural is False and p.zero_loss > 0) else self.n_max
        out = [comp]
        s1 = p.plasmon_fwhm / 2.3548200450309493 / de
        for n in range(1, n_max + 1):
            k = int(round(n * p.plasmon / de))
            sh = np.zeros_like(comp)
            sh[k:] = comp[:-k] if k > 0 else comp
            out.append(gaussian_filter1d(sh, math.sqrt(n) * s1, mode="constant"))
        return out

    def gather(self, comp: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Linear interpolation of a fine-grid component at energies e (any shape)."""
        pos = (e - self.lo) / self.DE
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, comp.size - 2)
        w = np.clip(pos - i0, 0.0, 1.0)
        return comp[i0] * (1.0 - w) + comp[i0 + 1] * w

    def mix(self, orders: list[np.ndarray], e: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        """sum_n w_n,p orders_n(e_p,k); e (n_px, nE), w (n_px, n_orders) or None (order 0)."""
        out = self.gather(orders[0], e) * (1.0 if w is None else w[:, :1])
        if w is not None:
            for n in range(1, len(orders)):
                out += self.gather(orders[n], e) * w[:, n : n + 1]
        return out


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
    ``shift_map`` (ny, nx) eV (chemical shift of the main edge), ``drift_map`` (ny, nx) eV (energy
    offset of the whole spectrum), ``thickness``, ``c_fe`` (main-edge concentration), ``tau``
    (t / lambda), ``bg_exponent``, optional ``clean`` (noise-free lambda), and ``params`` (a
    JSON-able dict of every parameter, achieved fraction and the disc list).

    Examples
    --------
    >>> out = generate(ny=16, nx=16, shift=2.0, fraction=0.05, seed=1)
    >>> out["data"].shape[:2], bool(out["truth"].any())
    ((16, 16), True)
    """
    p = SynthParams(**kw) if p is None else p
    if not 0.01 <= p.dispersion <= 5.0:
        raise ValueError(f"dispersion must be 0.01-5 eV/channel, got {p.dispersion}")
    ss = np.random.SeedSequence(p.seed)
    kids = ss.spawn(4)
    r_maps, r_disc, r_noise = (np.random.default_rng(s) for s in kids[:3])
    # one stream per variability feature: switching one on leaves the others' maps unchanged
    r_drift, r_bg, r_conc = (np.random.default_rng(s) for s in kids[3].spawn(3))
    energy = energy_axis(p.e_min, p.e_max, p.dispersion)
    model = SpectralModel(p, energy)
    ny, nx, ne = p.ny, p.nx, energy.size
    t = smooth_field(r_maps, ny, nx, p.smooth, *p.t_range)
    c = smooth_field(r_maps, ny, nx, p.smooth, *p.c_range)
    truth, discs = place_discs(r_disc, ny, nx, p.fraction, p.r_min, p.r_max, p.border)
    shift_map = np.zeros((ny, nx))
    yy, xx = np.mgrid[0:ny, 0:nx]
    for d in discs:
        s = p.shift * (r_disc.choice([-1.0, 1.0]) if p.signed else 1.0)
        d["shift"] = float(s) if p.anomaly == "shift" else 0.0
        if p.anomaly == "shift":
            shift_map[(yy - d["y"]) ** 2 + (xx - d["x"]) ** 2 <= d["r"] ** 2] = s
    planted = np.ones((ny, nx), bool) if p.everywhere else truth
    if p.everywhere and p.anomaly == "shift":
        shift_map[:] = p.shift
    # acquisition variability (its own random stream: the maps above stay as they were)
    drift_map = np.zeros((ny, nx))
    if p.drift > 0:
        drift_map += p.drift * (2.0 * smooth_field(r_drift, ny, nx, p.drift_smooth, 0.0, 1.0) - 1.0)
    if p.jitter > 0:
        drift_map += r_drift.normal(0.0, p.jitter, (ny, nx))
    r_exp = np.full((ny, nx), p.bg_exponent)
    if p.bg_exponent_sd > 0:
        f = smooth_field(r_bg, ny, nx, p.smooth, -1.0, 1.0)
        r_exp = p.bg_exponent + p.bg_exponent_sd * f / max(f.std(), 1e-12)
    amp = np.ones((ny, nx))
    if p.bg_amp_range[0] != p.bg_amp_range[1]:
        amp = smooth_field(r_bg, ny, nx, p.smooth, *p.bg_amp_range)
    tau = np.zeros((ny, nx))
    if p.plural:
        t0, t1 = p.t_range
        u = (t - t0) / max(t1 - t0, 1e-12)
        tau = p.t_lambda[0] + u * (p.t_lambda[1] - p.t_lambda[0])
    conc = [
        smooth_field(r_conc, ny, nx, p.smooth, *p.c_range) if w is not None else None
        for _, _, w in model.others
    ]

    n_px = ny * nx
    e_px = energy[None, :] - drift_map.reshape(n_px, 1)  # every feature moves with the drift
    w = plural_weights(tau.reshape(n_px)) if p.plural else None
    B = (amp.reshape(n_px, 1) * (p.n_pk / p.p2b)) * (
        np.clip(e_px, 0.5 * model.onset, None) / model.onset
    ) ** (-r_exp.reshape(n_px, 1))
    lam = B
    for (_, orders, wt), cm in zip(model.others, conc, strict=True):
        lam = lam + (1.0 if wt is None else (cm.reshape(n_px, 1) / 0.5)) * model.mix(
            orders, e_px, w
        )
    cs = (c.reshape(n_px, 1) / 0.5) * 0.5
    main = model.mix(model.main, e_px - shift_map.reshape(n_px, 1), w)
    if model.anom is not None and planted.any():
        sel = planted.reshape(n_px)
        main[sel] = model.mix(model.anom, e_px[sel], None if w is None else w[sel])
    lam = lam + cs * main
    if model.zlp is not None:
        lam = lam + model.mix(
            model.zlp, e_px, w if w is not None else plural_weights(np.full(n_px, 0.3))
        )
    lam = (lam * t.reshape(n_px, 1)).reshape(ny, nx, ne)
    counts = r_noise.poisson(lam).astype(np.float64)
    if p.spike_rate > 0:
        hit = r_noise.random((ny, nx)) < p.spike_rate
        for iy, ix in zip(*np.nonzero(hit), strict=True):
            k = r_noise.integers(0, ne - 3)
            wd = r_noise.integers(1, 4)
            counts[iy, ix, k : k + wd] += r_noise.uniform(10, 100) * lam[iy, ix, k : k + wd]
    counts = counts * p.gain
    if p.read_noise > 0:
        counts = counts + r_noise.normal(0.0, p.read_noise, counts.shape)
    params = asdict(p)
    params["discs"] = discs
    params["achieved_fraction"] = float(truth.mean())
    params["n_energy"] = int(ne)
    params["drift_rms"] = float(np.sqrt((drift_map**2).mean()))
    out = {
        "data": counts.astype(np.float32),
        "energy": energy,
        "truth": truth,
        "shift_map": shift_map,
        "drift_map": drift_map,
        "thickness": t,
        "c_fe": c,
        "tau": tau,
        "bg_exponent": r_exp,
        "params": params,
    }
    if p.keep_clean:
        out["clean"] = lam.astype(np.float32)
    return out
