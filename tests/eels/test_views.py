"""EELS views: what each figure draws."""

from __future__ import annotations

from workbench.viz import eels as V


def test_loss_figure_draws_a_validation_curve_only_when_tiles_were_held_out():
    fine_tune = {"step": [1, 2], "nll": [2e-3, 1e-3], "val_nll": [2e-3, 1e-3], "kl": [5, 4]}
    assert [t.name for t in V.loss_figure(fine_tune).data] == ["nll", "kl"]
    trained = dict(fine_tune, val_nll=[3e-3, 2e-3])
    assert [t.name for t in V.loss_figure(trained).data] == ["nll", "val_nll", "kl"]
