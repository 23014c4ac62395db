"""EELS page: spectrum-image navigator, anomaly detection runs, side-by-side scores, exports."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import streamlit as st

from workbench.errors import InputError, name_once
from workbench.ui import common
from workbench.viz import eels as V

K = "wb.eels"


def _problem_section():
    with st.expander("Preprocessing, calibration and generator options", expanded=False):
        st.caption(
            "Energy crop, calibration override (offset / dispersion), spike removal, spatial binning, "
            "power-law background and normalisation apply to presets and uploads alike. Uploads: "
            ".npz (data (ny, nx, nE) + energy in eV), .npy (+ offset and dispersion), HyperSpy .hspy/.h5 "
            "and Gatan .dm3/.dm4 (built-in reader), whose energy axis is found by its "
            "units (eV, keV); a file with several signals asks which one. Single spectra (.msa) are "
            "refused: the detectors compare the pixels of a map (at least 4). The upload limit is "
            "set by `server.maxUploadSize` / WORKBENCH_MAX_UPLOAD_MB."
        )
        options = common.options_form("eels", key=f"{K}.options")
    if not options.get("signal"):
        chosen = _signal_choice()
        if chosen is not None:
            options = {**options, "signal": chosen}
    problem = common.problem_picker("eels", key=f"{K}.picker", options=options)
    if problem is not None and st.session_state.get(f"{K}.picker.source") == "Upload":
        problem = _low_loss(problem, options)
    return problem


@st.cache_resource(max_entries=8, show_spinner="Reading the low-loss image…")
def _with_low_loss(problem_id: str, digest: str, filename: str, options_json: str, _problem, _data):
    import json

    from workbench.datasets.eels import attach_low_loss

    return attach_low_loss(_problem, _data, filename, **json.loads(options_json))


def _low_loss(problem, options: dict):
    """The optional low-loss image of the same scan (DualEELS): alignment on its zero-loss peak."""
    import hashlib
    import json

    up = st.file_uploader(
        "Low-loss spectrum image of the same scan (optional, DualEELS): every pixel is aligned "
        "on its zero-loss peak, which chemistry does not move",
        key=f"{K}.low_loss",
    )
    if up is None:
        return problem
    data = up.getvalue()
    if len(data) > common.UPLOAD_LIMIT_MB * 2**20:
        st.error(f"{up.name} is larger than {common.UPLOAD_LIMIT_MB} MB.")
        return problem
    digest = hashlib.sha256(data).hexdigest()
    opts = json.dumps(options, sort_keys=True, default=str)
    try:
        return _with_low_loss(problem.id, digest, up.name, opts, problem, data)
    except InputError as exc:
        st.error(name_once(up.name, str(exc)).rstrip(".") + ". The core-loss file is used alone.")
    except Exception as exc:  # an unexpected reader error still must not crash the page
        st.error(f"{up.name} could not be read: {type(exc).__name__}: {exc}")
    return problem


@st.cache_data(max_entries=8, show_spinner=False)
def _signals(digest: str, filename: str, _data: bytes) -> list[tuple[int, str, bool]]:
    from workbench.io.eels import list_signals

    return [(i.index, i.label(), i.usable) for i in list_signals(_data, filename)]


def _signal_choice() -> str | None:
    """Ask which signal to read when the uploaded HyperSpy/Gatan file holds several."""
    if st.session_state.get(f"{K}.picker.source") != "Upload":
        return None
    upload = st.session_state.get(f"{K}.picker.upload")
    if upload is None or not upload.name.lower().endswith(
        (".hspy", ".h5", ".hdf5", ".dm3", ".dm4")
    ):
        return None
    import hashlib

    data = upload.getvalue()
    sigs = _signals(hashlib.sha256(data).hexdigest(), upload.name, data)
    if len(sigs) < 2:
        return None
    usable = [i for i, _, ok in sigs if ok]
    labels = {i: label for i, label, _ in sigs}
    idx = st.selectbox(
        f"{upload.name} holds {len(sigs)} signals: which one is the EELS spectrum image?",
        list(labels),
        index=usable[0] if usable else 0,
        format_func=labels.get,
        key=f"{K}.signal",
    )
    return str(idx)


def _offer_windows(problem) -> None:
    """Start the solvers' window parameters inside the data when their defaults miss it."""
    from workbench import registry
    from workbench.datasets.eels import suggest_windows

    e = np.asarray(problem.energy)
    moved = []
    for spec in registry.solvers("eels"):
        sug = suggest_windows(e, spec.Params)
        mark = f"{K}.windows.{spec.name}"
        if st.session_state.get(mark, (problem.id,))[0] != problem.id:
            # windows set for an earlier file: back to the solver's defaults for this one
            for name in st.session_state.pop(mark)[1]:
                st.session_state.pop(f"{K}.solve.{spec.name}.{name}", None)
        if sug and mark not in st.session_state:
            for name, value in sug.items():
                st.session_state[f"{K}.solve.{spec.name}.{name}"] = float(value)
            st.session_state[mark] = (problem.id, tuple(sug))
        if sug:
            moved.append(spec.name)
    if moved:
        st.info(
            f"The solvers' default Fe-L windows lie outside this data ({e[0]:.1f}–{e[-1]:.1f} eV): "
            f"the parameters of {', '.join(moved)} start from windows inside it; set them to your edge."
        )


def _summary(problem) -> None:
    e = np.asarray(problem.energy)
    ny, nx, ne = problem.data.shape
    c = st.columns(5)
    c[0].metric("map", f"{ny} × {nx}")
    c[1].metric("channels", f"{ne}")
    c[2].metric("energy (eV)", f"{e[0]:.0f}–{e[-1]:.0f}")
    c[3].metric(
        "eV / channel",
        f"{problem.dispersion:.3g}",
        help=f"offset {problem.offset:.3f} eV; edit both under the options above",
    )
    if problem.truth is not None:
        c[4].metric("anomalous (truth)", f"{100 * problem.truth.mean():.1f} %")
    notices = problem.meta.get("notices", [])
    for note in notices:
        st.warning(note)
    for note in problem.meta.get("notes", []):
        if note not in notices:
            st.caption(f"• {note}")


def _recons(runs, y: int, x: int) -> tuple[dict, dict]:
    recs, energies = {}, {}
    for info, r in runs:
        rec = r.extras.get("reconstruction") if isinstance(r.extras, dict) else None
        re_ = r.extras.get("recon_energy") if isinstance(r.extras, dict) else None
        if (
            rec is not None
            and re_ is not None
            and np.ndim(rec) == 3
            and y < rec.shape[0]
            and x < rec.shape[1]
        ):
            recs[info.title] = np.asarray(rec)[y, x]
            energies[info.title] = np.asarray(re_)
    return recs, energies


def _navigator(problem, runs) -> None:
    st.subheader("Navigator")
    ny, nx = problem.data.shape[:2]
    c1, c2, c3 = st.columns([2, 1, 1])
    mode = c1.radio(
        "Map",
        ["intensity", "edge_ratio", "centroid"],
        horizontal=True,
        key=f"{K}.navmode",
        format_func={
            "intensity": "summed counts",
            "edge_ratio": "Fe-L3 edge ratio",
            "centroid": "Fe-L3 centroid",
        }.get,
    )
    default_y, default_x = ny // 2, nx // 2
    if problem.truth is not None and problem.truth.any():
        ys, xs = np.nonzero(problem.truth)
        default_y, default_x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    y = int(c2.number_input("pixel y", 0, ny - 1, default_y, key=f"{K}.py"))
    x = int(c3.number_input("pixel x", 0, nx - 1, default_x, key=f"{K}.px"))
    left, right = st.columns(2)
    try:
        nav = V.navigator_figure(problem, mode, pixel=(y, x))
    except Exception as exc:  # a window outside the data: say so, keep the page
        st.warning(f"{mode} map unavailable for this energy range ({exc}); showing summed counts")
        nav = V.navigator_figure(problem, "intensity", pixel=(y, x))
    with left:
        common.chart(nav, key=f"{K}.nav")
    recs, energies = _recons(runs, y, x)
    e = np.asarray(problem.energy)
    bulk = None
    if problem.truth is not None and (~problem.truth).any():
        bulk = problem.data[~problem.truth].mean(0) * (
            problem.data[y, x].sum() / max(problem.data[~problem.truth].mean(0).sum(), 1e-12)
        )
    spec = V.spectrum_figure(
        e,
        problem.data[y, x],
        energies,
        recs,
        title=f"pixel ({y}, {x})"
        + (" — anomalous (truth)" if problem.truth is not None and problem.truth[y, x] else ""),
        reference=bulk,
    )
    with right:
        common.chart(spec, key=f"{K}.spec")
    from workbench.io.eels import write_msa

    st.download_button(
        "Pixel spectrum (.msa)",
        write_msa(None, problem.data[y, x], e, title=f"pixel {y},{x}").encode("latin-1"),
        file_name=f"pixel_{y}_{x}.msa",
        mime="text/plain",
        key=f"{K}.msa",
        on_click="ignore",
    )


def _results(problem, runs) -> None:
    st.subheader("Results")
    chosen = common.pick_runs(runs, key=f"{K}.runs.{problem.id}")
    if not chosen:
        st.info("Run a solver above; finished runs of this problem appear here.")
        return
    scale = st.radio(
        "Common scale",
        ["rank", "robust_z", "raw"],
        horizontal=True,
        key=f"{K}.scale",
        format_func={"rank": "percentile rank", "robust_z": "robust z", "raw": "raw"}.get,
    )
    scores = {info.title: np.asarray(r.output) for info, r in chosen}
    common.show_figure(
        V.score_maps_figure(scores, problem.truth, how=scale), "eels-scores", f"{K}.maps"
    )
    if problem.truth is not None and problem.truth.any() and not problem.truth.all():
        common.show_figure(V.roc_pr_figure(scores, problem.truth), "eels-roc-pr", f"{K}.roc")
    st.markdown("**Metrics**")
    common.metrics_table(chosen, f"{K}.metrics")

    labels = {info.run_id: info.title for info, _ in chosen}
    rid = st.selectbox("Inspect run", list(labels), format_func=labels.get, key=f"{K}.inspect")
    info, r = next((i, res) for i, res in chosen if i.run_id == rid)
    ex = r.extras or {}
    c1, c2 = st.columns(2)
    with c1:
        fig = V.histogram_figure(
            r.output,
            ex.get("threshold"),
            problem.truth,
            ex.get("gmm"),
            # two lines: in a half-page column one line was cut off after "Ashman"
            title=(
                f"{info.title}: score histogram<br><sup>{ex.get('threshold_method', 'otsu')} "
                f"threshold, Ashman D {ex.get('ashman_d', float('nan')):.2f}</sup>"
            ),
        )
        common.show_figure(fig, "eels-histogram", f"{K}.hist")
    with c2:
        mask = np.asarray(ex.get("mask", np.zeros(problem.data.shape[:2], bool)))
        common.show_figure(
            V.navigator_figure(problem, "intensity", mask=mask), "eels-mask-overlay", f"{K}.overlay"
        )
    if "scree" in ex:
        c1, c2 = st.columns(2)
        with c1:
            common.show_figure(
                V.scree_figure(ex["scree"], ex.get("elbow"), r.meta.get("k")),
                "eels-scree",
                f"{K}.scree",
            )
        with c2:
            if "components" in ex and "component_maps" in ex:
                common.show_figure(
                    V.components_figure(
                        np.asarray(ex["components"]),
                        np.asarray(ex["component_energy"]),
                        np.asarray(ex["component_maps"]),
                    ),
                    "eels-components",
                    f"{K}.comp",
                )
    if r.history.get("nll"):
        c1, c2 = st.columns(2)
        with c1:
            common.show_figure(V.loss_figure(r.history), "eels-loss", f"{K}.loss")
        with c2:
            if "latent_means" in ex:
                common.show_figure(
                    V.latent_figure(
                        np.asarray(ex["latent_means"]),
                        ex.get("latent_tiles"),
                        problem.truth,
                        int(r.meta.get("model", {}).get("patch", 16)),
                    ),
                    "eels-latent",
                    f"{K}.latent",
                )
    if "ratio_estimate" in ex and r.meta.get("score") == "ratio":
        fig = V.ratio_map_figure(np.asarray(ex["ratio_estimate"]), problem.truth)
        common.show_figure(fig, "eels-ratio-estimate", f"{K}.ratio")
    elif "shift_estimate" in ex:
        fig = V.shift_map_figure(np.asarray(ex["shift_estimate"]), problem.truth)
        common.show_figure(fig, "eels-shift-estimate", f"{K}.dE")
    if r.message:
        st.caption(r.message)

    st.markdown("**Export**")
    arrays = {"output": np.asarray(r.output), "mask": mask.astype(np.uint8)}
    if problem.truth is not None:
        arrays["truth"] = problem.truth.astype(np.uint8)
    common.download_arrays(arrays, f"eels-{info.solver}-score", f"{K}.arrays")
    row = common.download_row()
    buf = io.BytesIO()
    np.save(buf, np.asarray(r.output))
    row.download_button(
        "score .npy", buf.getvalue(), file_name="score.npy", key=f"{K}.npy", on_click="ignore"
    )
    buf = io.BytesIO()
    np.save(buf, mask)
    row.download_button(
        "mask .npy", buf.getvalue(), file_name="mask.npy", key=f"{K}.masknpy", on_click="ignore"
    )
    from workbench.io.eels import write_hspy

    buf = io.BytesIO()
    write_hspy(
        buf,
        np.asarray(r.output, np.float32),
        None,
        title=f"{info.solver} score",
        signal_type="",
        extra={"mask": mask.astype(np.uint8)},
    )
    row.download_button(
        "score .hspy", buf.getvalue(), file_name="score.hspy", key=f"{K}.hspy", on_click="ignore"
    )
    ck = ex.get("checkpoint_path")
    if ck and Path(ck).exists():
        row.download_button(
            "model checkpoint (.pt)",
            Path(ck).read_bytes(),
            file_name=Path(ck).name,
            key=f"{K}.ckpt",
            on_click="ignore",
        )

    st.markdown("**3D view** — the datacube (x, y, energy) over the edge window, anomalies in red")
    which = st.radio(
        "Highlight",
        ["truth", "detected mask"] if problem.truth is not None else ["detected mask"],
        horizontal=True,
        key=f"{K}.hl",
    )
    try:
        scene = V.cube_scene(problem, mask=None if which == "truth" else mask)
        common.show_scene(scene, key=f"{K}.scene")
    except Exception as exc:
        st.warning(f"3D view unavailable: {exc}")


GUIDE = r"""
**Which score detects what** (`score = auto` picks it from *look for*):

| anomaly sought | default score | why |
|---|---|---|
| chemical shift (edge moved by ΔE) | **shift**: likelihood ratio of the best energy shift of the reconstruction, 2 max_δ Σ_k Y_k log(Ŷ_δ,k / Ŷ_k) | aimed at exactly that alternative; power grows with ΔE and dose |
| changed L₃/L₂ ratio (valence) | **ratio**: likelihood ratio of the best change ρ of the reconstruction's L₃/L₂ white-line area ratio, total white-line area kept: 2 max_ρ Σ_k Y_k log(Ŷ_ρ,k / Ŷ_k), the white lines taken above a straight baseline in their two windows (found on the mean reconstruction, or set by the L3 / L2 energies) | aimed at a redistribution between the two lines; a pixel's intensity (thickness, concentration) drops out; the map of the best ρ is shown as `ratio_estimate` |
| new phase, anything | **nll**: Poisson deviance 2 Σ_k [Y ln(Y/Ŷ) − (Y − Ŷ)] in the edge window | omnibus goodness of fit of the counts (the reconstruction error) |
| (any, the paper's score) | **pearson**: 1 − r(Y, Ŷ) | kept for comparison; weak at low dose |

Shift and ratio are one-parameter likelihood ratios: pooled over the neighbourhood as one shift
(one ratio change) common to the region, their null is chi-square(1), and the default threshold
is calibrated on it. The pooled deviance and T² have no usable parametric null: their default
threshold is a robust empirical null (median and MAD of the cube root of the map), which flags
under 0.5 % of anomaly-free validation cubes. A new phase whose white lines split by about their
width is a weak signal at mid dose (ROC AUC about 0.6 on the validation cubes). Each also reacts somewhat to the other's anomaly (a shift moves intensity
between the white-line windows, a ratio change moves the line centroid), so pick the one for the
anomaly you look for.

`pca_t2` scores Hotelling's T² of the component scores (a shifted edge that becomes a component).
The count-based scores (shift, ratio, nll, and the 3D-CVAE's training likelihood) need raw counts:
background-subtracted or normalised data are detected and refused by them (the others warn).

**Defaults.** *k = 0*: the number of components comes from parallel analysis under Poisson
noise (eigenvalues above those of a spectrum image with the same pixel totals and mean spectrum
but only Poisson noise). *align = auto*: with the low-loss image of the same scan uploaded
beside the core-loss file (DualEELS), every pixel is aligned on its zero-loss peak; otherwise, when the data hold a
zero-loss peak or an edge outside the edge window (e.g. O K or Mn L next to Fe L) that one pixel
can be aligned on to 0.1 eV, on that feature (multinomial cross-correlation with the map's mean,
sub-channel), so energy drift does not read as a chemical shift. An edge is used only if its
shape holds across the map (after alignment its pixels differ from the mean shape by at most
5 % beyond noise): where it does not, its offsets would be chemistry, not drift (on a measured
line scan, O K gave 1.05 eV rms against the zero-loss peak's 0.15 eV), and nothing is done.
The page says which.
*template = trimmed* (pca_recon, shift score): the reconstruction is a PCA fitted without the
compact regions whose shift the map's bulk does not explain (found by a trimmed regression on
the edge-shift direction, flagged or not), so anomalous discs do not shift their own template,
while a smooth drift stays modelled; *template = dload* fits only the loading on the shift
direction without them: it flags fewer normal pixels on a drifting map that has no reference
edge or zero-loss peak to align on (benchmark: 0.2 % against 1.3 % on average, trimmed up to
3.7 % of a map), at some loss of sensitivity; *template = pca* is the plain PCA refitted
without the flagged pixels.
The 3D-CVAE resamples the chosen window, keeping every count, onto its own 192-channel grid, so
its checkpoint works at any dispersion and range and on any edge. Its reconstruction can sit a
few hundredths of an eV off the data everywhere; at high counts that reads as a shift in every
pixel, so its shift score tests each pixel against the bulk's shift (*shift_ref = bulk*), not
against zero.

**The simulator** (presets and `workbench bench eels`): per pixel p,
λ_p(E) = t_p [B_p(E − e_p) + Σ_j c_j,p (S_j ⊛ P_τp)(E − e_p − ΔE_j,p)] ⊛ G, Y ~ Poisson(λ).
B_p = a_p A (E/E_edge)^−r_p is a power-law background with per-pixel amplitude and exponent;
S_j are edges (O K, Ti L, Mn L, Fe L, ...: white lines with an L₃:L₂ area ratio plus arctan
continuum steps, or a K-edge step with a near-edge peak) with smooth concentration maps;
P_τ is plural scattering, the zero-loss delta plus n-plasmon losses (n E_p, Poisson weights
τⁿ/n!, τ = t/λ following the thickness); e_p is energy drift (a smooth map) plus zero-loss jitter;
G the instrument resolution. Anomalies in discs: a chemical shift ΔE of the main edge, a changed
L₃:L₂ ratio, or a new phase (crystal-field split white lines). Dose N_pk = main-edge counts above
background per pixel (45 = mid; 4.5–450 spans 0.1×–10×).
"""


def render() -> None:
    st.title("EELS anomaly detection")
    st.caption(
        "Find pixels of a core-loss spectrum image whose edge is chemically shifted, whose L₃/L₂ "
        "ratio changed, or which hold a new phase: PCA "
        "baselines (reconstruction error, Hotelling T², bulk fit) against a 3-D convolutional VAE "
        "(Sultanov, Buban & Klie, arXiv:2412.16200). Higher score = more anomalous."
    )
    with st.expander("Which score detects what; defaults; the simulator", expanded=False):
        st.markdown(GUIDE)
    problem = _problem_section()
    if problem is None:
        return
    _summary(problem)
    runs = common.finished_runs(problem.id)
    _navigator(problem, runs)
    st.subheader("Detect")
    _offer_windows(problem)
    # the best PCA detector in the benchmark beside the paper's method (T² alone ranks at chance)
    common.solver_panel("eels", problem, key=f"{K}.solve", default=["pca_recon", "cvae3d"])
    _results(problem, runs)
