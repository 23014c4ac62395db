"""RecurrentVarNet inference feeds the network exactly what training fed it (issue 12, part 3).

The Shepp–Logan diagnosis (``workbench bench mri_diagnose``) rules out a protocol mismatch; these
tests keep it ruled out: the solver's path equals the training code's path on the same data, and
the normalisation makes the output equivariant to the k-space's global scale and phase, so no
data set can sit at a different input scale than training did.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from workbench.datasets.mri_corpus import corpus_problem


def _solve(p):
    from workbench.solvers.mri import recurrentvarnet as R

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return R.solve(p, R.Params())


def test_solver_matches_the_training_pipeline():
    """Reference path: the training script's own functions (ACS-RSS maps from the masked data,
    ``normalise`` = y/s with s = max|A^H y|, forward, RSS image × s), as its validation runs."""
    from workbench.physics.mri.coils import acs_rss
    from workbench.solvers.mri import recurrentvarnet as R
    from workbench.train.mri_rvn import normalise

    p = corpus_problem("val", 3, size=64, accel=4.0, maps="true")  # not what it uses
    net, _ = R.load_model(R.checkpoint_path("auto", 4.0), "cpu")
    y = torch.from_numpy(p.kspace) * torch.from_numpy(p.mask)
    mask = torch.from_numpy(p.mask)[None, None]
    maps = acs_rss(y, mask)
    with torch.no_grad():
        yn, s = normalise(y, maps)
        ref = (net.image(net(yn, mask, maps)) * s.view(-1, 1, 1)).numpy()
    out = _solve(p).output
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(ref.max()))


def test_output_is_equivariant_to_kspace_scale_and_phase():
    """k → c·e^{iθ}·k multiplies the magnitude output by c: the ACS-RSS maps absorb the phase and
    s = max|A^H y| absorbs the scale, so the network always sees the training scale."""
    p = corpus_problem("val", 5, size=64, accel=4.0, maps="acs_rss")
    base = _solve(p).output
    c = 37.5 * np.exp(1j * 2.1)
    q = dataclasses.replace(p, kspace=(p.kspace * c).astype(np.complex64))
    out = _solve(q).output
    np.testing.assert_allclose(out, abs(c) * base, rtol=1e-3, atol=1e-4 * abs(c) * base.max())


def test_diagnosis_ablations_are_what_they_claim():
    """The Shepp–Logan ablations of ``workbench bench mri_diagnose``: without the shell, the
    shell's pixels carry the interior's value; the shell alone is empty inside."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "mri_diagnose.py"
    spec = importlib.util.spec_from_file_location("mri_diagnose", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    n = 128
    full, none, only = (mod._shepp_logan_image(n, s) for s in ("full", "none", "only"))
    shell_px = (
        n // 2 - int(0.9 * n / 2),
        n // 2,
    )  # on the outer ellipse, inside the inner one's top
    inside_px = (n // 2 - int(0.76 * n / 2), n // 2)  # flat interior, above the features
    assert full[shell_px] > 3 * full[inside_px] > 0  # the bright shell
    np.testing.assert_allclose(none[shell_px], none[inside_px], rtol=0.05)
    assert only[shell_px] > 0.9 * only.max()
    assert only[inside_px] < 1e-3 and only[n // 2, n // 2] < 1e-3
