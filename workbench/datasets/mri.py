"""MRI problems: simulated multi-coil k-space from bundled images, uploads, and the domain spec.

Simulation protocol (``specs/mri.md`` §9): MNI152 2009 T1 axial slices (nilearn, offline), cropped,
resized to N×N, normalised to max 1; the last 20 usable slices are the test set, the 10 before them
validation, the rest training. Each slice gets a smooth random phase (2nd-order polynomial scaled to
max |φ| = π/2), 8 birdcage coils (Σ|S|² = 1) and circular complex noise σ = σ_rel·max|x|. The
reference is the SENSE-combined magnitude of the noisy fully sampled data (``sense_noisy_full``).
Out-of-distribution images: dipy's real T1 slice and nibabel's EPI. The analytic phantom sample
evaluates Shepp-Logan ellipses' continuous Fourier transform (no inverse crime).

The MNI152 template is © McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill
University; redistributed inside nilearn under its permissive notice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from workbench.errors import InputError
from workbench.physics.mri.acquisition import (
    N_COILS,
    acquisition_options,
    build_problem,
    resize_image,
    rss_full,
    simulate_problem,
)
from workbench.problems import MRIProblem
from workbench.registry import DomainSpec, Sample, param

N_TEST, N_VAL = 20, 10
MNI_NOTICE = (
    "MNI152 2009 template: Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, "
    "Montreal Neurological Institute, McGill University (redistributed inside nilearn)."
)


# ------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------


def mni152_t1() -> np.ndarray:
    """The 1 mm MNI152 2009 T1 template that ``nilearn.datasets.load_mni152_template`` returns
    (float32, divided by its maximum), as float64, read with nibabel from the file that ships
    inside nilearn: importing ``nilearn.datasets`` pulls in scikit-learn and pandas (seconds)
    for a file read. ``tests/mri/test_mni_template.py`` checks the two agree exactly."""
    import importlib.util
    import os

    from workbench.physics.nifti import read_nifti_gz

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("nilearn is not installed: the MNI152 template ships inside it")
    base = list(spec.submodule_search_locations)[0]
    path = os.path.join(
        base, "datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    got = read_nifti_gz(path)  # without nibabel's import; the same array
    if got is None:
        import nibabel

        got = (np.asanyarray(nibabel.load(path).dataobj), None)
    data = got[0].astype(np.float32)
    data /= data.max()
    return data.astype(np.float64)


def _usable_slice(vol: np.ndarray, z: int, n: int) -> np.ndarray | None:
    """Axial slice ``z`` cropped, anterior up, resized to N×N and scaled to max 1; None when it
    holds too little brain (mean ≤ 0.05) to be a sample."""
    sl = vol[:, 10:207, z]  # 197 × 197
    if not sl.any():  # above the head: resizing zeros gives zeros, which are no sample
        return None
    sl = np.rot90(sl)  # anterior up
    img = resize_image(sl, n)
    m = float(img.max())
    if m <= 0:
        return None
    img = np.clip(img / m, 0, None)
    return img if img.mean() > 0.05 else None


_Z_RANGE = (30, 170)  # axial slices considered, bottom to top


@lru_cache(maxsize=4)
def mni_slices(n: int = 128) -> dict[str, np.ndarray]:
    """Usable MNI152 axial slices at N×N, max 1, split into ``train``/``val``/``test`` (float32)."""
    vol = mni152_t1()  # (197, 233, 189)
    out = []
    for z in range(_Z_RANGE[0], min(_Z_RANGE[1], vol.shape[2])):
        img = _usable_slice(vol, z, n)
        if img is not None:
            out.append(img)
    arr = np.stack(out).astype(np.float32)
    return {
        "train": arr[: -(N_TEST + N_VAL)],
        "val": arr[-(N_TEST + N_VAL) : -N_TEST],
        "test": arr[-N_TEST:],
    }


@lru_cache(maxsize=4)
def mni_test_slices(n: int = 128) -> np.ndarray:
    """``mni_slices(n)["test"]`` (the last ``N_TEST`` usable slices) without resizing the
    training slices: scanned from the top down until ``N_TEST`` are found. Whether a slice is
    usable depends on that slice alone, so this is the same array; a sample needs only these,
    and resizing all 140 slices was most of a zero-filled CLI call."""
    vol = mni152_t1()
    out: list[np.ndarray] = []
    for z in range(min(_Z_RANGE[1], vol.shape[2]) - 1, _Z_RANGE[0] - 1, -1):
        img = _usable_slice(vol, z, n)
        if img is not None:
            out.append(img)
            if len(out) == N_TEST:
                break
    return np.stack(out[::-1]).astype(np.float32)


def ood_dipy(n: int = 128) -> np.ndarray:
    """dipy's bundled real T1 coronal slice (256², [0, 1]) resized to N×N, max 1."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("dipy")
    if spec is None or spec.origin is None:
        raise InputError("dipy is not installed (pip install dipy) — use the EPI sample instead")
    path = os.path.join(os.path.dirname(spec.origin), "data", "files", "t1_coronal_slice.npy")
    img = np.load(path, allow_pickle=False).astype(np.float64)
    img = resize_image(np.abs(img), n)
    return (img / img.max()).astype(np.float32)


def ood_epi(n: int = 128, k: int = 0) -> np.ndarray:
    """nibabel's bundled EPI (128×96×24×2): a mid slice padded to square, resized, max 1."""
    import os

    import nibabel

    path = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", "example4d.nii.gz")
    vol = np.asarray(nibabel.load(path).dataobj, np.float64)[..., 0]
    sl = np.rot90(vol[:, :, vol.shape[2] // 2 + k])
    h, w = sl.shape
    s = max(h, w)
    sq = np.zeros((s, s))
    sq[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = sl
    img = resize_image(np.clip(sq, 0, None), n)
    return (img / img.max()).astype(np.float32)


@dataclass(frozen=True)
class Options:
    """How a problem is built from fully sampled data: the mask design, the coil maps, the noise."""

    mask: str = param(
        "equispaced",
        "undersampling pattern",
        choices=(
            "equispaced",
            "equispaced_fraction",
            "random",
            "gaussian1d",
            "poisson",
            "gaussian2d",
            "radial",
            "spiral",
            "none",
        ),
    )
    acceleration: float = param(
        4.0, "nominal acceleration R (the effective R is reported)", min=1.0, max=32.0
    )
    center_fraction: float = param(
        0.08, "fraction of fully sampled centre columns (ACS)", min=0.0, max=0.5
    )
    seed: int = param(0, "mask seed (same seed, same mask)", min=0)
    maps: str = param(
        "auto",
        "coil maps used by the classical solvers: auto (ESPIRiT when the calibration region allows it, else ACS-RSS; the reason is shown), estimated from the ACS (acs_rss, espirit) or the simulation's (true, an oracle). RecurrentVarNet computes its own, as in training.",
        choices=("auto", "acs_rss", "espirit", "true"),
    )
    sigma_rel: float = param(
        0.005,
        "simulated noise σ relative to max|x| (simulations only)",
        min=0.0,
        max=0.1,
        advanced=True,
    )
    size: int = param(
        0,
        "image size N of simulated samples (0: the sample's own size)",
        min=0,
        max=512,
        advanced=True,
    )


def _opts(options: dict) -> dict:
    from workbench.registry import params_to_dict, parse_params

    o = params_to_dict(parse_params(Options, options))
    return o


def sample_mni_slice(**options) -> MRIProblem:
    o = _opts(options)
    n = o["size"] or 64
    imgs = mni_test_slices(n)[[N_TEST // 2]]
    return simulate_problem(
        imgs,
        name=f"mni_test_slice_{n}",
        slice_seeds=[1000 + N_TEST // 2],
        sigma_rel=o["sigma_rel"],
        source="MNI152 2009 template, held-out slice",
        **acquisition_options(o),
    )


def sample_mni_slice128(**options) -> MRIProblem:
    return sample_mni_slice(**{**options, "size": options.get("size") or 128})


def sample_mni_volume(**options) -> MRIProblem:
    o = _opts(options)
    n = o["size"] or 128
    imgs = mni_test_slices(n)[::2]
    seeds = [1000 + i for i in range(0, N_TEST, 2)]
    return simulate_problem(
        imgs,
        name=f"mni_test_volume_{n}",
        slice_seeds=seeds,
        sigma_rel=o["sigma_rel"],
        source="MNI152 2009 template, 10 held-out slices",
        **acquisition_options(o),
    )


def sample_ood_dipy(**options) -> MRIProblem:
    o = _opts(options)
    o["size"] = o["size"] or 128
    img = ood_dipy(o["size"])[None]
    return simulate_problem(
        img,
        name=f"ood_dipy_t1_{o['size']}",
        slice_seeds=[5000],
        sigma_rel=o["sigma_rel"],
        source="dipy t1_coronal_slice.npy (out of distribution)",
        **acquisition_options(o),
    )


def sample_ood_epi(**options) -> MRIProblem:
    o = _opts(options)
    o["size"] = o["size"] or 128
    img = ood_epi(o["size"])[None]
    return simulate_problem(
        img,
        name=f"ood_epi_{o['size']}",
        slice_seeds=[6000],
        sigma_rel=o["sigma_rel"],
        source="nibabel example4d.nii.gz (out of distribution)",
        **acquisition_options(o),
    )


def sample_phantom_analytic(**options) -> MRIProblem:
    o = _opts(options)
    n = o["size"] or 128
    kfull, maps_true = analytic_kspace(n, N_COILS)
    rng = np.random.default_rng(7000)
    sigma = o["sigma_rel"] * float(rss_full(kfull[None]).max())
    kfull = kfull + (
        rng.normal(size=kfull.shape) + 1j * rng.normal(size=kfull.shape)
    ) * sigma / math.sqrt(2)
    kfull = kfull.astype(np.complex64)[None]
    kw = acquisition_options(o)
    if kw["maps"] == "true":
        kw["maps"] = "acs_rss"
    return build_problem(
        kfull,
        name=f"phantom_analytic_{n}",
        noise_sigma=sigma,
        meta={
            "source": "Shepp-Logan ellipses, analytic k-space with smooth analytic coils (no inverse crime)",
            "sigma_rel": o["sigma_rel"],
        },
        **kw,
    )


# ------------------------------------------------------------------------------------------
# Analytic phantom
# ------------------------------------------------------------------------------------------
# Analytic multi-coil Shepp-Logan k-space (no inverse crime).
#
# The image is a sum of ellipses on the field of view [−1, 1]²; the Fourier transform of an ellipse
# with semi-axes (a, b), rotation θ, centre (x₀, y₀) and intensity ρ is
# ``ρ·a·b·J₁(2πκ)/κ · exp(−2πi (k·r₀))`` with ``κ = √((a k′ₓ)² + (b k′ᵧ)²)`` in rotated coordinates.
# Coil sensitivities are sums of a few complex exponentials ``Σ_j a_j exp(2πi f_j·r)`` (fitted to
# birdcage maps), so ``F(S_c x)(k) = Σ_j a_j X(k − f_j)`` is exact too (Guerquin-Kern et al., 2012).
# The discrete samples follow the centred orthonormal convention: ``k_disc = X(k)·N/4``.


# (intensity, a, b, x0, y0, theta_deg): modified Shepp-Logan (Toft) with positive contrasts
ELLIPSES = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.0, -18.0),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.0, 0.35, 0.0),
    (0.1, 0.046, 0.046, 0.0, 0.1, 0.0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0.0),
    (0.1, 0.046, 0.023, -0.08, -0.605, 0.0),
    (0.1, 0.023, 0.023, 0.0, -0.606, 0.0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0.0),
)


def ellipse_ft(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Continuous FT of the phantom at frequencies (cycles per unit length); x along W, y along H."""
    from scipy.special import j1  # lazily: 0.2 s of import for the phantom sample alone

    out = np.zeros(np.broadcast(kx, ky).shape, np.complex128)
    for rho, a, b, x0, y0, th in ELLIPSES:
        t = np.deg2rad(th)
        u = kx * np.cos(t) + ky * np.sin(t)
        v = -kx * np.sin(t) + ky * np.cos(t)
        kappa = np.sqrt((a * u) ** 2 + (b * v) ** 2)
        safe = np.where(kappa < 1e-12, 1.0, kappa)
        amp = np.where(kappa < 1e-12, np.pi, j1(2 * np.pi * safe) / safe)
        out += rho * a * b * amp * np.exp(-2j * np.pi * (kx * x0 + ky * y0))
    return out


def ellipse_image(n: int) -> np.ndarray:
    """The phantom sampled at pixel centres (for display and tests)."""
    c = (np.arange(n) - n // 2) * (2.0 / n)
    y, x = np.meshgrid(-c, c, indexing="ij")
    img = np.zeros((n, n))
    for rho, a, b, x0, y0, th in ELLIPSES:
        t = np.deg2rad(th)
        xr = (x - x0) * np.cos(t) + (y - y0) * np.sin(t)
        yr = -(x - x0) * np.sin(t) + (y - y0) * np.cos(t)
        img += rho * (((xr / a) ** 2 + (yr / b) ** 2) <= 1)
    return img


def smooth_coils(n_coils: int, n_freq: int = 2, r: float = 1.5):
    """Coil maps as sums of complex exponentials: list of (coefficients, fx, fy) per coil.

    Coefficients are the least-squares fit of birdcage maps on a (2F+1)² Fourier basis.
    """
    from workbench.physics.mri.coils import birdcage

    m = 32
    bc = birdcage(n_coils, m, m, r=r).astype(np.complex128)
    c = (np.arange(m) - m // 2) * (2.0 / m)
    y, x = np.meshgrid(-c, c, indexing="ij")
    fr = np.arange(-n_freq, n_freq + 1) / 4.0  # cycles per unit (FOV 2 → up to n_freq/2 cycles)
    fx, fy = np.meshgrid(fr, fr, indexing="ij")
    fx, fy = fx.ravel(), fy.ravel()
    basis = np.exp(2j * np.pi * (x.ravel()[:, None] * fx[None] + y.ravel()[:, None] * fy[None]))
    coils = []
    for ci in range(n_coils):
        coef, *_ = np.linalg.lstsq(basis, bc[ci].ravel(), rcond=None)
        coils.append((coef, fx, fy))
    return coils


def analytic_kspace(n: int, n_coils: int = 8):
    """Fully sampled analytic k-space ``(C, N, N)`` and the (unnormalised) analytic coil maps."""
    kk = np.arange(n) - n // 2
    ky, kx = np.meshgrid(-kk / 2.0, kk / 2.0, indexing="ij")  # FOV 2 → Δk = 1/2; y axis points up
    c = (np.arange(n) - n // 2) * (2.0 / n)
    y, x = np.meshgrid(-c, c, indexing="ij")
    ks, maps = [], []
    for coef, fx, fy in smooth_coils(n_coils):
        k = np.zeros((n, n), np.complex128)
        s = np.zeros((n, n), np.complex128)
        for a, f1, f2 in zip(coef, fx, fy, strict=True):
            k += a * ellipse_ft(kx - f1, ky - f2)
            s += a * np.exp(2j * np.pi * (x * f1 + y * f2))
        ks.append(k * n / 4.0)
        maps.append(s)
    return np.stack(ks).astype(np.complex64), np.stack(maps).astype(np.complex64)


SAMPLES = (
    Sample(
        "mni_slice",
        "one held-out MNI152 T1 slice, 64², 8 birdcage coils, σ_rel 0.005 (small, fast)",
        sample_mni_slice,
    ),
    Sample("mni_slice_128", "one held-out MNI152 T1 slice, 128², 8 coils", sample_mni_slice128),
    Sample(
        "mni_volume",
        "10 held-out MNI152 T1 slices (every second of the test block), 128², 8 coils",
        sample_mni_volume,
    ),
    Sample(
        "ood_dipy",
        "out of distribution: dipy's real T1 coronal slice, 128², 8 coils",
        sample_ood_dipy,
    ),
    Sample(
        "ood_epi", "out of distribution: nibabel's EPI mid slice, 128², 8 coils", sample_ood_epi
    ),
    Sample(
        "phantom_analytic",
        "Shepp-Logan ellipses with analytic multi-coil k-space (avoids the inverse crime), 128²",
        sample_phantom_analytic,
    ),
)


# ------------------------------------------------------------------------------------------
# Uploads
# ------------------------------------------------------------------------------------------

MAX_UPLOAD_BYTES = 2 * 1024**3


def load(data: bytes, filename: str, **options) -> MRIProblem:
    """Load an uploaded file: fastMRI or ISMRMRD HDF5 (.h5, .mrd), Siemens twix (.dat), DICOM
    magnitude images (.dcm, .ima, or a .zip of a series), NIfTI magnitude (.nii/.nii.gz), NPY/NPZ
    k-space.

    Raises
    ------
    InputError
        Not the announced format, missing ``kspace``, wrong rank, non-complex, non-finite values,
        or a mask that does not fit the k-space.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError("file is larger than 2 GB")
    low = filename.lower()
    o = _opts(options)
    if low.endswith((".h5", ".hdf5", ".mrd")):
        from workbench.io.mri_ismrmrd import is_ismrmrd, problem_from_ismrmrd

        if low.endswith(".mrd") or is_ismrmrd(data, filename):
            return problem_from_ismrmrd(data, filename, o)
        from workbench.io.mri_fastmri import problem_from_h5

        return problem_from_h5(data, filename, o)
    if low.endswith(".dat"):
        from workbench.io.mri_twix import problem_from_twix

        return problem_from_twix(data, filename, o)
    if low.endswith((".dcm", ".ima", ".zip")):
        from workbench.io.mri_dicom import problem_from_dicom

        return problem_from_dicom(data, filename, o)
    if low.endswith((".nii", ".nii.gz")):
        from workbench.io.mri_nifti import problem_from_nifti

        return problem_from_nifti(data, filename, o)
    if low.endswith((".npy", ".npz")):
        from workbench.io.mri_npy import problem_from_npy

        return problem_from_npy(data, filename, o)
    raise InputError(
        f"{filename}: unsupported file type; use .h5 (fastMRI or ISMRMRD), .mrd, .dat (Siemens twix), "
        ".dcm or a .zip of a DICOM series, .nii/.nii.gz or .npy/.npz"
    )


def data_residual(problem: MRIProblem, result) -> dict[str, float]:
    """Data consistency of a result: ``‖M(F S x) − y‖ / ‖y‖`` over all slices and coils.

    ``x`` is the complex image the solver left in ``result.extras["estimate"]`` and ``S`` the
    maps it used (``extras["estimate_maps"]``, else the problem's), so every solver is judged by
    the same formula. ``data_residual_noise`` is the value pure noise would give,
    ``√(#samples)·σ/‖y‖`` (when σ is known): a consistent reconstruction sits near it, a network
    off its training distribution far above it.
    """
    from workbench.physics.mri.metrics import data_consistency

    x = (result.extras or {}).get("estimate")
    if x is None:
        return {}
    maps = (result.extras or {}).get("estimate_maps")
    maps = problem.maps if maps is None else maps
    if maps is None:
        return {}
    try:
        return data_consistency(problem.kspace, problem.mask, maps, x, problem.noise_sigma)
    except ValueError:
        return {}


LEARNED_SOLVERS = ("recurrentvarnet", "dds")
RESIDUAL_FACTOR = 2.0


def residual_warnings(
    learned: dict[str, float], cg_sense_residual: float | None, factor: float = RESIDUAL_FACTOR
) -> list[str]:
    """Warnings for learned results whose data residual ``‖M(F S x) − y‖/‖y‖`` is more than
    ``factor`` times CG-SENSE's on the same data: the network's image does not explain the
    measured k-space, the mark of data unlike its training data.

    Parameters
    ----------
    learned : dict
        Title → data residual of each learned result.
    cg_sense_residual : float or None
        CG-SENSE's residual on the same problem (its defaults).
    """
    if not cg_sense_residual or cg_sense_residual <= 0:
        return []
    out = []
    for title, r in learned.items():
        if r is not None and np.isfinite(r) and r > factor * cg_sense_residual:
            out.append(
                f"{title}: data residual ‖M(F S x) − y‖/‖y‖ = {r:.3g} is {r / cg_sense_residual:.1f}× "
                f"CG-SENSE's ({cg_sense_residual:.3g}) on the same data — its image does not explain "
                "the measured k-space; the data are probably unlike its training data, trust the "
                "classical result"
            )
    return out


def evaluate(problem: MRIProblem, result) -> dict[str, float]:
    """fastMRI (psnr, ssim, nmse) and Calgary-Campinas (cc_psnr, cc_ssim) metrics vs the
    reference, and the data-consistency residual (:func:`data_residual`) of every solver."""
    from workbench.physics.mri.metrics import center_crop
    from workbench.physics.mri.metrics import evaluate as ev

    dc = data_residual(problem, result)
    if problem.reference is None or result.output is None or result.output.size == 0:
        return dc
    out = np.asarray(result.output, np.float64)
    ref = np.asarray(problem.reference, np.float64)
    if out.ndim == 2:
        out = out[None]
    out = center_crop(out, ref.shape[-2:])
    if out.shape != ref.shape:
        return dc
    return {**ev(ref, out), **dc}


DOMAIN = DomainSpec(
    name="mri",
    title="MRI reconstruction",
    problem_type=MRIProblem,
    key_metric="psnr",
    baseline="zero_filled",
    samples=SAMPLES,
    evaluate=evaluate,
    figure="workbench.viz.mri:result_figure",
    compare_figure="workbench.viz.mri:compare_figure",
    description=(
        "Accelerated multi-coil MRI: undersampled k-space y = M ⊙ (F(S x) + n) → image x. "
        "Classical (zero-filled, CG-SENSE, L1-wavelet, TV) and learned (RecurrentVarNet) solvers. "
        "Simulated data from the MNI152 template (" + MNI_NOTICE + ")"
    ),
    load=load,
    upload_types=("h5", "hdf5", "mrd", "dat", "dcm", "ima", "zip", "nii", "gz", "npy", "npz"),
    Options=Options,
    commands={},
)
