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


def _reference_run(geom, u0, DT, mu, steps):
    """The explicit scheme written plainly on the 3-D grid, one simulation at a time: face
    fluxes g = f (u_j - u_i), div_i = sum over axes (g_out - g_in), u += (DT ds / h^2) div,
    then the exact logistic step; float32 throughout."""
    fx, fy, fz = geom.faces()
    out = []
    for u, dt, m, n in zip(u0, DT, mu, steps, strict=True):
        u = u.astype(np.float32) * geom.tissue.astype(np.float32)
        a = np.float32(dt * (1.0 / n) / geom.h**2)
        eb = np.float32(np.exp(m * (1.0 / n)))
        for _ in range(n):
            div = np.zeros_like(u)
            for ax, f in enumerate((fx, fy, fz)):
                if u.shape[ax] < 2:
                    continue
                hi = [slice(None)] * 3
                lo = [slice(None)] * 3
                hi[ax], lo[ax] = slice(1, None), slice(None, -1)
                g = (u[tuple(hi)] - u[tuple(lo)]) * f
                div[tuple(lo)] += g
                div[tuple(hi)] -= g
            u = u + div * a
            u = np.maximum(u * eb / (u * (eb - np.float32(1.0)) + np.float32(1.0)), 0.0)
        out.append(u)
    return np.stack(out)


@pytest.mark.parametrize("shape", [(9, 10, 11), (1, 7, 9), (6, 1, 5), (5, 8, 1)])
def test_flat_layout_equals_the_3d_scheme_exactly(shape):
    """The solver steps on flat contiguous views (faces that wrap to the next row weigh 0):
    the iterates are those of the plain 3-D scheme, bit for bit, in a batch of unequal steps."""
    rng = np.random.default_rng(3)
    geom = Geometry.from_fields(
        rng.random(shape).astype(np.float32), rng.random(shape) > 0.25, 1.5, crop=False
    )
    u0 = rng.random((3, *shape)).astype(np.float32)
    DT, mu, steps = np.array([4.0, 9.0, 2.0]), np.array([1.0, 3.0, 0.5]), np.array([7, 12, 3])
    u, taken = FKSolver(geom).run(u0, DT, mu, steps=steps)
    assert np.array_equal(taken, steps)
    assert np.array_equal(u, _reference_run(geom, u0, DT, mu, steps))


def test_flat_layout_equals_the_3d_scheme_on_the_atlas(model32):
    geom = model32.geom
    u0 = np.stack([model32.seed(np.array(s)) for s in ([-28.0, -12.0, 24.0], [22.0, 8.0, 28.0])])
    DT, mu = np.array([60.0, 150.0]), np.array([6.0, 12.0])
    steps = np.array([model32.solver.steps(a, b) for a, b in zip(DT, mu, strict=True)])
    u, _ = model32.solver.run(u0, DT, mu)
    assert np.array_equal(u, _reference_run(geom, u0, DT, mu, steps))
