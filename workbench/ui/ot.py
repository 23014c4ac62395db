"""Optimal-transport page: measures, solver recommendation, runs, side-by-side plans, exports."""

from __future__ import annotations

import numpy as np
import streamlit as st

from workbench.ui import common

K = "wb.ot"


def _summary(problem) -> None:
    mb = problem.n * problem.m * 8 / 2**20
    common.facts(
        [
            ("source points n", f"{problem.n:,}"),
            ("target points m", f"{problem.m:,}"),
            ("cost", problem.cost),
            ("cost scale (max C)", f"{problem.cost_scale:.4g}"),
            (
                "memory per dense plan",
                f"{mb:,.1f} MB",
                "Each solver holds a few n x m float64 arrays (about 4x this).",
            ),
        ]
    )
    for note in problem.meta.get("notices", []):
        st.info(note)
    if problem.meta.get("description"):
        st.caption(problem.meta["description"])


def _recommendation(problem) -> None:
    from workbench.solvers.ot.recommend import recommend

    suggested = float(problem.meta.get("suggested_reg", 1.0 / 1200))
    c1, c2, c3 = st.columns([2, 1, 2])
    reg = c1.number_input(
        "reg (= 1/eta) for the recommendation",
        min_value=1e-6,
        max_value=10.0,
        value=suggested,
        format="%.3e",
        key=f"{K}.rec_reg.{problem.id}",
        help="Entropic regularisation on costs divided by their maximum. The solvers' own reg is set in their parameters.",
    )
    c2.metric("eta = 1/reg", f"{1.0 / reg:,.0f}")
    cache = st.session_state.setdefault(f"{K}.recs", {})
    rk = f"{problem.id}:{reg:.6e}"
    if c3.button(
        "Recommend a solver (timed probe of both)",
        key=f"{K}.rec_btn",
        icon=":material/lightbulb:",
    ):
        try:
            cache[rk] = recommend(problem, reg).as_dict()
        except Exception as exc:  # never let the probe take the page down
            st.error(f"probe failed: {exc}")
    rec = cache.get(rk)
    if rec:
        name = (
            "Sinkhorn–Newton–Sparse"
            if rec["solver"] == "sinkhorn_newton"
            else "Sinkhorn (log domain)"
        )
        st.success(
            f"Recommended: **{name}** — {rec['reason']}. Tolerance is the L1 marginal error ||P1-a||₁ + ||Pᵀ1-b||₁."
        )


def _side_by_side(problem, runs) -> None:
    from workbench.viz import ot as V

    st.subheader("Side by side")
    chosen = common.pick_runs(runs, key=f"{K}.pick")
    if not chosen:
        return
    results = [(info.title, r) for info, r in chosen]
    common.show_figure(
        V.convergence_figure(results, "L1 marginal error of the selected runs"),
        "ot-convergence",
        f"{K}.conv",
    )
    common.metrics_table(chosen, key=f"{K}.metrics")

    plans = [np.asarray(r.output, dtype=float) for _, r in results]
    top = max(float(P.max()) for P in plans if P.size)
    zmax = float(np.log10(top)) if top > 0 else 0.0
    cols = st.columns(min(len(results), 3))
    for i, (title, r) in enumerate(results):
        with cols[i % len(cols)]:
            st.markdown(f"**{title}** — {r.status}, {r.iterations} iterations")
            fig = V.plan_heatmap(r.output, "plan (log10)", zmin=zmax - 12, zmax=zmax)
            common.show_figure(fig, f"ot-plan-{i}", f"{K}.plan.{i}")
            if r.extras and r.extras.get("pattern_rows") is not None:
                common.show_figure(
                    V.sparsity_figure(problem, r), f"ot-sparsity-{i}", f"{K}.sparsity.{i}"
                )
    st.subheader("Views of one run")
    titles = [t for t, _ in results]
    pick = st.selectbox("Run", titles, key=f"{K}.one")
    r = dict(results)[pick]
    X = problem.X
    if X is not None and X.shape[1] == 2:
        t = st.slider("interpolation times", 2, 9, 5, key=f"{K}.nt")
        fig = V.displacement_figure(problem, r.output, tuple(np.linspace(0, 1, t)))
        common.show_figure(fig, "ot-displacement", f"{K}.disp")
    elif X is not None and X.shape[1] == 1:
        common.show_figure(V.histograms_1d(problem, r), "ot-histograms", f"{K}.hist")
    _exports(r, pick)


def _exports(result, title: str) -> None:
    from workbench.io import ot as oio

    st.markdown("**Export this run**")
    arrays = {"output": np.asarray(result.output)}
    for k in ("x", "y", "pattern_rows", "pattern_cols"):
        v = result.extras.get(k) if result.extras else None
        if v is not None:
            arrays[k] = np.asarray(v)
    common.download_arrays(arrays, "ot-plan", f"{K}.arrays")
    row = common.download_row()
    row.download_button(
        "Sparse plan (NPZ, COO)",
        data=lambda: oio.write_plan_npz(result.output),
        file_name="ot-plan-coo.npz",
        mime="application/octet-stream",
        key=f"{K}.coo_npz",
        on_click="ignore",
    )
    row.download_button(
        "Sparse plan (CSV)",
        data=lambda: oio.write_plan_csv(result.output),
        file_name="ot-plan-coo.csv",
        mime="text/csv",
        key=f"{K}.coo_csv",
        on_click="ignore",
    )


def _bench_curves() -> None:
    """Error-versus-time (or passes) curves of the last ``workbench bench ot`` (when run)."""
    import json

    from workbench.bench import benchmarks_dir
    from workbench.viz import ot as V

    res = benchmarks_dir() / "results"
    main, grid = res / "ot_curves.json", res / "ot_grid_curves.json"
    if not (main.exists() or grid.exists()):
        return
    with st.expander(
        "Benchmark: error against time, every solver (workbench bench ot)", expanded=False
    ):
        try:
            curves = json.loads(main.read_text()) if main.exists() else {}
            gcurves = json.loads(grid.read_text()) if grid.exists() else {}
        except (OSError, ValueError):
            st.caption("benchmark curves unreadable; rerun `workbench bench ot`")
            return
        if curves:
            c1, c2 = st.columns([3, 1])
            lab = c1.selectbox("problem", sorted(curves), key=f"{K}.bench_label")
            x = c2.radio("x axis", ["seconds", "O(nm) passes"], key=f"{K}.bench_x", horizontal=True)
            fig = V.bench_curves_panels(curves, [lab], x="t" if x == "seconds" else "passes")
            common.show_figure(fig, "ot-bench-curves", f"{K}.bench")
            st.caption(
                "Every error is the L1 marginal error recomputed from the solver's plan (RegOT: "
                "truncated reruns; it does not expose its passes). Iterations, passes and times: "
                "BENCHMARKS.md."
            )
        cells = sorted({k.rsplit(" ", 1)[0].split(" ")[0] for k in gcurves})
        if cells:
            cell = st.selectbox("eta x n grid cell (cost_n_eta)", cells, key=f"{K}.bench_cell")
            common.show_figure(V.bench_curves_figure(gcurves, cell), "ot-bench-grid", f"{K}.grid")


def render() -> None:
    from workbench.viz import ot as V

    st.title("Optimal transport")
    st.caption(
        "Two measures and a cost → the entropic plan min ⟨C,P⟩ + reg·Σ P log P with P1 = a, Pᵀ1 = b. "
        "Costs are divided by their maximum, so reg = 1/eta has a fixed meaning (eta = 1200 is the paper's). "
        "Solvers: log-domain Sinkhorn, Sinkhorn–Newton–Sparse (Tang et al., ICLR 2024) and POT's exact network simplex."
    )
    with st.expander("Problem options and upload formats", expanded=False):
        st.caption(
            "Uploads: **.npz** with a, b, C (cost matrix) — or X, Y [, a, b] (point clouds) — or source, target "
            "(images); **.csv** point clouds with header `side,x,y[,w]` (side a/b); **.npy** array (2, H, W) of two "
            "images; **.png** two densities side by side (left = source). Masses must be finite and non-negative; "
            "they are renormalised to 1 with a notice. Zero masses are dropped and re-inserted as zero rows/columns."
        )
        options = common.options_form("ot", key=f"{K}.options")
    problem = common.problem_picker("ot", key=f"{K}.picker", options=options)
    if problem is None:
        return
    _summary(problem)
    common.show_figure(V.measures_figure(problem), "ot-measures", f"{K}.measures")
    _recommendation(problem)
    st.subheader("Solve")
    common.solver_panel("ot", problem, key=f"{K}.solve", default=["sinkhorn_newton"])
    runs = common.finished_runs(problem.id)
    if runs:
        _side_by_side(problem, runs)
    else:
        st.caption("No finished runs on this problem yet.")
    _bench_curves()
