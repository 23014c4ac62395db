"""Frequency bounds of a PDE problem from its data: the source term, else the boundary data.

Solvers that need to know how oscillatory the solution is (GP-HM's initial frequencies F, the
Fourier-feature PINN's σ, the default collocation resolution) take it from what a user supplies
— the source f on the grid and the Dirichlet data g on ∂Ω — and never from an exact solution,
which a real problem does not have. For a constant-coefficient linear operator of order q the
source's spectrum is the solution's multiplied by |k|^q, so its highest significant frequency
bounds the solution's from above; for nonlinear operators it is a heuristic. When the source
vanishes (advection of boundary data) the boundary data carry the frequencies instead.
"""

from __future__ import annotations

import numpy as np

# a spectral line counts when its power is at least this fraction of the peak (amplitude 1 %)
POWER_FLOOR = 1e-4
# the bound sits this factor above the highest significant frequency, so that a spectral-mixture
# component initialised at the top of the range can still move onto it
HEADROOM = 1.25


def highest_frequency(v: np.ndarray, h: float, axis: int = 0) -> float | None:
    """Highest significant frequency (cycles per unit) of samples ``v`` spaced ``h`` along ``axis``.

    The mean is removed, the signal Hann-windowed (the window's taper keeps the jump between
    unequal end values from leaking to high frequencies) and zero-padded 4×; the periodogram is
    averaged over the other axes and the highest frequency with power ≥ ``POWER_FLOOR`` × the
    peak is returned.
    ``None`` when the signal is constant (no power) or not finite.
    """
    a = np.moveaxis(np.asarray(v, float), axis, 0)
    n = a.shape[0]
    a = a.reshape(n, -1)
    if n < 4 or not np.isfinite(a).all():
        return None
    a = (a - a.mean(0)) * np.hanning(n)[:, None]
    pw = (np.abs(np.fft.rfft(a, 4 * n, axis=0)) ** 2).mean(1)
    peak = float(pw.max())
    # a constant signal leaves round-off after the mean is removed: no power, not white noise
    if not np.isfinite(peak) or peak <= (1e-12 * n * float(np.abs(v).max())) ** 2:
        return None
    fr = np.fft.rfftfreq(4 * n, h)
    return float(fr[np.nonzero(pw >= POWER_FLOOR * peak)[0].max()])


def source_frequency_bound(f: np.ndarray, hs: list[float]) -> float:
    """Upper end F of GP-HM's initial frequencies from the source on the grid (spec §3.5 option).

    Per dimension d with spacing h_d and span L_d: F_d = ``HEADROOM`` × the highest significant
    frequency of f along d (:func:`highest_frequency`), clipped to [2/L_d, 1/(2h_d)] — at least
    two cycles over the box, at most the grid's Nyquist frequency; F = max_d F_d. A source with no
    power gives 2/L. A smooth source thus gets components near the low frequencies it needs
    instead of 30 components spread up to Nyquist, which stalled Adam on such problems.
    """
    f = np.asarray(f, float)
    out = 0.0
    for d, h in enumerate(hs):
        n = f.shape[d]
        nyq, span = 1.0 / (2 * h), (n - 1) * h
        fh = highest_frequency(f, h, d)
        fd = 2.0 / span if fh is None else float(np.clip(HEADROOM * fh, 2.0 / span, nyq))
        out = max(out, fd)
    return out


def data_frequency_bound(comp, box, ns) -> tuple[float, str]:
    """F from the problem's data on an ``ns`` grid: the source, else the boundary data, else Nyquist.

    ``comp`` is the compiled problem (:func:`workbench.physics.pde.compiled.compile_problem`).
    Returns ``(F, origin)`` with origin ``"source"``, ``"boundary"`` or ``"nyquist"``. The
    boundary data are read on the edges only (x = lo for the y direction and y = lo for x), which
    is the data a user gives; the exact solution is never evaluated in the interior.
    """
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(box, ns, strict=True)]
    hs = [a[1] - a[0] for a in axes]
    nyq = 1.0 / (2 * max(hs))
    f = comp.source(*comp.mesh(axes))
    f = np.broadcast_to(f, tuple(ns))
    if np.isfinite(f).all() and np.abs(f).max() > 0:
        return source_frequency_bound(f, hs), "source"
    best = None
    for d, (a, h) in enumerate(zip(axes, hs, strict=True)):
        pts = [np.full_like(a, box[e][0]) for e in range(len(box))]
        pts[d] = a
        g = np.broadcast_to(comp.boundary(*pts), a.shape)
        fh = highest_frequency(g, h)
        if fh is not None:
            span = (len(a) - 1) * h
            fd = float(np.clip(HEADROOM * fh, 2.0 / span, 1.0 / (2 * h)))
            best = fd if best is None else max(best, fd)
    if best is not None:
        return best, "boundary"
    return nyq, "nyquist"


def spectral_peaks(
    v: np.ndarray, h: float, k: int, floor: float = POWER_FLOOR, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` strongest spectral lines of samples ``v`` spaced ``h`` along ``axis``.

    The signal's least-squares linear trend is removed, so that a non-periodic smooth part
    does not leak across the spectrum; what remains is Hann-windowed,
    zero-padded 8× and its periodogram P(ν) averaged over the other axes. A line is a local
    maximum of P with P ≥ ``floor`` × max P; its frequency is refined by the vertex of the parabola
    through the log-power of the three bins around it (Hann lines are close to Gaussian in log
    power, so the vertex is accurate to a small fraction of a bin).

    Returns ``(freqs, powers)`` in cycles per unit, strongest first, at most ``k`` of each
    (empty when the detrended signal has no power). The mean and trend carry the DC line, so the
    lowest frequency reported is the first non-zero bin's neighbourhood, never exactly 0.

    Examples
    --------
    >>> x = np.linspace(0, 1, 400)
    >>> f, p = spectral_peaks(np.sin(2 * np.pi * 30 * x) + 0.1 * np.sin(2 * np.pi * 7 * x), x[1], 2)
    >>> np.round(f, 1).tolist()
    [30.0, 7.0]
    """
    a = np.moveaxis(np.asarray(v, float), axis, 0)
    n = a.shape[0]
    a = a.reshape(n, -1)
    if n < 4 or not np.isfinite(a).all() or k < 1:
        return np.zeros(0), np.zeros(0)
    # least-squares line rather than the chord between the end values: the chord of an
    # oscillation leaves a ramp whose leakage shows as a spurious line near 1/L
    t = np.linspace(-1.0, 1.0, n)[:, None]
    a = a - a.mean(0) - t * (t * a).sum(0) / (t * t).sum()
    a = a * np.hanning(n)[:, None]
    m = 8 * n
    pw = (np.abs(np.fft.rfft(a, m, axis=0)) ** 2).mean(1)
    peak = float(pw.max())
    if not np.isfinite(peak) or peak <= (1e-12 * n * float(np.abs(v).max())) ** 2:
        return np.zeros(0), np.zeros(0)
    fr = np.fft.rfftfreq(m, h)
    i = np.arange(1, len(pw) - 1)
    loc = i[(pw[i] >= pw[i - 1]) & (pw[i] > pw[i + 1]) & (pw[i] >= floor * peak)]
    loc = loc[np.argsort(-pw[loc])][:k]
    lp = np.log(np.maximum(pw, 1e-300))
    den = lp[loc - 1] - 2 * lp[loc] + lp[loc + 1]
    shift = np.where(den < 0, 0.5 * (lp[loc - 1] - lp[loc + 1]) / np.where(den < 0, den, -1), 0.0)
    df = fr[1] - fr[0]
    return fr[loc] + np.clip(shift, -0.5, 0.5) * df, pw[loc]
