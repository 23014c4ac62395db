"""Acquisition physics of Cartesian multi-coil MRI: simulate and undersample k-space, build problems.

The forward measurement ``y = M ⊙ (F(S x) + n)`` of ``specs/mri.md`` §1 and §9: a smooth random
phase (2nd-order polynomial, max |φ| = π/2), birdcage coils with Σ|S|² = 1, circular complex noise
σ = σ_rel·max|x|, a seeded mask, and coil maps estimated from the ACS (or the simulation's own).
Shared by the bundled samples (``datasets``), the readers (``io``) and training (``train``).
"""

from __future__ import annotations

import math

import numpy as np

from workbench.errors import InputError
from workbench.problems import MRIProblem

N_COILS = 8


def resize_image(img: np.ndarray, n: int) -> np.ndarray:
    """Anti-aliased bilinear resize of a 2-D image to n x n (float32)."""
    from skimage.transform import resize

    return resize(img, (n, n), anti_aliasing=True, order=1, mode="reflect").astype(np.float32)


def smooth_phase(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random 2nd-order polynomial phase in (x, y) ∈ [−1, 1]², scaled to max |φ| = π/2."""
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    c = rng.normal(size=6)
    phi = c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y
    return (phi * (math.pi / 2) / max(np.abs(phi).max(), 1e-12)).astype(np.float64)


def simulate_kspace(
    mag: np.ndarray,
    maps: np.ndarray,
    sigma_rel: float,
    rng: np.random.Generator,
    phase: bool = True,
):
    """Fully sampled noisy k-space ``k = F(S x) + n`` of one image.

    Returns ``(kspace (C, H, W) complex64, x (H, W) complex64, sigma)``.
    """
    from workbench.physics.mri.cfft import fft2c

    h, w = mag.shape
    x = mag.astype(np.complex128)
    if phase:
        x = x * np.exp(1j * smooth_phase(rng, h, w))
    sigma = float(sigma_rel) * float(np.abs(x).max())
    k = fft2c(maps.astype(np.complex128) * x[None])
    noise = rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)
    k = k + noise * (sigma / math.sqrt(2))
    return k.astype(np.complex64), x.astype(np.complex64), sigma


def sense_combine(kspace: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """``Σ_c conj(S_c) F⁻¹ k_c`` for ``(..., C, H, W)`` arrays."""
    from workbench.physics.mri.coils import coil_images

    return (np.conj(maps) * coil_images(kspace)).sum(-3)


def rss_full(kspace: np.ndarray) -> np.ndarray:
    from workbench.physics.mri.coils import coil_images

    return np.sqrt((np.abs(coil_images(kspace)) ** 2).sum(-3)).astype(np.float32)


# largest |k| accepted: a coil image sums up to H·W samples and its RSS squares it, so 1e15 keeps
# every intermediate below float32's 3.4e38 for matrices up to 10⁴ × 10⁴; scanners write 1e-6-1e6
MAX_KSPACE = 1e15


def build_problem(
    kspace_full: np.ndarray | None,
    *,
    name: str,
    mask: str = "equispaced",
    acceleration: float = 4.0,
    center_fraction: float = 0.08,
    seed: int = 0,
    maps: str = "auto",
    true_maps: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    reference_kind: str = "",
    noise_sigma: float = 0.0,
    recon_size: tuple[int, int] | None = None,
    measured: tuple[np.ndarray, np.ndarray] | None = None,
    band: tuple[int, int] | None = None,
    meta: dict | None = None,
) -> MRIProblem:
    """Apply a mask to fully sampled k-space ``(S, C, H, W)``, estimate maps, build the problem.

    ``measured=(kspace, mask)`` skips the masking (the file is already undersampled).
    ``band=(left, right)`` zeroes columns outside the acquired band of a fastMRI header.
    ``maps="auto"`` picks ESPIRiT or ACS-RSS from the calibration region
    (:func:`~workbench.physics.mri.coils.choose_maps`) and records why in ``meta["maps_reason"]``.
    """
    from workbench.physics.mri.coils import estimate_maps
    from workbench.physics.mri.masks import make_mask
    from workbench.physics.mri.metrics import center_crop

    meta = dict(meta or {})
    data = measured[0] if measured is not None else kspace_full
    peak = float(np.abs(data).max()) if data is not None and data.size else 0.0
    if not np.isfinite(peak):  # every reader passes here; its own FFTs (oversampling) can overflow
        raise InputError(f"{name}: k-space contains NaN or infinite values")
    if peak > MAX_KSPACE:
        # squares and FFT sums of such values overflow float32 (the solvers' precision) to inf
        raise InputError(
            f"{name}: k-space magnitudes up to {peak:.3g} overflow single precision; "
            f"rescale the data below {MAX_KSPACE:.0e}"
        )
    if measured is not None:
        y, m2 = measured
        m2 = np.asarray(m2, np.float32)
        s, c, h, w = y.shape
        meta.update(mask="file", acceleration=float(m2.size / max(m2.sum(), 1)))
    else:
        assert kspace_full is not None
        s, c, h, w = kspace_full.shape
        if mask == "none":
            m2 = np.ones((h, w), np.float32)
            meta.update(mask="none", acceleration=1.0)
        else:
            mk = make_mask(mask, (h, w), acceleration, center_fraction, seed)
            m2 = mk.array
            meta.update(
                mask=mask,
                acceleration=float(acceleration),
                center_fraction=float(center_fraction),
                seed=int(seed),
                effective_acceleration=mk.effective_acceleration,
                sampled_fraction=mk.fraction,
                n_acs=mk.n_acs,
                mask_description=mk.describe(),
            )
        if band is not None:
            m2 = m2.copy()
            m2[:, : band[0]] = 0
            m2[:, band[1] :] = 0
        y = (kspace_full * m2[None, None]).astype(np.complex64)
    if maps == "auto" and c > 1:
        from workbench.physics.mri.coils import choose_maps

        maps, meta["maps_reason"] = choose_maps(m2)
        meta["maps_choice"] = "auto"
    if maps == "true":
        if true_maps is None:
            raise InputError("true maps exist only for simulated data; use acs_rss or espirit")
        S = np.broadcast_to(true_maps, y.shape).astype(np.complex64)
    elif c == 1:
        S = np.ones_like(y)
        maps = "unit"
    else:
        S = estimate_maps(y, m2, maps)
    if reference is None and kspace_full is not None:
        reference = center_crop(rss_full(kspace_full), recon_size)
        reference_kind = "rss_full"
    meta.setdefault("source", name)
    return MRIProblem(
        name=name,
        kspace=np.ascontiguousarray(y, np.complex64),
        mask=np.ascontiguousarray(m2, np.float32),
        maps=np.ascontiguousarray(S, np.complex64),
        reference=None if reference is None else np.ascontiguousarray(reference, np.float32),
        reference_kind=reference_kind,
        maps_source=maps,
        noise_sigma=float(noise_sigma),
        recon_size=None if recon_size is None else (int(recon_size[0]), int(recon_size[1])),
        meta=meta,
    )


def simulate_problem(
    images: np.ndarray,
    *,
    name: str,
    slice_seeds,
    sigma_rel: float = 0.005,
    n_coils: int = N_COILS,
    source: str = "",
    **opts,
) -> MRIProblem:
    """Simulate multi-coil k-space for magnitude images ``(S, N, N)`` and build the problem."""
    from workbench.physics.mri.coils import birdcage

    if sigma_rel == 0:
        opts.setdefault("meta", {})["warning"] = (
            "noise-free simulation: an inverse crime with true maps"
        )
    s, h, w = images.shape
    maps = birdcage(n_coils, h, w)
    ks, refs, sig = [], [], 0.0
    for i in range(s):
        rng = np.random.default_rng([int(slice_seeds[i]), 20240531])
        k, _, sig = simulate_kspace(images[i], maps, sigma_rel, rng)
        ks.append(k)
        refs.append(np.abs(sense_combine(k, maps)))
    kfull = np.stack(ks)
    meta = opts.pop("meta", {})
    meta.update(
        source=source or name,
        sigma_rel=float(sigma_rel),
        n_coils=n_coils,
        coil_model="birdcage r=1.5",
    )
    return build_problem(
        kfull,
        name=name,
        true_maps=np.broadcast_to(maps, kfull.shape),
        reference=np.stack(refs).astype(np.float32),
        reference_kind="sense_noisy_full",
        noise_sigma=sig,
        meta=meta,
        **opts,
    )


ACQUISITION_KEYS = ("mask", "acceleration", "center_fraction", "seed", "maps")


def acquisition_options(o: dict) -> dict:
    """The acquisition keys of a problem's options (mask design and coil maps)."""
    return {k: o[k] for k in ACQUISITION_KEYS}
