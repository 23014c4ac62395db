"""Classical baselines improve on zero-filled; Result/Progress contract; domain plumbing."""

import numpy as np
import pytest

from workbench.datasets.mri import DOMAIN, evaluate
from workbench.progress import Progress
from workbench.solvers.mri import cg_sense, l1_wavelet, sense_adj, tv, zero_filled


@pytest.fixture(scope="module")
def problem():
    return DOMAIN.sample("mni_slice", maps="true")


@pytest.fixture(scope="module")
def zf_psnr(problem):
    return evaluate(problem, zero_filled.solve(problem))["psnr"]


@pytest.mark.parametrize(
    "mod,kw", [(cg_sense, {}), (l1_wavelet, {"max_iter": 40}), (tv, {"max_iter": 80})]
)
def test_baseline_improves_on_zero_filled(problem, zf_psnr, mod, kw):
    r = mod.solve(problem, mod.Params(**kw))
    m = evaluate(problem, r)
    assert m["psnr"] > zf_psnr + 1.0, (mod.SPEC.name, m, zf_psnr)
    assert r.output.shape == (1, 64, 64) and r.output.dtype == np.float32
    assert len(set(len(v) for v in r.history.values())) == 1


@pytest.mark.parametrize("mod", [cg_sense, l1_wavelet, tv])
def test_cancel_equals_max_iter(problem, mod):
    a = mod.solve(problem, mod.Params(max_iter=3))
    b = mod.solve(problem, mod.Params(max_iter=20), Progress(cancel_after=3))
    assert b.status == "cancelled" and b.iterations == 3
    np.testing.assert_array_equal(a.output, b.output)
    c = mod.solve(problem, mod.Params(max_iter=3))
    np.testing.assert_array_equal(a.output, c.output)


def test_acs_maps_baselines_beat_zero_filled():
    p = DOMAIN.sample("mni_slice")  # acs_rss maps
    zf = evaluate(p, zero_filled.solve(p))["psnr"]
    assert evaluate(p, l1_wavelet.solve(p, l1_wavelet.Params(max_iter=40)))["psnr"] > zf + 1.0
    assert evaluate(p, sense_adj.solve(p))["psnr"] > zf - 0.5


def test_zero_filled_fully_sampled_equals_reference_rss():
    p = DOMAIN.sample("mni_slice", mask="none", maps="true")
    out = zero_filled.solve(p).output
    # noisy SENSE reference vs RSS of the same noisy data: equal up to noise
    assert evaluate(p, zero_filled.solve(p))["psnr"] > 38
    assert out.shape == p.reference.shape


def test_options_and_samples_roundtrip():
    o = DOMAIN.options(
        {"mask": "random", "acceleration": "8", "center_fraction": "0.04", "seed": "2"}
    )
    p = DOMAIN.sample("mni_slice", **o)
    assert p.meta["mask"] == "random" and p.meta["acceleration"] == 8
    assert p.kspace.shape == (1, 8, 64, 64) and p.kspace.dtype == np.complex64
    from workbench.problems import MRIProblem

    q = MRIProblem.from_arrays(p.to_arrays())
    assert q.id == p.id
    assert DOMAIN.sample("mni_slice", **o).id == p.id


def test_phantom_sample_no_inverse_crime():
    p = DOMAIN.sample("phantom_analytic", size=64)
    zf = evaluate(p, zero_filled.solve(p))
    cs = evaluate(p, l1_wavelet.solve(p, l1_wavelet.Params(max_iter=40)))
    assert cs["psnr"] > zf["psnr"]
    assert p.reference_kind == "rss_full"
