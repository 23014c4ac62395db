"""Tumour benchmark in patient space (issue 19): BraTS-like cases end to end.

Each case is what a BraTS user has: a 240 x 240 x 155, 1 mm volume in an SRI24-like frame
(x and y flipped, origin at a corner, i.e. far from MNI's), one anatomical image and a label
image (BraTS 2021 labels 1/2/4 or BraTS 2023 labels 1/2/3, alternating). The anatomy is the MNI152
2009 T1 template carried into that frame by a random affine (rotations up to 10 degrees, scales
0.9-1.1 per axis, shifts up to 10 mm), with a T1-contrast look: a gamma of the intensities, a
smooth multiplicative bias field, Rician-like noise, the oedema darker and the enhancing rim
brighter than the tissue around it. The tumour is a Fisher-Kolmogorov simulation at 96^3 on the
atlas (a held-out patient of the lookup benchmark's stream), thresholded at 0.25 (WT) and 0.675
(TC; necrotic core inside at 0.9), and carried to the patient grid by nearest neighbour.

The pipeline under test is the product's: the case as a zip through the domain's loader
(registration, nearest-neighbour label transfer), ``db_lookup`` with the shipped database, and
the predicted density mapped back to the patient grid. Measured: registration wall time (one
core), the registration's error against the planted affine (max over brain voxels), its quality
numbers, the lookup time, Dice of the returned tumour (WT = u >= 0.25, TC = u >= 0.675) against
the input's whole tumour and core in patient space, and the same Dice for the lookup run directly
on the MNI-space masks (what registration costs).

    python benchmarks/tumor_patient.py [--quick] [--json] [--cases N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402

SHAPE = (240, 240, 155)
AFFINE = np.array([[-1.0, 0, 0, 0.0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0.0], [0, 0, 0, 1.0]])
MNI_1MM = np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]])


def random_map(rng) -> np.ndarray:
    """MNI mm -> patient mm: the frame change of AFFINE's grid (centre to centre) composed with a
    random rotation, anisotropic scale and shift."""
    from scipy.spatial.transform import Rotation

    t = np.eye(4)
    rot = Rotation.from_euler("zxy", rng.uniform(-10, 10, 3), degrees=True).as_matrix()
    t[:3, :3] = rot @ np.diag(rng.uniform(0.9, 1.1, 3))
    centre_patient = AFFINE @ np.r_[(np.array(SHAPE) - 1) / 2.0, 1.0]
    t[:3, 3] = (
        centre_patient[:3] + rng.uniform(-10, 10, 3) - t[:3, :3] @ np.array([0.0, -18.0, 8.0])
    )
    return t


def make_case(k: int, rng) -> dict:
    from scipy import ndimage

    from workbench.datasets.tumor import random_patient
    from workbench.io.tumor_nifti import nifti_bytes
    from workbench.physics.tumor.atlas import _templates_1mm, load_atlas, resample_linear
    from workbench.physics.tumor.registration import resample

    p = random_patient(rng_seed=900 + k, sim_grid=96, grid=64, noise=False)
    atlas96 = load_atlas(96, with_t1=False)
    # the patient's true density at the simulation grid, re-simulated from its truth
    from workbench.physics.tumor.forward import atlas_model

    tr = p.meta["truth"]
    sim = atlas_model(96, tr["R"]).simulate([tr["DT_mm2"]], [tr["mu"]], [tr["seed_mm"]])
    u96 = sim["u"][0]
    u1 = resample_linear(u96, atlas96.affine, (197, 233, 189), MNI_1MM)
    brats2021 = k % 2 == 0
    enh, nec = (4, 1) if brats2021 else (3, 1)
    lab = np.zeros(u1.shape, np.uint8)
    lab[u1 >= 0.25] = 2
    lab[u1 >= 0.675] = enh
    lab[u1 >= 0.9] = nec
    t = random_map(rng)
    view = np.linalg.inv(t) @ AFFINE
    _, _, t1 = _templates_1mm()
    img = np.clip(t1, 0, 1) ** 1.3
    img = np.where(lab == 2, img * 0.8, img)
    img = np.where(lab == enh, np.maximum(img, 0.95), img)
    pat = resample(img, MNI_1MM, SHAPE, view, order=1)
    lab_p = resample(lab, MNI_1MM, SHAPE, view, order=0)
    ii = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij"))
    bias = np.exp(0.15 * (ii[0] * rng.normal() + ii[1] * rng.normal() + ii[2] * rng.normal()))
    noise = rng.normal(size=(2, *SHAPE)) * 0.02
    pat = np.hypot(pat * bias + noise[0], noise[1]) * (pat > 0)
    pat = ndimage.gaussian_filter(pat, 0.5) * 1200.0
    name = f"BraTS-GLI-{k:05d}-000" if not brats2021 else f"BraTS2021_{k:05d}"
    sep = "-" if not brats2021 else "_"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}{sep}seg.nii.gz", nifti_bytes(lab_p, AFFINE, np.uint8))
        zf.writestr(
            f"{name}{sep}{'t1ce' if brats2021 else 't1c'}.nii.gz",
            nifti_bytes(pat.astype(np.float32), AFFINE, np.float32),
        )
    return {
        "name": name,
        "zip": buf.getvalue(),
        "t": t,
        "labels": lab_p,
        "enh": enh,
        "nec": nec,
        "mni_labels": lab,
        "convention": "1/2/4" if brats2021 else "1/2/3",
    }


def max_error_mm(t_found, t_true) -> float:
    from workbench.physics.tumor.atlas import _templates_1mm

    _, _, t1 = _templates_1mm()
    pts = np.argwhere(t1 > 0)[::97].astype(float)
    w = pts @ MNI_1MM[:3, :3].T + MNI_1MM[:3, 3]
    d = w @ (t_found[:3, :3] - t_true[:3, :3]).T + (t_found[:3, 3] - t_true[:3, 3])
    return float(np.linalg.norm(d, axis=1).max())


def run(n_cases: int, seed: int = 19) -> list[dict]:
    from workbench import registry
    from workbench.datasets.tumor import load, problem_from_masks
    from workbench.io.tumor_nifti import labels_to_masks, to_input_space
    from workbench.physics.tumor.metrics import dice

    spec = registry.get_solver("tumor", "db_lookup")
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_cases):
        case = make_case(k, rng)
        t0 = time.perf_counter()
        prob = load(case["zip"], case["name"] + ".zip", grid=64)
        t_load = time.perf_counter() - t0
        reg = prob.meta["registration"]
        t0 = time.perf_counter()
        res = spec.solve(prob, spec.params())
        t_lookup = time.perf_counter() - t0
        u_p, aff = to_input_space(res.output, prob)
        wt_in = case["labels"] > 0
        tc_in = np.isin(case["labels"], (case["enh"], case["nec"]))
        # the paper's plain rank 1 (align=false) beside the default (aligned since issue 20)
        res_p = spec.solve(prob, spec.params({"align": False}))
        u_pl, _ = to_input_space(res_p.output, prob)
        wt, tc, _ = labels_to_masks(case["mni_labels"].astype(np.int64), "auto", "mni")
        direct = problem_from_masks(wt, tc, MNI_1MM, wt.shape, 64)
        res_d = spec.solve(direct, spec.params())
        rows.append(
            {
                "case": case["name"],
                "labels": case["convention"],
                "WT_cm3": float(wt_in.sum() / 1000.0),
                "reg_s": float(reg["wall_s"]),
                "reg_cpu_s": float(reg["cpu_s"]),
                "load_s": t_load,
                "reg_err_mm": max_error_mm(np.asarray(reg["to_patient"]), case["t"]),
                "brain_dice": float(reg["dice_brain"]),
                "nmi": float(reg["nmi"]),
                "lookup_s": t_lookup,
                "dice_WT_patient": dice(u_p >= 0.25, wt_in),
                "dice_TC_patient": dice(u_p >= 0.675, tc_in),
                "dice_WT_patient_plain": dice(u_pl >= 0.25, wt_in),
                "dice_WT_atlas_direct": float(res_d.metrics.get("dice_edema", float("nan"))),
                "dice_WT_atlas_registered": float(res.metrics.get("dice_edema", float("nan"))),
                "affine_ok": bool(np.allclose(aff, AFFINE)),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 cases")
    ap.add_argument("--json", action="store_true")
    # 4: the committed section's run, so that `make bench` (no options) regenerates it
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--check", action="store_true", help="correctness only: every case, finite metrics"
    )
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    n = 2 if a.quick else a.cases
    load0 = os.getloadavg()[0]
    rows = run(n)
    load1 = os.getloadavg()[0]
    summary = {
        "cases": n,
        "median_reg_s": float(np.median([r["reg_s"] for r in rows])),
        "max_reg_s": float(np.max([r["reg_s"] for r in rows])),
        "max_reg_cpu_s": float(np.max([r["reg_cpu_s"] for r in rows])),
        "max_reg_err_mm": float(np.max([r["reg_err_mm"] for r in rows])),
        "median_dice_WT_patient": float(np.median([r["dice_WT_patient"] for r in rows])),
        "min_dice_WT_patient": float(np.min([r["dice_WT_patient"] for r in rows])),
        "target_reg_le_60s_cpu": bool(all(r["reg_cpu_s"] <= 60 for r in rows)),
        "target_dice_ge_0.6": bool(all(r["dice_WT_patient"] >= 0.6 for r in rows)),
    }
    if a.json:
        print(json.dumps({"rows": rows, "summary": summary}))
    if a.check:
        from workbench.bench import check

        check(len(rows) == n, f"{len(rows)} of {n} cases")
        for r in rows:
            vals = [v for v in r.values() if isinstance(v, float)]
            check(bool(np.all(np.isfinite(vals))), f"{r['case']}: non-finite metric")
            check(r["affine_ok"], f"{r['case']}: output not on the input's grid")
    if not a.no_write and not a.quick:
        from workbench.bench import markdown_table, write_section

        cmd = f"workbench bench tumor_patient --cases {n}"
        md = (
            "BraTS-like cases (240 x 240 x 155, 1 mm, SRI24-like frame, random affine from MNI, "
            "T1-contrast look, bias field, noise) through the loader (dipy affine registration "
            "with mutual information at 3 mm, one core) and `db_lookup` (shipped database, its "
            "defaults: translation-aligned re-rank with 8 re-simulations, then the local "
            "refinement by pattern search with 90 forward solves); the "
            "returned density mapped back to the patient grid. Targets: registration <= 60 s, "
            "Dice(returned WT, input WT) >= 0.6 in patient space.\n\n"
            + markdown_table(rows)
            + "\n\n"
            + markdown_table([summary])
            + "\n\n"
            + f"reg_s is wall time, reg_cpu_s the registration's CPU time; the build machine's load "
            f"average was {load0:.0f} at the start and {load1:.0f} at the end (2 cores shared by "
            "other jobs), so the wall times measure the queue, the CPU times the work on one core. "
            "`dice_WT_atlas_direct` is the same lookup on the MNI-space masks (no registration): "
            "the patient-space Dice follows it, so registration costs little; "
            "`dice_WT_patient_plain` is the paper's plain rank 1 (`align=false`), the default "
            "before issue 20.\n\n**Target misses:**\n\n"
            + (
                "\n".join(
                    f"- {r['case']}: Dice(WT) in patient space {r['dice_WT_patient']:.3f} < 0.6 "
                    f"(the lookup on the MNI-space masks gets {r['dice_WT_atlas_direct']:.3f})"
                    for r in rows
                    if r["dice_WT_patient"] < 0.6
                )
                + "".join(
                    f"\n- {r['case']}: registration CPU time {r['reg_cpu_s']:.0f} s > 60 s"
                    for r in rows
                    if r["reg_cpu_s"] > 60
                )
                or "- none"
            )
        )
        write_section("Tumour growth: patient space", md, cmd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
