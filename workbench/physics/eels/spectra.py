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


# Per-pixel energy alignment (drift and zero-loss jitter correction)

ZLP_WINDOW = (-4.0, 4.0)  # eV around the zero-loss peak


def shift_spectra(data: np.ndarray, energy: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Move every spectrum by -delta (eV, one value per pixel), conserving counts.

    A pixel whose features sit ``delta`` eV too high is resampled so that channel [a, b] receives
    the counts the pixel recorded in [a + delta, b + delta] (cumulative counts interpolated
    linearly inside channels); counts moved past either end of the axis are lost there.
    """
    energy = np.asarray(energy, np.float64)
    x = np.asarray(data, np.float64)
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    d = np.broadcast_to(np.asarray(delta, np.float64), lead).reshape(-1, 1)
    ed = bin_edges(energy)
    cum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, -1)], -1)
    idx = np.arange(ed.size, dtype=np.float64)
    # the fractional channel index of each boundary + delta (non-uniform axes via interp)
    pos = np.interp((ed[None, :] + d).ravel(), ed, idx).reshape(d.shape[0], ed.size)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, ed.size - 2)
    w = pos - i0
    rows = np.arange(x.shape[0])[:, None]
    c = cum[rows, i0] * (1.0 - w) + cum[rows, i0 + 1] * w
    return np.diff(c, axis=-1).reshape(lead + (energy.size,)).astype(np.float32)


def estimate_drift(
    data: np.ndarray,
    energy: np.ndarray,
    lo: float,
    hi: float,
    *,
    max_shift: float = 2.0,
    step: float | None = None,
    rounds: int = 2,
) -> np.ndarray:
    """Per-pixel energy offset (eV) of the feature in [lo, hi] relative to the map's mean spectrum.

    For each candidate offset delta on a grid (``step``, default dispersion / 10) the mean
    spectrum (the template, a cubic spline of the map average) is moved by delta and compared
    with each pixel's counts by the multinomial log-likelihood

        l_p(delta) = sum_k Y_p,k log( T(E_k - delta) / sum_j T(E_j - delta) ),

    which is insensitive to the pixel's intensity; the maximum is refined by a parabola through
    its neighbours. The template is rebuilt from the aligned map and the estimate repeated
    (``rounds``), so it sharpens as the drift is removed. Offsets are relative to the map's mean
    (a common offset is a calibration, not a drift). Returns (ny, nx) offsets in eV.
    """
    from scipy.interpolate import CubicSpline

    energy = np.asarray(energy, np.float64)
    disp = float(np.median(np.diff(energy)))
    step = disp / 10.0 if step is None else float(step)
    sl = window(energy, lo, hi, what="alignment reference window")
    deltas = step * np.arange(-int(round(max_shift / step)), int(round(max_shift / step)) + 1)
    lead = data.shape[:-1]
    total = np.zeros(lead)
    cur = np.asarray(data, np.float32)
    e = energy[sl]
    for _ in range(max(1, rounds)):
        Y = np.clip(cur[..., sl].reshape(-1, e.size).astype(np.float64), 0, None)
        spline = CubicSpline(energy, np.clip(cur.reshape(-1, energy.size).mean(0), 1e-9, None))
        ll = np.empty((deltas.size, Y.shape[0]))
        for i, dl in enumerate(deltas):
            t = np.clip(spline(e - dl), 1e-9, None)
            ll[i] = Y @ np.log(t / t.sum())
        j = np.clip(np.argmax(ll, 0), 1, deltas.size - 2)
        cols = np.arange(Y.shape[0])
        a, b, c = ll[j - 1, cols], ll[j, cols], ll[j + 1, cols]
        den = a - 2 * b + c
        off = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
        est = deltas[j] + np.clip(off, -1.0, 1.0) * step
        est = (est - est.mean()).reshape(lead)
        total = np.clip(total + est, -max_shift, max_shift)
        cur = shift_spectra(data, energy, total)
    return total - total.mean()


def drift_precision(mean: np.ndarray, energy: np.ndarray, lo: float, hi: float) -> float:
    """Cramer-Rao standard deviation (eV) of a per-pixel offset estimated on [lo, hi] from a pixel
    whose expected counts are ``mean``: 1 / sqrt(sum_k T'(E_k)^2 / T(E_k)), the Fisher information
    of a Poisson spectrum under a shift (the shape term only, the total carries none)."""
    sl = window(energy, lo, hi, what="alignment reference window")
    t = np.clip(np.asarray(mean, np.float64)[sl], 1e-9, None)
    g = np.gradient(t, np.asarray(energy, np.float64)[sl])
    n = t.sum()
    gs = g - t * g.sum() / n  # shift of the shape only: the total's change carries no offset
    info = float((gs * gs / t).sum())
    return 1.0 / np.sqrt(info) if info > 0 else float("inf")


def reference_feature(
    data: np.ndarray,
    energy: np.ndarray,
    exclude: tuple[float, float] | None = None,
    max_sd: float = 0.1,
) -> tuple[str, float, float] | None:
    """A feature to align on, found in the data: the zero-loss peak when the axis holds 0 eV,
    otherwise the first edge of :data:`workbench.physics.eels.synth.EDGE_TABLE` inside the axis
    and away from ``exclude`` (the edge under study: aligning on it would erase a chemical shift),
    provided a single pixel can be aligned on it to ``max_sd`` eV (:func:`drift_precision` of the
    mean spectrum): aligning on a feature buried in noise would add more jitter than it removes.
    Returns (name, lo, hi) of the alignment window or None."""
    from workbench.physics.eels.synth import EDGE_TABLE

    energy = np.asarray(energy, np.float64)
    mean = np.asarray(data, np.float64).reshape(-1, energy.size).mean(0)
    cands = []
    if energy[0] <= ZLP_WINDOW[0] and energy[-1] >= ZLP_WINDOW[1]:
        cands.append(("zero-loss peak", *ZLP_WINDOW))
    for name, ed in EDGE_TABLE.items():
        lo, hi = ed.onset - 12.0, ed.onset + 16.0
        if lo < energy[0] or hi > energy[-1]:
            continue
        if exclude is not None and not (hi < exclude[0] - 3.0 or lo > exclude[1] + 3.0):
            continue
        cands.append((name, lo, hi))
    for name, lo, hi in cands:
        if drift_precision(mean, energy, lo, hi) <= max_sd:
            return (name, lo, hi)
    return None


def align(
    data: np.ndarray,
    energy: np.ndarray,
    mode: str = "auto",
    ref: tuple[float, float] | None = None,
    exclude: tuple[float, float] | None = None,
    max_shift: float = 2.0,
    low_loss: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Per-pixel energy alignment before any detector, so drift is not read as a chemical shift.

    ``mode``: "off"; "on" (on ``ref`` = (lo, hi) eV, else on the zero-loss peak of ``low_loss``
    = (cube, energy), the low-loss image of the same scan, else on the feature
    :func:`reference_feature` finds); "auto" (the same, but nothing is done when no reference
    is found or the edge found changes shape across the map, :func:`shape_misfit`). Returns
    (aligned data, drift map or None, a one-line note saying what was done).
    """
    if mode not in ("auto", "on", "off"):
        raise InputError(f"align must be auto, on or off, got {mode!r}")
    if mode == "off":
        return data, None, "energy alignment off"
    if ref is None and low_loss is not None:
        ll, ll_e = low_loss
        drift = estimate_drift(ll, np.asarray(ll_e, np.float64), *ZLP_WINDOW, max_shift=max_shift)
        return (
            shift_spectra(data, energy, drift),
            drift,
            "aligned on the zero-loss peak of the low-loss image: per-pixel drift rms "
            f"{np.sqrt((drift**2).mean()):.3g} eV, max {np.abs(drift).max():.3g} eV",
        )
    if ref is not None:
        name, lo, hi = "the given reference window", float(ref[0]), float(ref[1])
    else:
        found = reference_feature(data, energy, exclude)
        if found is None:
            if mode == "on":
                raise InputError(
                    "energy alignment: no reference feature (zero-loss peak or an edge outside the "
                    "edge window) in the data; give a reference window or turn alignment off"
                )
            return data, None, "no reference feature for energy alignment: not aligned"
        name, lo, hi = found
    drift = estimate_drift(data, energy, lo, hi, max_shift=max_shift)
    out = shift_spectra(data, energy, drift)
    note = (
        f"aligned on {name} ({lo:g}-{hi:g} eV): per-pixel drift rms {np.sqrt((drift**2).mean()):.3g} eV, "
        f"max {np.abs(drift).max():.3g} eV"
    )
    if ref is None and name != "zero-loss peak":
        # an edge's shape carries chemistry (fine structure, jump ratio, a missing element);
        # when it changes across the map, the offsets fitted to it read that change as drift
        eps = shape_misfit(out, energy, lo, hi, gain_estimate(data)[0])
        if eps > SHAPE_MAX:
            why = (
                f"{name} ({lo:g}-{hi:g} eV) changes shape across the map (misfit {100 * eps:.2g} % "
                f"of its counts after alignment; a drift alone leaves <= {100 * SHAPE_MAX:g} %), so "
                "its offsets would carry chemistry, not drift"
            )
            if mode == "auto":
                return (
                    data,
                    None,
                    (f"not aligned: {why}; give a low-loss spectrum image or a reference window"),
                )
            note += f"; warning: {why}"
    return out, drift, note


# Largest relative shape misfit of a reference edge that auto-alignment accepts. The simulator's
# acquisition variability (per-pixel background exponent and amplitude, thickness, plural
# scattering) leaves 1.6-2.4 % on its Mn L reference at 3x-30x the mid dose (seed 20001, drift
# 0.3 eV; below 1x the noise hides it); the limit is twice that.
SHAPE_MAX = 0.05


def shape_misfit(
    aligned: np.ndarray, energy: np.ndarray, lo: float, hi: float, gain: float = 1.0
) -> float:
    """Relative shape misfit eps of the pure-drift model on [lo, hi] after alignment.

    Each aligned pixel's window is compared with the map's mean shape scaled to its counts,
    mu_p = N_p t. With detector gain g the Poisson deviance of a pixel whose shape departs by
    a fraction eps from t is about D_p = g (n - 1) + eps^2 sum_k mu_pk, so

        eps^2 = median_p (D_p - g (n - 1)) / sum_k mu_pk,

    the share of the pixels' shape variation beyond noise (0 for a pure drift)."""
    sl = window(energy, lo, hi, what="alignment reference window")
    Y = np.clip(np.asarray(aligned, np.float64)[..., sl].reshape(-1, sl.stop - sl.start), 0, None)
    t = Y.mean(0)
    if not t.sum() > 0:
        return 0.0
    mu = Y.sum(1, keepdims=True) * (t / t.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2.0 * (np.where(Y > 0, Y * np.log(Y / mu), 0.0) - (Y - mu))
    g = gain if np.isfinite(gain) and gain > 0 else 1.0
    tot = mu.sum(1)
    ok = tot > 0
    if not ok.any():
        return 0.0
    excess = (np.nansum(dev, 1)[ok] - g * (Y.shape[1] - 1)) / tot[ok]
    return float(np.sqrt(max(np.median(excess), 0.0)))


def _mad_var(z: np.ndarray) -> float:
    """Robust variance of z: (1.4826 x median absolute deviation)^2 (spikes do not count)."""
    return float((1.4826 * np.median(np.abs(z - np.median(z)))) ** 2)


def _gain_z(x: np.ndarray, order: int) -> np.ndarray:
    """Standardised differences of the rows of ``x`` along energy (see :func:`gain_estimate`)."""
    if order == 1:
        d = x[:, 1:] - x[:, :-1]
        v = x[:, 1:] + x[:, :-1]
    else:
        d = x[:, :-2] - 2.0 * x[:, 1:-1] + x[:, 2:]
        v = x[:, :-2] + 4.0 * x[:, 1:-1] + x[:, 2:]
    ok = v > 0
    return d[ok] / np.sqrt(v[ok])


GAIN_GROUPS = 8  # groups of spectra behind the standard error


def gain_estimate(cube: np.ndarray, order: int = 2) -> tuple[float, float]:
    """Detector gain g = Var Y / E Y of a count cube from the channel-to-channel noise, and its
    standard error.

    Detector counts are Y = g N with N ~ Poisson(lambda) electrons, so E Y = g lambda and
    Var Y = g^2 lambda = g E Y. With second differences along energy (``order`` = 2)

        D_k = Y_k-1 - 2 Y_k + Y_k+1,    Var D_k = g (E Y_k-1 + 4 E Y_k + E Y_k+1),

    and a smooth spectrum's curvature is small against its noise, so
    z_k = D_k / sqrt(Y_k-1 + 4 Y_k + Y_k+1) has variance about g. ``order`` = 1 uses
    D_k = Y_k+1 - Y_k and Y_k + Y_k+1 instead; its mean difference (the slope of the spectrum)
    does not cancel, so a steep background at a coarse dispersion inflates it
    (benchmarks/eels_gain_val.py: on a power-law background E^-3 over 700-2000 eV at 8 eV per
    channel, 40 x 50 pixels, planted g = 3.7 reads 4.07 with first and 3.83 with second
    differences; worst relative error over 8, 2 and 0.3 eV per channel and g = 1, 3.7: 0.099
    first, 0.034 second, so second differences are kept). The
    variance of z is estimated robustly (squared median absolute deviation x 1.4826), so spikes
    and edges do not count.

    Standard error: the spectra are split into ``GAIN_GROUPS`` interleaved groups, g estimated
    in each, se = sd(g_groups) / sqrt(GAIN_GROUPS) -- this holds the correlation of overlapping
    differences within a spectrum, which a formula for independent z would ignore.

    Parameters
    ----------
    cube : ndarray, shape (..., nE)
        Counts, energy last.
    order : {1, 2}
        Order of the differences.

    Returns
    -------
    g, se : float
        The estimate (nan when no channel holds counts) and its standard error (nan with fewer
        than ``GAIN_GROUPS`` spectra).
    """
    x = np.asarray(cube, np.float64).reshape(-1, np.shape(cube)[-1])
    z = _gain_z(x, order)
    if z.size == 0:
        return float("nan"), float("nan")
    g = _mad_var(z)
    if x.shape[0] < GAIN_GROUPS:
        return g, float("nan")
    parts = [_gain_z(x[i::GAIN_GROUPS], order) for i in range(GAIN_GROUPS)]
    gs = np.array([_mad_var(p) if p.size else np.nan for p in parts])
    return g, float(np.nanstd(gs, ddof=1) / np.sqrt(GAIN_GROUPS))


def dispersion_index(cube: np.ndarray) -> float:
    """Detector gain g = Var Y / E Y of count data, from second differences along energy
    (:func:`gain_estimate` without its standard error)."""
    x = np.asarray(cube, np.float64).reshape(-1, np.shape(cube)[-1])
    z = _gain_z(x, 2)
    return _mad_var(z) if z.size else float("nan")


def count_diagnosis(data: np.ndarray) -> str | None:
    """Why ``data`` do not look like raw counts (background-subtracted, normalised or scaled),
    or None when they do.

    Count-based scores (Poisson deviance, the shift likelihood ratio, the 3D-CVAE's multinomial
    likelihood) are only meaningful for counts. Checks, on the whole cube:

    * negative values beyond read noise: more than 1 % of channels below -3 sqrt(mean), or a
      negative mean in more than 1 % of spectra (background subtracted);
    * every spectrum with the same total (normalised to a sum) or a maximum of 1 (to a maximum);
    * Poisson dispersion: the detector gain g = Var Y / E Y (:func:`dispersion_index`, from
      second differences along energy, robust to spikes); g < 0.2 or g > 20 means the data were
      rescaled. Between the two, the data are counts times a detector gain, which the solvers
      divide out (:func:`workbench.solvers.eels.common.apply_gain`).
    """
    x = np.asarray(data, np.float64).reshape(-1, np.shape(data)[-1])
    mean = float(np.mean(x))
    if not np.isfinite(mean):
        return "the data hold non-finite values"
    sd = np.sqrt(max(abs(mean), 1e-12))
    if np.mean(x < -3.0 * sd) > 0.01 or np.mean(x.mean(1) < 0) > 0.01:
        return "the data hold many negative values (background-subtracted?)"
    tot = x.sum(1)
    if x.shape[0] > 3 and tot.mean() > 0 and tot.std() <= 1e-6 * abs(tot.mean()):
        return "every spectrum has the same total (normalised?)"
    if x.shape[0] > 3 and np.allclose(np.abs(x).max(1), 1.0, atol=1e-6):
        return "every spectrum has a maximum of 1 (normalised?)"
    g = dispersion_index(x)
    if not np.isfinite(g):
        return "the data have no positive counts"
    if g < 0.2 or g > 20.0:
        return f"the channel-to-channel noise is {g:.3g} x Poisson (rescaled or not counts?)"
    return None
