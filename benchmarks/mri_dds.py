"""MRI part 4 benchmark (``workbench bench mri_dds``): the Decomposed Diffusion Sampler against
DPS (same prior, same NFE), RecurrentVarNet, L1-wavelet, TV and CG-SENSE.

Sets, maps and metrics are those of the main MRI section (``workbench bench mri``; its set
builders are reused): 128², equispaced masks at 4× (cf 0.08) and 8× (cf 0.04) except in the
corpus set, which keeps its own equispaced/random masks. **In distribution:** the held-out
examples of the corpus ``test`` split (template slab z ∈ [132, 189) and test phantom seeds; the
prior's manifest records the corpus revision it was trained on, and the run refuses to start
when any test example overlaps that revision's training slab, see
``workbench.datasets.mri_corpus.training_overlap``). **Out of distribution:** analytic
Shepp–Logan with analytic coils, random phantoms with surface coils, and real scans (dipy's T1
slice, nibabel's EPI mid slices) with birdcage coils. **Maps:** every problem gets maps=auto
(ESPIRiT when the calibration region has ≥ 10 lines, else ACS-RSS; so ESPIRiT at 4× and ACS-RSS
at 8× on these sets), and every method uses the problem's maps — CG-SENSE, L1-wavelet, TV and the
data consistency of DDS and DPS — except RecurrentVarNet, which recomputes its own ACS-RSS maps
as in training. PSNR/SSIM in the fastMRI convention against the noisy fully sampled reference,
means over slices with percentile-bootstrap 95% intervals; s/slice = median wall seconds on one
thread, CPU s/slice = median process CPU seconds.

**Tuning** (validation only: corpus ``val`` examples at 128² and the run's R, never test data):
the classical methods run with their solvers' defaults, which ``workbench bench mri_tune`` chose
on 3 corpus ``val`` examples (λ × iterations; section *MRI baseline tuning*); DDS and DPS get the
same budget as each other, 4 settings each on the same 3 ``val`` examples at 20 NFE (DDS: the
spec's noiseless / noisy γ ∈ {3, 10, 30}; DPS: ζ ∈ {0.3, 1, 3, 10}), and the chosen setting is
reused at every NFE. The diffusion samplers' grids are smaller than the classical ones (12–20
points), which favours the classical methods. One seed per stochastic method (the spec's median
of 3 seeds did not fit the CPU budget). Targets are judged on DDS at 50 NFE (the solver's
default), not on the best NFE row, so test data picks nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TUNE_NFE = 20
DDS_GRID = [
    {"dc": "noiseless"},
    {"dc": "noisy", "gamma": 3.0},
    {"dc": "noisy", "gamma": 10.0},
    {"dc": "noisy", "gamma": 30.0},
]
DPS_GRID = [{"zeta": z} for z in (0.3, 1.0, 3.0, 10.0)]
CLASSICAL = ("CG-SENSE", "L1-wavelet", "TV")


def _setup_threads():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)


def _bench_mri():
    """benchmarks/mri.py, for its data sets and its per-slice runner (one definition of both)."""
    spec = importlib.util.spec_from_file_location("_bench_mri", HERE / "mri.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prior_overlaps(probs) -> list[str]:
    """Test examples the shipped prior may have seen (by its manifest's corpus record)."""
    from workbench.datasets.mri_corpus import training_overlap
    from workbench.solvers.mri.diffusion import checkpoint_path

    with open(os.path.splitext(checkpoint_path("diffusion_prior"))[0] + ".json") as f:
        record = json.load(f).get("corpus")
    out = []
    for p in probs:
        why = training_overlap(record, p.meta)
        if why:
            out.append(f"{p.meta.get('source', p.id)}: {why}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench mri_dds")
    ap.add_argument(
        "--quick", action="store_true", help="64², 4× only, 10 NFE, 1 slice per set; no write"
    )
    ap.add_argument("--check", action="store_true", help="fail on non-finite or missing rows")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--slices", type=int, default=None, help="corpus test slices (default 3)")
    ap.add_argument("--ood", type=int, default=None, help="slices per OOD set (default 2)")
    ap.add_argument("--val", type=int, default=None, help="validation slices (default 3)")
    ap.add_argument("--accels", default=None, help="comma list (default 4,8; quick 4)")
    ap.add_argument("--nfe", default=None, help="DDS NFE list (default 10,20,50,100; quick 10)")
    ap.add_argument("--dps-nfe", default=None, help="DPS NFE list (default 50; quick 10)")
    ap.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    a = ap.parse_args(argv)
    _setup_threads()

    from workbench.bench import check, fmt_ci, markdown_table, paired_bootstrap, write_section
    from workbench.datasets.mri_corpus import center_fraction_for, corpus_problem
    from workbench.solvers.mri import cg_sense, dds, dps, l1_wavelet, recurrentvarnet, tv

    B = _bench_mri()
    B.SIZE = 64 if a.quick else 128  # quick: a few minutes on one thread (bench-quick in CI)
    n_test = a.slices or (1 if a.quick else 3)
    n_ood = a.ood or (1 if a.quick else 2)
    n_val = a.val or (1 if a.quick else 3)
    accels = [float(x) for x in (a.accels or ("4" if a.quick else "4,8")).split(",")]
    nfes = [int(x) for x in (a.nfe or ("10" if a.quick else "10,20,50,100")).split(",")]
    dps_nfes = [int(x) for x in (a.dps_nfe or ("10" if a.quick else "50")).split(",")]
    tune_nfe = 10 if a.quick else TUNE_NFE
    judged = max((n for n in nfes if n <= 50), default=min(nfes))
    grids = {
        "dds": DDS_GRID[:1] if a.quick else DDS_GRID,
        "dps": DPS_GRID[:1] if a.quick else DPS_GRID,
    }
    classical = [("CG-SENSE", cg_sense), ("L1-wavelet", l1_wavelet), ("TV", tv)]
    t_start = time.time()
    rows, tune_rows, misses, paired, ratios, speed = [], [], [], [], [], []
    for accel in accels:
        cf = center_fraction_for(accel)
        sets = {
            B.SET_NAMES[0]: B.corpus_set(n_test, accel, cf),
            B.SET_NAMES[1]: B.shepp_logan_set(n_ood, accel, cf),
            B.SET_NAMES[2]: B.phantom_surface_set(n_ood, accel, cf),
            B.SET_NAMES[3]: B.real_set(n_ood, accel, cf),
        }
        seen = _prior_overlaps(sets[B.SET_NAMES[0]])
        # always, not only under --check: a prior that saw test voxels makes every number moot
        check(not seen, "the diffusion prior may have seen test examples: " + "; ".join(seen))
        val = [corpus_problem("val", i, size=B.SIZE, accel=accel) for i in range(n_val)]
        chosen = {}
        for name, mod in (("dds", dds), ("dps", dps)):
            best, best_v = None, -np.inf
            for kw in grids[name]:
                r = B._run(mod, mod.Params(nfe=tune_nfe, **kw), val)
                v = float(np.mean([x["psnr"] for x in r]))
                tune_rows.append(
                    {
                        "R": f"{accel:g}×",
                        "method": name.upper(),
                        "params": json.dumps(kw),
                        "val PSNR": v,
                        "s/slice": float(np.median([x["s"] for x in r])),
                    }
                )
                if v > best_v:
                    best, best_v = kw, v
            chosen[name] = best
            tune_rows[-len(grids[name]) + grids[name].index(best)]["chosen"] = "←"
        methods = [(label, mod, {}) for label, mod in classical]
        methods.append(("RecurrentVarNet", recurrentvarnet, {}))
        methods += [(f"DDS {n} NFE", dds, {**chosen["dds"], "nfe": n}) for n in nfes]
        methods += [(f"DPS {n} NFE", dps, {**chosen["dps"], "nfe": n}) for n in dps_nfes]
        for sname, probs in sets.items():
            if not probs:
                continue
            res = {}
            maps_used = "/".join(sorted({p.maps_source for p in probs}))
            for label, mod, kw in methods:
                params = mod.Params(**kw)
                r = B._run(mod, params, probs)
                res[label] = r
                ps, ss = B._summ(r, "psnr"), B._summ(r, "ssim")
                shown = kw or {
                    k: getattr(params, k) for k in ("lam", "max_iter") if hasattr(params, k)
                }
                rows.append(
                    {
                        "R": f"{accel:g}×",
                        "data": f"{sname} ({len(probs)})",
                        "method": label,
                        "maps": "acs_rss (own)" if label == "RecurrentVarNet" else maps_used,
                        "params": json.dumps({k: v for k, v in shown.items() if k != "nfe"}),
                        "PSNR [95% CI]": fmt_ci(*ps),
                        "SSIM [95% CI]": fmt_ci(*ss, fmt=".3f"),
                        "data residual": float(
                            np.mean([x.get("data_residual", np.nan) for x in r])
                        ),
                        "s/slice": float(np.median([x["s"] for x in r])),
                        "CPU s/slice": float(np.median([x["cpu_s"] for x in r])),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # partial results
                if a.check:
                    check(
                        all(np.isfinite([x["psnr"] for x in r] + [x["ssim"] for x in r])),
                        f"{label} {sname} {accel:g}×: non-finite metrics",
                    )
                    check(
                        all(x["status"] in ("converged", "max_iter") for x in r),
                        f"{label} {sname} {accel:g}×: status {[x['status'] for x in r]}",
                    )
            if a.check:
                check(len(res) == len(methods), f"{sname} {accel:g}×: missing rows")
            # --- targets (issue 13), on DDS at `judged` NFE ---
            mean = {k: float(np.mean([x["psnr"] for x in v])) for k, v in res.items()}
            sec = {k: float(np.median([x["s"] for x in v])) for k, v in res.items()}
            cpu = {k: float(np.median([x["cpu_s"] for x in v])) for k, v in res.items()}
            d_lab = f"DDS {judged} NFE"
            d = paired_bootstrap(
                [x["psnr"] for x in res[d_lab]], [x["psnr"] for x in res["L1-wavelet"]]
            )
            paired.append(
                f"- {accel:g}× {sname}: {d_lab} − L1-wavelet = "
                f"{fmt_ci(d['diff'], d['lo'], d['hi'])} dB (paired, {d['n']} slices)"
            )
            if sname == B.SET_NAMES[0]:
                need = mean["L1-wavelet"] + 1.0
                verdict = "met" if mean[d_lab] >= need else "missed"
                line = (
                    f"{accel:g}× {sname}: {d_lab} {mean[d_lab]:.2f} dB vs L1-wavelet "
                    f"{mean['L1-wavelet']:.2f} + 1 dB"
                )
            else:
                bk = max(CLASSICAL, key=mean.get)
                verdict = "met" if mean[d_lab] >= mean[bk] else "missed"
                line = (
                    f"{accel:g}× {sname}: {d_lab} {mean[d_lab]:.2f} dB vs best classical "
                    f"{bk} {mean[bk]:.2f} dB"
                )
            misses.append(f"- {line}: **{verdict}**")
            dps_best = max((k for k in res if k.startswith("DPS")), key=mean.get)
            fast = [k for k in res if k.startswith("DDS") and mean[k] >= mean[dps_best]]
            if fast:
                k = min(fast, key=sec.get)
                ratio = sec[dps_best] / sec[k]
                ratios.append(
                    f"- {accel:g}× {sname}: {k} reaches {dps_best}'s PSNR "
                    f"({mean[k]:.2f} ≥ {mean[dps_best]:.2f} dB) with {ratio:.1f}× less wall time "
                    f"({cpu[dps_best] / cpu[k]:.1f}× less CPU time): "
                    f"**{'met' if ratio >= 10 else 'missed'}**"
                )
            else:
                ratios.append(
                    f"- {accel:g}× {sname}: no DDS row reaches {dps_best}'s PSNR "
                    f"{mean[dps_best]:.2f} dB: **missed**"
                )
            if B.SIZE == 128 and d_lab in res:
                speed.append(f"{accel:g}× {sname} {cpu[d_lab]:.1f} s")
    wall = time.time() - t_start
    md = (
        (__doc__ or "").split("\n\n", 1)[1].strip()
        + f"\n\nPrior: workbench/weights/mri/diffusion_prior.pt (see its .json; trained on corpus "
        "version 2's `train` split). Wall time "
        f"{wall / 60:.1f} min, 1 thread of a shared 2-core CPU (other jobs inflate the times; "
        "ratios are from the same run).\n\n"
        + "**Validation tuning of the diffusion samplers** (corpus `val`, "
        f"{n_val} slices, {tune_nfe} NFE):\n\n"
        + markdown_table(
            tune_rows, ["R", "method", "params", "val PSNR", "s/slice", "chosen"], ".4g"
        )
        + "\n\n**Test sets:**\n\n"
        + markdown_table(
            rows,
            [
                "R",
                "data",
                "method",
                "maps",
                "params",
                "PSNR [95% CI]",
                "SSIM [95% CI]",
                "data residual",
                "s/slice",
                "CPU s/slice",
            ],
            ".3g",
        )
        + f"\n\n**DDS {judged} NFE against L1-wavelet, per slice:**\n\n"
        + "\n".join(paired)
        + f"\n\n**Quality targets** (DDS at {judged} NFE ≥ L1-wavelet + 1 dB in distribution, "
        "≥ the best classical method on every OOD set):\n\n"
        + "\n".join(misses)
        + "\n\n**DDS vs DPS at equal quality** (the fastest DDS row with PSNR ≥ the best DPS row; "
        "target ≥ 10× less wall time):\n\n"
        + "\n".join(ratios)
        + (
            f"\n\nCPU seconds per 128² slice, DDS {judged} NFE (median): " + "; ".join(speed) + "."
            if speed
            else ""
        )
        + "\n"
    )
    cmd = "workbench bench mri_dds" + (" " + " ".join(argv) if argv else "")
    if not a.no_write and not a.quick:
        head = "MRI: Decomposed Diffusion Sampler, "
        title = head + "/".join(f"{x:g}×" for x in accels)
        # a run over several rates replaces the sections of earlier one-rate runs
        older = tuple(f"{head}{x:g}×" for x in accels) if len(accels) > 1 else ()
        write_section(title, md, cmd, supersedes=older)
    if a.json:
        print(json.dumps({"rows": rows, "targets": misses + ratios, "wall_s": wall}, default=float))
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
