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


def test_a_line_scan_is_drawn_as_profiles_and_a_map_as_images():
    import dataclasses

    import numpy as np

    from workbench.datasets.eels import synthetic
    from workbench.result import Result

    cube = synthetic(dict(ny=6, nx=8, shift=2.0, fraction=0.2, seed=1), name="map")
    line = dataclasses.replace(
        cube, data=cube.data[2:3], truth=np.zeros((1, 8), bool) | (np.arange(8) % 4 == 1)
    )
    for prob in (cube, line):
        score = np.random.default_rng(0).random(prob.data.shape[:2])
        res = Result(output=score, kind="score_map", extras={"mask": score > 0.5, "threshold": 0.5})
        figs = [
            V.navigator_figure(prob, pixel=(0, 3), mask=score > 0.5),
            V.score_maps_figure({"a": score, "b": 1 - score}, prob.truth),
            V.result_figure(prob, res),
            V.shift_map_figure(score, prob.truth),
            V.ratio_map_figure(1 + score, prob.truth),
        ]
        kinds = {t.type for f in figs for t in f.data}
        if prob is line:
            assert "heatmap" not in kinds and "contour" not in kinds
            # the truth's positions are ticked along the line
            ticks = [t for t in figs[1].data if t.name == "truth"]
            assert list(ticks[0].x) == [1, 5]
        else:
            assert "heatmap" in kinds
