"""Problem types: one frozen dataclass per domain.

A problem holds the data, the optional ground truth and metadata. Its :attr:`Problem.id` is a hash
of its content, so two uploads of the same file are the same problem in the run store. Problems
serialise to a flat ``dict`` of arrays (``to_arrays``/``from_arrays``) stored as ``.npz`` with
``allow_pickle=False``: nothing in the store is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

_JSON_KEY = "__json__"


@dataclass(frozen=True, eq=False, kw_only=True)
class Problem:
    """Base of every problem type.

    Subclasses declare ``domain`` and their data fields. Array fields may be ``None`` when absent
    (e.g. no ground truth). Non-array fields must be JSON-serialisable.
    """

    domain: ClassVar[str] = ""
    name: str = "problem"
    meta: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def id(self) -> str:
        """Content hash (sha256 of arrays and fields, first 16 hex digits)."""
        h = hashlib.sha256(self.domain.encode())
        arrays = self.to_arrays()
        for key in sorted(arrays):
            a = np.ascontiguousarray(arrays[key])
            h.update(key.encode())
            h.update(str(a.dtype).encode())
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flatten into arrays plus one JSON string for the non-array fields."""
        out: dict[str, np.ndarray] = {}
        plain: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                out[f.name] = v
            else:
                plain[f.name] = v
        out[_JSON_KEY] = np.array(json.dumps(plain, sort_keys=True, default=_jsonable))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Problem:
        plain = json.loads(str(arrays[_JSON_KEY]))
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in plain.items() if k in names}
        for k, v in arrays.items():
            if k in names:
                kwargs[k] = np.asarray(v)
        for f in dataclasses.fields(cls):
            if f.name in kwargs and isinstance(kwargs[f.name], list) and "tuple" in str(f.type):
                kwargs[f.name] = tuple(kwargs[f.name])
        return cls(**kwargs)

    def describe(self) -> str:
        """One line for tables and the CLI."""
        return self.meta.get("description", self.name)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


# --------------------------------------------------------------------------------------------
# Optimal transport
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class OTProblem(Problem):
    """Discrete optimal transport between two weighted point sets.

    min_P <C, P> + reg * sum_ij P_ij log P_ij  subject to  P 1 = a,  P^T 1 = b,  P >= 0.

    Attributes
    ----------
    a, b : ndarray, shape (n,), (m,)
        Source and target weights, non-negative, each summing to 1 (float64).
    C : ndarray, shape (n, m)
        Cost matrix, already divided by ``cost_scale`` (so that ``reg`` has a fixed meaning).
    cost_scale : float
        Factor that brings costs back to the user's units: user cost = cost_scale * <C, P>.
    cost : str
        ``"sqeuclidean"``, ``"euclidean"`` or ``"custom"``.
    X, Y : ndarray, optional, shape (n, d), (m, d)
        Support points, when the measures live in space (point clouds, images, histograms).
    shape_a, shape_b : tuple, optional
        Image shape when a measure is a 2-D density; ``index_a``/``index_b`` then map support
        points to flat pixel indices (zero pixels are dropped).
    """

    domain: ClassVar[str] = "ot"
    a: np.ndarray
    b: np.ndarray
    C: np.ndarray
    cost_scale: float = 1.0
    cost: str = "custom"
    X: np.ndarray | None = None
    Y: np.ndarray | None = None
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    index_a: np.ndarray | None = None
    index_b: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.a.shape[0])

    @property
    def m(self) -> int:
        return int(self.b.shape[0])


# --------------------------------------------------------------------------------------------
# EELS spectrum images
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class EELSProblem(Problem):
    """Core-loss EELS spectrum image in which anomalous (chemically shifted) pixels are sought.

    Y[y, x, k] ~ Poisson(lambda_yx(E_k)); a pixel is anomalous when its Fe L2,3 edge is shifted.

    Attributes
    ----------
    data : ndarray, shape (ny, nx, nE)
        Counts (float32), energy last.
    energy : ndarray, shape (nE,)
        Energy-loss axis in eV, strictly increasing (float64).
    truth : ndarray of bool, shape (ny, nx), optional
        Ground-truth anomaly mask (synthetic cubes).
    shift_map : ndarray, shape (ny, nx), optional
        Per-pixel Fe-L shift in eV (synthetic cubes).
    reference : ndarray, shape (ny', nx', nE), optional
        An anomaly-free cube of the same material (protocol A, "reference-clean").
    low_loss, low_loss_energy : ndarray, shape (ny, nx, nE') and (nE',), optional
        The low-loss spectrum image of the same scan (DualEELS), holding the zero-loss peak:
        the drift reference that does not change with chemistry.
    offset, dispersion : float
        Energy calibration E_k = offset + k * dispersion (informative; ``energy`` is authoritative).
    edge_window : tuple of float
        Score window (eV), default Fe L2,3 690-730 eV.
    meta : dict
        Dose, generator parameters, seed, disc list, source file, units.
    """

    domain: ClassVar[str] = "eels"
    data: np.ndarray
    energy: np.ndarray
    truth: np.ndarray | None = None
    shift_map: np.ndarray | None = None
    reference: np.ndarray | None = None
    low_loss: np.ndarray | None = None
    low_loss_energy: np.ndarray | None = None
    offset: float = 0.0
    dispersion: float = 1.0
    edge_window: tuple[float, float] = (690.0, 730.0)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    def window_slice(self, lo: float, hi: float) -> slice:
        """Channel slice covering energies in [lo, hi] eV (by energy, never by index)."""
        i0 = int(np.searchsorted(self.energy, lo, side="left"))
        i1 = int(np.searchsorted(self.energy, hi, side="right"))
        return slice(i0, max(i0, i1))


# --------------------------------------------------------------------------------------------
# PDEs on boxes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class PDEProblem(Problem):
    """A PDE on a box, N[u] = f in the interior with boundary data g, in 1-D or 2-D.

    Expressions are strings in the problem's variables (``x``, ``y`` or ``t``) and its scalar
    coefficients, parsed safely with sympy by :mod:`workbench.physics.pde.expr`. When ``exact`` is
    given, ``source`` and ``boundary`` are derived from it symbolically.

    Attributes
    ----------
    operator : str
        ``"poisson"`` (Δu), ``"allen_cahn"`` (Δu + u(u² − 1)), ``"advection"`` (β u_x + u_y),
        ``"drift_poisson"`` (Δu − ∇·(u ∇(x² + y²))), ``"nl_poisson"`` ((κ(u) u′)′ + w, 1-D,
        κ = softplus(u Σ z_n T_n(x)) + 0.1) or ``"burgers"`` (u_t + z1 u u_x − z0 u_xx).
    box : tuple of (lo, hi)
        One interval per dimension; only boxes are supported.
    variables : tuple of str
        Names of the coordinates, e.g. ``("x",)``, ``("x", "y")`` or ``("x", "t")``.
    bc : str
        ``"dirichlet"`` (data on the whole boundary), ``"initial_boundary"`` (no data on the last
        dimension's upper face: time-like problems), or ``"periodic"``; ``"neumann"``/``"robin"``
        are reserved names.
    coefficients : dict
        Scalar coefficients by name (e.g. ``{"beta": 200}``, ``{"z0": .., "w": ..}``).
    exact, source, boundary : str, optional
        sympy-parsable expressions. ``source`` is f in N[u] = f; ``boundary`` is g, evaluated on ∂Ω.
    priors : dict
        Parameter priors for parametric problems: ``{"z0": [lo, hi], ...}`` (uniform).
    n_col : tuple of int
        Default collocation points per dimension (GP-HM and PINN grids).
    freq_scale : float, optional
        Default upper end F of the GP-HM frequency initialisation (cycles per unit length).
    obs_points, obs_values : ndarray, optional
        Scattered observations (n, d) and (n,) for inverse and data-assisted problems.
    obs_sigma : float
        Observation noise standard deviation.
    """

    domain: ClassVar[str] = "pde"
    operator: str = "poisson"
    box: tuple = ((0.0, 1.0),)
    variables: tuple = ("x",)
    bc: str = "dirichlet"
    coefficients: dict[str, float] = field(default_factory=dict)
    exact: str | None = None
    source: str | None = None
    boundary: str | None = None
    priors: dict[str, Any] = field(default_factory=dict)
    n_col: tuple = (64,)
    freq_scale: float | None = None
    obs_points: np.ndarray | None = None
    obs_values: np.ndarray | None = None
    obs_sigma: float = 0.0

    def __post_init__(self) -> None:
        box = tuple((float(lo), float(hi)) for lo, hi in self.box)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "variables", tuple(str(v) for v in self.variables))
        object.__setattr__(self, "n_col", tuple(int(n) for n in self.n_col))

    @property
    def dim(self) -> int:
        return len(self.box)


# --------------------------------------------------------------------------------------------
# MRI (multi-coil accelerated k-space)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class MRIProblem(Problem):
    """Undersampled multi-coil k-space → image.

    y = M ⊙ (F(S x) + n), F the centred orthonormal 2-D FFT (DC at (H//2, W//2)). The
    operator A is built from the arrays by :func:`workbench.physics.mri.operators.sense_operator`.

    Attributes
    ----------
    kspace : ndarray, shape (slices, coils, H, W), complex64
        Measured k-space, already multiplied by the mask.
    mask : ndarray, shape (H, W) or (slices, H, W), float32 in {0, 1}
        Sampling mask (1-D masks broadcast along the readout H).
    maps : ndarray, shape (slices, coils, H, W), complex64, optional
        Coil sensitivities used by the solvers (``maps_source`` says where they come from);
        Σ_c |S_c|² = 1 where non-zero.
    reference : ndarray, shape (slices, h, w), float32, optional
        Fully sampled reference magnitude (``reference_kind``: ``sense_noisy_full``,
        ``sense_clean``, ``rss_full`` or ``file_rss``), cropped to ``recon_size`` when set.
    noise_sigma : float
        Per-sample k-space noise standard deviation when known (0 if unknown).
    recon_size : tuple (h, w), optional
        Centre crop applied to reconstructions (fastMRI removes readout oversampling this way).
    meta : dict
        source, acquisition, header, padding, mask description (kind, R, cf, seed, effective R).
    """

    domain: ClassVar[str] = "mri"
    kspace: np.ndarray
    mask: np.ndarray
    maps: np.ndarray | None = None
    reference: np.ndarray | None = None
    reference_kind: str = ""
    maps_source: str = ""
    noise_sigma: float = 0.0
    recon_size: tuple[int, int] | None = None

    @property
    def n_slices(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def n_coils(self) -> int:
        return int(self.kspace.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.kspace.shape[-2]), int(self.kspace.shape[-1])

    @property
    def acceleration(self) -> float:
        m = np.asarray(self.mask)
        s = float(m.sum())
        return float(m.size / s) if s else float("inf")


# --------------------------------------------------------------------------------------------
# Tumour growth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class TumorProblem(Problem):
    """A glioma segmentation on an atlas working grid, to be explained by Fisher–Kolmogorov growth.

    Find (D_w T, rho T, x0) such that {u(T) >= theta_wt} matches ``wt`` and {u(T) >= theta_tc}
    matches ``tc``, where u solves du/dt = div(D grad u) + rho u (1 - u) on the MNI152 atlas.

    Attributes
    ----------
    wt : ndarray (n, n, n) uint8
        Whole-tumour mask (FLAIR abnormality: oedema + core), on the working grid. The "edema"
        of the metrics (``dice_edema``) is this whole FLAIR abnormality.
    tc : ndarray (n, n, n) uint8
        Tumour-core mask (T1-Gd abnormality: enhancing + necrotic), TC within WT.
    affine : ndarray (4, 4)
        Working-grid voxel index -> MNI world mm (cell centres).
    grid_n : int
        Cells per axis of the working grid (64 by default; equal to the database grid).
    atlas : str
        Atlas of the working grid ("mni152_2009_nilearn").
    theta_wt, theta_tc : float
        Visibility thresholds assumed by default for this patient.
    input_affine : ndarray (4, 4), optional
        Affine of the uploaded file (exports are resampled back to it); ``input_shape`` in meta.
    truth_density : ndarray (n, n, n) float32, optional
        Ground-truth density on the working grid (synthetic patients); truth parameters are in
        ``meta["truth"]`` (DT_mm2, mu, seed_mm, ell_mm, lambda_mm, ...).
    """

    domain: ClassVar[str] = "tumor"
    wt: np.ndarray
    tc: np.ndarray
    affine: np.ndarray
    grid_n: int = 64
    atlas: str = "mni152_2009_nilearn"
    theta_wt: float = 0.25
    theta_tc: float = 0.675
    input_affine: np.ndarray | None = None
    truth_density: np.ndarray | None = None

    @property
    def voxel_mm(self) -> float:
        return float(abs(self.affine[0, 0]))

    @property
    def volumes_cm3(self) -> tuple[float, float]:
        v = self.voxel_mm**3 / 1000.0
        return float(self.wt.sum() * v), float(self.tc.sum() * v)
