"""Image-quality metrics on magnitude volumes ``(slices, H, W)`` (``specs/mri.md`` §7).

Two conventions, never mixed in one table:

* **fastMRI** (``fastmri/evaluate.py``): NMSE = ‖gt − pred‖²/‖gt‖²; PSNR with data range = the
  volume max of gt; SSIM per slice (7×7 uniform window, K1 0.01, K2 0.03, data range = volume max),
  averaged over slices.
* **Calgary-Campinas** (``direct/functionals/challenges.py``): every slice of gt and pred is divided
  by that slice's gt max and the data range is max(gt, pred) − min(gt, pred) per slice; PSNR and
  SSIM are averaged over slices.

Examples
--------
>>> import numpy as np
>>> gt = np.ones((1, 8, 8)); pred = gt * 0.9
>>> round(METRICS["nmse"](gt, pred), 6)
0.01
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def _vol(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a[None] if a.ndim == 2 else a


def nmse(gt, pred) -> float:
    gt, pred = _vol(gt), _vol(pred)
    return float(np.linalg.norm(gt - pred) ** 2 / max(np.linalg.norm(gt) ** 2, 1e-30))


def psnr(gt, pred, maxval: float | None = None) -> float:
    """fastMRI PSNR: data range = volume max of gt."""
    gt, pred = _vol(gt), _vol(pred)
    maxval = float(gt.max()) if maxval is None else maxval
    mse = float(np.mean((gt - pred) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(maxval**2 / mse))


def ssim(gt, pred, maxval: float | None = None) -> float:
    """fastMRI SSIM: per slice, 7×7 uniform window, data range = volume max, slice mean."""
    gt, pred = _vol(gt), _vol(pred)
    maxval = float(gt.max()) if maxval is None else maxval
    vals = [
        structural_similarity(g, p, data_range=maxval, win_size=7)
        for g, p in zip(gt, pred, strict=True)
    ]
    return float(np.mean(vals))


def _cc_pairs(gt, pred):
    gt, pred = _vol(gt), _vol(pred)
    for g, p in zip(gt, pred, strict=True):
        m = float(g.max()) or 1.0
        g, p = g / m, p / m
        dr = float(max(g.max(), p.max()) - min(g.min(), p.min())) or 1.0
        yield g, p, dr


def cc_psnr(gt, pred) -> float:
    """Calgary-Campinas PSNR: per-slice gt-max normalisation and per-slice data range, slice mean."""
    vals = []
    for g, p, dr in _cc_pairs(gt, pred):
        mse = float(np.mean((g - p) ** 2))
        vals.append(float("inf") if mse == 0 else 10 * np.log10(dr**2 / mse))
    return float(np.mean(vals))


def cc_ssim(gt, pred) -> float:
    """Calgary-Campinas SSIM: per-slice normalisation and data range, slice mean."""
    return float(
        np.mean(
            [
                structural_similarity(g, p, data_range=dr, win_size=7)
                for g, p, dr in _cc_pairs(gt, pred)
            ]
        )
    )


METRICS = {"psnr": psnr, "ssim": ssim, "nmse": nmse, "cc_psnr": cc_psnr, "cc_ssim": cc_ssim}


def evaluate(gt, pred) -> dict[str, float]:
    """All metrics of :data:`METRICS` (fastMRI names plain, Calgary-Campinas with ``cc_``)."""
    return {k: f(gt, pred) for k, f in METRICS.items()}


def center_crop(x: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Centre-crop the last two axes to ``size`` (no-op when ``None`` or already that size)."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    ch, cw = min(size[0], h), min(size[1], w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return x[..., y0 : y0 + ch, x0 : x0 + cw]


def data_consistency(kspace, mask, maps, x, sigma: float = 0.0) -> dict[str, float]:
    """``‖M ⊙ F(S x) − y‖ / ‖y‖`` with ``y = M ⊙ kspace``, over all slices and coils.

    Parameters
    ----------
    kspace : ndarray (S, C, H, W) or (C, H, W) complex
    mask : ndarray broadcastable to (S, 1, H, W)
    maps : ndarray (S, C, H, W) or (C, H, W) complex
    x : ndarray (S, H, W) or (H, W) complex, in the data's units
    sigma : float
        Noise σ per k-space sample, if known.

    Returns
    -------
    dict
        ``data_residual``, and ``data_residual_noise = √(#samples)·σ/‖y‖`` when σ > 0: the
        residual that fitting the clean signal exactly would leave.

    Raises
    ------
    ValueError
        When the shapes do not fit together.
    """
    from workbench.physics.mri.cfft import fft2c

    k = np.asarray(kspace)
    k = k[None] if k.ndim == 3 else k
    s, c, h, w = k.shape
    x = np.asarray(x).reshape(-1, h, w)
    S = np.asarray(maps)
    S = S[None] if S.ndim == 3 else S
    m = np.asarray(mask, np.float32)
    m = m.reshape(-1, 1, h, w) if m.size % (h * w) == 0 else m
    m = np.broadcast_to(m, (s, 1, h, w)) if m.shape[0] in (1, s) else None
    if m is None or x.shape[0] != s or S.shape[-2:] != (h, w) or S.shape[-3] != c:
        raise ValueError("shapes of k-space, mask, maps and estimate do not fit")
    y = k * m
    pred = fft2c(np.broadcast_to(S, k.shape) * x[:, None])
    ny = float(np.linalg.norm(y)) or 1.0
    out = {"data_residual": float(np.linalg.norm(pred * m - y)) / ny}
    if sigma and sigma > 0:
        out["data_residual_noise"] = float(np.sqrt(m.sum() * c) * sigma) / ny
    return out
