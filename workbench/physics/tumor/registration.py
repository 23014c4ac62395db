"""Affine registration of a patient's anatomical MRI to the MNI152 2009 T1 template, and the
transfer of labels and results between patient space and atlas space.

The method is dipy's intensity-based affine registration (Mattes-style mutual information
between intensity histograms, a Gaussian pyramid, L-BFGS-B), run as the usual chain
centre of mass -> translation -> rigid -> affine (12 parameters), in a patient frame re-centred
on the head (file frames often put the origin at a corner of the grid, which stalls the
optimiser). Both images are brought to
about ``voxel_mm`` (3 mm by default) by block averaging before registering, which keeps one
registration of a 240 x 240 x 155 BraTS volume well under a minute on one core.

Why dipy rather than SimpleITK or ANTsPy: it is pure Python + Cython wheels already used by the
project (a dev dependency until now), it registers with mutual information exactly as the anchor
pipeline's ANTs affine stage does, and it adds no 20-50 MB binary wheel.

Conventions
-----------
The registration returns ``T`` (4 x 4), the map of *points* from MNI world mm to patient world mm:
``x_patient = T @ x_mni``. With it,

* a patient-grid label image with affine ``A_p`` (voxel -> patient mm) is, seen from MNI space,
  an image with affine ``T^{-1} A_p`` (voxel -> MNI mm), so the existing nearest-neighbour
  occupancy resampling moves it onto the atlas grid unchanged;
* an atlas-grid result with affine ``A_a`` (voxel -> MNI mm) is, seen from patient space, an image
  with affine ``T A_a``; resampling it onto the patient grid gives the result in patient space;
* a seed ``s`` in MNI mm is ``T s`` in patient mm.

Quality: the Dice coefficient of the brain masks (the template's brain, the patient's
thresholded image) after registration, and the normalised mutual information
``NMI = (H(A) + H(B)) / H(A, B)`` in [1, 2] on the template's grid. A registration whose brain
Dice falls below ``min_dice`` is refused by the loader, not used.

References
----------
Mattes et al., "PET-CT image registration in the chest using free-form deformations", IEEE TMI
22 (2003). Garyfallidis et al., "Dipy, a library for the analysis of diffusion MRI data", Front.
Neuroinform. 8 (2014). Ezhov et al., ML4H 2022 (the lookup this registration feeds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

#: default brain-mask Dice below which a registration is refused
MIN_DICE = 0.8


@dataclass(frozen=True, eq=False)
class Registration:
    """The outcome of :func:`register_to_mni`.

    Attributes
    ----------
    to_patient : ndarray (4, 4)
        Points in MNI world mm -> patient world mm.
    patient_shape : tuple of int
        Grid of the patient's image.
    patient_affine : ndarray (4, 4)
        Patient voxel -> patient world mm.
    dice_brain : float
        Dice of the brain masks on the template grid after registration.
    nmi : float
        Normalised mutual information (H(A) + H(B)) / H(A, B) on the template grid.
    passed : bool
        ``dice_brain >= min_dice``.
    min_dice : float
    wall_s, cpu_s : float
        Wall and CPU time of the registration (s; they differ when the core is shared).
    template : ndarray
        The template on the registration grid (for the overlay), max 1.
    moved : ndarray
        The patient image resampled onto the template grid through ``to_patient``, max 1.
    grid_affine : ndarray (4, 4)
        Voxel -> MNI world mm of ``template`` and ``moved``.
    stages : list of (name, metric) pairs
    """

    to_patient: np.ndarray
    patient_shape: tuple[int, int, int]
    patient_affine: np.ndarray
    dice_brain: float
    nmi: float
    passed: bool
    min_dice: float
    wall_s: float
    cpu_s: float
    template: np.ndarray
    moved: np.ndarray
    grid_affine: np.ndarray
    stages: list = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers and matrices (kept in the problem's ``meta``)."""
        return {
            "method": "dipy affine (mutual information): com -> translation -> rigid -> affine",
            "to_patient": np.asarray(self.to_patient).tolist(),
            "patient_affine": np.asarray(self.patient_affine).tolist(),
            "patient_shape": [int(s) for s in self.patient_shape],
            "dice_brain": float(self.dice_brain),
            "nmi": float(self.nmi),
            "passed": bool(self.passed),
            "min_dice": float(self.min_dice),
            "wall_s": float(self.wall_s),
            "cpu_s": float(self.cpu_s),
        }


# ------------------------------------------------------------------------------------------
# Grids
# ------------------------------------------------------------------------------------------


def downsample(
    vol: np.ndarray, affine: np.ndarray, target_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Block-average ``vol`` by integer factors so that voxels are about ``target_mm``.

    Returns the coarse volume and its affine (cell centres), ``A' = A @ [diag(f), (f-1)/2]``."""
    vol = np.asarray(vol, np.float32)
    affine = np.asarray(affine, np.float64)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    f = np.maximum(1, np.rint(target_mm / np.maximum(zooms, 1e-6)).astype(int))
    shape = [s // k for s, k in zip(vol.shape, f, strict=True)]
    if min(shape) < 4:
        f = np.ones(3, int)
        shape = list(vol.shape)
    v = vol[: shape[0] * f[0], : shape[1] * f[1], : shape[2] * f[2]]
    v = v.reshape(shape[0], f[0], shape[1], f[1], shape[2], f[2]).mean(axis=(1, 3, 5))
    z = np.diag([*f.astype(float), 1.0])
    z[:3, 3] = (f - 1) / 2.0
    return v.astype(np.float32), affine @ z


@lru_cache(maxsize=2)
def template(voxel_mm: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 2009 T1 template (skull-stripped, max 1) at about ``voxel_mm`` and its affine."""
    from workbench.physics.tumor.atlas import _templates_1mm

    _, _, t1 = _templates_1mm()
    ref = np.array([[1.0, 0, 0, -98.0], [0, 1.0, 0, -134.0], [0, 0, 1.0, -72.0], [0, 0, 0, 1.0]])
    v, a = downsample(t1, ref, voxel_mm)
    v.setflags(write=False)
    return v, a


def normalise(vol: np.ndarray) -> np.ndarray:
    """Clip at the 99.5th percentile of the positive voxels and scale to [0, 1] (robust to hot
    voxels, which would otherwise squeeze the histogram that mutual information is built on)."""
    v = np.asarray(vol, np.float32)
    v = np.where(np.isfinite(v), v, 0.0)
    pos = v[v > 0]
    if pos.size == 0:
        return np.zeros_like(v)
    hi = float(np.percentile(pos, 99.5))
    return np.clip(v / max(hi, 1e-12), 0.0, 1.0).astype(np.float32)


def brain_mask(vol: np.ndarray, frac: float = 0.05) -> np.ndarray:
    """Foreground of a (skull-stripped) normalised image: above ``frac``, holes filled."""
    from scipy import ndimage

    m = np.asarray(vol) > frac
    m = ndimage.binary_opening(m, iterations=1)
    return ndimage.binary_fill_holes(m)


def resample(
    vol: np.ndarray,
    affine_in: np.ndarray,
    shape_out: tuple[int, ...],
    affine_out: np.ndarray,
    order: int = 1,
) -> np.ndarray:
    """Resample ``vol`` (voxel -> world by ``affine_in``) onto the grid (``shape_out``,
    ``affine_out``) of the same world; ``order`` 0 is nearest neighbour (labels), 1 trilinear."""
    from scipy import ndimage

    m = np.linalg.inv(np.asarray(affine_in, np.float64)) @ np.asarray(affine_out, np.float64)
    src = np.asarray(vol)
    return ndimage.affine_transform(
        src if order == 0 else src.astype(np.float32),
        m[:3, :3],
        offset=m[:3, 3],
        output_shape=tuple(int(s) for s in shape_out),
        order=order,
        mode="constant",
        cval=0,
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / s) if s else 1.0


def nmi(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Normalised mutual information (H(A) + H(B)) / H(A, B) of two images on one grid, over the
    voxels where either is non-zero (1: independent, 2: one determines the other)."""
    m = (np.asarray(a) > 0) | (np.asarray(b) > 0)
    if m.sum() < 2:
        return 1.0
    h, _, _ = np.histogram2d(a[m], b[m], bins=bins, range=[[0, 1], [0, 1]])
    p = h / h.sum()

    def ent(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    hab = ent(p)
    return (ent(p.sum(axis=1)) + ent(p.sum(axis=0))) / hab if hab > 0 else 2.0


# ------------------------------------------------------------------------------------------
# Registration
# ------------------------------------------------------------------------------------------


def register_to_mni(
    image: np.ndarray,
    affine: np.ndarray,
    *,
    voxel_mm: float = 3.0,
    level_iters: tuple[int, ...] = (100, 50, 20),
    min_dice: float = MIN_DICE,
    progress=None,
) -> Registration:
    """Register an anatomical image (T1, T1-contrast, T2 or FLAIR) to the MNI152 2009 T1 template.

    Finds the 12-parameter affine ``T`` maximising the mutual information between the template
    ``F`` and the patient image ``M`` resampled through it, ``max_T I(F(x); M(T x))``, with
    centre of mass -> translation -> rigid -> affine stages, each on a 3-level pyramid
    (``factors`` 4, 2, 1; smoothing ``sigmas`` 3, 1, 0 voxels). Mutual information is used
    because the patient contrast (T2, FLAIR, contrast-enhanced T1) differs from the template's T1.

    Parameters
    ----------
    image : ndarray (X, Y, Z)
        Anatomical image in patient space (any positive scale; skull-stripped as in BraTS).
    affine : ndarray (4, 4)
        Its voxel -> world mm affine.
    voxel_mm : float
        Registration resolution (both images are block-averaged to about this).
    level_iters : tuple of int
        Optimiser iterations per pyramid level (coarse to fine).
    min_dice : float
        Brain-mask Dice below which ``passed`` is False.
    progress : callable, optional
        Called as ``progress(stage_index, n_stages, stage=name)``.

    Returns
    -------
    Registration
    """
    from dipy.align.imaffine import (
        AffineRegistration,
        MutualInformationMetric,
        transform_centers_of_mass,
    )
    from dipy.align.transforms import (
        AffineTransform3D,
        RigidTransform3D,
        TranslationTransform3D,
    )

    t0, c0 = time.perf_counter(), time.process_time()
    image = np.asarray(image)
    affine = np.asarray(affine, np.float64)
    static, s_aff = template(float(voxel_mm))
    static = np.ascontiguousarray(static, dtype=np.float64)
    moving, m_aff = downsample(normalise(image), affine, float(voxel_mm))
    moving = np.ascontiguousarray(moving, dtype=np.float64)
    # Re-centre the patient's world frame on the image's centre of mass: scanner and BraTS
    # (SRI24) frames put the origin far from the head (a corner of the grid), and the optimiser
    # then has to trade rotations against large translations; it stalled in local optima 10 mm
    # off. T is mapped back to the file's frame at the end: T = C^{-1} T_c.
    com_vox = np.argwhere(moving > 0).mean(axis=0) if (moving > 0).any() else np.zeros(3)
    centre = m_aff[:3, :3] @ com_vox + m_aff[:3, 3]
    C = np.eye(4)
    C[:3, 3] = -centre
    m_aff_c = C @ m_aff

    com = transform_centers_of_mass(static, s_aff, moving, m_aff_c)
    stages: list = [("centre of mass", float("nan"))]
    current = com.affine
    # sampling_proportion=None: dense sampling, so the result is deterministic (no RNG at all)
    metric = MutualInformationMetric(nbins=32, sampling_proportion=None)
    n = len(level_iters)

    def registration(levels: int):
        return AffineRegistration(
            metric=metric,
            level_iters=list(level_iters)[:levels],
            sigmas=[3.0, 1.0, 0.0][:levels],
            factors=[4, 2, 1][:levels],
            verbosity=0,
        )

    # the translation only needs the coarse levels; rigid and affine run the whole pyramid
    chain = (
        ("translation", TranslationTransform3D(), max(1, n - 1)),
        ("rigid", RigidTransform3D(), n),
        ("affine", AffineTransform3D(), n),
    )
    for i, (name, tr, levels) in enumerate(chain):
        if progress is not None:
            progress(i, len(chain), stage=name)
        amap, _, fopt = registration(levels).optimize(
            static,
            moving,
            tr,
            None,
            static_grid2world=s_aff,
            moving_grid2world=m_aff_c,
            starting_affine=current,
            ret_metric=True,
        )
        current = amap.affine
        stages.append((name, float(-fopt)))
    T = np.linalg.inv(C) @ np.asarray(current, np.float64)
    moved = resample(normalise(image), np.linalg.inv(T) @ affine, static.shape, s_aff, order=1)
    tmask = static > 0
    pmask = brain_mask(moved)
    d = dice(tmask, pmask)
    return Registration(
        to_patient=T,
        patient_shape=tuple(int(s) for s in image.shape[:3]),
        patient_affine=affine,
        dice_brain=d,
        nmi=nmi(static.astype(np.float32), moved.astype(np.float32)),
        passed=bool(d >= min_dice),
        min_dice=float(min_dice),
        wall_s=time.perf_counter() - t0,
        cpu_s=time.process_time() - c0,
        template=np.asarray(static, np.float32),
        moved=np.asarray(moved, np.float32),
        grid_affine=s_aff,
        stages=stages,
    )


# ------------------------------------------------------------------------------------------
# Transfers between the spaces
# ------------------------------------------------------------------------------------------


def mni_view_affine(to_patient: np.ndarray, patient_affine: np.ndarray) -> np.ndarray:
    """Affine (voxel -> MNI mm) of a patient-grid image: ``T^{-1} A_p``."""
    return np.linalg.inv(np.asarray(to_patient, np.float64)) @ np.asarray(
        patient_affine, np.float64
    )


def to_patient_space(
    vol: np.ndarray,
    atlas_affine: np.ndarray,
    to_patient: np.ndarray,
    patient_shape: tuple[int, int, int],
    patient_affine: np.ndarray,
    order: int = 1,
) -> np.ndarray:
    """An atlas-grid volume (voxel -> MNI mm by ``atlas_affine``) on the patient's grid."""
    a_in = np.asarray(to_patient, np.float64) @ np.asarray(atlas_affine, np.float64)
    return resample(vol, a_in, patient_shape, patient_affine, order=order)


def point_to_patient(xyz_mni, to_patient: np.ndarray, patient_affine: np.ndarray):
    """A point in MNI mm -> (patient world mm, patient voxel index)."""
    p = np.asarray(to_patient, np.float64) @ np.r_[np.asarray(xyz_mni, np.float64), 1.0]
    v = np.linalg.inv(np.asarray(patient_affine, np.float64)) @ p
    return p[:3], v[:3]
