"""MRI page: mask designer with an immediate zero-filled view, coils, solvers side by side, 3D, exports."""

from __future__ import annotations

import numpy as np
import streamlit as st

from workbench.ui import common

K = "wb.mri"

ABOUT = (
    "Undersampled multi-coil k-space **y = M ⊙ (F(S x) + n)** → image **x** (F: centred orthonormal FFT, "
    "S: coil maps, M: sampling mask). Classical solvers: zero-filled RSS, adjoint SENSE, CG-SENSE "
    "(min ‖Ax − y‖² + λ‖x‖²), L1-wavelet (min ½‖Ax − y‖² + λ‖Ψx‖₁, FISTA) and TV (min ½‖Ax − y‖² + λ‖∇x‖₁, "
    "PDHG); learned: **RecurrentVarNet** (Yiasemis et al., CVPR 2022) and the **Decomposed Diffusion Sampler** (Chung, Lee & Ye, "
    "ICLR 2024: DDIM with a learned ε-U-Net prior, each Tweedie estimate made data-consistent by a few CG steps; several "
    "samples give a posterior mean and an uncertainty map), with DPS (gradient through the network) as its baseline. "
    "Out of scope in v1: non-Cartesian NUFFT (radial/spiral masks are rasterised to the grid), dynamic/3-D MRI, "
    "self-supervised training, joint map estimation."
)

SCALE_NOTE = (
    "**Data scale.** Every solver divides y by s = max|A^H y| and multiplies its output back by s, so λ is "
    "*relative* to the data magnitude (a λ tuned on one scan transfers to another). "
    "**Noise amplification.** Undersampling by R folds R pixels onto each other; unfolding them inverts a small "
    "coil-encoding matrix whose conditioning (the g-factor ≥ 1) amplifies noise: SNR_R = SNR_full / (g √R). "
    "CG fits the well-conditioned components first and the noise last, so the error falls and then rises "
    "(semi-convergence): stop early (about 10 iterations) or use λ ≈ 0.01. ESPIRiT maps are zero outside the "
    "object and act as a support constraint; ACS-RSS and birdcage maps let background noise in."
)

METRIC_NOTE = (
    "Metrics: **fastMRI convention** (PSNR/SSIM with data range = the reference volume's max, NMSE) and "
    "**Calgary-Campinas convention** (cc_psnr/cc_ssim: each slice normalised by its reference max, data range "
    "per slice). The two give different numbers for the same image; never compare across conventions."
)


def _summary(problem) -> None:
    m = problem.meta
    common.facts(
        [
            ("slices × coils", f"{problem.n_slices} × {problem.n_coils}"),
            ("k-space H × W", f"{problem.shape[0]} × {problem.shape[1]}"),
            ("effective R", f"{problem.acceleration:.2f}"),
            ("sampled", f"{100 / problem.acceleration:.1f} %"),
            ("maps", problem.maps_source or "–"),
            ("reference", problem.reference_kind or "none"),
        ]
    )
    notes = []
    if m.get("mask_description"):
        notes.append(m["mask_description"])
    if problem.recon_size:
        notes.append(
            f"reconstructions are centre-cropped to {problem.recon_size[0]} × {problem.recon_size[1]} (readout oversampling removed)"
        )
    if m.get("header", {}).get("padding"):
        notes.append(
            f"acquired band of columns {tuple(m['header']['padding'])} (columns outside are unsampled)"
        )
    if m.get("maps_reason"):
        notes.append(f"coil maps chosen for this data set — {m['maps_reason']}")
    if problem.maps_source == "true":
        notes.append(
            "true maps are an oracle (inverse-crime-prone): use acs_rss or espirit for honest numbers"
        )
    if m.get("mask") in ("radial", "spiral"):
        notes.append(
            "radial/spiral masks are a Cartesian approximation (rasterised to the grid; no NUFFT)"
        )
    if m.get("warning"):
        st.warning(m["warning"])
    st.caption(" · ".join(notes) + f" · source: {m.get('source', problem.name)}")


def _slice_picker(problem) -> int:
    if problem.n_slices <= 1:
        return 0
    return int(st.slider("Slice", 0, problem.n_slices - 1, problem.n_slices // 2, key=f"{K}.slice"))


@st.cache_data(max_entries=8, show_spinner=False)
def _cg_sense_residual(problem_id: str, _problem) -> float | None:
    """CG-SENSE's (defaults) data residual on this problem: the yardstick for learned results."""
    from workbench.datasets.mri import data_residual
    from workbench.solvers.mri import cg_sense

    r = cg_sense.solve(_problem, cg_sense.Params(device="cpu"))
    return data_residual(_problem, r).get("data_residual")


def _residual_check(problem, chosen) -> None:
    """Warn when a learned result's data residual is far above CG-SENSE's on the same data."""
    from workbench.datasets.mri import LEARNED_SOLVERS, residual_warnings

    learned = {
        info.title: r.metrics.get("data_residual")
        for info, r in chosen
        if info.solver in LEARNED_SOLVERS
    }
    for info, r in chosen:
        if info.solver in LEARNED_SOLVERS and r.extras.get("warnings"):
            st.warning(
                f"{info.title}: off its training family — " + "; ".join(r.extras["warnings"])
            )
    learned = {k: v for k, v in learned.items() if v is not None}
    if not learned:
        return
    cg = [r.metrics.get("data_residual") for info, r in chosen if info.solver == "cg_sense"]
    ref = cg[0] if cg and cg[0] is not None else _cg_sense_residual(problem.id, problem)
    for w in residual_warnings(learned, ref):
        st.warning(w)


@st.cache_data(max_entries=8, show_spinner=False)
def _zero_filled(problem_id: str, _problem) -> np.ndarray:
    from workbench.solvers.mri import zero_filled

    return zero_filled.solve(_problem, zero_filled.Params(device="cpu")).output


def _inspect(problem, sl: int) -> None:
    from workbench.physics.mri.coils import coil_images
    from workbench.viz import mri as V

    tabs = st.tabs(["Mask & zero-filled", "k-space", "Coil maps", "Coil images"])
    with tabs[0]:
        c1, c2 = st.columns(2)
        with c1:
            common.show_figure(V.mask_figure(problem.mask), "mri-mask", f"{K}.maskfig")
        with c2:
            zf = _zero_filled(problem.id, problem)
            ref = problem.reference
            common.show_figure(
                V.comparison_figure({"zero-filled": zf}, ref, slice_index=sl)
                if ref is not None
                else V.image_figure(zf[sl], "zero-filled RSS"),
                "mri-zero-filled",
                f"{K}.zf",
            )
    with tabs[1]:
        coil = st.selectbox(
            "Coil",
            ["RSS over coils"] + [f"coil {i}" for i in range(problem.n_coils)],
            key=f"{K}.kcoil",
        )
        ci = None if coil.startswith("RSS") else int(coil.split()[-1])
        common.show_figure(
            V.kspace_figure(problem.kspace[sl], problem.mask, coil=ci, title="log |k| (measured)"),
            "mri-kspace",
            f"{K}.kfig",
        )
    with tabs[2]:
        if problem.maps is None:
            st.info("No coil maps.")
        else:
            part = st.radio("Show", ["magnitude", "phase"], horizontal=True, key=f"{K}.mappart")
            common.show_figure(
                V.coil_figure(problem.maps[sl], part, title=f"coil maps ({problem.maps_source})"),
                "mri-maps",
                f"{K}.maps",
            )
            common.show_figure(
                V.sum_of_squares_figure(problem.maps[sl]), "mri-maps-ss", f"{K}.mapss"
            )
    with tabs[3]:
        common.show_figure(
            V.coil_figure(
                coil_images(problem.kspace[sl]), "magnitude", title="zero-filled coil images"
            ),
            "mri-coil-images",
            f"{K}.cimg",
        )


def _results(problem, runs, sl: int) -> None:
    from workbench.io.mri_fastmri import reconstruction_bytes
    from workbench.io.mri_nifti import nifti_bytes
    from workbench.viz import mri as V

    st.subheader("Results side by side")
    chosen = common.pick_runs(runs, key=f"{K}.runs.{problem.id}")
    if not chosen:
        st.info("Run solvers above; finished runs of this problem appear here.")
        return
    outputs = {info.title: np.asarray(r.output) for info, r in chosen}
    gain = st.select_slider(
        "Error-map gain", [1.0, 2.0, 5.0, 10.0, 20.0], value=5.0, key=f"{K}.gain"
    )
    common.show_figure(
        V.comparison_figure(outputs, problem.reference, slice_index=sl, error_gain=gain),
        "mri-comparison",
        f"{K}.cmp",
    )
    st.caption(
        METRIC_NOTE + f" Reference: {problem.reference_kind or 'none'}. data_residual = "
        "‖M(F S x) − y‖/‖y‖ for every solver (data_residual_noise: what the noise alone leaves)."
    )
    _residual_check(problem, chosen)
    common.metrics_table(chosen, f"{K}.metrics")
    common.convergence_panel(chosen, f"{K}.conv")

    labels = {info.run_id: info.title for info, _ in chosen}
    rid = st.selectbox(
        "Export / 3D view of run", list(labels), format_func=labels.get, key=f"{K}.inspect"
    )
    info, r = next((i, res) for i, res in chosen if i.run_id == rid)
    vol = np.asarray(r.output, np.float32)
    std = r.extras.get("std")
    n_samples = int(r.extras.get("n_samples", 0) or 0)
    if std is not None and n_samples >= 2:
        st.markdown(
            "**Uncertainty** — mean and pixel-wise standard deviation of the posterior samples"
        )
        common.show_figure(
            V.uncertainty_figure(vol, np.asarray(std), slice_index=sl, n_samples=n_samples),
            "mri-uncertainty",
            f"{K}.uncertainty",
        )
    elif std is not None:
        st.caption("One posterior sample: set n_samples ≥ 2 for an uncertainty map.")
    st.markdown("**Export**")
    row = common.download_row()
    row.download_button(
        "NIfTI (.nii)",
        data=lambda: nifti_bytes(vol),
        file_name=f"mri-{info.solver}.nii",
        key=f"{K}.nii",
        on_click="ignore",
    )
    row.download_button(
        "fastMRI HDF5 reconstruction",
        data=lambda: reconstruction_bytes(
            vol, {"acquisition": str(problem.meta.get("acquisition", "")), "solver": info.solver}
        ),
        file_name=f"mri-{info.solver}.h5",
        key=f"{K}.h5",
        on_click="ignore",
    )
    common.download_arrays(
        {
            "output": vol,
            **({"std": np.asarray(std, np.float32)} if std is not None else {}),
            **({"reference": problem.reference} if problem.reference is not None else {}),
        },
        f"mri-{info.solver}",
        f"{K}.arrays",
    )
    st.markdown("**3D view** — orthogonal slices through the reconstructed volume")
    try:
        common.show_scene(
            V.volume_scene(vol, spacing_slices=max(1, vol.shape[-1] // max(4 * vol.shape[0], 1))),
            key=f"{K}.scene",
        )
    except Exception as exc:  # the 3D view must never break the page
        st.warning(f"3D view unavailable: {exc}")


def render() -> None:
    st.title("MRI reconstruction")
    st.caption(ABOUT)
    st.subheader("Data and mask")
    with st.expander("Mask, coil maps and simulation", expanded=True):
        st.caption(
            "Pattern, acceleration R (the effective R is reported), centre fraction (ACS) and seed. 1-D masks "
            "select phase-encode columns; poisson/gaussian2d are 2-D (Calgary-Campinas style, 5×/10×). ESPIRiT needs "
            "more ACS lines than its 6-wide kernel: maps=auto uses ESPIRiT when the calibration region has at least 10 lines and ACS-RSS otherwise, and says why. Uploads: fastMRI .h5 (treated as fully "
            "sampled unless it has a mask), ISMRMRD .h5/.mrd and Siemens twix .dat raw data (Cartesian 2-D "
            "multi-coil; readout oversampling removed, averages averaged; an undersampled acquisition is "
            "taken as measured), NIfTI magnitude volumes and DICOM magnitude series (.dcm, or a .zip of a "
            "series; k-space is simulated), .npy/.npz k-space."
        )
        options = common.options_form("mri", key=f"{K}.options")
    problem = common.problem_picker("mri", key=f"{K}.picker", options=options)
    if problem is None:
        return
    _summary(problem)
    sl = _slice_picker(problem)
    _inspect(problem, sl)
    st.subheader("Reconstruct")
    st.caption(SCALE_NOTE)
    common.solver_panel(
        "mri", problem, key=f"{K}.solve", default=["zero_filled", "cg_sense", "recurrentvarnet"]
    )
    runs = common.finished_runs(problem.id)
    _results(problem, runs, sl)
