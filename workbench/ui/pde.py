"""PDE page: preset, typed expression or JSON upload → solvers side by side → views and exports."""

from __future__ import annotations

import json

import streamlit as st

from workbench.errors import InputError
from workbench.ui import common

K = "wb.pde"
OPERATOR_HELP = {
    "poisson": "Δu = f",
    "allen_cahn": "Δu + u(u² − 1) = f",
    "advection": "β u_x + u_y = f (2-D, y plays time; coefficient beta)",
    "drift_poisson": "Δu − ∇·(u ∇(x² + y²)) = f (2-D)",
    "nl_poisson": "(κ(u) u′)′ = f, κ = softplus(u Σ z_n T_n(x)) + 0.1 (1-D; coefficients z0..z4)",
    "burgers": "u_t + z1 u u_x − z0 u_xx = f (variables x, t)",
}


@st.cache_data(max_entries=32, show_spinner=False)
def _typed_problem(spec_json: str):
    from workbench.datasets.pde import from_spec

    return from_spec(json.loads(spec_json), name="typed problem")


def _typed() -> object | None:
    c1, c2 = st.columns([1, 2])
    op = c1.selectbox(
        "Operator",
        list(OPERATOR_HELP),
        key=f"{K}.t.op",
        format_func=lambda o: f"{o}: {OPERATOR_HELP[o]}",
    )
    dom = c2.text_input(
        "Domain (a box: one [lo, hi] per dimension)", "[[0, 1]]", key=f"{K}.t.domain"
    )
    mode = st.radio(
        "Give", ["exact solution", "source + boundary data"], horizontal=True, key=f"{K}.t.mode"
    )
    spec: dict = {"operator": op}
    if mode == "exact solution":
        spec["exact"] = st.text_input(
            "u(x[, y]) =",
            "sin(50*x) + x**2",
            key=f"{K}.t.exact",
            help="sin, cos, exp, log, sqrt, tanh, ... in x, y (or t), pi, and your coefficients",
        )
    else:
        c3, c4 = st.columns(2)
        spec["source"] = c3.text_input("f =", "1", key=f"{K}.t.source")
        spec["boundary"] = c4.text_input("boundary data g =", "0", key=f"{K}.t.boundary")
    c5, c6 = st.columns(2)
    params = c5.text_input(
        "Coefficients (JSON)", "{}", key=f"{K}.t.params", help='e.g. {"beta": 200}'
    )
    n_col = c6.number_input(
        "Collocation points per dimension (0 = from the spectrum)", 0, 4096, 0, key=f"{K}.t.ncol"
    )
    try:
        spec["domain"] = json.loads(dom)
        spec["params"] = json.loads(params or "{}")
    except json.JSONDecodeError as exc:
        st.error(f"could not read the domain or coefficients as JSON: {exc.msg}")
        return None
    if n_col:
        spec["n_col"] = int(n_col)
    try:
        return _typed_problem(json.dumps(spec, sort_keys=True))
    except InputError as exc:
        st.error(str(exc))
        return None


def _summary(problem) -> None:
    from workbench.physics.pde.compiled import compile_problem

    comp = compile_problem(problem)
    common.facts(
        [
            ("operator", problem.operator),
            ("domain", " × ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in problem.box)),
            ("collocation grid", " × ".join(str(n) for n in problem.n_col)),
            ("ground truth", "exact" if problem.exact else "reference solver"),
        ]
    )
    if problem.meta.get("description"):
        st.caption(problem.meta["description"])
    with st.expander("Equations", expanded=False):
        if problem.exact:
            st.code(f"u = {problem.exact}", language=None)
        st.code(
            f"f = N[u] = {comp.source_expr}\ng on the boundary = {comp.boundary_expr}",
            language=None,
        )
        if problem.coefficients:
            st.code(json.dumps(problem.coefficients), language="json")


def _views(problem, runs) -> None:
    from workbench.io import pde as pio
    from workbench.viz import pde as V

    st.subheader("Side by side")
    chosen = common.pick_runs(runs, key=f"{K}.pick")
    if not chosen:
        return
    results = [(info.title, r) for info, r in chosen]
    common.table(V.metrics_rows(problem, results))
    if any(common.run_verdict(info, r)[0] == "suspect" for info, r in chosen):
        # the reasons are spelt out under the run picker (common.verdict_badges)
        st.caption(
            "Do not read a suspect run's error as the method's accuracy without a longer run or "
            "other settings."
        )
    st.caption(
        "rel_l2 is the final error on the 300-point test grid; the best error is an oracle (minimum over test-grid checkpoints), shown for reference only."
    )
    common.show_figure(V.solutions_figure(problem, results), "pde-solutions", f"{K}.sol")
    tabs = st.tabs(
        ["error", "residual", "convergence", "GP spectrum", "3-D surface", "PINN sampling"]
    )
    with tabs[0]:
        common.show_figure(V.error_figure(problem, results), "pde-error", f"{K}.err")
    with tabs[1]:
        st.caption(
            "Residual at the collocation points next to the error on the test grid: a small residual with a large error means aliasing between the points."
        )
        common.show_figure(V.residual_figure(problem, results), "pde-residual", f"{K}.res")
    with tabs[2]:
        common.convergence_panel(chosen, key=f"{K}.conv")
    with tabs[3]:
        gp = [(t, r) for t, r in results if any(k.startswith("weights_") for k in r.extras)]
        if gp:
            t = st.selectbox("GP run", [t for t, _ in gp], key=f"{K}.spec_run")
            common.show_figure(V.spectrum_figure(dict(gp)[t]), "pde-spectrum", f"{K}.spec")
        else:
            st.caption("No GP run selected.")
    with tabs[4]:
        if problem.dim == 2:
            t = st.selectbox("Run", [t for t, _ in results], key=f"{K}.surf_run")
            what = st.radio(
                "Surface of", ["solution", "error"], horizontal=True, key=f"{K}.surf_what"
            )
            common.show_figure(
                V.surface_figure(problem, dict(results)[t], what), "pde-surface", f"{K}.surf"
            )
        else:
            st.caption("Surfaces are shown for 2-D problems.")
    with tabs[5]:
        _sampling(problem, results)
    from workbench.ui import pde_rgnp

    pde_rgnp.render(problem, results)
    st.subheader("Export one run")
    t = st.selectbox("Run to export", [t for t, _ in results], key=f"{K}.export_run")
    r = dict(results)[t]
    common.download_arrays(pio.solution_arrays(problem, r), f"pde-{problem.name}", f"{K}.arrays")
    st.download_button(
        "Solution on the solver grid (CSV: x[,y],u)",
        data=lambda: pio.to_csv(problem, r),
        file_name=f"pde-{problem.name}-grid.csv",
        mime="text/csv",
        key=f"{K}.gridcsv",
        on_click="ignore",
    )


def _sampling(problem, results) -> None:
    """Collocation points over the stages, the AAS density, the residual histogram and its
    distance to uniform, per-stage metrics and loss terms, for the PINN runs."""
    from workbench.viz import pde as V

    staged = [(t, r) for t, r in results if "stage_points" in r.extras]
    if not staged:
        st.caption("No PINN run selected.")
        return
    t = st.selectbox("PINN run", [t for t, _ in staged], key=f"{K}.stage_run")
    r = dict(staged)[t]
    c1, c2 = st.columns(2)
    with c1:
        common.show_figure(V.stages_figure(problem, r), "pde-stages", f"{K}.stages")
    with c2:
        if "stage_density" in r.extras:
            common.show_figure(V.density_figure(problem, r), "pde-density", f"{K}.density")
        else:
            st.caption("The sampler's density is shown for AAS runs (a normalising flow).")
    st.caption(
        "W1(μ_r, U): the Wasserstein-1 distance between the squared residual, normalised to a "
        "probability density, and the uniform distribution on the box; AAS drives it down."
    )
    common.show_figure(V.residual_histogram_figure(staged), "pde-resid-hist", f"{K}.rhist")
    common.show_figure(V.stage_metrics_figure(staged), "pde-stage-metrics", f"{K}.smetrics")
    common.show_figure(V.loss_terms_figure(staged), "pde-loss-terms", f"{K}.lterms")


def render() -> None:
    st.title("PDEs")
    st.caption(
        "Solve N[u] = f on a box in 1-D or 2-D with Dirichlet data and compare GP-HM (spectral-mixture GP on a "
        "Kronecker grid; Fang et al., ICLR 2024), GP baselines, PINNs and a Chebyshev/finite-difference reference. "
        "Only boxes are supported: GP-HM needs a tensor grid (disks, polygons or point clouds as in DeepXDE's CSG "
        "are out of scope here; a PINN could take them later)."
    )
    source = st.radio(
        "Problem from",
        ["Preset or JSON file", "Typed expression"],
        horizontal=True,
        key=f"{K}.source",
    )
    if source == "Typed expression":
        problem = _typed()
    else:
        with st.expander("Options and the JSON format", expanded=False):
            st.caption(
                'Upload a JSON spec such as `{"operator": "poisson", "domain": [[0, 1]], "exact": "sin(50*x) + x**2"}`: '
                "keys operator, domain (one [lo, hi] per dimension), exact — or source plus boundary —, params "
                '(coefficients such as {"beta": 200}), optional n_col, freq_scale, bc, observations.'
            )
            options = common.options_form("pde", key=f"{K}.options")
        problem = common.problem_picker("pde", key=f"{K}.picker", options=options)
    if problem is None:
        return
    _summary(problem)
    st.subheader("Solve")
    common.solver_panel("pde", problem, key=f"{K}.solve", default=["gp_hm", "reference"])
    if problem.priors and problem.dim == 1:
        from workbench.ui import pde_rgnp

        with st.expander("Inverse problem: place observations by clicking (RGNP)"):
            pde_rgnp.click_panel(problem)
    runs = common.finished_runs(problem.id)
    if runs:
        _views(problem, runs)
    else:
        st.caption("No finished runs on this problem yet.")
