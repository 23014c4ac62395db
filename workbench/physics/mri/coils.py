"""Coil sensitivity maps (``specs/mri.md`` §3): birdcage simulation, ACS-RSS and ESPIRiT estimates.

All maps are normalised so that ``Σ_c |S_c(r)|² = 1`` wherever they are non-zero. ESPIRiT maps are
zero outside the object support and are defined up to a pixel-wise phase common to all coils.
"""

from __future__ import annotations

import sys

import numpy as np

from workbench.errors import InputError
from workbench.physics.mri import cfft

MAP_SOURCES = ("auto", "acs_rss", "espirit", "true", "birdcage", "unit")
# ESPIRiT needs this many fully sampled lines (kernel width 6 + 4): with fewer, the calibration
# matrix has too few patches to separate the signal subspace from noise
ESPIRIT_MIN_ACS = 10


def _is_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (a tensor implies it is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def normalize_maps(maps, eps: float = 1e-12):
    """Scale maps pixel-wise so that ``Σ_c |S_c|² = 1`` where they are non-zero (numpy or torch)."""
    if _is_tensor(maps):
        import torch

        nrm = torch.sqrt((maps.abs() ** 2).sum(-3, keepdim=True))
        return torch.where(nrm > eps, maps / nrm.clamp_min(eps), torch.zeros_like(maps))
    nrm = np.sqrt((np.abs(maps) ** 2).sum(-3, keepdims=True))
    return np.where(nrm > eps, maps / np.maximum(nrm, eps), 0).astype(maps.dtype)


def birdcage(n_coils: int, h: int, w: int, r: float = 1.5, dtype=np.complex64) -> np.ndarray:
    """Simulated birdcage coil maps ``(C, H, W)``: coils on a circle of radius ``r`` (FOV units).

    Each coil's field falls as 1/distance and its phase turns with the azimuth around the coil, the
    model sigpy's ``birdcage_maps`` uses; the result is normalised so that ``Σ|S|² = 1``.
    """
    c = np.arange(n_coils)[:, None, None]
    y = (np.arange(h)[None, :, None] - h / 2.0) / (h / 2.0)
    x = (np.arange(w)[None, None, :] - w / 2.0) / (w / 2.0)
    ang = 2 * np.pi * c / n_coils
    dx = x - r * np.cos(ang)
    dy = y - r * np.sin(ang)
    dist = np.sqrt(dx**2 + dy**2)
    phase = np.arctan2(dx, -dy) - ang
    maps = np.exp(1j * phase) / dist
    return normalize_maps(maps.astype(np.complex128)).astype(dtype)


def acs_region(mask2d: np.ndarray) -> tuple[slice, slice]:
    """Fully sampled calibration box around the k-space centre of a binary (H, W) mask."""
    m = np.asarray(mask2d) > 0
    h, w = m.shape
    if not m[h // 2, w // 2]:
        return slice(h // 2, h // 2), slice(w // 2, w // 2)
    row = m[h // 2]
    c0 = w // 2
    while c0 > 0 and row[c0 - 1]:
        c0 -= 1
    c1 = w // 2 + 1
    while c1 < w and row[c1]:
        c1 += 1
    full = m[:, c0:c1].all(1)
    r0 = h // 2
    while r0 > 0 and full[r0 - 1]:
        r0 -= 1
    r1 = h // 2 + 1
    while r1 < h and full[r1]:
        r1 += 1
    best = (r0, r1, c0, c1)
    # 2-D masks: the largest centred fully sampled square (fastMRI-style placement)
    sq = 0
    for n in range(1, min(h, w) + 1):
        p, q = (h - n + 1) // 2, (w - n + 1) // 2
        if not m[p : p + n, q : q + n].all():
            break
        sq = n
    if sq * sq > (r1 - r0) * (c1 - c0):
        p, q = (h - sq + 1) // 2, (w - sq + 1) // 2
        best = (p, p + sq, q, q + sq)
    return slice(best[0], best[1]), slice(best[2], best[3])


def acs_rss(kspace, mask, sigma: float | None = None):
    """ACS-RSS maps (DIRECT's ``rss_estimate``): low-resolution coil images over their RSS.

    Parameters
    ----------
    kspace : Tensor or ndarray (N, C, H, W) complex
        Masked k-space. NumPy in, NumPy out (no torch import); a tensor keeps its device.
    mask : Tensor or ndarray broadcastable to (N, 1, H, W)
        Sampling mask; its fully sampled centre box is the ACS.
    sigma : float, optional
        Width of an optional Gaussian window ``exp(−(u/σ)²)`` along W, u ∈ [−1, 1].

    Returns
    -------
    (N, C, H, W) maps with ``Σ|S|² = 1`` where the low-resolution RSS is non-zero.
    """
    n, c, h, w = kspace.shape
    if not _is_tensor(kspace):
        m = np.asarray(mask)
        m = m.reshape(-1, h, w) if m.ndim >= 2 else np.broadcast_to(m.reshape(1, 1, w), (1, h, w))
        win = np.zeros((m.shape[0], 1, h, w), dtype=kspace.real.dtype)
        for i in range(m.shape[0]):
            rs, cs = acs_region(m[i])
            win[i, 0, rs, cs] = 1.0
        if sigma is not None:
            u = np.linspace(-1, 1, w, dtype=win.dtype)
            win = win * np.exp(-((u / sigma) ** 2))
        return normalize_maps(cfft.ifft2c(kspace * win))
    import torch

    from workbench.physics.mri.fft import ifft2c

    m = torch.as_tensor(mask)
    m = m.reshape(-1, h, w) if m.ndim >= 2 else m.view(1, 1, w).expand(1, h, w)
    win = torch.zeros(m.shape[0], 1, h, w, dtype=kspace.real.dtype, device=kspace.device)
    for i in range(m.shape[0]):
        rs, cs = acs_region(m[i].detach().cpu().numpy())
        win[i, 0, rs, cs] = 1.0
    if sigma is not None:
        u = torch.linspace(-1, 1, w, dtype=win.dtype, device=win.device)
        win = win * torch.exp(-((u / sigma) ** 2))
    img = ifft2c(kspace * win)
    return normalize_maps(img)


def espirit_kernel_width(n_calib: int, largest: int = 6) -> int:
    """ESPIRiT kernel width for an ``n_calib``-line calibration region: ``min(largest, ⌊n/2⌋)``.

    The kernel must fit at least twice across the calibration width: with a 6-wide kernel in a
    10-line region only 5 shifts span each row of the calibration matrix, the estimated null space
    is too small, and the top eigenvalue falls below the crop threshold inside the object — the
    maps then cut away 1–14 % of the object on the corpus's validation slices at 4× (10 lines),
    which costs every classical reconstruction 1–27 dB. At ``⌊n/2⌋`` (5 for 10 lines) the whole
    object is kept; 24-line regions keep Uecker et al.'s 6.
    """
    return int(max(3, min(largest, n_calib // 2)))


def espirit(
    kspace: np.ndarray,
    mask2d: np.ndarray,
    calib_width: int = 24,
    kernel_width: int | None = None,
    thresh: float = 0.02,
    crop: float = 0.95,
) -> np.ndarray:
    """ESPIRiT maps (Uecker et al., MRM 2014) for one slice, own implementation.

    1. Calibration block: the fully sampled centre box, at most ``calib_width`` wide in each axis.
       The kernel is ``k × k`` with ``k = min(6, ⌊n/2⌋)`` for an ``n``-line calibration region
       unless ``kernel_width`` is given (see :func:`espirit_kernel_width`).
    2. Hankel (block) matrix of all ``k × k`` patches over coils; keep the right singular vectors
       whose singular value exceeds ``thresh · σ_max`` (the signal subspace).
    3. Zero-pad each kernel to (H, W) and go to the image domain; at every pixel the C × C matrix
       ``G(r) = Σ_v g_v(r) g_v(r)^H`` has an eigenvalue ≈ 1 whose eigenvector is the map.
    4. Keep pixels whose top eigenvalue exceeds ``crop``; align the phase to a virtual body
       coil (the coil combination with the largest total energy), which is smooth.

    Parameters
    ----------
    kspace : ndarray (C, H, W) complex
    mask2d : ndarray (H, W)

    Returns
    -------
    ndarray (C, H, W) complex64, ``Σ|S|² = 1`` inside the support and 0 outside.

    Raises
    ------
    InputError
        When the calibration region is not wider than the kernel.
    """
    c, h, w = kspace.shape
    rs, cs = acs_region(mask2d)
    ny, nx = rs.stop - rs.start, cs.stop - cs.start
    cy, cx = min(ny, calib_width), min(nx, calib_width)
    # an explicit kernel need only fit once (sigpy's rule); the adaptive one fits twice
    fits = 1 if kernel_width is not None else 2
    if kernel_width is None:
        kernel_width = espirit_kernel_width(min(cy, cx))
    if min(cy, cx) < fits * kernel_width + (fits == 1):
        raise InputError(
            f"ESPIRiT needs a calibration region of at least {fits * kernel_width + (fits == 1)} "
            f"lines for its {kernel_width}×{kernel_width} kernel; this mask has {min(ny, nx)} "
            "fully sampled lines — use acs_rss maps or a larger centre fraction"
        )
    y0 = h // 2 - cy // 2
    x0 = w // 2 - cx // 2
    y0 = min(max(y0, rs.start), rs.stop - cy)
    x0 = min(max(x0, cs.start), cs.stop - cx)
    calib = np.asarray(kspace[:, y0 : y0 + cy, x0 : x0 + cx], dtype=np.complex128)
    k = kernel_width
    win = np.lib.stride_tricks.sliding_window_view(calib, (k, k), axis=(1, 2))  # (C, py, px, k, k)
    mat = win.transpose(1, 2, 0, 3, 4).reshape(-1, c * k * k)
    _, s, vh = np.linalg.svd(mat, full_matrices=False)
    vh = vh[s > thresh * s.max()]
    kernels = vh.reshape(-1, c, k, k)
    # image-domain kernels: zero-pad centred, inverse centred FFT
    pad = np.zeros((kernels.shape[0], c, h, w), np.complex128)
    py0, px0 = h // 2 - k // 2, w // 2 - k // 2
    pad[:, :, py0 : py0 + k, px0 : px0 + k] = kernels
    g = cfft.ifft2c(pad.astype(np.complex64)) * np.float32(np.sqrt(h * w) / k)  # (V, C, H, W)
    # G(r) = Σ_v conj(g_v) g_v^T  (C×C per pixel), Hermitian PSD; batched matmul over pixels
    gv = g.reshape(g.shape[0], c, h * w).transpose(2, 0, 1)  # (P, V, C)
    G = np.matmul(gv.conj().transpose(0, 2, 1), gv)  # (P, C, C)
    evals, evecs = np.linalg.eigh(G)
    top = evals[:, -1]
    vec = evecs[:, :, -1].astype(np.complex128)  # (P, C)
    # eigh of conj-symmetric G with this ordering gives conj of the map; take conj
    maps = vec.conj().T.reshape(c, h, w)
    maps = maps * (top.reshape(h, w) > crop)[None]
    # the eigenvectors carry an arbitrary phase per pixel: align it to a virtual body coil, the
    # coil combination v that maximises Σ_r |v^H S(r)|² (top eigenvector of Σ_r S(r) S(r)^H;
    # Buehrer et al., MRM 57:1131, 2007). Its phase is smooth wherever the object is, where the
    # phase of a single coil (the first, say) wraps far from that coil — a rough image phase
    # that wavelet and TV priors on the complex image would then have to pay for.
    flat = maps.reshape(c, -1)
    _, vecs = np.linalg.eigh(flat @ flat.conj().T)
    ref = vecs[:, -1].conj() @ flat  # v^H S(r)
    maps = maps * np.exp(-1j * np.angle(ref)).reshape(h, w)[None]
    return normalize_maps(maps).astype(np.complex64)


def choose_maps(mask: np.ndarray, kernel_width: int | None = None) -> tuple[str, str]:
    """The map estimate for data sampled with ``mask`` ((H, W), or (S, H, W): the smallest
    calibration region decides) and the reason, for the result to show.

    ESPIRiT when the fully sampled calibration box is at least ``ESPIRIT_MIN_ACS`` lines in both
    directions (and twice a given ``kernel_width``; by default the kernel adapts to the region,
    :func:`espirit_kernel_width`): its maps vanish outside the object, a support constraint that
    keeps background noise out of every classical reconstruction. ACS-RSS otherwise: it needs no
    minimum calibration size.
    """
    m = np.asarray(mask)
    m = m.reshape(-1, *m.shape[-2:])
    need = ESPIRIT_MIN_ACS if kernel_width is None else max(ESPIRIT_MIN_ACS, 2 * kernel_width)
    n = h = w = 0
    for i in range(m.shape[0]):
        rs, cs = acs_region(m[i])
        ny, nx = rs.stop - rs.start, cs.stop - cs.start
        if i == 0 or min(ny, nx) < n:
            n, h, w = min(ny, nx), ny, nx
    if n >= need:
        k = kernel_width or espirit_kernel_width(min(n, 24))
        return "espirit", (
            f"ESPIRiT (kernel {k}×{k}): the calibration region is {h}×{w} fully sampled points "
            f"(≥ {need} lines needed); its maps vanish outside the object, which keeps background "
            "noise out"
        )
    return "acs_rss", (
        f"ACS-RSS: the calibration region has only {n} fully sampled lines, fewer than the "
        f"{need} ESPIRiT needs"
    )


def estimate_maps(
    kspace: np.ndarray, mask: np.ndarray, method: str = "acs_rss", **kw
) -> np.ndarray:
    """Estimate maps ``(S, C, H, W)`` for every slice of ``kspace`` ``(S, C, H, W)``."""
    s, c, h, w = kspace.shape
    m = np.asarray(mask, np.float32)
    m = np.broadcast_to(m, (s, h, w)) if m.ndim == 2 else m.reshape(s, h, w)
    if method == "acs_rss":
        return acs_rss(np.asarray(kspace), np.array(m, copy=True), **kw).astype(np.complex64)
    if method == "espirit":
        return np.stack([espirit(kspace[i], m[i], **kw) for i in range(s)])
    if method == "auto":
        return estimate_maps(kspace, mask, choose_maps(m)[0], **kw)
    if method == "unit":
        if c != 1:
            raise InputError("unit maps are for single-coil data")
        return np.ones((s, 1, h, w), np.complex64)
    raise InputError(f"unknown map estimate {method!r}; available: auto, acs_rss, espirit, unit")


def coil_images(kspace: np.ndarray) -> np.ndarray:
    """Per-coil images ``F⁻¹ k`` (numpy in, numpy out)."""
    return cfft.ifft2c(kspace)


def to_kspace(coil_imgs: np.ndarray) -> np.ndarray:
    return cfft.fft2c(coil_imgs)


def birdcage_rotated(
    n_coils: int, h: int, w: int, r: float = 1.5, angle: float = 0.0, dtype=np.complex64
) -> np.ndarray:
    """Birdcage maps (see :func:`birdcage`) with the coil ring rotated by ``angle`` radians.

    The field of coil c at pixel p is ``exp(iθ_c(p)) / |p − q_c|`` with q_c on a circle of radius
    ``r`` at azimuth ``angle + 2πc/C``; normalised so that ``Σ|S|² = 1``.
    """
    c = np.arange(n_coils)[:, None, None]
    y = (np.arange(h)[None, :, None] - h / 2.0) / (h / 2.0)
    x = (np.arange(w)[None, None, :] - w / 2.0) / (w / 2.0)
    ang = angle + 2 * np.pi * c / n_coils
    dx = x - r * np.cos(ang)
    dy = y - r * np.sin(ang)
    maps = np.exp(1j * (np.arctan2(dx, -dy) - ang)) / np.sqrt(dx**2 + dy**2)
    return normalize_maps(maps.astype(np.complex128)).astype(dtype)


def surface_coils(
    centres: np.ndarray, widths: np.ndarray, h: int, w: int, dtype=np.complex64
) -> np.ndarray:
    """Gaussian-profile surface coils: ``|S_c(p)| ∝ exp(−|p − q_c|² / (2 w_c²))``.

    Parameters
    ----------
    centres : ndarray (C, 2)
        Coil centres ``(y, x)`` in FOV units, the image spanning [−1, 1]².
    widths : ndarray (C,)
        Profile widths ``w_c`` in FOV units.

    Returns
    -------
    ndarray (C, H, W), real and non-negative before normalisation to ``Σ|S|² = 1``. The
    normalisation divides by the RSS of the profiles, so far from every coil the maps keep the
    ratio of the nearest coils' tails (computed in log space so that it never underflows).
    """
    y = (np.arange(h)[None, :, None] - h / 2.0) / (h / 2.0)
    x = (np.arange(w)[None, None, :] - w / 2.0) / (w / 2.0)
    cy = np.asarray(centres, np.float64)[:, 0, None, None]
    cx = np.asarray(centres, np.float64)[:, 1, None, None]
    wd = np.asarray(widths, np.float64)[:, None, None]
    logp = -((y - cy) ** 2 + (x - cx) ** 2) / (2 * wd**2)
    logp = logp - logp.max(0, keepdims=True)  # the RSS normalisation is scale-free per pixel
    return normalize_maps(np.exp(logp).astype(np.complex128)).astype(dtype)


def smooth_coil_phase(rng: np.random.Generator, n_coils: int, h: int, w: int) -> np.ndarray:
    """Random smooth phase per coil, ``exp(iφ_c)``, φ_c a random 2nd-order polynomial in
    (y, x) ∈ [−1, 1]² with max |φ_c| drawn in [0, π]; multiplying maps by it keeps ``Σ|S|² = 1``."""
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y])  # (6, H, W)
    out = np.empty((n_coils, h, w), np.complex128)
    for c in range(n_coils):
        phi = np.tensordot(rng.normal(size=6), basis, 1)
        phi *= rng.uniform(0, np.pi) / max(np.abs(phi).max(), 1e-12)
        out[c] = np.exp(1j * phi)
    return out
