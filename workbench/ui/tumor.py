"""Tumour-growth page: patient (sample, upload or synthetic), database, runs, side-by-side views, exports."""

from __future__ import annotations

import streamlit as st

from workbench.ui import common

K = "wb.tumor"
OUT_OF_SCOPE = (
    "Segmentations in MNI152 2009 space are used as they are; a segmentation in the patient's own "
    "space comes with one anatomical image and is registered to the atlas (affine, mutual "
    "information). Out of scope here: deformable registration, multi-compartment models "
    "(necrosis, nutrients), DTI-guided diffusion, PET-informed fitting and learned regressors (LMI)."
)


@st.cache_resource(max_entries=4, show_spinner=False)
def _patient(
    seg_digest: str,
    seg_name: str,
    img_digest: str,
    img_name: str,
    opts_json: str,
    _seg: bytes,
    _img: bytes,
):
    import json

    from workbench.datasets.tumor import load_patient

    return load_patient(_seg, seg_name, _img, img_name, **json.loads(opts_json))


@st.cache_resource(max_entries=4, show_spinner=False)
def _anatomy(digest: str, name: str, _data: bytes):
    from workbench.io.mri_nifti import read_nifti

    vol, _ = read_nifti(_data, name)
    return vol.astype("float32")


def _patient_upload():
    """Two uploads: the segmentation and one anatomical image, both in the patient's space."""
    import hashlib
    import json

    from workbench.errors import InputError

    st.caption(
        "A segmentation (BraTS labels 1/2/4 or 1/2/3) and one anatomical image (T1, T1-contrast, T2 "
        "or FLAIR) on the patient's grid, e.g. a BraTS case. The image is registered to the MNI152 "
        "2009 template (dipy, affine, mutual information, about 20-40 s), the labels follow by "
        "nearest neighbour, and results come back on the patient's grid and affine. A zip of a "
        "BraTS case folder works in the ordinary upload too."
    )
    with st.expander("Options (label preset, working grid)"):
        opts = common.options_form("tumor", key=f"{K}.popts")
    c = st.columns(2)
    # no ``type=`` filter: a wrong file gets the reader's one-line message, not a blank chip
    seg = c[0].file_uploader("Segmentation (.nii, .nii.gz)", key=f"{K}.pseg")
    img = c[1].file_uploader("Anatomical image (.nii, .nii.gz)", key=f"{K}.pimg")
    if seg is None or img is None:
        st.info("Upload both files: the segmentation and the anatomical image.")
        return None
    sd, idata = seg.getvalue(), img.getvalue()
    if max(len(sd), len(idata)) > common.UPLOAD_LIMIT_MB * 2**20:
        st.error(f"files are limited to {common.UPLOAD_LIMIT_MB} MB")
        return None
    dseg, dimg = hashlib.sha256(sd).hexdigest(), hashlib.sha256(idata).hexdigest()
    try:
        with st.spinner("Registering the image to MNI152 2009…"):
            problem = _patient(
                dseg,
                seg.name,
                dimg,
                img.name,
                json.dumps(opts, sort_keys=True, default=str),
                sd,
                idata,
            )
            st.session_state[f"{K}.anatomy.{problem.id}"] = _anatomy(dimg, img.name, idata)
    except InputError as exc:
        st.error(str(exc))
        return None
    except Exception as exc:  # an unexpected reader error still must not crash the page
        st.error(f"could not read the case: {type(exc).__name__}: {exc}")
        return None
    return problem


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
    src = st.radio(
        "Patient",
        ["Sample or upload", "Patient space (segmentation + image)", "Synthesise"],
        horizontal=True,
        key=f"{K}.src",
    )
    if src == "Synthesise":
        return _synthesise()
    if src.startswith("Patient space"):
        return _patient_upload()
    with st.expander("Upload options (label preset, working grid)"):
        opts = common.options_form("tumor", key=f"{K}.opts")
        st.caption(
            "NIfTI label image registered to MNI152 2009: BraTS 2017-2021 (1 necrotic, 2 oedema, 4 enhancing), "
            "BraTS 2023 (3 enhancing) or GliODIL/TGT (4, 3, 1); or an NPZ with binary 'wt' and 'tc'; "
            "or a .zip of a BraTS case in patient space (*seg* + *t1n*/*t1c*/*t2w*/*t2f* or "
            "*t1*/*t1ce*/*t2*/*flair*), registered here."
        )
    return common.problem_picker("tumor", key=f"{K}.picker", options=opts)


def _problem_view(problem) -> None:
    from workbench.viz import tumor as V

    v_wt, v_tc = problem.volumes_cm3
    truth = problem.meta.get("truth")
    common.facts(
        [
            ("WT volume", f"{v_wt:.1f} cm³"),
            ("TC volume", f"{v_tc:.1f} cm³"),
            ("grid", f"{problem.grid_n}³ ({problem.voxel_mm:.2f} mm)"),
            ("truth sqrt(DT), rho T", f"{truth['ell_mm']:.1f} mm, {truth['mu']:.3g}")
            if truth
            else None,
        ]
    )
    for note in problem.meta.get("notices", []):
        st.warning(note)
    reg = problem.meta.get("registration")
    if reg:
        c = st.columns(4)
        c[0].metric("registration", "passed" if reg.get("passed") else "failed")
        c[1].metric(
            "brain-mask Dice", f"{reg['dice_brain']:.3f}", help=f"threshold {reg['min_dice']:.2f}"
        )
        c[2].metric("NMI", f"{reg['nmi']:.3f}", help="(H(A) + H(B)) / H(A, B), in [1, 2]")
        c[3].metric("time", f"{reg['wall_s']:.0f} s")
        fig = V.registration_figure(problem)
        if fig is not None:
            common.show_figure(fig, "tumor-registration", f"{K}.reg")
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
    _patient_view(problem, chosen[0])
    labelled = [(info.title, r) for info, r in chosen]
    st.markdown(
        "**Parameters** (identifiable combinations; raw D_w, rho, T are not identifiable from one scan)"
    )
    common.table(V.param_rows(labelled))
    common.metrics_table(chosen, key=f"{K}.metrics")
    st.markdown("**Dice against wall time**")
    common.show_figure(V.dice_time_figure(labelled), "tumor-dice-time", f"{K}.dt")
    info, r = chosen[0]
    if r.extras.get("topk"):
        with st.expander(f"Top-k matches of {info.title}"):
            common.table(list(r.extras["topk"]))
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
        st.caption(info.title)
        row = common.download_row()
        files = export_nifti(problem, r, space=space)
        for name, data in list(files.items())[:3]:
            row.download_button(
                name,
                data,
                file_name=f"{info.run_id}-{name}",
                key=f"{K}.x.{info.run_id}.{name}",
                on_click="ignore",
                icon=":material/download:",
            )
        row.download_button(
            "params.json",
            params_json(r),
            file_name=f"{info.run_id}-params.json",
            key=f"{K}.j.{info.run_id}",
            on_click="ignore",
        )
        row.download_button(
            "params.csv",
            params_csv(r),
            file_name=f"{info.run_id}-params.csv",
            key=f"{K}.c.{info.run_id}",
            on_click="ignore",
        )


def _patient_view(problem, run) -> None:
    """The first chosen run on the patient's grid (cases registered from patient space)."""
    import json

    from workbench.viz import tumor as V

    info, r = run
    ps = V.patient_space(problem, r)
    if ps is None:
        return
    st.markdown(f"**{info.title} in patient space** (the uploaded grid and affine)")
    if "seed_mm" in ps:
        sm, sv = ps["seed_mm"], ps["seed_voxel"]
        st.caption(
            f"seed at ({sm[0]:.1f}, {sm[1]:.1f}, {sm[2]:.1f}) mm in the patient's frame, voxel "
            f"({sv[0]:.0f}, {sv[1]:.0f}, {sv[2]:.0f})"
        )
    image = st.session_state.get(f"{K}.anatomy.{problem.id}")
    common.show_figure(
        V.patient_figure(ps, image, title="density, observed (solid) and predicted (dashed) WT/TC"),
        f"tumor-patient-{info.run_id}",
        f"{K}.ps.{info.run_id}",
    )
    st.download_button(
        "seed_patient.json",
        json.dumps({k: ps[k] for k in ("seed_mm", "seed_voxel") if k in ps}, indent=2).encode(),
        file_name=f"{info.run_id}-seed_patient.json",
        key=f"{K}.seedp.{info.run_id}",
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
