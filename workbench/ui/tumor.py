"""Tumour-growth page: patient (sample, upload or synthetic), database, runs, side-by-side views, exports."""

from __future__ import annotations

import streamlit as st

from workbench.ui import common

K = "wb.tumor"
OUT_OF_SCOPE = (
    "Out of scope here: image registration (uploads must already be in MNI152 2009 space), "
    "multi-compartment models (necrosis, nutrients), DTI-guided diffusion, PET-informed fitting "
    "and learned regressors (LMI)."
)


def _synthesise():
    from workbench.datasets.tumor import synthetic_patient
    from workbench.errors import InputError

    with st.form(f"{K}.synth"):
        c = st.columns(4)
        ell = c[0].number_input("sqrt(D T) (mm)", 1.0, 47.0, 8.0, key=f"{K}.s.ell")
        mu = c[1].number_input("rho T", 0.1, 300.0, 6.0, key=f"{K}.s.mu")
        R = c[2].number_input("R = D_w / D_g", 1.0, 50.0, 10.0, key=f"{K}.s.R")
        grid = c[3].selectbox("simulation grid", (64, 96, 128), key=f"{K}.s.grid")
        c = st.columns(3)
        x = c[0].number_input("seed x (mm)", -90.0, 90.0, -28.0, key=f"{K}.s.x")
        y = c[1].number_input("seed y (mm)", -120.0, 90.0, -12.0, key=f"{K}.s.y")
        z = c[2].number_input("seed z (mm)", -70.0, 85.0, 24.0, key=f"{K}.s.z")
        c = st.columns(3)
        twt = c[0].number_input("theta WT", 0.05, 0.6, 0.25, key=f"{K}.s.twt")
        ttc = c[1].number_input("theta TC", 0.4, 0.95, 0.675, key=f"{K}.s.ttc")
        noise = c[2].selectbox("mask noise", ("none", "erode", "dilate"), key=f"{K}.s.noise")
        go = st.form_submit_button("Simulate patient", icon=":material/science:")
    if go:
        try:
            with st.spinner("Simulating…"):
                st.session_state[f"{K}.synthetic"] = synthetic_patient(
                    ell * ell,
                    mu,
                    (x, y, z),
                    R=R,
                    sim_grid=int(grid),
                    grid=64,
                    theta_wt=twt,
                    theta_tc=ttc,
                    noise=noise,
                )
        except InputError as exc:
            st.error(str(exc))
    return st.session_state.get(f"{K}.synthetic")


def _pick_problem():
    src = st.radio("Patient", ["Sample or upload", "Synthesise"], horizontal=True, key=f"{K}.src")
    if src == "Synthesise":
        return _synthesise()
    with st.expander("Upload options (label preset, working grid)"):
        opts = common.options_form("tumor", key=f"{K}.opts")
        st.caption(
            "NIfTI label image registered to MNI152 2009: BraTS 2017-2021 (1 necrotic, 2 oedema, 4 enhancing), "
            "BraTS 2023 (3 enhancing) or GliODIL/TGT (4, 3, 1); or an NPZ with binary 'wt' and 'tc'."
        )
    return common.problem_picker("tumor", key=f"{K}.picker", options=opts)


def _problem_view(problem) -> None:
    from workbench.viz import tumor as V

    v_wt, v_tc = problem.volumes_cm3
    c = st.columns(4)
    c[0].metric("WT volume", f"{v_wt:.1f} cm³")
    c[1].metric("TC volume", f"{v_tc:.1f} cm³")
    c[2].metric("grid", f"{problem.grid_n}³ ({problem.voxel_mm:.2f} mm)")
    truth = problem.meta.get("truth")
    if truth:
        c[3].metric("truth sqrt(DT), rho T", f"{truth['ell_mm']:.1f} mm, {truth['mu']:.3g}")
    for note in problem.meta.get("notices", []):
        st.warning(note)
    n = problem.grid_n
    ci = V.centre(problem)
    c = st.columns(3)
    i = c[0].slider("sagittal i", 0, n - 1, ci[0], key=f"{K}.i")
    j = c[1].slider("coronal j", 0, n - 1, ci[1], key=f"{K}.j")
    k = c[2].slider("axial k", 0, n - 1, ci[2], key=f"{K}.k")
    st.session_state[f"{K}.index"] = (i, j, k)
    common.show_figure(
        V.slices_figure(
            problem,
            problem.truth_density,
            index=(i, j, k),
            title="observed WT (yellow) / TC (red)" + (" over the true density" if truth else ""),
        ),
        "tumor-patient",
        f"{K}.patient",
    )


def _db_view() -> None:
    from workbench.solvers.tumor.database import default_db_path, open_db
    from workbench.viz import tumor as V

    with st.expander("Simulation database"):
        path = default_db_path()
        if not path.exists():
            st.info(
                f"No database at {path}. Build one with `workbench tumor build-db --n 6900 --grid 64 --prior banded --out db.h5` (the shipped database's command)."
            )
            return
        db = open_db(path)
        s = db.summary()
        c = st.columns(5)
        c[0].metric("simulations", f"{s['n_draws']:,}")
        c[1].metric("accepted", f"{s['n_accepted']:,}")
        c[2].metric("rejection rate", f"{100 * s['rejection_rate']:.0f}%")
        c[3].metric("grid", f"{s['grid']}³")
        c[4].metric("size", f"{s['size_mb']:.1f} MB")
        st.caption(f"hash {s['hash']}, created {s['created']}, prior {s['prior']}")
        common.show_figure(V.db_summary_figure(db), "tumor-db", f"{K}.db")


def _runs_view(problem) -> None:
    from workbench.io.tumor_nifti import export_nifti, params_csv, params_json
    from workbench.viz import tumor as V

    runs = common.finished_runs(problem.id)
    if not runs:
        st.caption("No finished runs for this patient yet.")
        return
    st.subheader("Side by side")
    chosen = common.pick_runs(runs, key=f"{K}.pick")
    if not chosen:
        return
    idx = st.session_state.get(f"{K}.index")
    cols = st.columns(min(len(chosen), 2))
    for n, (info, r) in enumerate(chosen):
        with cols[n % len(cols)]:
            st.markdown(f"**{info.title}**")
            u = r.output
            ok = u.shape == problem.wt.shape
            fig = V.slices_figure(
                problem,
                u if ok else None,
                (u >= 0.25) if ok else None,
                (u >= 0.675) if ok else None,
                index=idx,
                title=f"Dice WT {r.metrics.get('dice_edema', float('nan')):.3f}, "
                f"TC {r.metrics.get('dice_core', float('nan')):.3f}",
            )
            common.show_figure(fig, f"tumor-{info.run_id}", f"{K}.res.{info.run_id}")
    labelled = [(info.title, r) for info, r in chosen]
    st.markdown(
        "**Parameters** (identifiable combinations; raw D_w, rho, T are not identifiable from one scan)"
    )
    st.dataframe(V.param_rows(labelled), hide_index=True, width="stretch")
    common.metrics_table(chosen, key=f"{K}.metrics")
    st.markdown("**Dice against wall time**")
    common.show_figure(V.dice_time_figure(labelled), "tumor-dice-time", f"{K}.dt")
    info, r = chosen[0]
    if r.extras.get("topk"):
        with st.expander(f"Top-k matches of {info.title}"):
            st.dataframe(r.extras["topk"], hide_index=True, width="stretch")
            prob = r.extras.get("infiltration_probability")
            if prob is not None and getattr(prob, "shape", ()) == problem.wt.shape:
                common.show_figure(
                    V.slices_figure(
                        problem,
                        overlay=prob,
                        overlay_name="P(u ≥ θ_WT)",
                        index=idx,
                        title="infiltration probability (top-k weighted)",
                    ),
                    "tumor-infiltration",
                    f"{K}.infl",
                )
    st.markdown("**3D view** (brain, observed and predicted WT/TC)")
    common.show_scene(V.scene(problem, r), key=f"{K}.scene.{info.run_id}")
    st.markdown("**Export**")
    space = st.radio(
        "NIfTI space",
        ["input", "atlas"],
        horizontal=True,
        key=f"{K}.space",
        help="input: the uploaded file's grid and affine; atlas: the working grid in MNI152 mm",
    )
    for info, r in chosen:
        c = st.columns(6)
        c[0].caption(info.title)
        files = export_nifti(problem, r, space=space)
        for i, (name, data) in enumerate(list(files.items())[:3], start=1):
            c[i].download_button(
                name,
                data,
                file_name=f"{info.run_id}-{name}",
                key=f"{K}.x.{info.run_id}.{name}",
                on_click="ignore",
                icon=":material/download:",
            )
        c[4].download_button(
            "params.json",
            params_json(r),
            file_name=f"{info.run_id}-params.json",
            key=f"{K}.j.{info.run_id}",
            on_click="ignore",
        )
        c[5].download_button(
            "params.csv",
            params_csv(r),
            file_name=f"{info.run_id}-params.csv",
            key=f"{K}.c.{info.run_id}",
            on_click="ignore",
        )


def render() -> None:
    st.title("Tumour growth: Fisher–Kolmogorov inversion by database lookup")
    st.caption(
        "Find sqrt(D T), rho T, sqrt(D/rho) and the seed whose simulated tumour on the MNI152 atlas best "
        "matches a segmentation: brute-force or PCA lookup in a database of simulations (Ezhov et al., "
        "ML4H 2022), or CMA-ES over the forward model. " + OUT_OF_SCOPE
    )
    problem = _pick_problem()
    if problem is None:
        return
    _problem_view(problem)
    _db_view()
    st.subheader("Solve")
    common.solver_panel("tumor", problem, key=f"{K}.solve")
    _runs_view(problem)
