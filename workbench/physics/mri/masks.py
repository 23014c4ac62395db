"""Seeded undersampling masks (``specs/mri.md`` §2).

Each mask type is a small frozen object ``MaskFunc(acceleration, center_fraction)``; calling it
with a shape ``(H, W)`` and a seed returns a :class:`Mask` with the binary array and its *actual*
sampled fraction and effective acceleration. The same seed gives the same mask. 1-D masks select
columns (phase encodes along W) and broadcast along H, as fastMRI does.

Examples
--------
>>> m = make_mask("equispaced", (128, 128), acceleration=4, center_fraction=0.08, seed=0)
>>> m.n_acs, round(m.fraction, 3)
(10, 0.305)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workbench.errors import InputError

MASK_TYPES = (
    "equispaced",
    "equispaced_fraction",
    "random",
    "gaussian1d",
    "poisson",
    "gaussian2d",
    "radial",
    "spiral",
)
ONE_D = ("equispaced", "equispaced_fraction", "random", "gaussian1d")


@dataclass(frozen=True)
class Mask:
    """A drawn mask: ``array`` (H, W) float32 in {0, 1} and what was actually sampled."""

    array: np.ndarray
    kind: str
    acceleration: float
    center_fraction: float
    seed: int
    n_acs: int
    info: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return float(self.array.mean())

    @property
    def effective_acceleration(self) -> float:
        s = float(self.array.sum())
        return float(self.array.size / s) if s else float("inf")

    @property
    def columns(self) -> np.ndarray | None:
        """The sampled-column indicator (W,) of a 1-D mask, else None."""
        if self.kind in ONE_D:
            return self.array[0].astype(bool)
        return None

    def describe(self) -> str:
        return (
            f"{self.kind} R={self.acceleration:g} (effective {self.effective_acceleration:.2f}, "
            f"{100 * self.fraction:.1f}% sampled, ACS {self.n_acs})"
        )


def acs_slice(w: int, center_fraction: float) -> tuple[int, int]:
    """fastMRI ACS placement: ``n = round(W·cf)`` columns at ``[p, p+n)``, ``p = (W − n + 1)//2``."""
    n = int(round(w * center_fraction))
    p = (w - n + 1) // 2
    return p, n


def _columns_to_mask(cols: np.ndarray, h: int) -> np.ndarray:
    return np.broadcast_to(cols.astype(np.float32)[None, :], (h, cols.shape[0])).copy()


def _check(acceleration: float, center_fraction: float) -> None:
    if not acceleration >= 1:
        raise InputError(f"acceleration must be >= 1, got {acceleration}")
    if not 0 <= center_fraction < 1:
        raise InputError(f"center_fraction must be in [0, 1), got {center_fraction}")


def equispaced(shape, acceleration=4.0, center_fraction=0.08, seed=0) -> Mask:
    """ACS block + every R-th column from a random offset in [0, R) (fastMRI ``EquiSpacedMaskFunc``)."""
    h, w = shape
    rng = np.random.default_rng(seed)
    p, n = acs_slice(w, center_fraction)
    cols = np.zeros(w, bool)
    cols[p : p + n] = True
    r = float(acceleration)
    offset = int(rng.integers(0, max(1, int(round(r)))))
    pos = np.round(np.arange(offset, w, r)).astype(int)
    cols[pos[pos < w]] = True
    return Mask(
        _columns_to_mask(cols, h), "equispaced", r, center_fraction, seed, n, {"offset": offset}
    )


def equispaced_fraction(shape, acceleration=4.0, center_fraction=0.08, seed=0) -> Mask:
    """ACS + columns at ``round(offset + k·R′)`` so that about W/R columns are sampled in total."""
    h, w = shape
    rng = np.random.default_rng(seed)
    p, n = acs_slice(w, center_fraction)
    r = float(acceleration)
    cols = np.zeros(w, bool)
    cols[p : p + n] = True
    denom = n * r - w
    rp = r * (n - w) / denom if denom != 0 else r
    rp = max(rp, 1.0)
    offset = int(rng.integers(0, max(1, int(round(rp)))))
    pos = np.round(np.arange(offset, w - 1e-9, rp)).astype(int)
    cols[pos[pos < w]] = True
    return Mask(
        _columns_to_mask(cols, h),
        "equispaced_fraction",
        r,
        center_fraction,
        seed,
        n,
        {"offset": offset, "spacing": rp},
    )


def random_1d(shape, acceleration=4.0, center_fraction=0.08, seed=0) -> Mask:
    """ACS + each other column independently with ``p = (W/R − n_acs)/(W − n_acs)`` (fastMRI ``RandomMaskFunc``)."""
    h, w = shape
    rng = np.random.default_rng(seed)
    p0, n = acs_slice(w, center_fraction)
    prob = (w / acceleration - n) / max(w - n, 1)
    cols = rng.uniform(size=w) < max(prob, 0.0)
    cols[p0 : p0 + n] = True
    return Mask(
        _columns_to_mask(cols, h),
        "random",
        float(acceleration),
        center_fraction,
        seed,
        n,
        {"p": prob},
    )


def gaussian_1d(shape, acceleration=4.0, center_fraction=0.08, seed=0) -> Mask:
    """ACS + columns drawn without replacement with weight ∝ exp(−(k − W/2)²/(2s²)), s = 15W/128."""
    h, w = shape
    rng = np.random.default_rng(seed)
    p0, n = acs_slice(w, center_fraction)
    cols = np.zeros(w, bool)
    cols[p0 : p0 + n] = True
    target = int(round(w / acceleration))
    free = np.flatnonzero(~cols)
    need = max(0, min(target - n, free.size))
    s = 15.0 * w / 128.0
    wt = np.exp(-((free - w // 2) ** 2) / (2 * s * s))
    wt = wt / wt.sum()
    if need:
        # Gumbel top-k = weighted sampling without replacement
        keys = np.log(wt + 1e-300) + rng.gumbel(size=free.size)
        cols[free[np.argsort(-keys)[:need]]] = True
    return Mask(
        _columns_to_mask(cols, h),
        "gaussian1d",
        float(acceleration),
        center_fraction,
        seed,
        n,
        {"width": s},
    )


def _calib_square(h: int, w: int, n: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    if n > 0:
        ph, pw = (h - n + 1) // 2, (w - n + 1) // 2
        m[ph : ph + n, pw : pw + n] = True
    return m


def _poisson_once(h, w, scale, rng_seed, calib):
    """Variable-density Poisson disc by dart throwing: radius grows linearly with |k|."""
    rng = np.random.default_rng(rng_seed)
    ky, kx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    kr = np.sqrt((ky / (h / 2)) ** 2 + (kx / (w / 2)) ** 2)
    radius = scale * (1.0 + 4.0 * kr)  # denser in the centre
    order = rng.permutation(h * w)
    blocked = calib.copy().ravel()
    mask = calib.copy().ravel()
    ry = np.arange(h)
    rx = np.arange(w)
    for idx in order:
        if blocked[idx]:
            continue
        mask[idx] = True
        i, j = divmod(int(idx), w)
        r = radius[i, j]
        ri = int(math.ceil(r))
        i0, i1, j0, j1 = max(0, i - ri), min(h, i + ri + 1), max(0, j - ri), min(w, j + ri + 1)
        dy = (ry[i0:i1, None] - i) ** 2
        dx = (rx[None, j0:j1] - j) ** 2
        disk = (dy + dx) < r * r
        b = blocked.reshape(h, w)
        b[i0:i1, j0:j1] |= disk
    # crop corners (outside the inscribed ellipse) as sigpy's crop_corner does
    mask = mask.reshape(h, w) & (kr <= 1.0) | calib
    return mask


def poisson_2d(shape, acceleration=5.0, center_fraction=0.08, seed=0, tol=0.1) -> Mask:
    """2-D variable-density Poisson disc with a fully sampled calibration square of side n_acs.

    The disc radius scale is found by bisection so that the effective R is within ``tol`` (relative)
    of the request (Calgary-Campinas style, 5×/10×).
    """
    h, w = shape
    _, n = acs_slice(min(h, w), center_fraction)
    calib = _calib_square(h, w, n)
    target = h * w / acceleration
    lo, hi = 0.05, max(h, w) / 2.0
    best = None
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        m = _poisson_once(h, w, mid, seed, calib)
        s = m.sum()
        if best is None or abs(s - target) < abs(best.sum() - target):
            best = m
        if abs(s - target) <= tol * target * 0.5:
            break
        if s > target:
            lo = mid
        else:
            hi = mid
    return Mask(best.astype(np.float32), "poisson", float(acceleration), center_fraction, seed, n)


def gaussian_2d(shape, acceleration=5.0, center_fraction=0.08, seed=0) -> Mask:
    """2-D Gaussian density of points (drawn without replacement) plus a calibration square."""
    h, w = shape
    rng = np.random.default_rng(seed)
    _, n = acs_slice(min(h, w), center_fraction)
    m = _calib_square(h, w, n).ravel()
    ky, kx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    sy, sx = 0.3 * h / 2, 0.3 * w / 2
    wt = np.exp(-(ky**2) / (2 * sy**2) - kx**2 / (2 * sx**2)).ravel()
    free = np.flatnonzero(~m)
    need = max(0, int(round(h * w / acceleration)) - int(m.sum()))
    keys = np.log(wt[free] + 1e-300) + rng.gumbel(size=free.size)
    m[free[np.argsort(-keys)[:need]]] = True
    return Mask(
        m.reshape(h, w).astype(np.float32),
        "gaussian2d",
        float(acceleration),
        center_fraction,
        seed,
        n,
    )


def _raster(h, w, ky, kx):
    """Nearest grid points of normalised coordinates in [-0.5, 0.5)."""
    iy = np.clip(np.round(ky * h + h // 2).astype(int), 0, h - 1)
    ix = np.clip(np.round(kx * w + w // 2).astype(int), 0, w - 1)
    m = np.zeros((h, w), bool)
    m[iy, ix] = True
    return m


def _radial_mask(h, w, n_spokes, offset):
    golden = math.pi * (math.sqrt(5) - 1) / 2  # golden angle (≈111.25°) on the full circle
    t = np.linspace(-0.5, 0.5, 2 * max(h, w), endpoint=False)
    ang = offset + golden * np.arange(n_spokes)
    ky = np.sin(ang)[:, None] * t[None, :]
    kx = np.cos(ang)[:, None] * t[None, :]
    return _raster(h, w, ky.ravel(), kx.ravel())


def _spiral_mask(h, w, n_il, offset):
    n = 4 * max(h, w) * max(h, w)
    t = np.linspace(0, 1, n // max(n_il, 1) + 2)
    turns = max(h, w) / 32.0  # 16 interleaves reach Nyquist at the edge
    rad = 0.5 * t
    out = np.zeros((h, w), bool)
    for j in range(n_il):
        ph = 2 * math.pi * turns * t + 2 * math.pi * j / n_il + offset
        out |= _raster(h, w, rad * np.sin(ph), rad * np.cos(ph))
    return out


def _bisect_count(make, target, lo, hi):
    best, best_s = None, None
    while lo <= hi:
        mid = (lo + hi) // 2
        m = make(mid)
        s = m.sum()
        if best is None or abs(s - target) < abs(best_s - target):
            best, best_s = m, s
        if s < target:
            lo = mid + 1
        elif s > target:
            hi = mid - 1
        else:
            break
    return best


def radial(shape, acceleration=8.0, center_fraction=0.0, seed=0) -> Mask:
    """Golden-angle spokes rasterised to the nearest grid point (Cartesian approximation)."""
    h, w = shape
    offset = float(np.random.default_rng(seed).uniform(0, math.pi))
    target = h * w / acceleration
    m = _bisect_count(lambda k: _radial_mask(h, w, k, offset), target, 1, 4 * max(h, w))
    return Mask(
        m.astype(np.float32),
        "radial",
        float(acceleration),
        center_fraction,
        seed,
        0,
        {"approximation": "Cartesian"},
    )


def spiral(shape, acceleration=8.0, center_fraction=0.0, seed=0) -> Mask:
    """Spiral interleaves rasterised to the nearest grid point (Cartesian approximation)."""
    h, w = shape
    offset = float(np.random.default_rng(seed).uniform(0, 2 * math.pi))
    target = h * w / acceleration
    m = _bisect_count(lambda k: _spiral_mask(h, w, k, offset), target, 1, 64)
    return Mask(
        m.astype(np.float32),
        "spiral",
        float(acceleration),
        center_fraction,
        seed,
        0,
        {"approximation": "Cartesian"},
    )


_FUNCS = {
    "equispaced": equispaced,
    "equispaced_fraction": equispaced_fraction,
    "random": random_1d,
    "gaussian1d": gaussian_1d,
    "poisson": poisson_2d,
    "gaussian2d": gaussian_2d,
    "radial": radial,
    "spiral": spiral,
}


@dataclass(frozen=True)
class MaskFunc:
    """A seeded mask design: ``MaskFunc("equispaced", 4, 0.08)(shape, seed)`` → :class:`Mask`."""

    kind: str = "equispaced"
    acceleration: float = 4.0
    center_fraction: float = 0.08

    def __call__(self, shape: tuple[int, int], seed: int = 0) -> Mask:
        return make_mask(self.kind, shape, self.acceleration, self.center_fraction, seed)


def make_mask(
    kind: str,
    shape: tuple[int, int],
    acceleration: float = 4.0,
    center_fraction: float = 0.08,
    seed: int = 0,
) -> Mask:
    """Draw a mask of type ``kind`` (one of :data:`MASK_TYPES`) for k-space of ``shape`` (H, W)."""
    if kind not in _FUNCS:
        raise InputError(f"unknown mask {kind!r}; available: {', '.join(MASK_TYPES)}")
    _check(acceleration, center_fraction)
    h, w = int(shape[0]), int(shape[1])
    return _FUNCS[kind]((h, w), float(acceleration), float(center_fraction), int(seed))


def seed_from_name(name: str) -> int:
    """Deterministic validation seed from a file name (as fastMRI and DIRECT derive theirs)."""
    import hashlib

    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
