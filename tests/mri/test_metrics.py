"""Metric conventions on fixed arrays (spec M12)."""

import numpy as np
import pytest

from workbench.physics.mri.metrics import METRICS, cc_psnr, nmse, psnr, ssim


def test_fastmri_psnr_uses_volume_max():
    gt = np.stack([np.full((8, 8), 2.0), np.full((8, 8), 1.0)])
    pred = gt.copy()
    pred[1] += 0.1
    mse = 0.01 / 2
    assert psnr(gt, pred) == pytest.approx(10 * np.log10(4.0 / mse), abs=1e-6)
    assert nmse(gt, pred) == pytest.approx(64 * 0.01 / (64 * 4 + 64 * 1), abs=1e-9)


def test_cc_psnr_per_slice_normalised():
    gt = np.stack([np.full((8, 8), 2.0), np.full((8, 8), 1.0)])
    gt[:, 0, 0] = 0
    pred = gt * 1.1
    # each slice: g/max in [0, 1], p = 1.1 g/max, range = 1.1, mse = 0.01*mean(g_n^2)
    vals = []
    for g, p in zip(gt, pred, strict=True):
        gn, pn = g / g.max(), p / g.max()
        vals.append(10 * np.log10(1.1**2 / np.mean((gn - pn) ** 2)))
    assert cc_psnr(gt, pred) == pytest.approx(np.mean(vals), abs=1e-6)
    assert cc_psnr(gt, pred) != pytest.approx(psnr(gt, pred))


def test_ssim_identity_and_dict():
    rng = np.random.default_rng(0)
    gt = rng.uniform(size=(2, 16, 16))
    assert ssim(gt, gt) == pytest.approx(1.0)
    assert set(METRICS) == {"psnr", "ssim", "nmse", "cc_psnr", "cc_ssim"}
