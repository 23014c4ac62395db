"""Issue 12: data-consistency residual for every solver, per-data-set coil maps, and a learned
solver that recomputes its maps and says when data fall outside its training family."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from workbench.datasets.mri import (
    evaluate,
    residual_warnings,
    sample_mni_slice,
    sample_mni_slice128,
)
from workbench.physics.mri.coils import choose_maps
from workbench.physics.mri.masks import make_mask
from workbench.physics.mri.metrics import data_consistency

SOLVERS = ("zero_filled", "sense_adj", "cg_sense", "l1_wavelet", "tv", "recurrentvarnet")


def _solve(name, problem, **kw):
    mod = importlib.import_module(f"workbench.solvers.mri.{name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return mod.solve(problem, mod.Params(**kw))


def test_residual_of_the_truth_is_the_noise_level():
    """Planted answer: with the true image and maps, ‖M F(S x) − y‖ is the noise on the samples."""
    from workbench.datasets.mri_corpus import corpus_example

    ex = corpus_example("val", 1, size=64, accel=4.0)
    d = data_consistency(ex["kspace"], ex["mask"], ex["maps"], ex["image"], ex["sigma"])
    assert d["data_residual"] == pytest.approx(d["data_residual_noise"], rel=0.05)
    # and a wrong image is far from consistent
    bad = data_consistency(ex["kspace"], ex["mask"], ex["maps"], 0 * ex["image"], ex["sigma"])
    assert bad["data_residual"] == pytest.approx(1.0)


def test_every_solver_reports_the_residual():
    p = sample_mni_slice(size=64)
    res = {}
    for name in SOLVERS:
        r = _solve(name, p, **({"max_iter": 30} if name in ("l1_wavelet", "tv") else {}))
        m = evaluate(p, r)
        assert np.isfinite(m["data_residual"]) and m["data_residual"] > 0, name
        res[name] = m["data_residual"]
    noise = evaluate(p, _solve("cg_sense", p))["data_residual_noise"]
    # least squares fits the data better than the aliased adjoint; no solver fits much below
    # the noise (that would be fitting the noise), none is worse than the zero image. CG-SENSE's
    # validated default (40 iterations at λ = 1e-3) fits this 64² slice to 0.69× the noise level
    assert res["cg_sense"] < res["sense_adj"]
    for name in ("cg_sense", "l1_wavelet", "tv", "recurrentvarnet"):
        assert 0.6 * noise < res[name] < 1.0


def test_residual_warning_only_when_far_above_cg_sense():
    assert residual_warnings({"RVN": 0.05}, 0.03) == []
    w = residual_warnings({"RVN": 0.09}, 0.03)
    assert len(w) == 1 and "3.0×" in w[0]
    assert residual_warnings({"RVN": 0.09}, None) == []


def test_auto_maps_follow_the_calibration_region():
    wide = make_mask("equispaced", (128, 128), 4, 0.08, 0).array  # 10 ACS lines
    narrow = make_mask("equispaced", (128, 128), 8, 0.04, 0).array  # 5 ACS lines
    assert choose_maps(wide)[0] == "espirit"
    kind, why = choose_maps(narrow)
    assert kind == "acs_rss" and "5 fully sampled lines" in why
    p = sample_mni_slice128(maps="auto")
    assert p.maps_source == "espirit" and "ESPIRiT" in p.meta["maps_reason"]
    p8 = sample_mni_slice128(maps="auto", acceleration=8, center_fraction=0.04)
    assert p8.maps_source == "acs_rss" and "ACS-RSS" in p8.meta["maps_reason"]
    # ESPIRiT maps vanish outside the object (the support constraint the default relies on)
    assert (np.abs(p.maps[0]).sum(0) == 0).mean() > 0.1


def test_recurrentvarnet_recomputes_its_maps():
    """The network ignores the maps the problem carries and computes ACS-RSS maps as in training."""
    a = sample_mni_slice(size=64, maps="true")
    b = sample_mni_slice(size=64, maps="acs_rss")
    ra, rb = _solve("recurrentvarnet", a), _solve("recurrentvarnet", b)
    np.testing.assert_allclose(ra.output, rb.output, rtol=1e-5, atol=1e-6)
    assert "recomputed" in ra.extras["maps_used"]
    assert ra.extras["warnings"] == []  # 1-D equispaced 4x, 8 coils: inside the family


def test_recurrentvarnet_warns_off_its_training_family():
    from workbench.solvers.mri import recurrentvarnet as R

    p = sample_mni_slice(size=64, mask="poisson", acceleration=12, center_fraction=0.08)
    with pytest.warns(UserWarning, match="training family"):
        r = R.solve(p, R.Params())
    assert any("phase-encode columns" in w for w in r.extras["warnings"])
    assert any("effective acceleration" in w for w in r.extras["warnings"])
    assert "Off the training family" in r.message
