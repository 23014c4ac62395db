"""Plant a known edge shift in a user's own measured spectrum image, without changing its noise.

A measured core-loss spectrum image has no ground truth. To measure a detector on it, a known
anomaly is planted: in the pixels of a mask, the ionisation edge moves by a chosen energy, while
the counts keep the statistics the detector met in the real data.

Model (per pixel p, channel c, energy E_c, dispersion delta)::

    Y_pc ~ Poisson(b_pc + s_pc)       b: pre-edge power-law background, s: edge signal

**Binomial thinning.** If Y ~ Poisson(b + s) and every count is kept independently with
probability p = s / (b + s), the kept part S ~ Poisson(s) and the rest B = Y - S ~ Poisson(b) are
independent Poisson variables (the splitting property of the Poisson distribution). So drawing
S_pc ~ Binomial(Y_pc, p_pc) splits the measured counts into a background part and an edge part,
each with exact Poisson statistics, when p_pc is the true ratio. Here p_pc comes from a smoothed
model: the cube is averaged over a Gaussian of ``smooth_px`` pixels (per channel, so the spectra
keep their shape), a power law A E^-r is fitted to each smoothed spectrum in the pre-edge window
by least squares on log counts, and

    p_pc = clip((M_pc - A_p E_c^-r_p) / M_pc, 0, 1)  for E_c >= onset - delta,   0 below,

with M the smoothed cube (which holds the pixel itself with a small weight, 4 % for
``smooth_px`` = 2 on a map, so p barely follows the pixel's own noise). Above the onset the edge part is everything above the extrapolated
background, up to the end of the axis (a cut would leave a step of its own where it cuts, so a
later edge on the same axis moves with it).

**The shift.** The edge part of each anomalous pixel moves by dE = (m + f) delta (m an integer,
0 <= f < 1): every count of channel c moves to channel c + m, and one channel further with
probability f (independently per count). When dE is a multiple of the dispersion (f = 0) this is
an exact shift by m channels. Otherwise the moved counts are again Poisson, now with the mean
(1 - f) s_{c-m} + f s_{c-m-1}: the bin integrals of a spectrum that is constant within each bin,
shifted by dE -- the linear interpolation of the mean, with Poisson noise rather than the
interpolation's reduced variance, so that resampling lowers nothing a detector could see. Pixels
outside the mask are the same operator with dE = 0, the identity: they are returned unchanged.
Counts moved past the last channel leave the axis (as a real shifted edge's tail would); with an
edge part that is zero in the last m + 1 channels (``edge_end`` below the end of the axis by more
than the shift) the total of every pixel is preserved exactly.

Finally the parts are added back: Y'_p = B_p + shift(S_p).

**Detector gain.** Many spectrometers record g detector counts per electron: Y = g N with N
Poisson, so Var Y = g E[Y]. Thinning Y itself would then give the edge part too little variance
(lambda p instead of g lambda p). With ``gain`` g the thinning is done on electrons: N is Y / g
rounded at random (floor, plus one with probability equal to the remainder: unbiased, variance
at most 1/4 electron), S = Binomial(N, p) electrons, and the parts in detector units are g S
and Y - g S -- independent, with variances g p lambda and g (1 - p) lambda as for real data.
The planted pixel Y - g S + g shift(S) is rounded at random to an integer the same way (the
input's integer counts stay integers). g is estimated by :func:`dispersion_index`; g = 1 (raw
electron counts) is the plain thinning above, with no rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.physics.eels.spectra import dispersion_index  # noqa: F401 (re-exported)


def _smooth_map(cube: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian average of every channel over the map (reflecting borders)."""
    from workbench.physics.eels.synth import gaussian_filter1d

    if sigma <= 0:
        return cube.astype(np.float64)
    out = gaussian_filter1d(cube.astype(np.float64), sigma, axis=0)
    return gaussian_filter1d(out, sigma, axis=1)


def pre_edge_window(energy: np.ndarray, onset: float) -> tuple[float, float]:
    """Default pre-edge fit window: ``[onset - max(40 eV, 6 delta), onset - max(2 eV, delta)]``."""
    d = float(np.median(np.diff(energy)))
    return onset - max(40.0, 6.0 * d), onset - max(2.0, d)


def edge_fraction(
    cube: np.ndarray,
    energy: np.ndarray,
    onset: float,
    *,
    pre: tuple[float, float] | None = None,
    smooth_px: float = 2.0,
    edge_end: float | None = None,
) -> np.ndarray:
    """The thinning probability p[y, x, c] of every count being edge signal (module docstring).

    Parameters
    ----------
    cube : ndarray, shape (ny, nx, nE)
        Counts.
    energy : ndarray, shape (nE,)
        Energy axis (eV), increasing.
    onset : float
        Edge onset (eV).
    pre : (lo, hi), optional
        Pre-edge window of the power-law fit (eV); default :func:`pre_edge_window`.
    smooth_px : float
        Standard deviation (pixels) of the Gaussian map average the model is fitted to.
    edge_end : float, optional
        Last energy (eV) of the edge part; default the end of the axis. Cut only where the
        edge signal is back at the background (or before a next edge): a cut where it is not
        leaves a step of its own once the edge part is shifted.

    Returns
    -------
    ndarray, shape (ny, nx, nE)
        p in [0, 1]; 0 below ``onset - delta`` and above ``edge_end``.
    """
    e = np.asarray(energy, np.float64)
    lo, hi = pre if pre is not None else pre_edge_window(e, onset)
    sel = (e >= lo) & (e <= hi)
    if sel.sum() < 3:
        raise InputError(
            f"pre-edge window {lo:g}-{hi:g} eV holds {int(sel.sum())} channels of the "
            f"{e[0]:.1f}-{e[-1]:.1f} eV axis; at least 3 are needed for the background fit"
        )
    m = _smooth_map(cube, smooth_px)
    ny, nx, ne = m.shape
    # log M = log A - r log E, least squares per pixel over the pre-edge channels
    x = np.log(e[sel])
    y = np.log(np.clip(m[..., sel].reshape(-1, int(sel.sum())), 1e-12, None))
    xm = x.mean()
    slope = ((y - y.mean(1, keepdims=True)) * (x - xm)).sum(1) / ((x - xm) ** 2).sum()
    icpt = y.mean(1) - slope * xm
    bg = np.exp(icpt[:, None] + slope[:, None] * np.log(e)[None, :]).reshape(ny, nx, ne)
    d = float(np.median(np.diff(e)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(m > 0, (m - bg) / m, 0.0)
    p = np.clip(np.nan_to_num(p), 0.0, 1.0)
    p[..., e < onset - d] = 0.0
    if edge_end is not None:
        p[..., e > edge_end] = 0.0
    return p


def shift_counts(part: np.ndarray, channels: float, rng: np.random.Generator) -> np.ndarray:
    """Move every count of ``part`` (..., nE) up by ``channels`` = m + f channels: m channels,
    and one more with probability f per count (module docstring). Counts leaving the axis are
    dropped; ``channels`` may be negative (a shift to lower energy)."""
    part = np.asarray(part)
    m = math.floor(channels)
    f = float(channels - m)
    if f > 0:
        extra = rng.binomial(part.astype(np.int64), f)
        stay = part - extra
    else:
        extra = np.zeros_like(part)
        stay = part
    out = np.zeros_like(part)
    n = part.shape[-1]
    for moved, k in ((stay, m), (extra, m + 1)):
        if k >= n or k <= -n:
            continue
        if k >= 0:
            out[..., k:] += moved[..., : n - k]
        else:
            out[..., :k] += moved[..., -k:]
    return out


def round_random(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unbiased integer rounding: floor(x), plus one with probability x - floor(x) (adds a
    variance of at most 1/4, E[result] = x)."""
    f = np.floor(x)
    return (f + (rng.random(x.shape) < (x - f))).astype(np.int64)


def plant_edge_shift(
    cube: np.ndarray,
    energy: np.ndarray,
    onset: float,
    shift: float,
    mask: np.ndarray,
    *,
    rng: np.random.Generator,
    pre: tuple[float, float] | None = None,
    smooth_px: float = 2.0,
    edge_end: float | None = None,
    gain: float = 1.0,
) -> dict[str, Any]:
    """Shift the edge at ``onset`` by ``shift`` eV in the pixels of ``mask`` (module docstring).

    Parameters
    ----------
    cube : ndarray, shape (ny, nx, nE)
        Raw counts (non-negative integers in any dtype); refused otherwise, since thinning is
        only defined for counts.
    energy : ndarray, shape (nE,)
        Uniform energy axis (eV).
    onset : float
        Edge onset (eV).
    shift : float
        Planted shift dE (eV); positive = to higher energy loss.
    mask : ndarray of bool, shape (ny, nx)
        Pixels that get the shift.
    rng : numpy Generator
        Draws the thinning and the fractional moves.
    pre, smooth_px, edge_end
        The background model and the extent of the edge part (:func:`edge_fraction`).
    gain : float
        Detector counts per electron g (module docstring; :func:`dispersion_index`); 1 for raw
        electron counts.

    Returns
    -------
    dict
        ``data`` (float32, the planted cube; equal to ``cube`` outside ``mask``), ``edge``
        (the edge part S of every pixel before the shift, in electrons: detector units / g),
        ``p`` (the thinning probabilities), ``channels`` (dE / delta).
    """
    y = np.asarray(cube)
    if y.ndim != 3:
        raise InputError(f"planting needs a (ny, nx, nE) cube, got shape {y.shape}")
    yf = y.astype(np.float64)
    if (yf < 0).any() or not np.allclose(yf, np.round(yf)):
        raise InputError(
            "planting by binomial thinning needs raw counts (non-negative integers); "
            "these data are not (background-subtracted, normalised or gain-scaled?)"
        )
    mask = np.asarray(mask, bool)
    if mask.shape != y.shape[:2]:
        raise InputError(f"mask shape {mask.shape} does not match the map {y.shape[:2]}")
    e = np.asarray(energy, np.float64)
    d = float(np.median(np.diff(e)))
    counts = np.round(yf).astype(np.int64)
    out = counts.copy()
    if not gain > 0:
        raise InputError(f"gain must be positive, got {gain}")
    p = edge_fraction(counts, e, onset, pre=pre, smooth_px=smooth_px, edge_end=edge_end)
    # the draws are made for every pixel (one stream, the same for every shift), so that two
    # shifts planted with the same seed differ only by the shift
    electrons = counts if gain == 1 else round_random(counts / gain, rng)
    edge = rng.binomial(electrons, p)
    channels = float(shift) / d
    if shift != 0 and mask.any():
        s = edge[mask]
        moved = shift_counts(s, channels, rng)
        if gain == 1:
            out[mask] = (counts[mask] - s) + moved
        else:
            out[mask] = round_random(counts[mask] + gain * (moved - s), rng)
            out[mask] = np.maximum(out[mask], 0)
    return {"data": out.astype(np.float32), "edge": edge, "p": p, "channels": channels}
