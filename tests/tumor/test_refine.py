"""The lookups' local refinement (``refine``): a planted answer is recovered from a perturbed
start, the search is deterministic and never spends more forward solves than its budget, a run
with a smaller budget is the start of a longer one, and what it returns is a real forward
solution of the database's model."""

import numpy as np
import pytest

from workbench.physics.tumor.forward import atlas_model
from workbench.physics.tumor.metrics import dice
from workbench.problems import TumorProblem
from workbench.registry import parse_params
from workbench.solvers.tumor import db_lookup, db_lookup_fast
from workbench.solvers.tumor.database import BuildConfig, build
from workbench.solvers.tumor.refine import local_refine

TRUTH = {"DT_mm2": 60.0, "mu": 12.0, "seed_mm": np.array([20.0, -10.0, 20.0])}


@pytest.fixture(scope="module")
def model():
    return atlas_model(32)


@pytest.fixture(scope="module")
def planted(model):
    """A patient simulated by the 32^3 model itself: the true parameters score exactly 2."""
    sim = model.simulate([TRUTH["DT_mm2"]], [TRUTH["mu"]], [TRUTH["seed_mm"]])
    u = sim["u"][0]
    return u >= 0.25, u >= 0.675, sim["seed_mm"][0]


def _start(model, wt, tc, DT, mu, seed):
    u = model.simulate([DT], [mu], [seed])["u"][0]
    dw, dt = dice(u >= 0.25, wt), dice(u >= 0.675, tc)
    return {"DT_mm2": DT, "mu": mu, "seed_mm": seed, "dice_wt": dw, "dice_tc": dt, "score": dw + dt}


@pytest.mark.parametrize("method", ["pattern", "cmaes"])
def test_refinement_recovers_planted_answer(model, planted, method):
    wt, tc, seed = planted
    h = model.atlas.h
    start = _start(
        model,
        wt,
        tc,
        TRUTH["DT_mm2"] * 1.8,
        TRUTH["mu"] / 1.4,
        seed + np.array([1.0, -1.0, 0.0]) * h,
    )
    assert start["score"] < 1.6
    r = local_refine(model, wt, tc, start, 0.25, 0.675, method=method, budget=80)
    assert r["improved"] and r["evals"] <= 80
    assert r["score"] >= 1.8
    # closer to the truth in the identifiable products and the seed than the start was
    assert abs(np.log(r["DT_mm2"] / TRUTH["DT_mm2"])) < abs(np.log(1.8))
    assert abs(np.log(r["mu"] / TRUTH["mu"])) < abs(np.log(1.4))
    assert np.linalg.norm(r["seed_mm"] - seed) < np.linalg.norm(start["seed_mm"] - seed)
    # the answer is a real forward solution: re-simulating its parameters gives its u and score
    again = model.simulate([r["DT_mm2"]], [r["mu"]], [r["seed_mm"]])
    np.testing.assert_array_equal(again["u"][0], r["u"])
    assert dice(r["u"] >= 0.25, wt) + dice(r["u"] >= 0.675, tc) == pytest.approx(r["score"])


@pytest.mark.parametrize("method", ["pattern", "cmaes"])
def test_refinement_deterministic_budget_capped_and_nested(model, planted, method):
    wt, tc, seed = planted
    start = _start(model, wt, tc, 25.0, 20.0, seed + 4.0)
    a = local_refine(model, wt, tc, start, 0.25, 0.675, method=method, budget=45)
    b = local_refine(model, wt, tc, start, 0.25, 0.675, method=method, budget=45)
    assert a["trace"] == b["trace"] and a["DT_mm2"] == b["DT_mm2"]
    np.testing.assert_array_equal(a["seed_mm"], b["seed_mm"])
    batch = 10 if method == "pattern" else 8
    assert a["evals"] <= 45 and a["evals"] == (45 // batch) * batch
    assert all(e <= 45 for e, _ in a["trace"])
    best = [s for _, s in a["trace"]]
    assert np.all(np.diff(best) >= 0) and best[0] >= start["score"]
    # nothing before the cap depends on the budget: the shorter run is a prefix of a longer one
    c = local_refine(model, wt, tc, start, 0.25, 0.675, method=method, budget=90)
    assert c["trace"][: len(a["trace"])] == a["trace"]


def test_refinement_keeps_an_optimal_start(model, planted):
    wt, tc, seed = planted
    start = _start(model, wt, tc, TRUTH["DT_mm2"], TRUTH["mu"], seed)
    assert start["score"] == 2.0
    r = local_refine(model, wt, tc, start, 0.25, 0.675, budget=20)
    assert not r["improved"] and r["score"] == 2.0 and r["evals"] == 20
    assert r["DT_mm2"] == pytest.approx(TRUTH["DT_mm2"]) and r["mu"] == pytest.approx(TRUTH["mu"])
    with pytest.raises(ValueError):
        local_refine(model, wt, tc, start, 0.25, 0.675, method="none")


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    p = tmp_path_factory.mktemp("refine") / "db.h5"
    cfg = BuildConfig(n=48, grid=32, batch=8, v_min_cm3=2.0, rng_seed=5, prior="banded")
    assert build(cfg, p, log=lambda s: None) == p
    return p


def test_lookup_refine_option(small_db, planted):
    """Through the solvers: the refined answer scores at least the aligned one, its output is the
    forward solution of the reported parameters, and refine=none keeps the aligned answer."""
    wt, tc, _ = planted
    model = atlas_model(32)
    prob = TumorProblem(
        name="planted",
        wt=wt.astype(np.uint8),
        tc=tc.astype(np.uint8),
        affine=model.atlas.affine,
        grid_n=32,
    )
    base = {"db": str(small_db), "top_k": 3, "refine_evals": 30}
    off = db_lookup.solve(prob, parse_params(db_lookup.Params, {**base, "refine": "none"}))
    assert "refine_improved" not in off.metrics and off.extras["refine"] is None
    assert db_lookup.Params().refine == "pattern" and db_lookup_fast.Params().refine == "none"
    for solver in (db_lookup, db_lookup_fast):
        res = solver.solve(prob, parse_params(solver.Params, {**base, "refine": "pattern"}))
        m = res.metrics
        assert m["refine_evals"] <= 30
        s_ref = m["refine_db_dice_edema"] + m["refine_db_dice_core"]
        assert s_ref >= m["align_db_dice_edema"] + m["align_db_dice_core"]
        assert m["dice_edema"] + m["dice_core"] == pytest.approx(s_ref)
        u = model.simulate([m["ell_mm"] ** 2], [m["mu"]], [res.extras["seed_mm"]])["u"][0]
        np.testing.assert_allclose(u, res.output, atol=1e-5)
        # raw (D_w, rho, T) reproduce the identifiable products
        assert m["D_w_mm2_day"] * m["T_day"] == pytest.approx(m["ell_mm"] ** 2, rel=1e-6)
        assert m["rho_day"] * m["T_day"] == pytest.approx(m["mu"], rel=1e-6)
    # plain lookup without refinement: rank 1, no forward solve before the re-run
    plain = db_lookup.solve(
        prob, parse_params(db_lookup.Params, {**base, "align": False, "refine": "none"})
    )
    assert "refine_improved" not in plain.metrics and "align_improved" not in plain.metrics
