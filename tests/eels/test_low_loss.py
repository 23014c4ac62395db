"""The low-loss image of a DualEELS scan: read, checked against the core-loss map, and its
zero-loss peak used as the drift reference (chemistry does not move it)."""

import io

import numpy as np
import pytest

from workbench.datasets.eels import attach_low_loss, load
from workbench.errors import InputError
from workbench.physics.eels import spectra as SP
from workbench.physics.eels.synth import generate
from workbench.problems import EELSProblem
from workbench.solvers.eels import common as C


def _npz(data, energy) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, data=np.asarray(data, np.float32), energy=energy)
    return buf.getvalue()


def _low_loss(drift: np.ndarray, seed: int = 0):
    """Poisson low-loss spectra: a zero-loss peak and a plasmon, both moved by ``drift``."""
    e = -10.0 + 0.1 * np.arange(700)
    d = drift[..., None]
    lam = 2e4 * np.exp(-0.5 * ((e - d) / 0.4) ** 2) + 300.0 * np.exp(-0.5 * ((e - 20 - d) / 5) ** 2)
    return np.random.default_rng(seed).poisson(lam + 1.0).astype(np.float32), e


@pytest.fixture(scope="module")
def scan():
    # Fe L only (650-750 eV): the core-loss map holds no feature to align on by itself
    g = generate(ny=16, nx=16, fraction=0.0, seed=3, drift=0.4, jitter=0.05)
    problem = load(_npz(g["data"], g["energy"]), "core.npz")
    ll, e_ll = _low_loss(g["drift_map"])
    return g, problem, ll, e_ll


def test_zero_loss_peak_of_the_low_loss_image_aligns_the_core_loss_map(scan):
    g, problem, ll, e_ll = scan
    _, d, note = C.align_problem(problem, "auto", None, None, (690.0, 730.0))
    assert d is None and "no reference feature" in note
    with_ll = attach_low_loss(problem, _npz(ll, e_ll), "ll.npz")
    out, d, note = C.align_problem(with_ll, "auto", None, None, (690.0, 730.0))
    assert "zero-loss peak of the low-loss image" in note
    true = g["drift_map"] - g["drift_map"].mean()
    assert np.sqrt(np.mean((d - true) ** 2)) <= 0.03
    # the Fe-L edge's own offsets followed the drift before, and only noise after
    before = SP.estimate_drift(problem.data, problem.energy, 696.0, 730.0)
    after = SP.estimate_drift(out, problem.energy, 696.0, 730.0)
    assert np.corrcoef(before.ravel(), true.ravel())[0, 1] > 0.5
    assert abs(np.corrcoef(after.ravel(), true.ravel())[0, 1]) < 0.2
    # align = off still does nothing, and a given reference window wins over the low-loss
    assert C.align_problem(with_ll, "off", None, None, (690.0, 730.0))[1] is None
    note = C.align_problem(with_ll, "on", 650.0, 680.0, (690.0, 730.0))[2]
    assert "given reference window" in note


def test_low_loss_round_trips_and_changes_the_problem_id(scan):
    _, problem, ll, e_ll = scan
    with_ll = attach_low_loss(problem, _npz(ll, e_ll), "ll.npz")
    back = EELSProblem.from_arrays(with_ll.to_arrays())
    np.testing.assert_array_equal(back.low_loss, with_ll.low_loss)
    np.testing.assert_array_equal(back.low_loss_energy, e_ll)
    assert back.id == with_ll.id != problem.id
    assert any("zero-loss peak" in n for n in with_ll.meta["notes"])


def test_low_loss_files_that_cannot_be_the_reference_are_refused(scan):
    g, problem, ll, e_ll = scan
    with pytest.raises(InputError, match="does not hold the zero-loss peak"):
        attach_low_loss(problem, _npz(g["data"], g["energy"]), "core_again.npz")
    with pytest.raises(InputError, match="same scan"):
        attach_low_loss(problem, _npz(ll[:8], e_ll), "half.npz")
    flat = np.random.default_rng(1).poisson(50.0, ll.shape).astype(np.float32)
    with pytest.raises(InputError, match="no zero-loss peak"):
        attach_low_loss(problem, _npz(flat, e_ll), "flat.npz")
