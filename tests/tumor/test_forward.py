"""Physics of the Fisher–Kolmogorov solver (spec §8, T9)."""

import math

import numpy as np
import pytest

from workbench.physics.tumor.atlas import load_atlas
from workbench.physics.tumor.forward import AtlasModel, FKSolver, Geometry, gaussian_seed, n_steps
from workbench.physics.tumor.metrics import dice


@pytest.fixture(scope="module")
def model32():
    return AtlasModel(load_atlas(32, with_t1=False))


def _box(shape, h):
    return Geometry.from_fields(np.ones(shape, np.float32), np.ones(shape, bool), h, crop=False)


def test_mass_conserved_without_reaction(model32):
    s = model32.seed(np.array([-28.0, -12.0, 24.0]))
    m0 = float(s.sum(dtype=np.float64))
    u, steps = model32.solver.run(s[None], np.array([800.0]), np.array([0.0]))
    assert steps[0] > 20
    m1 = float(u.sum(dtype=np.float64))
    assert abs(m1 - m0) / m0 <= 1e-4
    assert float(u.max()) < float(s.max())  # diffusion only spreads


def test_bounds_at_every_step(model32):
    s = model32.seed(np.array([-28.0, -12.0, 24.0]))
    lo, hi = [], []

    def cb(k, u):
        lo.append(float(u.min()))
        hi.append(float(u.max()))

    model32.solver.run(
        np.stack([s, s]), np.array([2000.0, 50.0]), np.array([250.0, 3.0]), callback=cb
    )
    assert min(lo) >= 0.0 and max(hi) <= 1.0
    assert max(hi) > 0.99  # the strong one saturates


def test_time_rescaling_symmetry(model32):
    seed = np.array([20.0, 0.0, 20.0])
    a = model32.simulate([0.3 * 300.0], [0.05 * 300.0], [seed])
    b = model32.simulate([0.6 * 150.0], [0.1 * 150.0], [seed])
    assert a["n_steps"][0] == b["n_steps"][0]
    assert np.abs(a["u"] - b["u"]).max() <= 1e-5


def test_halving_dt(model32):
    seed = np.array([-28.0, -12.0, 24.0])
    slv = model32.solver
    u0 = model32.seed(seed)[None]
    for DT, mu in ((90.0, 15.0), (300.0, 8.0), (30.0, 30.0), (1000.0, 100.0)):
        a, na = slv.run(u0, [DT], [mu])
        b, nb = slv.run(u0, [DT], [mu], steps=2 * na)
        assert np.abs(a - b).max() <= 0.02
        assert dice(a >= 0.25, b >= 0.25) >= 0.99
        if (b >= 0.675).any():  # the core can be ~150 cells at 32^3: 2 cells = 0.013 Dice
            assert dice(a >= 0.675, b >= 0.675) >= 0.98


def test_batch_equals_single(model32):
    seeds = np.array([[-28.0, -12.0, 24.0], [20.0, 0.0, 20.0], [0.0, -40.0, 10.0]])
    DT = np.array([500.0, 30.0, 120.0])
    mu = np.array([20.0, 60.0, 5.0])
    order = np.argsort([-model32.solver.steps(a, b) for a, b in zip(DT, mu, strict=True)])
    batch = model32.simulate(DT[order], mu[order], seeds[order])["u"]
    for j, i in enumerate(order):
        single = model32.simulate(DT[i : i + 1], mu[i : i + 1], seeds[i : i + 1])["u"][0]
        np.testing.assert_array_equal(batch[j], single)


def test_axis_permutation_invariance():
    n, h = 21, 2.0
    geo = _box((n, n, n), h)
    slv = FKSolver(geo)
    u0 = gaussian_seed((n, n, n), np.array([10.0, 10.0, 10.0]), h, 3.0, 0.5)[None]
    u, _ = slv.run(u0, [60.0], [8.0])
    u = u[0]
    for perm in ((1, 0, 2), (2, 1, 0), (0, 2, 1)):
        np.testing.assert_allclose(np.transpose(u, perm), u, atol=1e-6)


def test_seed_mass_is_grid_independent():
    masses = []
    for n in (16, 32, 64):
        h = 64.0 / n
        c = np.array([32.3, 31.1, 30.7]) / h - 0.5  # same physical point
        masses.append(float(gaussian_seed((n, n, n), c, h, 3.0, 0.5).sum(dtype=np.float64)) * h**3)
    ref = 0.5 * (2 * math.pi) ** 1.5 * 27.0
    assert np.allclose(masses, ref, rtol=1e-3)


def test_seed_agrees_with_scipy_erf():
    """The seed's cell averages use math.erf (no scipy.special import); against the same formula
    with scipy.special.erf they agree to float32 round-off (bit for bit on the grids checked)."""
    from scipy.special import erf

    rng = np.random.default_rng(7)
    for n, sigma in ((32, 3.0), (64, 3.0), (96, 2.0), (64, 6.0)):
        h = 233.0 / n
        c = rng.uniform(0, n, 3)
        s = sigma / h * math.sqrt(2.0)
        parts = []
        for ax in range(3):
            e = erf((np.arange(n + 1) - 0.5 - c[ax]) / s)
            parts.append((e[1:] - e[:-1]) * (s * math.sqrt(math.pi) / 2.0))
        ref = 0.5 * parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
        got = gaussian_seed((n, n, n), c, h, sigma, 0.5)
        np.testing.assert_allclose(got, ref.astype(np.float32), rtol=1e-6, atol=1e-30)


def test_travelling_wave_speed():
    """Homogeneous slab, D = rho = 1 (mm^2/d, 1/d): the front moves at 2 sqrt(D rho) = 2 mm/d."""
    L, h = 160.0, 0.25
    nx = int(L / h)
    geo = _box((nx, 1, 1), h)
    slv = FKSolver(geo)
    u0 = np.zeros((1, nx, 1, 1), np.float32)
    u0[0, : int(4 / h)] = 1.0
    pos = []
    times = (30.0, 60.0)
    for T in times:
        u, _ = slv.run(u0, [T * 1.0], [T * 1.0])
        prof = u[0, :, 0, 0]
        i = int(np.argmax(prof < 0.5))
        x = (
            i - 1 + (prof[i - 1] - 0.5) / (prof[i - 1] - prof[i]) + 0.5
        ) * h  # linear interpolation
        pos.append(x)
    v = (pos[1] - pos[0]) / (times[1] - times[0])
    assert abs(v - 2.0) / 2.0 <= 0.05, v


def test_grid_refinement_converges():
    """Same physical problem on 3 grids (thin slab): the error against the finest shrinks."""
    Lx = 64.0
    sols = {}
    for n in (16, 32, 64, 128):
        h = Lx / n
        geo = _box((n, n, 1), h)
        slv = FKSolver(geo)
        c = np.array([30.0 / h - 0.5, 34.0 / h - 0.5, 0.0])
        u0 = gaussian_seed((n, n, 1), c, h, 4.0, 0.5)
        u0 = u0 / u0.max() * 0.5
        u, _ = slv.run(u0[None], [100.0], [10.0])
        sols[n] = u[0, :, :, 0]

    def coarse(a, f):
        m = a.shape[0] // f
        return a.reshape(m, f, m, f).mean(axis=(1, 3))

    ref = sols[128]
    err = {n: float(np.abs(coarse(ref, 128 // n) - sols[n]).mean()) for n in (16, 32, 64)}
    assert err[16] > err[32] > err[64]
    assert err[16] / err[64] > 2.5


def test_step_rule_depends_on_products_only():
    assert n_steps(90.0, 15.0, 3.64) == n_steps(90.0, 15.0, 3.64)
    assert n_steps(2250.0, 300.0, 3.64) > n_steps(1.0, 0.1, 3.64)
    # stability: the explicit diffusion limit holds
    N = n_steps(2250.0, 0.0, 3.64)
    assert 2250.0 / N <= 0.9 * 3.64**2 / 6.0 + 1e-9
