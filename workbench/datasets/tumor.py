"""Tumour growth problems: synthetic patients, the segmentation loader, ground-truth metrics.

Synthetic patients are simulated with the Fisher–Kolmogorov model on the MNI152 atlas at a chosen
grid (finer than the database's for honest tests), thresholded, optionally eroded/dilated, then
mapped to the working grid exactly like an upload (fractional occupancy >= 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.io.tumor_nifti import (
    LABEL_CHOICES,
    REGISTER_HINT,
    check_atlas_grid,
    read_segmentation,
)
from workbench.problems import TumorProblem
from workbench.registry import DomainSpec, Sample, param, params_to_dict, parse_params

GRIDS = (32, 48, 64, 96, 128)


@dataclass(frozen=True)
class Options:
    labels: str = param("auto", "label preset of uploaded segmentations", choices=LABEL_CHOICES)
    grid: int = param(64, "working grid (cells per axis; the database grid)", choices=GRIDS)


def _opts(options: dict) -> dict:
    return params_to_dict(parse_params(Options, options))


def synthetic_patient(
    DT_mm2: float = 60.0,
    mu: float = 6.0,
    seed_mm: tuple[float, float, float] = (-28.0, -12.0, 24.0),
    R: float = 10.0,
    sim_grid: int = 64,
    grid: int = 64,
    theta_wt: float = 0.25,
    theta_tc: float = 0.675,
    noise: str = "none",
    name: str | None = None,
    stop_cm3: float | None = None,
) -> TumorProblem:
    """Simulate a patient at ``sim_grid`` and map its masks to the ``grid`` working grid.

    ``noise``: "none", "erode" or "dilate" (one voxel at the simulation grid)."""
    from workbench.physics.tumor.atlas import load_atlas, resample_linear, resample_occupancy
    from workbench.physics.tumor.forward import atlas_model

    if DT_mm2 <= 0 or mu <= 0:
        raise InputError("DT_mm2 and mu must be positive")
    if noise not in ("none", "erode", "dilate"):
        raise InputError("noise must be none, erode or dilate")
    model = atlas_model(int(sim_grid), float(R))
    sim = model.simulate([DT_mm2], [mu], [seed_mm], stop_cm3=stop_cm3, stop_theta=theta_wt)
    if sim["stopped"][0]:
        raise InputError(f"this synthetic tumour grew beyond {stop_cm3} cm^3")
    u = sim["u"][0]
    wt = u >= theta_wt
    tc = u >= theta_tc
    if noise != "none":
        from scipy import ndimage  # only here: importing it costs more than a 64^3 simulation

        op = ndimage.binary_erosion if noise == "erode" else ndimage.binary_dilation
        wt, tc = op(wt), op(tc)
    atlas = load_atlas(int(grid), with_t1=False)
    if int(sim_grid) == int(grid):
        wt_g, tc_g, u_g = wt, tc, u
    else:
        wt_g = resample_occupancy(wt, model.atlas.affine, atlas.shape, atlas.affine) >= 0.5
        tc_g = resample_occupancy(tc, model.atlas.affine, atlas.shape, atlas.affine) >= 0.5
        u_g = resample_linear(u, model.atlas.affine, atlas.shape, atlas.affine)
    wt_g = wt_g | tc_g
    if not wt_g.any():
        raise InputError(
            "this synthetic tumour is invisible at the chosen thresholds; raise D*T or rho*T"
        )
    truth = {
        "DT_mm2": float(DT_mm2),
        "mu": float(mu),
        "ell_mm": math.sqrt(DT_mm2),
        "lambda_mm": math.sqrt(DT_mm2 / mu),
        "seed_mm": [float(x) for x in sim["seed_mm"][0]],
        "snapped": bool(sim["snapped"][0]),
        "R": float(R),
        "theta_wt": float(theta_wt),
        "theta_tc": float(theta_tc),
        "sim_grid": int(sim_grid),
        "noise": noise,
    }
    nm = name or f"synthetic_{int(sim_grid)}_DT{DT_mm2:g}_mu{mu:g}"
    return TumorProblem(
        name=nm,
        wt=wt_g.astype(np.uint8),
        tc=tc_g.astype(np.uint8),
        affine=np.asarray(atlas.affine),
        grid_n=int(grid),
        theta_wt=0.25,
        theta_tc=0.675,
        truth_density=u_g.astype(np.float32),
        meta={
            "description": f"synthetic patient simulated at {sim_grid}^3 (sqrt(DT) = {math.sqrt(DT_mm2):.1f} mm, rho T = {mu:g})",
            "truth": truth,
            "source": "synthetic",
            "input_shape": [int(grid)] * 3,
        },
    )


def random_patient(
    rng_seed: int = 0,
    sim_grid: int = 96,
    grid: int = 64,
    R: float | None = None,
    noise: bool = True,
    v_range=(5.0, 250.0),
) -> TumorProblem:
    """A held-out synthetic patient: parameters from the identifiable prior (own RNG stream, not the
    database's Sobol points), thresholds theta_WT ~ U[0.15, 0.35], theta_TC ~ U[0.5, 0.85], and a
    random one-voxel erosion/dilation; redrawn until the volume passes the size filter."""
    from workbench.physics.tumor.atlas import load_atlas

    rng = np.random.default_rng(rng_seed)
    atlas = load_atlas(int(sim_grid), with_t1=False)
    region = np.argwhere(atlas.wm >= 0.5)
    for _ in range(50):
        DT = math.exp(rng.uniform(math.log(1.0), math.log(2250.0)))
        mu = math.exp(rng.uniform(math.log(0.1), math.log(300.0)))
        vox = region[rng.integers(len(region))] + rng.uniform(-0.5, 0.5, 3)
        seed = atlas.voxel_to_world(vox)
        th_wt = float(rng.uniform(0.15, 0.35))
        th_tc = float(rng.uniform(0.5, 0.85))
        nz = str(rng.choice(["none", "erode", "dilate"])) if noise else "none"
        try:
            p = synthetic_patient(
                DT,
                mu,
                tuple(seed),
                R=R or 10.0,
                sim_grid=sim_grid,
                grid=grid,
                theta_wt=th_wt,
                theta_tc=th_tc,
                noise=nz,
                name=f"heldout_{rng_seed}",
            )
        except InputError:
            continue
        v_wt, _ = p.volumes_cm3
        if v_range[0] <= v_wt <= v_range[1] and p.tc.any():
            return p
    raise RuntimeError("could not draw a visible synthetic patient")


def _deformed_atlas(atlas, rng, amp_mm: float, corr_mm: float, theta_tissue: float):
    """The atlas warped by a smooth random displacement field, with another tissue cut-off.

    Each component of the displacement is white noise smoothed by a Gaussian of width
    ``corr_mm`` and scaled so that its largest magnitude is ``amp_mm``; GM and WM are resampled
    through it (linear interpolation), so tissue boundaries, ventricles and sulci move by up
    to ``amp_mm`` with no change of topology."""
    import dataclasses

    from scipy import ndimage

    n = atlas.gm.shape
    disp = np.stack(
        [ndimage.gaussian_filter(rng.normal(size=n), corr_mm / atlas.h) for _ in range(3)]
    )
    disp *= (amp_mm / atlas.h) / max(float(np.linalg.norm(disp, axis=0).max()), 1e-12)
    coords = np.indices(n, dtype=np.float64) + disp
    gm = ndimage.map_coordinates(atlas.gm, coords, order=1, mode="nearest").astype(np.float32)
    wm = ndimage.map_coordinates(atlas.wm, coords, order=1, mode="nearest").astype(np.float32)
    return dataclasses.replace(atlas, gm=gm, wm=wm, theta_tissue=float(theta_tissue))


def ellipsoid_seed(shape, center_vox, h: float, semi_axes_mm, rot: np.ndarray, amplitude: float):
    """Cell average (4^3 sub-samples per cell) of a uniform ellipsoid of density ``amplitude``.

    A top-hat seed with its own orientation and three widths: unlike the database's isotropic
    Gaussian (sigma 3 mm, amplitude 0.5) in shape, width and height."""
    semi = np.asarray(semi_axes_mm, dtype=np.float64) / h
    r = int(math.ceil(semi.max())) + 2
    c = np.asarray(center_vox, dtype=np.float64)
    lo = np.maximum(np.floor(c).astype(int) - r, 0)
    hi = np.minimum(np.floor(c).astype(int) + r + 1, shape)
    sub = (np.arange(4) + 0.5) / 4.0 - 0.5
    out = np.zeros(shape, np.float32)
    axes = [np.add.outer(np.arange(lo[a], hi[a]), sub).ravel() for a in range(3)]
    X = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1) - c
    local = X @ rot  # coordinates along the ellipsoid's axes (rot's columns)
    inside = ((local / semi) ** 2).sum(-1) <= 1.0
    m = inside.reshape(hi[0] - lo[0], 4, hi[1] - lo[1], 4, hi[2] - lo[2], 4).mean((1, 3, 5))
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = amplitude * m
    return out


def mismatch_patient(
    rng_seed: int = 0,
    sim_grid: int = 96,
    grid: int = 64,
    noise: bool = True,
    v_range=(5.0, 250.0),
) -> TumorProblem:
    """A held-out patient made unlike the database in everything but the PDE's form.

    Differences from the database (and from :func:`random_patient`): the atlas is smoothly
    deformed (displacement up to 4 mm, correlation length 20 mm); the tissue cut-off is
    p_GM + p_WM >= 0.3 (database 0.1) and R ~ U[5, 20] (database 10); the seed is a uniform
    ellipsoid with random orientation, semi-axes U[1.5, 5] mm and density U[0.3, 0.9]
    (database: isotropic Gaussian, sigma 3 mm, peak 0.5); the discretisation uses harmonic face
    means, half the stable step (C = 0.45) and rho dt <= 0.05 (database: arithmetic means,
    C = 0.9, rho dt <= 0.1). Thresholds, mask noise, the identifiable prior and the mapping to
    the working grid are those of :func:`random_patient`."""
    from scipy.spatial.transform import Rotation

    from workbench.physics.tumor.atlas import load_atlas, resample_linear, resample_occupancy
    from workbench.physics.tumor.forward import FKSolver, Geometry, snap_seed

    rng = np.random.default_rng(rng_seed)
    base = load_atlas(int(sim_grid), with_t1=False)
    atlas = _deformed_atlas(base, rng, amp_mm=4.0, corr_mm=20.0, theta_tissue=0.3)
    R = float(rng.uniform(5.0, 20.0))
    geom = Geometry.from_fields(atlas.diffusivity(R), atlas.tissue, atlas.h)
    solver = FKSolver(geom, C=0.45, rho_dt_max=0.05, face_mean="harmonic")
    region = np.argwhere(atlas.wm >= 0.5)
    work = load_atlas(int(grid), with_t1=False)
    for _ in range(50):
        DT = math.exp(rng.uniform(math.log(1.0), math.log(2250.0)))
        mu = math.exp(rng.uniform(math.log(0.1), math.log(300.0)))
        vox = region[rng.integers(len(region))] + rng.uniform(-0.5, 0.5, 3)
        seed, snapped = snap_seed(atlas, atlas.voxel_to_world(vox))
        semi = rng.uniform(1.5, 5.0, 3)
        rot = Rotation.random(random_state=rng).as_matrix()
        amp = float(rng.uniform(0.3, 0.9))
        th_wt = float(rng.uniform(0.15, 0.35))
        th_tc = float(rng.uniform(0.5, 0.85))
        nz = str(rng.choice(["none", "erode", "dilate"])) if noise else "none"
        ijk = atlas.world_to_voxel(seed) - np.asarray(geom.offset)
        u0 = ellipsoid_seed(geom.shape, ijk, atlas.h, semi, rot, amp) * geom.tissue
        u, _ = solver.run(u0[None], [DT], [mu])
        u = geom.uncrop(u)[0]
        wt, tc = u >= th_wt, u >= th_tc
        if nz != "none":
            from scipy import ndimage

            op = ndimage.binary_erosion if nz == "erode" else ndimage.binary_dilation
            wt, tc = op(wt), op(tc)
        wt_g = resample_occupancy(wt, atlas.affine, work.shape, work.affine) >= 0.5
        tc_g = resample_occupancy(tc, atlas.affine, work.shape, work.affine) >= 0.5
        wt_g = wt_g | tc_g
        v_wt = float(wt_g.sum()) * work.h**3 / 1000.0
        if not (v_range[0] <= v_wt <= v_range[1] and tc_g.any()):
            continue
        truth = {
            "DT_mm2": DT,
            "mu": mu,
            "ell_mm": math.sqrt(DT),
            "lambda_mm": math.sqrt(DT / mu),
            "seed_mm": [float(x) for x in seed],
            "snapped": bool(snapped),
            "R": R,
            "theta_wt": th_wt,
            "theta_tc": th_tc,
            "sim_grid": int(sim_grid),
            "noise": nz,
            "mismatch": {
                "deform_mm": 4.0,
                "theta_tissue": 0.3,
                "seed": "ellipsoid",
                "seed_semi_axes_mm": [float(v) for v in semi],
                "seed_amplitude": amp,
                "face_mean": "harmonic",
                "C": 0.45,
                "rho_dt_max": 0.05,
            },
        }
        u_g = resample_linear(u, atlas.affine, work.shape, work.affine)
        return TumorProblem(
            name=f"mismatch_{rng_seed}",
            wt=wt_g.astype(np.uint8),
            tc=tc_g.astype(np.uint8),
            affine=np.asarray(work.affine),
            grid_n=int(grid),
            theta_wt=0.25,
            theta_tc=0.675,
            truth_density=u_g.astype(np.float32),
            meta={
                "description": (
                    f"model-mismatch patient at {sim_grid}^3 (deformed atlas, R = {R:.1f}, "
                    f"ellipsoid seed, harmonic faces; sqrt(DT) = {math.sqrt(DT):.1f} mm, "
                    f"rho T = {mu:.3g})"
                ),
                "truth": truth,
                "source": "synthetic",
                "input_shape": [int(grid)] * 3,
            },
        )
    raise RuntimeError("could not draw a visible model-mismatch patient")


def sample_small(**options: Any) -> TumorProblem:
    o = _opts(options)
    return synthetic_patient(
        60.0, 6.0, (-28.0, -12.0, 24.0), sim_grid=o["grid"], grid=o["grid"], name="synthetic_small"
    )


def sample_fine(**options: Any) -> TumorProblem:
    o = _opts(options)
    return synthetic_patient(
        100.0,
        10.0,
        (22.0, 8.0, 28.0),
        sim_grid=96,
        grid=o["grid"],
        theta_wt=0.2,
        theta_tc=0.6,
        noise="dilate",
        name="synthetic_fine_96",
    )


def sample_mismatch(**options: Any) -> TumorProblem:
    o = _opts(options)
    return synthetic_patient(
        40.0,
        12.0,
        (-20.0, -40.0, 30.0),
        R=20.0,
        sim_grid=96,
        grid=o["grid"],
        theta_wt=0.3,
        theta_tc=0.7,
        name="synthetic_mismatch_R20",
    )


#: Refusal thresholds of an upload's placement on the atlas (fractions): the tumour inside the
#: atlas brain, the atlas brain inside the file's field of view, WT of the brain's volume.
MIN_INSIDE, NOTICE_INSIDE, MIN_COVERAGE, MAX_BRAIN_FRACTION = 0.5, 0.95, 0.5, 0.4


def problem_from_masks(
    wt,
    tc,
    affine,
    shape,
    grid: int = 64,
    name: str = "upload",
    preset: str = "",
    filename: str = "upload",
    hint: str = REGISTER_HINT,
) -> TumorProblem:
    """Masks on any grid (affine) -> the working-grid problem (occupancy >= 0.5), validated.

    The masks must sit on the MNI152 2009 atlas: refused (InputError naming the reason and
    ``hint``) when the file's field of view holds less than half of the atlas brain, when less
    than half of the tumour lies inside the atlas brain (grey + white matter >= 0.1), or when
    the "tumour" fills more than 40 % of the brain (a brain mask); between half and 95 % inside,
    a notice in ``meta["notices"]`` asks whether it is registered.
    """
    from workbench.physics.tumor.atlas import load_atlas, resample_occupancy

    atlas = load_atlas(int(grid), with_t1=False)
    affine = np.asarray(affine, dtype=np.float64)
    brain = (atlas.gm + atlas.wm) >= 0.1
    # share of the atlas brain inside the file's voxel box: a native-space field of view
    # placed anywhere in scanner coordinates rarely covers the MNI brain
    ijk = np.argwhere(brain).astype(np.float64)
    xyz = ijk @ np.asarray(atlas.affine)[:3, :3].T + np.asarray(atlas.affine)[:3, 3]
    vox = (xyz - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    inside_fov = np.all((vox > -0.5) & (vox < np.asarray(shape[:3]) - 0.5), axis=1)
    coverage = float(inside_fov.mean()) if inside_fov.size else 0.0
    if coverage < MIN_COVERAGE:
        raise InputError(
            f"{filename}: its grid holds only {100 * coverage:.0f}% of the MNI152 2009 brain, so it "
            f"is not on the atlas grid: {hint}"
        )
    wt = np.asarray(wt, bool) | np.asarray(tc, bool)
    notices = []
    if np.any(np.asarray(tc, bool) & ~np.asarray(wt, bool)):
        notices.append("TC voxels outside WT were added to WT")
    sub = 3 if abs(np.linalg.det(affine[:3, :3])) ** (1 / 3) < atlas.h / 2 else 2
    wt_g = resample_occupancy(wt, affine, atlas.shape, atlas.affine, sub=sub) >= 0.5
    tc_g = resample_occupancy(tc, affine, atlas.shape, atlas.affine, sub=sub) >= 0.5
    wt_g |= tc_g
    if not wt_g.any():
        raise InputError(
            f"{filename}: the tumour vanishes on the {grid}^3 working grid (too small or outside the atlas box)"
        )
    inside = float((wt_g & brain).sum() / wt_g.sum())
    if inside < MIN_INSIDE:
        raise InputError(
            f"{filename}: only {100 * inside:.0f}% of the tumour lies inside the MNI152 2009 "
            f"brain, so it is not registered to the atlas: {hint}"
        )
    fill = float((wt_g & brain).sum() / max(brain.sum(), 1))
    if fill > MAX_BRAIN_FRACTION:
        raise InputError(
            f"{filename}: the 'tumour' fills {100 * fill:.0f}% of the brain: a brain mask, not a "
            "tumour segmentation (labels: WT = FLAIR abnormality, TC = tumour core)"
        )
    if inside < NOTICE_INSIDE:
        notices.append(
            f"only {100 * inside:.0f}% of the tumour lies inside the atlas brain: is it registered to MNI152 2009?"
        )
    return TumorProblem(
        name=name,
        wt=wt_g.astype(np.uint8),
        tc=tc_g.astype(np.uint8),
        affine=np.asarray(atlas.affine),
        grid_n=int(grid),
        input_affine=affine,
        meta={
            "description": f"uploaded segmentation {filename}",
            "source": "upload",
            "preset": preset,
            "input_shape": [int(s) for s in shape],
            "notices": notices,
            "inside_brain": inside,
            "atlas_coverage": coverage,
        },
    )


def load(data: bytes, filename: str, **options: Any) -> TumorProblem:
    """Read an uploaded segmentation: NIfTI labels (.nii/.nii.gz) or NPZ with ``wt``/``tc``
    (and optionally ``affine``; without it, the masks must be on the working grid).

    A lone segmentation must already be on MNI152 2009: an oblique or anisotropic grid
    (:func:`~workbench.io.tumor_nifti.check_atlas_grid`), a field of view without the atlas
    brain or a tumour mostly outside it (:func:`problem_from_masks`) is refused with the
    registration hint; notices (partly outside the brain) go to ``meta["notices"]``."""
    o = _opts(options)
    low = filename.lower()
    if low.endswith(".zip"):  # a case in patient space: segmentation + anatomical image
        from workbench.io.archive import read_zip

        return load_case(read_zip(data, filename), filename, **options)
    if low.endswith(".npz") or low.endswith(".npy"):
        from workbench.io.validate import load_npz

        arrs = load_npz(data, filename)
        if "wt" not in arrs:
            if "data" in arrs:
                arrs = {"labels": arrs["data"]}
            if "labels" not in arrs:
                raise InputError(f"{filename}: expected arrays 'wt' and 'tc' (or 'labels')")
            from workbench.io.tumor_nifti import labels_to_masks

            lab = np.asarray(arrs["labels"])
            if lab.ndim != 3 or lab.dtype.kind not in "biuf" or not np.all(np.isfinite(lab)):
                raise InputError(f"{filename}: labels must be a finite 3-D numeric array")
            wt, tc, preset = labels_to_masks(lab.astype(np.int64), o["labels"], filename)
        else:
            wt = np.asarray(arrs["wt"])
            tc = np.asarray(arrs.get("tc", np.zeros_like(wt)))
            if wt.ndim != 3 or tc.shape != wt.shape:
                raise InputError(f"{filename}: wt and tc must be 3-D arrays of one shape")
            if set(np.unique(wt).tolist()) - {0, 1} or set(np.unique(tc).tolist()) - {0, 1}:
                raise InputError(f"{filename}: wt and tc must be binary masks")
            wt, tc, preset = wt.astype(bool), tc.astype(bool), "masks"
            if not wt.any() and not tc.any():
                raise InputError(f"{filename} is empty: no tumour voxels")
        if "affine" in arrs:
            aff = np.asarray(arrs["affine"], dtype=np.float64)
            if (
                aff.shape != (4, 4)
                or not np.all(np.isfinite(aff))
                or abs(np.linalg.det(aff[:3, :3])) < 1e-9
            ):
                raise InputError(f"{filename}: invalid affine")
            check_atlas_grid(aff, wt.shape, filename)
        else:
            from workbench.physics.tumor.atlas import grid_affine

            if wt.shape != (o["grid"],) * 3:
                raise InputError(
                    f"{filename}: without an affine the masks must be {o['grid']}^3 (the working grid)"
                )
            aff = grid_affine(o["grid"])
        return problem_from_masks(
            wt, tc, aff, wt.shape, o["grid"], name=filename, preset=preset, filename=filename
        )
    if not (low.endswith(".nii") or low.endswith(".nii.gz") or low.endswith(".gz")):
        raise InputError(f"{filename}: expected a NIfTI segmentation (.nii, .nii.gz) or .npz masks")
    seg = read_segmentation(data, filename, o["labels"])
    check_atlas_grid(seg["affine"], seg["shape"], filename)
    return problem_from_masks(
        seg["wt"],
        seg["tc"],
        seg["affine"],
        seg["shape"],
        o["grid"],
        name=filename,
        preset=seg["preset"],
        filename=filename,
    )


# ------------------------------------------------------------------------------------------
# Patient space: a segmentation + one anatomical image, registered to the atlas
# ------------------------------------------------------------------------------------------

#: anatomical modalities by BraTS file-name token, in the order they are preferred for
#: registration to the T1 template (native T1 has the template's contrast; FLAIR the least)
MODALITIES = (
    ("t1n", "T1"),
    ("t1", "T1"),
    ("t1c", "T1-contrast"),
    ("t1ce", "T1-contrast"),
    ("t1gd", "T1-contrast"),
    ("t2w", "T2"),
    ("t2", "T2"),
    ("t2f", "FLAIR"),
    ("flair", "FLAIR"),
)
NIFTI_ENDINGS = (".nii.gz", ".nii")


def _tokens(name: str) -> list[str]:
    import re

    low = name.lower()
    for end in NIFTI_ENDINGS:
        if low.endswith(end):
            low = low[: -len(end)]
            break
    return [t for t in re.split(r"[-_.\s]+", low) if t]


def pick_case_files(names) -> tuple[str, str, str]:
    """BraTS naming -> (segmentation, anatomical image, modality) among NIfTI file names.

    The segmentation has a ``seg`` token (``*_seg``, ``*-seg``); the image is the first
    available of ``t1n``/``t1``, ``t1c``/``t1ce``, ``t2w``/``t2``, ``t2f``/``flair``."""
    nii = [n for n in names if n.lower().endswith(NIFTI_ENDINGS)]
    segs = [n for n in nii if any(t.startswith("seg") for t in _tokens(n))]
    if len(segs) != 1:
        found = ", ".join(sorted(names)) or "nothing"
        raise InputError(
            f"expected exactly one segmentation named *seg*.nii(.gz) beside one anatomical image; found {found}"
        )
    for token, label in MODALITIES:
        hits = [n for n in nii if n not in segs and token in _tokens(n)]
        if hits:
            return segs[0], sorted(hits)[0], label
    raise InputError(
        "no anatomical image beside the segmentation: name it *t1n*, *t1c*, *t2w* or *t2f* "
        "(BraTS 2023) or *t1*, *t1ce*, *t2*, *flair* (BraTS 2021)"
    )


def load_patient(
    seg: bytes,
    seg_name: str,
    image: bytes,
    image_name: str,
    modality: str = "",
    progress=None,
    **options: Any,
) -> TumorProblem:
    """A segmentation and an anatomical image in the patient's own space -> an atlas problem.

    The image is registered affinely to the MNI152 2009 T1 template
    (:func:`workbench.physics.tumor.registration.register_to_mni`, mutual information), the
    segmentation is carried to the atlas grid through the found map with nearest-neighbour
    sampling (fractional occupancy >= 0.5 of each working cell), and the problem remembers the
    map so that results go back to the patient's grid and affine (``input_affine`` is the patient
    grid seen from MNI space, ``meta["registration"]`` holds the matrices and the quality).
    Refuses (InputError) a registration whose brain-mask Dice is below the quality threshold.
    """
    from workbench.io.mri_nifti import read_nifti as read_volume
    from workbench.physics.tumor.registration import mni_view_affine, register_to_mni

    o = _opts(options)
    s = _patient_segmentation(seg, seg_name, o["labels"])
    vol, aff = read_volume(image, image_name)
    if vol.ndim != 3 or min(vol.shape) < 8:
        raise InputError(f"{image_name}: expected a 3-D anatomical volume, got shape {vol.shape}")
    if abs(np.linalg.det(aff[:3, :3])) < 1e-9 or not np.all(np.isfinite(aff)):
        raise InputError(f"{image_name} has an invalid (singular or non-finite) affine")
    reg = register_to_mni(vol, aff, progress=progress)
    summary = reg.summary()
    if not reg.passed:
        raise InputError(
            f"registration of {image_name} to MNI152 2009 failed its quality check (brain-mask "
            f"Dice {reg.dice_brain:.2f} < {reg.min_dice:.2f}, NMI {reg.nmi:.3f}); is it a "
            "skull-stripped brain MRI?"
        )
    view = mni_view_affine(reg.to_patient, s["affine"])
    p = problem_from_masks(
        s["wt"],
        s["tc"],
        view,
        s["shape"],
        o["grid"],
        name=seg_name,
        preset=s["preset"],
        filename=seg_name,
    )
    summary["image"] = image_name
    summary["modality"] = modality
    summary["overlay"] = _overlay_slices(reg, p)
    meta = dict(p.meta)
    meta.update(
        description=f"{seg_name} in patient space, registered to MNI152 2009 through {image_name}",
        source="upload (patient space)",
        registration=summary,
        patient_affine=np.asarray(s["affine"]).tolist(),
        input_shape=[int(x) for x in s["shape"]],
        notices=[n for n in meta.get("notices", []) if "registered to MNI152" not in n],
    )
    return TumorProblem(
        name=seg_name,
        wt=p.wt,
        tc=p.tc,
        affine=p.affine,
        grid_n=p.grid_n,
        input_affine=view,
        meta=meta,
    )


def _patient_segmentation(data: bytes, filename: str, labels: str) -> dict[str, Any]:
    """A label image on any grid (BraTS' 240 x 240 x 155 SRI24 included: here it is registered)."""
    from workbench.io.tumor_nifti import labels_to_masks, read_nifti

    img = read_nifti(data, filename)
    shape = tuple(int(x) for x in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3 or min(shape) < 2:
        raise InputError(f"{filename} must be a 3-D label image, got shape {tuple(img.shape)}")
    aff = np.asarray(img.affine, np.float64)
    if not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        raise InputError(f"{filename} has an invalid (singular or non-finite) affine")
    try:
        v = np.asarray(img.dataobj).reshape(shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on truncated data
        raise InputError(f"{filename}: cannot read the voxel data ({type(exc).__name__})") from None
    if v.dtype.kind not in "biuf":
        raise InputError(f"{filename} must hold numeric labels, got dtype {v.dtype}")
    if v.dtype.kind == "f" and (not np.all(np.isfinite(v)) or not np.all(v == np.round(v))):
        raise InputError(f"{filename} must hold integer labels (no NaN, no fractions)")
    wt, tc, preset = labels_to_masks(v.astype(np.int64), labels, filename)
    return {"wt": wt, "tc": tc, "affine": aff, "shape": shape, "preset": preset}


def _overlay_slices(reg, problem: TumorProblem) -> dict[str, Any]:
    """Three orthogonal slices of the registered image and the template through the tumour's
    centre, on the registration grid (kept in ``meta`` so the overlay needs no other data)."""
    c = (
        np.argwhere(problem.wt > 0).mean(axis=0)
        if problem.wt.any()
        else np.array(problem.wt.shape) / 2
    )
    xyz = problem.affine[:3, :3] @ c + problem.affine[:3, 3]
    ijk = np.linalg.inv(reg.grid_affine) @ np.r_[xyz, 1.0]
    ijk = [
        int(np.clip(round(v), 0, n - 1)) for v, n in zip(ijk[:3], reg.template.shape, strict=True)
    ]
    out: dict[str, Any] = {"index": ijk, "grid_affine": np.asarray(reg.grid_affine).tolist()}
    for name, vol in (("template", reg.template), ("moved", reg.moved)):
        out[name] = [
            np.round(vol[ijk[0], :, :], 3).tolist(),
            np.round(vol[:, ijk[1], :], 3).tolist(),
            np.round(vol[:, :, ijk[2]], 3).tolist(),
        ]
    return out


def load_case(files: dict[str, bytes], archive_name: str = "case", **options: Any) -> TumorProblem:
    """A BraTS-named case (``{file name: bytes}``, from a folder or a zip) -> :func:`load_patient`."""
    try:
        seg, img, modality = pick_case_files(files)
    except InputError as exc:
        raise InputError(f"{archive_name}: {exc}") from None
    return load_patient(files[seg], seg, files[img], img, modality=modality, **options)


def evaluate(problem: TumorProblem, result) -> dict[str, float]:
    """Errors against the synthetic ground truth: |log(q_hat/q)| for sqrt(DT), rho T, sqrt(D/rho),
    the seed error (mm), and Dice of the prediction against the noise-free truth masks."""
    truth = problem.meta.get("truth")
    out: dict[str, float] = {}
    if not truth:
        return out
    m = result.metrics
    for q in ("ell_mm", "mu", "lambda_mm"):
        if q in m and m[q] > 0:
            out[f"err_log_{q}"] = abs(math.log(m[q] / truth[q]))
        if f"agg_{q}" in m and m[f"agg_{q}"] > 0:
            out[f"err_log_{q}_topk"] = abs(math.log(m[f"agg_{q}"] / truth[q]))
    s = result.extras.get("seed_mm")
    if s is not None:
        out["seed_err_mm"] = float(np.linalg.norm(np.asarray(s) - np.asarray(truth["seed_mm"])))
    if "agg_seed_x_mm" in m:
        a = np.array([m["agg_seed_x_mm"], m["agg_seed_y_mm"], m["agg_seed_z_mm"]])
        out["seed_err_mm_topk"] = float(np.linalg.norm(a - np.asarray(truth["seed_mm"])))
    if problem.truth_density is not None and result.output.shape == problem.truth_density.shape:
        from workbench.physics.tumor.metrics import dice

        u = result.output
        td = problem.truth_density
        out["dice_truth_edema"] = dice(u >= 0.25, td >= truth["theta_wt"])
        out["dice_truth_core"] = dice(u >= 0.675, td >= truth["theta_tc"])
    return out


SAMPLES = (
    Sample(
        "synthetic_small", "synthetic patient simulated on the working grid (quick)", sample_small
    ),
    Sample(
        "synthetic_fine_96",
        "synthetic patient simulated at 96^3, thresholds 0.2/0.6, dilated masks",
        sample_fine,
    ),
    Sample(
        "synthetic_mismatch_R20",
        "synthetic patient with R = 20 (the database assumes 10)",
        sample_mismatch,
    ),
)

DOMAIN = DomainSpec(
    name="tumor",
    title="Tumour growth",
    problem_type=TumorProblem,
    key_metric="dice_truth_edema",
    samples=SAMPLES,
    evaluate=evaluate,
    figure="workbench.viz.tumor:result_figure",
    compare_figure="workbench.viz.tumor:compare_figure",
    description=(
        "Glioma segmentation (WT = FLAIR abnormality, TC = T1-Gd core) on the MNI152 2009 atlas -> "
        "Fisher-Kolmogorov growth parameters sqrt(D T), rho T, sqrt(D/rho) and the seed, by lookup in a "
        "database of precomputed simulations (Ezhov et al., ML4H 2022) or by CMA-ES. Inputs are on MNI152 "
        "2009, or in the patient's space with one anatomical image (a .zip or folder, BraTS naming), "
        "registered affinely to the atlas; multi-compartment models, DTI and PET are out of scope."
    ),
    load=load,
    upload_types=("nii", "gz", "npz", "npy", "zip"),
    Options=Options,
    commands={
        "build-db": "workbench.solvers.tumor.build:build_db_main",
        "export": "workbench.io.tumor_export:export_main",
    },
)
