"""E8 loss sanity of the 3D-CVAE and determinism of inference."""

import numpy as np
import pytest
import torch

from workbench.nets import eels_cvae_fit as cvae_fit
from workbench.nets.eels_cvae import build, kl_normal, log_pi, multinomial_nll


@pytest.fixture
def model():
    return build(
        {"channels": 32, "patch": 8, "latent": 4, "widths": (4, 4, 8, 8), "bottleneck": 2}, seed=0
    )


def test_shapes_and_size():
    m = build({"channels": 336, "patch": 16, "latent": 16}, 0)
    n = sum(p.numel() for p in m.parameters())
    assert n < 2_000_000
    x = torch.zeros(2, 1, 16, 16, 336)
    out, mu, lv = m(x, sample=False)
    assert out.shape == x.shape and mu.shape == (2, 16)


def test_nll_prefers_the_true_spectrum_and_masks_padding():
    e = torch.arange(32.0)
    valid = torch.ones(32, dtype=torch.bool)
    valid[28:] = False
    true = torch.exp(-0.5 * ((e - 12) / 2) ** 2) + 0.1
    shifted = torch.exp(-0.5 * ((e - 15) / 2) ** 2) + 0.1
    counts = (1000 * true / true[valid].sum()).round().expand(1, 1, 2, 2, 32).clone()
    nll_true = multinomial_nll(torch.log(true).expand_as(counts), counts, valid)
    nll_shift = multinomial_nll(torch.log(shifted).expand_as(counts), counts, valid)
    assert float(nll_true) < float(nll_shift)
    # padded channels: neither their counts nor their logits matter
    c2 = counts.clone()
    c2[..., 28:] = 1e6
    lg = torch.log(true).expand_as(counts).clone()
    lg2 = lg.clone()
    lg2[..., 28:] = 50.0
    assert float(multinomial_nll(lg2, c2, valid)) == pytest.approx(float(nll_true), rel=1e-6)
    assert torch.allclose(log_pi(lg2, valid).exp()[..., valid].sum(-1), torch.ones(1))
    # and the NLL changes when the target spectrum changes
    assert float(multinomial_nll(lg, counts.roll(3, -1), valid)) != pytest.approx(float(nll_true))


def test_kl_nonnegative_and_zero_at_prior():
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    assert (kl_normal(mu, lv) >= 0).all()
    assert torch.allclose(kl_normal(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))


def test_gradients_nonzero(model):
    x = torch.rand(2, 1, 8, 8, 32)
    counts = torch.poisson(
        50 * torch.ones(2, 1, 8, 8, 32), generator=torch.Generator().manual_seed(1)
    )
    out, mu, lv = model(x, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(32, dtype=torch.bool)
    loss = (multinomial_nll(out, counts, valid) + kl_normal(mu, lv)).mean()
    loss.backward()
    grads = [p.grad.abs().sum().item() for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(list(model.parameters())) and all(gv > 0 for gv in grads[:-1])


def test_build_does_not_touch_global_rng_and_is_seeded():
    st = torch.random.get_rng_state().clone()
    a = build({"channels": 32, "patch": 8, "latent": 4}, 5)
    b = build({"channels": 32, "patch": 8, "latent": 4}, 5)
    assert torch.equal(st, torch.random.get_rng_state())
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_inference_deterministic_and_covers_every_pixel(model):
    rng = np.random.default_rng(0)
    data = rng.poisson(40, (13, 11, 30)).astype(np.float32)
    energy = 690 + np.arange(30.0)
    cube = cvae_fit.make_cube(data, energy, 690, 719, 8)
    assert cube.counts.shape[-1] == 32 and cube.valid.sum() == 30
    pi1, _ = cvae_fit.infer(model, cube)
    pi2, _ = cvae_fit.infer(model, cube)
    np.testing.assert_array_equal(pi1, pi2)
    assert pi1.shape == (13, 11, 30)
    np.testing.assert_allclose(pi1.sum(-1), 1.0, rtol=1e-5)
    assert set(cvae_fit.tile_grid(13, 8)) == {0, 4, 5}


def test_checkpoint_round_trip(model, tmp_path):
    sha = cvae_fit.save_checkpoint(tmp_path / "m.pt", model, {"dispersion": 1.0})
    m2, meta = cvae_fit.load_checkpoint(tmp_path / "m.pt")
    assert len(sha) == 64 and meta["dispersion"] == 1.0
    for a, b in zip(model.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
