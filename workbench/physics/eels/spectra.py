"""Spectrum processing of EELS spectrum images: energy windows (in eV, never channel indices),
cropping and binning, power-law background, normalisation, spike removal, Poisson variance
stabilisation, the classical maps (edge intensity, edge ratio, centroid), and the Poisson
goodness of fit of counts against a model (Pearson correlation, deviance)."""

from __future__ import annotations

import numpy as np

from workbench.errors import InputError


def window(
    energy: np.ndarray, lo: float | None, hi: float | None, *, what: str = "window"
) -> slice:
    """Channel slice of energies in [lo, hi] eV; None means the end of the axis."""
    lo = energy[0] if lo is None else lo
    hi = energy[-1] if hi is None else hi
    i0 = int(np.searchsorted(energy, lo, side="left"))
    i1 = int(np.searchsorted(energy, hi, side="right"))
    if i1 - i0 < 3:
        raise InputError(
            f"{what} {lo:g}-{hi:g} eV holds {max(i1 - i0, 0)} channels of the "
            f"{energy[0]:.1f}-{energy[-1]:.1f} eV axis; choose a window inside the data"
        )
    return slice(i0, i1)


def crop(data: np.ndarray, energy: np.ndarray, lo: float | None, hi: float | None):
    sl = window(energy, lo, hi, what="energy crop")
    return data[..., sl], energy[sl]


def bin_spatial(data: np.ndarray, b: int, truth: np.ndarray | None = None):
    """Sum b x b pixel blocks (counts stay counts); a truth mask becomes 'any anomalous'."""
    if b <= 1:
        return data, truth
    ny, nx = data.shape[0] // b * b, data.shape[1] // b * b
    if ny == 0 or nx == 0:
        raise InputError(f"binning {b} is larger than the {data.shape[0]}x{data.shape[1]} map")
    d = data[:ny, :nx].reshape(ny // b, b, nx // b, b, -1).sum(axis=(1, 3))
    t = None
    if truth is not None:
        t = truth[:ny, :nx].reshape(ny // b, b, nx // b, b).mean(axis=(1, 3)) >= 0.5
    return d.astype(np.float32), t


def powerlaw_fit(data: np.ndarray, energy: np.ndarray, lo: float, hi: float):
    """Per-pixel least-squares fit of log I = log A - r log E over the pre-edge window [lo, hi].

    Returns (A, r) maps of shape data.shape[:-1].
    """
    sl = window(energy, lo, hi, what="background window")
    y = np.log(np.clip(data[..., sl].astype(np.float64), 1e-3, None))
    x = np.log(energy[sl])
    xm = x.mean()
    xc = x - xm
    slope = (y * xc).sum(-1) / (xc * xc).sum()
    intercept = y.mean(-1) - slope * xm
    return np.exp(intercept), -slope


def subtract_powerlaw(
    data: np.ndarray, energy: np.ndarray, lo: float, hi: float, zero_fill: bool = True
):
    """Fit a power law on [lo, hi] eV per pixel and subtract it over the whole range.

    Returns (subtracted, background, warnings). Channels below ``lo`` are set to 0 when
    ``zero_fill``. A warning is raised on negative pre-edge means (over-subtraction).
    """
    A, r = powerlaw_fit(data, energy, lo, hi)
    bg = A[..., None] * energy ** (-r[..., None])
    out = data - bg
    warnings = []
    sl = window(energy, lo, hi)
    pre = out[..., sl].mean(-1)
    if np.mean(pre < -0.5 * np.sqrt(np.abs(bg[..., sl]).mean(-1) + 1)) > 0.05:
        warnings.append("background over-subtracted in more than 5% of pixels (negative pre-edge)")
    post = out[..., sl.stop :]
    if post.size and np.mean(post < -2.0 * np.sqrt(np.abs(bg[..., sl.stop :]) + 1.0)) > 0.3:
        warnings.append("many negative post-edge channels: check the fit window")
    if zero_fill:
        out[..., : sl.start] = 0.0
    return out.astype(np.float32), bg.astype(np.float32), warnings


def normalise(data: np.ndarray, mode: str) -> np.ndarray:
    """'none', 'sum' (each spectrum to unit total times the mean total) or 'max'."""
    if mode == "none":
        return data
    if mode == "sum":
        s = data.sum(-1, keepdims=True)
        return (data / np.where(s == 0, 1, s) * s.mean()).astype(np.float32)
    if mode == "max":
        m = np.abs(data).max(-1, keepdims=True)
        return (data / np.where(m == 0, 1, m)).astype(np.float32)
    raise InputError(f"normalise must be none, sum or max, got {mode!r}")


def remove_spikes(data: np.ndarray, z: float = 8.0, size: int = 5):
    """Median filter along energy; residuals above a robust z threshold are replaced by the median.

    Returns (cleaned, number of replaced channels).
    """
    from scipy.ndimage import median_filter

    med = median_filter(data, size=(1, 1, size), mode="nearest")
    res = data - med
    mad = np.median(np.abs(res)) * 1.4826 + 1e-6
    noise = np.sqrt(np.clip(med, 1, None))
    scale = np.maximum(mad, noise)
    bad = res > z * scale
    out = np.where(bad, med, data).astype(np.float32)
    return out, int(bad.sum())


def poisson_normalise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keenan-Kotula: X / (sqrt(row sums) sqrt(column sums)); returns (Xn, row, col) factors."""
    Xc = np.clip(X, 0, None)
    row = np.sqrt(Xc.sum(1))
    col = np.sqrt(Xc.sum(0))
    row = np.where(row > 0, row, 1.0)
    col = np.where(col > 0, col, 1.0)
    return X / row[:, None] / col[None, :], row, col


def anscombe(y: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.clip(y, 0, None) + 0.375)


def intensity_map(
    data: np.ndarray, energy: np.ndarray, lo: float | None = None, hi: float | None = None
) -> np.ndarray:
    return data[..., window(energy, lo, hi)].sum(-1)


def edge_ratio_map(
    data: np.ndarray,
    energy: np.ndarray,
    edge: tuple[float, float] = (704.0, 712.0),
    pre: tuple[float, float] = (690.0, 700.0),
) -> np.ndarray:
    """Mean counts over the edge window divided by the mean over a pre-edge window."""
    a = data[..., window(energy, *edge)].mean(-1)
    b = data[..., window(energy, *pre)].mean(-1)
    return a / np.where(b > 0, b, 1)


def centroid_map(
    data: np.ndarray, energy: np.ndarray, lo: float = 700.0, hi: float = 716.0
) -> np.ndarray:
    sl = window(energy, lo, hi)
    w = np.clip(data[..., sl].astype(np.float64), 0, None)
    return (w * energy[sl]).sum(-1) / np.clip(w.sum(-1), 1e-12, None)


# Poisson goodness of fit of observed counts Y against expected counts Yhat (per pixel)


def pearson_score(Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
    """1 - Pearson r between observed and reconstructed spectra along the last axis."""
    a = Y - Y.mean(-1, keepdims=True)
    b = Yhat - Yhat.mean(-1, keepdims=True)
    num = (a * b).sum(-1)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    r = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return 1.0 - r


def poisson_deviance(Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
    """2 sum_k [Y ln(Y/Yhat) - (Y - Yhat)] along the last axis, with 0 ln 0 = 0."""
    Y = np.clip(Y.astype(np.float64), 0, None)
    Yh = np.clip(Yhat.astype(np.float64), 1e-12, None)
    t = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1) / Yh), 0.0)
    return 2.0 * (t - (Y - Yh)).sum(-1)


def bin_edges(energy: np.ndarray) -> np.ndarray:
    """Channel boundaries of an energy axis of channel centres: midpoints, plus half a channel at
    either end (so channel k covers [E_k - d/2, E_k + d/2] on a uniform axis)."""
    e = np.asarray(energy, np.float64)
    if e.size < 2:
        raise InputError("an energy axis needs at least 2 channels")
    mid = 0.5 * (e[1:] + e[:-1])
    return np.concatenate([[e[0] - (mid[0] - e[0])], mid, [e[-1] + (e[-1] - mid[-1])]])


def rebin_counts(data: np.ndarray, energy: np.ndarray, new_energy: np.ndarray) -> np.ndarray:
    """Count-preserving resampling of spectra (last axis) onto another energy grid.

    With C(E) the cumulative count function, piecewise linear between the old channel
    boundaries (counts spread uniformly within a channel), the new channel j receives
    C(e_j+1) - C(e_j) at its boundaries e_j (:func:`bin_edges`). Counts are conserved exactly over
    the overlap of the two grids; new channels outside the old range receive 0. Works for
    up- and down-sampling and for non-uniform axes.
    """
    old_e = bin_edges(energy)
    new_e = bin_edges(new_energy)
    x = np.asarray(data, np.float64)
    cum = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, -1)], -1)
    pos = np.interp(new_e, old_e, np.arange(old_e.size, dtype=np.float64))
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, old_e.size - 2)
    w = pos - i0
    c = cum[..., i0] * (1.0 - w) + cum[..., i0 + 1] * w
    return np.diff(c, axis=-1)


def net_grid(energy: np.ndarray, lo: float, hi: float, channels: int) -> tuple[slice, np.ndarray]:
    """The channels of ``energy`` in [lo, hi] eV and a uniform grid of ``channels`` centres that
    spans exactly the same extent (so :func:`rebin_counts` onto it keeps every count)."""
    sl = window(energy, lo, hi, what="network input window")
    ed = bin_edges(np.asarray(energy, np.float64)[sl])
    d = (ed[-1] - ed[0]) / channels
    return sl, ed[0] + d * (np.arange(channels) + 0.5)
