"""Views build from real problems and results (no rendering)."""

import numpy as np

from workbench.datasets.mri import DOMAIN, evaluate
from workbench.solvers.mri import zero_filled
from workbench.viz import mri as V


def test_figures_build():
    p = DOMAIN.sample("mni_slice", mask="poisson", acceleration=5)
    r = zero_filled.solve(p)
    r.metrics = evaluate(p, r)
    assert "PSNR" in V.result_figure(p, r).layout.title.text
    assert "effective R" in V.mask_figure(p.mask).layout.title.text
    assert len(V.kspace_figure(p.kspace[0], p.mask).data) == 2
    assert len(V.coil_figure(p.maps[0], "phase").data) == 8
    assert len(V.comparison_figure({"a": r.output, "b": r.output * 0.9}, p.reference).data) == 5
    V.sum_of_squares_figure(p.maps)


def test_volume_scene():
    s = V.volume_scene(np.random.default_rng(0).uniform(size=(4, 16, 16)), spacing_slices=2)
    assert s.key()
