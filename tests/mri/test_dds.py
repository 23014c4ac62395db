"""Decomposed Diffusion Sampler: complex CG, data consistency, oracle-prior convergence, seeds, cancel."""

import json

import numpy as np
import pytest
import torch

from workbench.nets.mri_diffusion import EpsUNet, alpha_bar
from workbench.physics.mri.coils import birdcage
from workbench.physics.mri.masks import make_mask
from workbench.physics.mri.operators import SenseOperator, cg_batch, single_coil
from workbench.solvers.mri import diffusion as D
from workbench.solvers.mri.dds import sample


def _crand(shape, g, dtype=torch.float64):
    return torch.complex(
        torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)
    )


def test_cg_batch_solves_dense_hermitian_systems_to_1e_10():
    g = torch.Generator().manual_seed(0)
    n, b = 12, 3
    B = _crand((b, n, n), g)
    H = B.conj().transpose(1, 2) @ B + 0.5 * torch.eye(n, dtype=torch.complex128)  # HPD per item
    x_true = _crand((b, n), g)
    rhs = (H @ x_true[..., None])[..., 0]
    x0 = _crand((b, n), g)
    x = cg_batch(lambda v: (H @ v[..., None])[..., 0], rhs, x0, n_iter=3 * n)
    ref = torch.linalg.solve(H, rhs)
    assert float((x - ref).abs().max() / ref.abs().max()) < 1e-10
    # each item is solved on its own: solving item 1 alone gives the same iterate
    x1 = cg_batch(lambda v: (H[1:2] @ v[..., None])[..., 0], rhs[1:2], x0[1:2], n_iter=4)
    x_all = cg_batch(lambda v: (H @ v[..., None])[..., 0], rhs, x0, n_iter=4)
    assert torch.allclose(x1[0], x_all[1], atol=1e-12)


def test_cg_batch_needs_conjugated_inner_products():
    """A transpose-only dot product (r^T r) does not solve the complex system; r^H r does."""
    g = torch.Generator().manual_seed(1)
    n = 8
    B = _crand((1, n, n), g)
    H = B.conj().transpose(1, 2) @ B + torch.eye(n, dtype=torch.complex128)
    rhs = _crand((1, n), g)
    ref = torch.linalg.solve(H, rhs)
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = (r * r).sum()
    for _ in range(n):
        ap = (H @ p[..., None])[..., 0]
        alpha = rr / (p * ap).sum()
        x, r = x + alpha * p, r - alpha * ap
        rr_new = (r * r).sum()
        p, rr = r + rr_new / rr * p, rr_new
    assert float((x - ref).abs().max()) > 1e-3
    good = cg_batch(lambda v: (H @ v[..., None])[..., 0], rhs, None, n_iter=2 * n)
    assert float((good - ref).abs().max()) < 1e-10


def _sense(n=16, coils=4, accel=4.0, dtype=torch.complex128):
    maps = torch.from_numpy(birdcage(coils, n, n)).to(dtype)[None]
    mask = make_mask("random", (n, n), accel, 0.25, 3).array
    return SenseOperator(maps, torch.from_numpy(np.asarray(mask)))


def test_noisy_dc_solves_the_proximal_problem_on_sense():
    g = torch.Generator().manual_seed(2)
    A = _sense()
    x0 = _crand((1, 16, 16), g)
    y = A.forward(_crand((1, 16, 16), g))
    gamma = 3.0
    x = D.data_consistency(A, x0, A.adjoint(y), 200, gamma)
    # dense reference: (I + γ A^H A) x = x̂₀ + γ A^H y
    n = 16 * 16
    cols = torch.eye(n, dtype=torch.complex128).reshape(n, 1, 16, 16)
    M = torch.stack([A.normal(c).flatten() for c in cols], 1)
    ref = torch.linalg.solve(
        torch.eye(n, dtype=torch.complex128) + gamma * M,
        (x0 + gamma * A.adjoint(y)).flatten(),
    )
    assert float((x.flatten() - ref).abs().max() / ref.abs().max()) < 1e-10


def test_noisy_dc_with_full_mask_is_the_weighted_average():
    """Regression (reference-code defect 2): with M ≡ 1 and Σ|S|² = 1, A^H A = I and the noisy
    form returns (x̂₀ + γA^H y)/(1 + γ) exactly (x̂₀ complex, not x̂₀ + (1 + i)γA^H y)."""
    g = torch.Generator().manual_seed(3)
    maps = torch.from_numpy(birdcage(4, 16, 16)).to(torch.complex128)[None]
    A = SenseOperator(maps, torch.ones(16))
    x0, xt = _crand((1, 16, 16), g), _crand((1, 16, 16), g)
    aty = A.adjoint(A.forward(xt))
    for gamma in (0.5, 10.0):
        out = D.data_consistency(A, x0, aty, 1, gamma)
        assert torch.allclose(out, (x0 + gamma * aty) / (1 + gamma), atol=1e-12)


def test_time_pairs_follow_the_reference_grid():
    pairs = D.time_pairs(50)
    assert len(pairs) == 50 and pairs[0] == (980, 960) and pairs[-1] == (0, -1)
    assert all(t > s for t, s in pairs)


class Oracle:
    """ε-predictor that knows the clean image x*: returns (x_t − √ᾱ_t x*)/√(1 − ᾱ_t), so the
    Tweedie estimate is x* at every step."""

    def __init__(self, x_star):
        self.x = torch.stack([x_star.real, x_star.imag], 1).float()
        self.ab = alpha_bar().float()

    def __call__(self, x, t):
        a = self.ab[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x.repeat(len(x) // len(self.x), 1, 1, 1)) / (1 - a).sqrt()


def _toy(seed=4, n=16):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n)
    mask[::2] = 1
    mask[n // 2 - 2 : n // 2 + 2] = 1
    A = single_coil((n, n), mask, dtype=torch.complex64)
    x_prior = _crand((1, n, n), g, torch.float32) * 0.3
    x_true = x_prior + 0.2 * _crand((1, n, n), g, torch.float32)
    y = A.forward(x_true) + 0.01 * A.forward(_crand((1, n, n), g, torch.float32))  # noised
    return A, x_prior, y


def test_oracle_prior_converges_to_the_data_consistent_solution():
    from workbench.physics.mri.fft import fft2c, ifft2c

    A, x_prior, y = _toy()
    # noiseless form: the sampled k-space comes from y, the rest from the prior's image
    out, k = sample(Oracle(x_prior), A, y, nfe=20, cg_iter=1, eta=0.85, gamma=None, seeds=[0])
    assert k == 20
    m = A.mask
    ref = ifft2c(m * y[:, 0] + (1 - m[:, 0]) * fft2c(x_prior))
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-4
    # noisy form: (I + γA^H A) has eigenvalues {1, 1 + γ}, so 2 CG steps give the proximal point
    gamma = 4.0
    out, _ = sample(Oracle(x_prior), A, y, nfe=10, cg_iter=2, eta=0.85, gamma=gamma, seeds=[1])
    ref = ifft2c((fft2c(x_prior) + gamma * m[:, 0] * y[:, 0]) / (1 + gamma * m[:, 0]))
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-4


def test_sampler_is_seeded_and_samples_are_independent_of_the_batch():
    torch.manual_seed(0)
    net = EpsUNet(channels=4, mult=(1, 2), blocks=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # leave the zero init so the output depends on x
    A, _, y = _toy()
    kw = dict(nfe=6, cg_iter=2, eta=0.85, gamma=None)
    a, _ = sample(net, A, y, seeds=[7], **kw)
    b, _ = sample(net, A, y, seeds=[7], **kw)
    c, _ = sample(net, A, y, seeds=[8], **kw)
    both, _ = sample(net, A, y, seeds=[7, 8], **kw)
    assert torch.equal(a, b)
    assert float((a - c).abs().max()) > 1e-3
    assert torch.allclose(both[:1], a, atol=1e-5) and torch.allclose(both[1:], c, atol=1e-5)
    # stopping after k steps equals the first k steps of the full run
    seen = []
    sample(net, A, y, seeds=[7], on_step=lambda k, x: seen.append(x.clone()) or False, **kw)
    capped, k = sample(net, A, y, seeds=[7], max_iter=3, **kw)
    assert k == 3 and torch.equal(capped, seen[2])


def test_summary_mean_and_std():
    mags = np.stack([np.full((1, 2, 2), v, np.float32) for v in (1.0, 2.0, 3.0)])
    mean, std = D.summary(mags)
    assert np.allclose(mean, 2.0) and np.allclose(std, 1.0)
    assert np.all(D.summary(mags[:1])[1] == 0)


def test_train_writes_checkpoint_and_resumes(tmp_path):
    from workbench.train.mri_diffusion import main

    args = [
        "--data", "mni", "--size", "32", "--crop", "16", "--n-train", "8", "--n-val", "2",
        "--batch", "2", "--channels", "4", "--mult", "1,2", "--val-every", "2",
        "--out", str(tmp_path), "--name", "prior", "--minutes", "2",
    ]  # fmt: skip
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "4", "--resume"]) == 0
    man = json.loads((tmp_path / "prior.json").read_text())
    assert man["steps"] == 4 and man["command"].startswith("workbench train diffusion_prior")
    assert len(man["sha256"]) == 64 and [h["step"] for h in man["history"]] == [2, 4]
    sd = torch.load(tmp_path / "prior.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in sd.values())
    net, _ = D.load_prior(str(tmp_path / "prior.pt"))
    assert set(sd) == set(net.state_dict())
    assert net(torch.zeros(1, 2, 20, 12), torch.tensor([3])).shape == (1, 2, 20, 12)


@pytest.fixture(scope="module")
def problem():
    from workbench.datasets.mri import sample_mni_slice

    return sample_mni_slice()


def test_dds_solver_cancel_equals_max_iter_and_std(problem):
    from workbench.progress import Progress
    from workbench.solvers.mri import dds

    p = dds.Params(nfe=10, n_samples=2, device="cpu", seed=3)
    full = dds.solve(problem, p)
    assert full.status == "converged" and full.iterations == 10
    assert full.extras["std"].shape == full.output.shape and full.extras["std"].max() > 0
    prog = Progress(cancel_after=4)
    cancelled = dds.solve(problem, p, prog)
    capped = dds.solve(problem, dds.Params(**{**p.__dict__, "max_iter": 4}))
    assert cancelled.status == "cancelled" and capped.status == "max_iter"
    np.testing.assert_array_equal(cancelled.output, capped.output)
    # the live preview is the posterior mean of the last reported step
    np.testing.assert_allclose(prog.preview, cancelled.output[0], rtol=1e-6)
    assert [r["step"] for r in prog.records] == [1, 2, 3, 4]


def test_uncertainty_figure():
    from workbench.viz.mri import uncertainty_figure

    fig = uncertainty_figure(np.ones((1, 8, 8)), np.zeros((1, 8, 8)), n_samples=3)
    assert len(fig.data) == 2 and "3 samples" in fig.layout.annotations[1].text


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """The diffusion-prior trainer under torchrun: 3 steps of global batch 2 (1 + 1 per rank)
    follow the one-process run; rank 0 alone writes the checkpoint and the manifest."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(root), env.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        OMP_WAIT_POLICY="PASSIVE",
    )
    tiny = ["--data", "mni", "--size", "32", "--crop", "16", "--n-train", "4", "--n-val", "2"]
    tiny += ["--batch", "2", "--steps", "3", "--val-every", "1000", "--channels", "4"]
    tiny += ["--mult", "1,2", "--fp32", "--device", "cpu", "--name", "prior", "--out"]
    cmd = ["-m", "workbench.cli", "train", "diffusion_prior", *tiny]
    run = dict(env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    r1 = subprocess.run([sys.executable, *cmd, str(tmp_path / "one")], **run)
    assert r1.returncode == 0, r1.stderr[-3000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    r2 = subprocess.run([*launcher, "2", *cmd, str(tmp_path / "two")], **run)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "prior.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "prior.pt", weights_only=True)
    # relative to the largest weight: zero-initialised tensors (ADM's zero_module) are ~1e-8
    # after 3 warm-up steps, so their own scale would turn float rounding into a large ratio
    scale = max(float(v.abs().max()) for v in a.values())
    worst = max(float((a[k] - b[k]).abs().max()) for k in a) / scale
    assert worst <= 1e-5, worst
    m1 = json.loads((tmp_path / "one" / "prior.json").read_text())
    m2 = json.loads((tmp_path / "two" / "prior.json").read_text())
    assert m2["distributed"]["processes"] == 2 and m2["steps"] == m1["steps"] == 3
    assert m2["command"].startswith("torchrun --nnodes 1 --nproc_per_node 2")
    assert m2["final_val"]["val_loss"] == pytest.approx(m1["final_val"]["val_loss"], rel=1e-5)


@pytest.mark.parametrize("sigma_rel", [0.0, 0.02])
def test_simulated_measurements_are_noised_at_sigma(sigma_rel):
    """The reference DDS code never noises y (σ_y only switches a branch); here every
    simulated acquisition the samplers see carries circular complex noise with E|n|² = σ²,
    σ = σ_rel·max|x|, and σ_rel = 0 gives exactly F(S x)."""
    from workbench.physics.mri.acquisition import simulate_kspace
    from workbench.physics.mri.cfft import fft2c

    n = 64
    yy, xx = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    mag = ((yy / 0.8) ** 2 + (xx / 0.6) ** 2 <= 1) * (0.5 + 0.5 * (xx > 0))
    maps = birdcage(8, n, n)
    k, x, sigma = simulate_kspace(mag, maps, sigma_rel, np.random.default_rng(3))
    assert sigma == pytest.approx(sigma_rel * mag.max())
    noise = k - fft2c(maps.astype(np.complex128) * x[None])
    if sigma_rel == 0:
        assert np.abs(noise).max() < 1e-6 * np.abs(k).max()
        return
    assert abs(np.sqrt(np.mean(np.abs(noise) ** 2)) / sigma - 1) < 0.03
    assert abs(np.mean(noise.real**2) / np.mean(noise.imag**2) - 1) < 0.06
    assert abs(np.mean(noise)) < 0.02 * sigma


def test_samplers_keep_zero_where_the_maps_vanish():
    """ESPIRiT maps vanish off the object: there the SENSE model has no data, CG never moves x,
    and the prior's guess would stay in the output (12.6–20 dB on the 4× corpus test slices
    before this rule). DDS and DPS return x = 0 there, and the same image elsewhere."""
    from workbench.solvers.mri import dps

    torch.manual_seed(0)
    net = EpsUNet(channels=4, mult=(1, 2), blocks=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    n = 16
    g = torch.Generator().manual_seed(2)
    maps = torch.from_numpy(birdcage(4, n, n)).to(torch.complex64)
    maps[:, :, :4] = 0  # four columns no coil sees
    mask = torch.zeros(n)
    mask[::2] = 1
    A = SenseOperator(maps[None], mask)
    y = A.forward(_crand((1, n, n), g, torch.float32))
    assert D.support_mask(A, 2).shape == (2, n, n)
    assert D.support_mask(SenseOperator(torch.from_numpy(birdcage(4, n, n))[None], mask)) is None
    for out in (
        sample(net, A, y, nfe=5, cg_iter=2, eta=0.85, gamma=None, seeds=[3, 4])[0],
        sample(net, A, y, nfe=5, cg_iter=2, eta=0.85, gamma=10.0, seeds=[3])[0],
        dps.sample(net, A, y, nfe=5, zeta=1.0, eta=0.85, seeds=[3])[0],
    ):
        assert torch.count_nonzero(out[..., :4]) == 0
        assert float(out[..., 4:].abs().min()) > 0
