r"""Fisher–Kolmogorov forward solver: batched, explicit, float32, cell-centred finite volumes.

.. math::

    \partial_t u = \nabla\cdot(D(x)\nabla u) + \rho u(1-u),\quad n\cdot D\nabla u = 0 \text{ on }\partial\Omega,
    \quad D = D_w (p_{WM} + p_{GM}/R)

Time is rescaled to s = t/T, so each simulation only sees (D_w T, \rho T): the step count
N = ceil(max(2 (D_w T) \sum_a 1/h^2 / C, \rho T / 0.1)) (:func:`n_steps`) and the iterates depend
on nothing else, which makes the symmetry (D_w, \rho, T) -> (s D_w, s \rho, T/s) exact in the
discrete solver too. Each step is explicit diffusion (C <= 1: a convex combination, so the
maximum principle holds) followed by the exact logistic step u <- u e^{\rho dt}/(1 + u(e^{\rho dt}-1))
(Lie splitting; bounded for any dt), so 0 <= u <= 1 at every step. The accuracy limit
\rho dt <= 0.1 keeps the splitting error small: halving dt changes u by <= 0.02 (tested).

Several simulations advance together in one (B, nx, ny, nz) array; each has its own coefficients
and its own step count (finished ones are frozen by zero coefficients). Faces carry
D_face = (D_i + D_j)/2 when both cells are tissue, else 0 (no flux).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

C_STABILITY = 0.9
RHO_DT_MAX = 0.1


def n_steps(
    DT: float,
    mu: float,
    h: float | tuple[float, float, float],
    C: float = C_STABILITY,
    D_max: float = 1.0,
    rho_dt_max: float = RHO_DT_MAX,
) -> int:
    """Steps for diffusion length^2 D_w T (mm^2) and growth number rho T.

    N = ceil(max(2 D_max (D_w T) sum_a 1/h_a^2 / C, rho T / rho_dt_max)): the first term is the
    stability limit of explicit diffusion (maximum principle for C <= 1), the second an accuracy
    limit of the split reaction step (the logistic step itself is exact and unconditionally
    bounded). Depends on (D_w T, rho T) only."""
    hs = (h, h, h) if np.isscalar(h) else tuple(h)
    n_diff = 2.0 * DT * D_max * sum(1.0 / (x * x) for x in hs) / C
    n_react = mu / rho_dt_max if rho_dt_max > 0 else 0.0
    return max(1, int(math.ceil(max(n_diff, n_react) - 1e-9)))


@dataclass
class Geometry:
    """Cropped computational domain: cell diffusivity pattern (for D_w = 1), tissue, spacing."""

    dcell: np.ndarray  # (nx, ny, nz) float32, 0 outside tissue
    tissue: np.ndarray  # bool
    h: float
    offset: tuple[int, int, int] = (0, 0, 0)  # position of the crop in the full grid
    full_shape: tuple[int, int, int] | None = None

    @classmethod
    def from_fields(
        cls, dcell: np.ndarray, tissue: np.ndarray, h: float, crop: bool = True, margin: int = 2
    ):
        dcell = np.asarray(dcell, dtype=np.float32)
        tissue = np.asarray(tissue, dtype=bool)
        full = tissue.shape
        if crop and tissue.any():
            idx = np.argwhere(tissue)
            lo = np.maximum(idx.min(0) - margin, 0)
            hi = np.minimum(idx.max(0) + 1 + margin, full)
            sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
            return cls(
                dcell[sl].copy(), tissue[sl].copy(), float(h), tuple(int(a) for a in lo), full
            )
        return cls(dcell, tissue, float(h), (0, 0, 0), full)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.dcell.shape)

    def crop(self, vol: np.ndarray) -> np.ndarray:
        o = self.offset
        s = self.shape
        return vol[..., o[0] : o[0] + s[0], o[1] : o[1] + s[1], o[2] : o[2] + s[2]]

    def uncrop(self, vol: np.ndarray) -> np.ndarray:
        full = self.full_shape or self.shape
        out = np.zeros(vol.shape[:-3] + tuple(full), dtype=vol.dtype)
        o = self.offset
        s = self.shape
        out[..., o[0] : o[0] + s[0], o[1] : o[1] + s[1], o[2] : o[2] + s[2]] = vol
        return out

    def faces(self, mean: str = "arithmetic") -> list[np.ndarray]:
        """Face diffusivities along each axis, zero unless both cells are tissue.

        ``mean``: "arithmetic" (D_i + D_j)/2 (the database's scheme) or "harmonic"
        2 D_i D_j / (D_i + D_j) (the flux-continuous finite-volume choice; smaller across a
        grey/white interface). The benchmark's model-mismatch arm simulates with the latter."""
        if mean not in ("arithmetic", "harmonic"):
            raise ValueError(f"face mean must be arithmetic or harmonic, not {mean!r}")
        out = []
        d = np.where(self.tissue, self.dcell, 0.0).astype(np.float32)
        for ax in range(3):
            a = [slice(None)] * 3
            b = [slice(None)] * 3
            a[ax] = slice(None, -1)
            b[ax] = slice(1, None)
            both = self.tissue[tuple(a)] & self.tissue[tuple(b)]
            da, db = d[tuple(a)], d[tuple(b)]
            if mean == "harmonic":
                f = 2.0 * da * db / np.maximum(da + db, 1e-30)
            else:
                f = 0.5 * (da + db)
            out.append(np.where(both, f, 0.0).astype(np.float32))
        return out


def _erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise through :func:`math.erf` (float64).

    The seed needs a few hundred values; importing :mod:`scipy.special` for them cost 0.2-0.5 s
    of every tumour CLI call. The seeds built from these values (float32) are bit-identical to
    those from ``scipy.special.erf`` on every grid we checked; ``tests/tumor/test_forward.py``
    compares the two."""
    return np.array(
        [math.erf(v) for v in np.asarray(x, dtype=np.float64).ravel().tolist()]
    ).reshape(np.shape(x))


def gaussian_seed(
    shape: tuple[int, int, int],
    center_vox: np.ndarray,
    h: float,
    sigma_mm: float = 3.0,
    amplitude: float = 0.5,
) -> np.ndarray:
    """Gaussian A exp(-|x-x0|^2 / 2 sigma^2) averaged over each cell (products of erf differences).

    ``center_vox`` is the continuous voxel index of x0 (cell i spans [i-1/2, i+1/2])."""
    s = sigma_mm / h * math.sqrt(2.0)
    parts = []
    for ax in range(3):
        edges = np.arange(shape[ax] + 1, dtype=np.float64) - 0.5
        e = _erf((edges - center_vox[ax]) / s)
        parts.append((e[1:] - e[:-1]) * (s * math.sqrt(math.pi) / 2.0))
    # average of exp over a unit cell = (sqrt(pi)/2) * s * (erf(b/s) - erf(a/s))
    g = parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
    return (amplitude * g).astype(np.float32)


class FKSolver:
    """Batched explicit Fisher–Kolmogorov solver on a fixed geometry.

    Parameters
    ----------
    geom : Geometry
        Domain (cropped), cell diffusivity for D_w = 1 and tissue mask.
    C : float
        Stability factor of the step rule (<= 1 keeps 0 <= u <= 1).
    reaction : {"exact", "euler"}
        Split logistic step: exact, or forward Euler (clipped to [0, 1]).
    rho_dt_max : float
        Accuracy limit of the reaction step (rho dt <= rho_dt_max).
    face_mean : {"arithmetic", "harmonic"}
        Face diffusivity (:meth:`Geometry.faces`).
    """

    def __init__(
        self,
        geom: Geometry,
        C: float = C_STABILITY,
        reaction: str = "exact",
        rho_dt_max: float = RHO_DT_MAX,
        face_mean: str = "arithmetic",
    ):
        self.geom = geom
        self.C = float(C)
        self.reaction = reaction
        self.rho_dt_max = float(rho_dt_max)
        self.face_mean = face_mean
        self.fx, self.fy, self.fz = geom.faces(face_mean)
        self.tissue_f = geom.tissue.astype(np.float32)
        # largest face diffusivity (<= 1 for atlas maps); the step rule uses it as D_max
        self.d_max = float(
            max(self.fx.max(initial=0), self.fy.max(initial=0), self.fz.max(initial=0), 1e-12)
        )
        self._flat_faces = _flat_faces(self.fx, self.fy, self.fz, geom.shape)

    def steps(self, DT: float, mu: float) -> int:
        # D_max = max(1, largest face value): the atlas rule uses D_w itself as the bound
        return n_steps(
            DT, mu, self.geom.h, self.C, D_max=max(self.d_max, 1.0), rho_dt_max=self.rho_dt_max
        )

    def run(
        self,
        u0: np.ndarray,
        DT: np.ndarray,
        mu: np.ndarray,
        steps: np.ndarray | None = None,
        callback=None,
        stop_count: int | None = None,
        stop_theta: float = 0.25,
        check_every: int = 16,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance a batch from s = 0 to s = 1.

        Parameters
        ----------
        u0 : (B, nx, ny, nz) float32
            Initial densities on the (cropped) geometry.
        DT, mu : (B,)
            D_w * T (mm^2) and rho * T per simulation.
        steps : (B,) int, optional
            Step counts (default: the step rule :func:`n_steps`).
        callback : callable, optional
            ``callback(step, u)`` after every step (tests: bounds checking).
        stop_count : int, optional
            Volume-based stop: every ``check_every`` steps, a simulation with more than
            ``stop_count`` cells at u >= ``stop_theta`` is frozen (its returned step count is
            then the step where it stopped, smaller than planned).

        Returns
        -------
        u : (B, nx, ny, nz) float32 and the step counts actually taken (B,).
        """
        u = np.array(u0, dtype=np.float32, copy=True)
        if u.ndim == 3:
            u = u[None]
        B = u.shape[0]
        DT = np.broadcast_to(np.asarray(DT, dtype=np.float64), (B,))
        mu = np.broadcast_to(np.asarray(mu, dtype=np.float64), (B,))
        if steps is None:
            steps = np.array([self.steps(float(a), float(b)) for a, b in zip(DT, mu, strict=True)])
        planned = np.asarray(steps, dtype=np.int64).copy()
        h2 = self.geom.h**2
        ds = 1.0 / planned
        exact = self.reaction == "exact"
        a_all = (DT * ds / h2).astype(np.float32)
        b_all = (np.exp(mu * ds) if exact else mu * ds).astype(np.float32)
        # work in an order sorted by steps (descending) so the active set is a prefix
        perm = np.argsort(-planned, kind="stable")
        u = np.ascontiguousarray(u[perm])
        left = planned[perm].copy()
        a_all, b_all = a_all[perm], b_all[perm]
        u *= self.tissue_f
        N = int(np.prod(u.shape[1:]))
        div = np.empty((B, N), np.float32)
        # one flux buffer per axis with faces, in the flat layout of _flat_faces
        g = [
            None if f is None else np.empty((B, N - off), np.float32) for off, f in self._flat_faces
        ]
        react = np.empty((B, N), np.float32)
        a = np.empty((B, 1), np.float32)
        b = np.empty((B, 1), np.float32)
        k = 0
        while True:
            m = int((left > k).sum())
            if m == 0:
                break
            a[:m, 0] = a_all[:m]
            b[:m, 0] = b_all[:m]
            self._step(
                u[:m].reshape(m, N),  # a view: u stays C-contiguous (B, nx, ny, nz)
                div[:m],
                [None if x is None else x[:m] for x in g],
                react[:m],
                a[:m],
                b[:m],
            )
            k += 1
            if callback is not None:
                callback(k, u[np.argsort(perm)])
            if stop_count is not None and k % check_every == 0:
                cnt = (u[:m] >= stop_theta).reshape(m, -1).sum(1)
                big = np.flatnonzero(cnt > stop_count)
                if big.size:
                    left[big] = k  # frozen from now on
                    o = np.argsort(-left, kind="stable")
                    if not np.array_equal(o, np.arange(B)):
                        u = np.ascontiguousarray(u[o])
                        left, a_all, b_all, perm = left[o], a_all[o], b_all[o], perm[o]
        inv = np.argsort(perm)
        return u[inv], left[inv]

    @staticmethod
    def _logistic(u, react, eb) -> None:
        """Exact logistic step u <- u e^(rho dt) / (1 + u (e^(rho dt) - 1)); ``eb`` = e^(rho dt)."""
        np.multiply(u, eb - 1.0, out=react)
        react += 1.0
        u *= eb
        u /= react
        np.maximum(u, 0.0, out=u)  # float32 round-off of the diffusion update only

    def _step(self, u, div, g, react, a, b) -> None:
        """One explicit step on flat (m, N) views: div = sum over axes of (flux out - flux in),
        u += a div, then the reaction step (see :func:`_flat_faces` for the layout)."""
        div.fill(0.0)
        for (off, f), gk in zip(self._flat_faces, g, strict=True):
            if f is None:
                continue
            np.subtract(u[:, off:], u[:, :-off], out=gk)
            gk *= f
            div[:, :-off] += gk
            div[:, off:] -= gk
        div *= a
        u += div
        if self.reaction == "exact":
            self._logistic(u, react, b)
        else:
            np.subtract(1.0, u, out=react)
            react *= u
            react *= b
            react *= self.tissue_f.reshape(-1)
            u += react
            np.clip(u, 0.0, 1.0, out=u)


def _flat_faces(fx, fy, fz, shape) -> list[tuple[int, np.ndarray | None]]:
    """Face diffusivities laid out for the flat (C-order) index p of a cell (i, j, k).

    Along an axis with flat stride ``off`` (n_y n_z, n_z, 1), the pairs (p, p + off) for
    p < N - off hold every face of that axis, with coefficient ``f[p]``; along y and z they also
    hold pairs that wrap to the next row, which get coefficient 0 and so add exactly 0 to the
    balance. Each cell then sums the same face fluxes, in the same order (x, y, z; out, in),
    as on the 3-D grid -- the same float32 result -- but every array operation is one
    contiguous run instead of many short strided ones (about twice as fast at 64^3).
    Returns ``(off, f)`` per axis, ``f`` ``None`` for an axis of one cell."""
    nx, ny, nz = shape
    N = nx * ny * nz
    out = []
    for ax, (f, n, off) in enumerate(((fx, nx, ny * nz), (fy, ny, nz), (fz, nz, 1))):
        if n <= 1:
            out.append((off, None))
            continue
        full = np.zeros(shape, np.float32)
        sl = [slice(None)] * 3
        sl[ax] = slice(0, n - 1)
        full[tuple(sl)] = f
        out.append((off, np.ascontiguousarray(full.reshape(-1)[: N - off])))
    return out


# ------------------------------------------------------------------------------------------
# Atlas-level convenience
# ------------------------------------------------------------------------------------------


def snap_seed(atlas, seed_mm: np.ndarray, min_tissue: float = 0.5) -> tuple[np.ndarray, bool]:
    """Snap a seed (world mm) to the nearest cell centre with p_GM + p_WM >= min_tissue if needed."""
    seed_mm = np.asarray(seed_mm, dtype=np.float64)
    ijk = atlas.world_to_voxel(seed_mm)
    idx = np.clip(np.rint(ijk).astype(int), 0, atlas.n - 1)
    p = atlas.gm + atlas.wm
    if p[tuple(idx)] >= min_tissue:
        return seed_mm, False
    cand = np.argwhere(p >= min_tissue)
    j = int(np.argmin(((cand - ijk) ** 2).sum(1)))
    return atlas.voxel_to_world(cand[j].astype(np.float64)), True


class AtlasModel:
    """Forward model on an :class:`~workbench.physics.tumor.atlas.Atlas` (cropped geometry)."""

    def __init__(
        self,
        atlas,
        R: float = 10.0,
        sigma_mm: float = 3.0,
        amplitude: float = 0.5,
        C: float = C_STABILITY,
    ):
        self.atlas = atlas
        self.R = float(R)
        self.sigma_mm = float(sigma_mm)
        self.amplitude = float(amplitude)
        self.geom = Geometry.from_fields(atlas.diffusivity(R), atlas.tissue, atlas.h)
        self.solver = FKSolver(self.geom, C=C)

    def seed(self, seed_mm: np.ndarray) -> np.ndarray:
        ijk = self.atlas.world_to_voxel(seed_mm) - np.asarray(self.geom.offset)
        return gaussian_seed(self.geom.shape, ijk, self.atlas.h, self.sigma_mm, self.amplitude)

    def simulate(
        self,
        DT,
        mu,
        seeds_mm,
        snap: bool = True,
        stop_cm3: float | None = None,
        stop_theta: float = 0.25,
    ) -> dict:
        """Run a batch; returns full-grid densities (B, n, n, n), snapped seeds, flags, steps, wall."""
        t0 = time.perf_counter()
        DT = np.atleast_1d(np.asarray(DT, dtype=np.float64))
        mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
        seeds_mm = np.atleast_2d(np.asarray(seeds_mm, dtype=np.float64))
        snapped = np.zeros(len(DT), dtype=bool)
        s_out = seeds_mm.copy()
        if snap:
            for i in range(len(DT)):
                s_out[i], snapped[i] = snap_seed(self.atlas, seeds_mm[i])
        u0 = np.stack([self.seed(s) for s in s_out])
        stop = None if stop_cm3 is None else int(stop_cm3 * 1000.0 / self.atlas.h**3)
        planned = np.array([self.solver.steps(a, b) for a, b in zip(DT, mu, strict=True)])
        u, steps = self.solver.run(
            u0, DT, mu, steps=planned, stop_count=stop, stop_theta=stop_theta
        )
        return {
            "stopped": steps < planned,
            "u": self.geom.uncrop(u),
            "seed_mm": s_out,
            "snapped": snapped,
            "n_steps": steps,
            "wall_s": time.perf_counter() - t0,
        }


@lru_cache(maxsize=3)
def atlas_model(n: int, R: float = 10.0, sigma_mm: float = 3.0, amplitude: float = 0.5):
    """The forward model on the MNI atlas at n³ cells (cached: the atlas load dominates)."""
    from workbench.physics.tumor.atlas import load_atlas

    return AtlasModel(
        load_atlas(int(n), with_t1=False), R=R, sigma_mm=sigma_mm, amplitude=amplitude
    )


def rerun(
    problem, DT: float, mu: float, seed_mm, R: float = 10.0, grid: int = 0
) -> tuple[np.ndarray, dict]:
    """Re-simulate a parameter set on the problem's grid (or ``grid``) -> density on problem grid."""
    n = int(grid or problem.grid_n)
    model = atlas_model(n, R)
    sim = model.simulate([DT], [mu], [seed_mm])
    u = sim["u"][0]
    if n != problem.grid_n or not np.allclose(model.atlas.affine, problem.affine):
        from workbench.physics.tumor.atlas import resample_linear

        u = resample_linear(u, model.atlas.affine, problem.wt.shape, problem.affine)
    return u.astype(np.float32), {
        "n_steps": int(sim["n_steps"][0]),
        "snapped": bool(sim["snapped"][0]),
        "seed_mm": sim["seed_mm"][0].tolist(),
        "sim_wall_s": sim["wall_s"],
    }
