"""EELS views: what each figure draws."""

from __future__ import annotations

from workbench.viz import eels as V


def test_loss_figure_draws_a_validation_curve_only_when_tiles_were_held_out():
    fine_tune = {"step": [1, 2], "nll": [2e-3, 1e-3], "val_nll": [2e-3, 1e-3], "kl": [5, 4]}
    assert [t.name for t in V.loss_figure(fine_tune).data] == ["nll", "kl"]
    trained = dict(fine_tune, val_nll=[3e-3, 2e-3])
    assert [t.name for t in V.loss_figure(trained).data] == ["nll", "val_nll", "kl"]


def test_edge_labels_do_not_pile_up_over_a_wide_range():
    import numpy as np

    from workbench.physics.eels.synth import EDGES

    wide = np.arange(300.0, 2348.0)  # every edge but C K in range, most within 400-950 eV
    fig = V.spectrum_figure(wide, np.ones_like(wide))
    labels = [a.text for a in fig.layout.annotations]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == sum(300 <= e <= 2347 for e in EDGES.values())
    pos = sorted(EDGES[t] for t in labels)
    assert all(b - a >= 0.1 * 2047 for a, b in zip(pos[:-1], pos[1:], strict=False))
    narrow = np.arange(650.0, 750.0, 0.3)  # the samples' range: every edge labelled
    assert [a.text for a in V.spectrum_figure(narrow, np.ones_like(narrow)).layout.annotations] == [
        "Mn L2",
        "Fe L3",
        "Fe L2",
    ]
