"""Spectrum-based initialisation of GP-HM (issue 20): spectral lines of a solution estimate."""

import numpy as np
import pytest
import torch

from workbench.physics.pde.frequency import spectral_peaks
from workbench.problems import PDEProblem
from workbench.solvers.pde import gp_hm
from workbench.solvers.pde.gp import reinit_spectrum


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_peaks_recover_planted_off_bin_frequencies_under_a_trend(seed):
    rng = np.random.default_rng(seed)
    L = float(rng.uniform(1.0, 7.0))
    x = np.linspace(0.0, L, 300)
    # two lines well apart (≥ 5 Rayleigh bins 1/L), off the FFT bins; the weak one carries
    # 1/400 of the strong one's power, as in the mixed-scale problems
    nus = np.array([rng.uniform(3.0, 8.0), rng.uniform(15.0, 35.0)]) / L
    v = 2.0 + 3.0 * x / L + np.sin(2 * np.pi * nus[0] * x + 1.3)
    v = v + 0.05 * np.sin(2 * np.pi * nus[1] * x + 0.4)
    f, p = spectral_peaks(v, x[1] - x[0], 4)
    assert len(f) >= 2
    # strongest first, to 1 % of a Rayleigh bin 1/L; the weak line, which sits on the strong
    # one's window sidelobes, to 5 %
    assert abs(f[0] - nus[0]) < 0.01 / L
    assert np.min(np.abs(f[1:] - nus[1])) < 0.05 / L
    assert p[0] == p.max()


def test_spectral_peaks_of_a_line_or_a_constant_are_empty():
    x = np.linspace(0.0, 1.0, 64)
    for v in (np.full(64, 3.0), 1.0 + 2.0 * x):
        f, p = spectral_peaks(v, x[1] - x[0], 3)
        assert f.size == 0 and p.size == 0


def test_reinit_spectrum_places_components_on_the_lines_and_keeps_unit_variance():
    x = np.linspace(0.0, 2 * np.pi, 256)
    U = np.sin(2.0 * x) + 0.2 * np.cos(40.0 * x)
    Q = 12
    dt = torch.float64
    kp = [(torch.zeros(Q, dtype=dt), torch.linspace(0, 10, Q, dtype=dt), torch.zeros(Q, dtype=dt))]
    lines = reinit_spectrum(kp, U, [x[1] - x[0]], 10.0, Q)["dim0"]
    log_w, freq, _ = kp[0]
    w = torch.exp(log_w).numpy()
    assert abs(w.sum() - 1.0) < 1e-12
    # the fast line to 1 %; the slow one (two cycles in the window) to a quarter of a Rayleigh
    # bin 1/L, which is all a windowed periodogram resolves there
    bin_ = 1 / (2 * np.pi)
    assert np.min(np.abs(np.array(lines) - 40.0 / (2 * np.pi))) < 0.01 * 40.0 / (2 * np.pi)
    assert np.min(np.abs(np.array(lines) - 2.0 / (2 * np.pi))) < 0.25 * bin_
    # the strongest line (the amplitude-1 low frequency) carries the largest weight
    assert abs(freq[np.argmax(w)].item() - 2.0 / (2 * np.pi)) < 0.25 * bin_
    # the rest of the components keep the paper's grid up to F
    assert freq[-1].item() == pytest.approx(10.0)


def test_warm_start_solves_u_before_adam_and_finds_the_planted_lines():
    """The warm start is the exact minimiser in U at the initial kernel (step 0 in u_solves);
    the spectrum it hands to the kernel holds the solution's two scales."""
    p = PDEProblem(box=((0.0, 2 * np.pi),), exact="sin(2*x) + 0.1*sin(25*x)", n_col=(160,))
    prm = gp_hm.Params(
        q=12, max_iter=20, n_checkpoints=2, warm_start="on", spectrum_init="solution"
    )
    r = gp_hm.solve(p, prm)
    steps = [s["step"] for s in r.extras["u_solves"]]
    assert steps[:2] == [0, 0] and steps[-1] == 20
    assert all(s["loss_after"] <= s["loss_before"] * (1 + 1e-12) for s in r.extras["u_solves"])
    lines = np.array(r.extras["init_peaks"]["dim0"])
    assert np.min(np.abs(lines - 25 / (2 * np.pi))) < 0.01 * 25 / (2 * np.pi)
    cold = gp_hm.solve(p, gp_hm.Params(q=12, max_iter=20, n_checkpoints=2, warm_start="off"))
    assert "init_peaks" not in cold.extras or not cold.extras["init_peaks"]
    # after 20 Adam steps from U = 0 the iterate is still far off; from the warm start it is not
    assert r.metrics["rel_l2_adam_final"] < 0.2 * cold.metrics["rel_l2_adam_final"]
