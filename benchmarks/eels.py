"""EELS benchmark: Fe-L shift x anomaly fraction x seeds, every PCA variant vs the 3D-CVAE.

    workbench bench eels [--quick] [--json] [--shifts 0.25,0.5,1,2,4] [--fractions 0.01,0.03,0.1]
                         [--seeds 0,1,2] [--epochs 8] [--methods ...] [--no-write]

Synthetic 64 x 64 cubes, 650-750 eV at 0.3 eV/ch, mid dose (N_pk = 45), Fe-L shifted inside discs.
Methods (spec ids): P1 = pca_recon without Poisson normalisation, Pearson score (paper-like);
P2 = pca_recon, Poisson normalisation, residual energy in 690-730 eV; P3 = pca_t2 (Hotelling T^2);
P4B = pca_bulk trimmed fit (protocol B), residual energy; P4A = pca_bulk fitted on an
anomaly-free reference cube (protocol A), Pearson in the edge window; P5 = Fe-L3 centroid
(physics); VAE-A = cvae3d with the bundled checkpoint only (trained on anomaly-free cubes:
protocol A, no fine-tuning); VAE-B = cvae3d fine-tuned on the image itself (protocol B). All PCA
variants use k = 3. Reported: ROC AUC and PR AUC (mean +- sd over seeds), the smallest shift with
mean AUC >= 0.9, Ashman's D of the truth classes and Otsu F1, and wall times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np

TIE = 0.005  # AUC differences below this count as ties in the target check


def _methods(epochs: int):
    from workbench.solvers.eels import cvae3d, pca_bulk, pca_recon, pca_t2

    # name -> (module, params, {row name: extras score key} for further scores of the same run)
    return {
        "P1 pca_recon (no PN, Pearson)": (pca_recon, dict(poisson_norm=False, score="pearson"), {}),
        "P2 pca_recon (PN, residual)": (
            pca_recon,
            dict(),
            {"P2s pca_recon (PN, shift score)": "score_shift"},
        ),
        "P3 pca_t2": (pca_t2, dict(), {}),
        "P4B pca_bulk (trimmed)": (
            pca_bulk,
            dict(use_reference=False),
            {"P4Bs pca_bulk (trimmed, shift score)": "score_shift"},
        ),
        "P4A pca_bulk (reference, Pearson)": (
            pca_bulk,
            dict(use_reference=True, score="pearson"),
            {"P4As pca_bulk (reference, shift score)": "score_shift"},
        ),
        "P5 centroid": (None, dict(), {}),
        "VAE-A cvae3d (checkpoint, Pearson)": (
            cvae3d,
            dict(max_iter=0, device="cpu", save=False),
            {
                "VAE-A cvae3d (checkpoint, NLL)": "score_nll",
                "VAE-As cvae3d (checkpoint, shift score)": "score_shift",
            },
        ),
        "VAE-B cvae3d (fine-tuned, Pearson)": (
            cvae3d,
            dict(max_iter=epochs, device="cpu", save=False),
            {
                "VAE-B cvae3d (fine-tuned, NLL)": "score_nll",
                "VAE-Bs cvae3d (fine-tuned, shift score)": "score_shift",
            },
        ),
    }


def _centroid_score(problem) -> np.ndarray:
    from workbench.physics.eels import spectra as SP

    c = SP.centroid_map(problem.data, np.asarray(problem.energy))
    return np.abs(c - np.median(c))


def run(shifts, fractions, seeds, epochs, methods=None, log=print, rows_path=""):
    import torch

    torch.set_num_threads(1)
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import common as C

    table = _methods(epochs)
    if methods:
        table = {k: v for k, v in table.items() if any(m in k for m in methods)}
    rows = []
    # seeds outermost: a run stopped early still covers the whole grid once
    for seed in seeds:
        for shift in shifts:
            for frac in fractions:
                t0 = time.perf_counter()
                prob = synthetic(
                    dict(shift=shift, fraction=frac, seed=seed),
                    reference=True,
                    name=f"bench-{shift}-{frac}-{seed}",
                )
                t_gen = time.perf_counter() - t0
                for name, (mod, kw, also) in table.items():
                    t1 = time.perf_counter()
                    variants = []
                    if mod is None:
                        score = _centroid_score(prob)
                        th = C.threshold(score, "otsu")
                        met = EM.score_metrics(score, prob.truth, th["mask"])
                        met["ashman_d"] = th["ashman_d"]
                        train_s, infer_s = 0.0, time.perf_counter() - t1
                    else:
                        r = mod.solve(prob, mod.Params(**kw))
                        met = dict(r.metrics)
                        train_s = float(r.metrics.get("train_s", 0.0))
                        infer_s = float(
                            r.metrics.get("infer_s", time.perf_counter() - t1 - train_s)
                        )
                        for vname, key in also.items():
                            sc = np.asarray(r.extras[key], float)
                            th = C.threshold(sc, "otsu")
                            vm = EM.score_metrics(sc, prob.truth, th["mask"])
                            vm["ashman_d"] = th["ashman_d"]
                            variants.append((vname, vm))
                    wall = time.perf_counter() - t1
                    for rname, rmet in [(name, met), *variants]:
                        row = {
                            "method": rname,
                            "shift": shift,
                            "fraction": frac,
                            "seed": seed,
                            "achieved_fraction": float(prob.truth.mean()),
                            "roc_auc": rmet.get("roc_auc", float("nan")),
                            "pr_auc": rmet.get("pr_auc", float("nan")),
                            "f1": rmet.get("f1", float("nan")),
                            "ashman_d_truth": rmet.get("ashman_d_truth", float("nan")),
                            "ashman_d_fit": rmet.get("ashman_d", float("nan")),
                            "tpr_at_1pct_fpr": rmet.get("tpr_at_1pct_fpr", float("nan")),
                            "train_s": train_s,
                            "infer_s": infer_s,
                            "wall_s": wall,
                            "gen_s": t_gen,
                        }
                        rows.append(row)
                        if rows_path:  # incremental, so a partial run can be merged later
                            with open(rows_path, "w") as fh:
                                json.dump(rows, fh)
                        log(
                            f"{shift:5.2f} eV {100 * frac:4.1f}% seed {seed} {rname:40s} AUC {row['roc_auc']:.3f} AP {row['pr_auc']:.3f} {row['wall_s']:.1f}s"
                        )
    return rows


def _agg(rows):
    g = defaultdict(list)
    for r in rows:
        g[(r["method"], r["shift"], r["fraction"])].append(r)
    out = {}
    for k, rs in g.items():
        out[k] = {
            m: (float(np.mean([r[m] for r in rs])), float(np.std([r[m] for r in rs])), len(rs))
            for m in ("roc_auc", "pr_auc", "f1", "ashman_d_truth", "train_s", "infer_s", "wall_s")
        }
    return out


def markdown(rows, shifts, fractions, seeds, epochs) -> str:
    agg = _agg(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        f"Synthetic 64 x 64 cubes, 650-750 eV at 0.3 eV/ch (334 channels), mid dose (N_pk = 45, "
        f"background 180 counts/ch at 708 eV), Fe-L shift in discs of radius 3-6 px; "
        f"shifts {shifts} eV, fractions {[100 * f for f in fractions]} %, seeds {seeds} "
        f"(cells: mean +- sd over {len(seeds)} seed(s)). k = 3 for every PCA variant. VAE-B fine-tunes "
        f"the bundled checkpoint for {epochs} epochs on each image (protocol B); VAE-A uses the checkpoint "
        "alone (trained on anomaly-free cubes of the same material: protocol A), P4A fits PCA on an "
        "anomaly-free reference cube (protocol A). Every pixel counts.",
        "",
        "Score variants: 'shift score' is the generalised likelihood ratio for an energy shift of the "
        "method's reconstruction in 690-730 eV (2 max_delta sum_k Y_k log(Yhat_delta,k / Yhat_k), delta in "
        "+-5 eV by 0.1 eV, totals matched) -- "
        "an addition of this project aimed at the chemical-shift alternative; 'Pearson' is the paper's "
        "1 - r; 'NLL' the Poisson deviance. Cubes with the same seed share thickness/Fe maps and disc "
        "positions across shifts (paired design), so AUC above 0.5 at 0.25 eV for Pearson-type scores "
        "partly reflects the score's dependence on counts (SNR) at the disc positions, not the shift.",
        "",
        "Seeds per method: "
        + "; ".join(
            f"{m.split()[0]} {len({r['seed'] for r in rows if r['method'] == m})}"
            for m in dict.fromkeys(r["method"] for r in rows)
        )
        + ".",
        "",
    ]
    for metric, title in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC (average precision)")):
        for frac in fractions:
            lines.append(f"**{title}, fraction {100 * frac:g} %**")
            lines.append("")
            lines.append("| method | " + " | ".join(f"{s:g} eV" for s in shifts) + " |")
            lines.append("|---|" + "---|" * len(shifts))
            for m in methods:
                cells = []
                for s in shifts:
                    a = agg.get((m, s, frac))
                    cells.append("" if a is None else f"{a[metric][0]:.3f} ± {a[metric][1]:.3f}")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
    lines.append("**Smallest shift with mean ROC AUC >= 0.9** (— = none in the grid)")
    lines.append("")
    lines.append("| method | " + " | ".join(f"{100 * f:g} %" for f in fractions) + " |")
    lines.append("|---|" + "---|" * len(fractions))
    for m in methods:
        cells = []
        for f in fractions:
            ok = [s for s in shifts if (m, s, f) in agg and agg[(m, s, f)]["roc_auc"][0] >= 0.9]
            cells.append(f"{min(ok):g} eV" if ok else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "**Bimodality: Ashman's D of the truth classes / Otsu F1** (mean over seeds and fractions)"
    )
    lines.append("")
    lines.append("| method | " + " | ".join(f"{s:g} eV" for s in shifts) + " |")
    lines.append("|---|" + "---|" * len(shifts))
    for m in methods:
        cells = []
        for s in shifts:
            d = [agg[(m, s, f)]["ashman_d_truth"][0] for f in fractions if (m, s, f) in agg]
            f1 = [agg[(m, s, f)]["f1"][0] for f in fractions if (m, s, f) in agg]
            cells.append(f"{np.mean(d):.2f} / {np.mean(f1):.2f}" if d else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "**Time per 64 x 64 x 334 cube** (s, mean over all cells; shared 2-core CPU, 1 thread)"
    )
    lines.append("")
    lines.append("| method | train (s) | inference / fit (s) | total (s) |")
    lines.append("|---|---|---|---|")
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        lines.append(
            f"| {m} | {np.mean([r['train_s'] for r in rs]):.1f} | {np.mean([r['infer_s'] for r in rs]):.2f} | {np.mean([r['wall_s'] for r in rs]):.1f} |"
        )
    gen = np.mean([r["gen_s"] for r in rows])
    lines.append("")
    lines.append(f"Generator (cube + reference cube): {gen:.1f} s per cell.")
    # targets of the issue
    lines.append("")
    pcas = [m for m in methods if m.startswith("P")]
    for vb in [m for m in methods if m.startswith("VAE")]:
        a = agg.get((vb, 1.0, 0.03))
        line = f"- {vb}: "
        if a:
            ok = a["roc_auc"][0] >= 0.95
            line += f"AUC at 1 eV / 3 % = {a['roc_auc'][0]:.3f} (target >= 0.95: {'met' if ok else 'MISSED'}); "
        miss = []
        for s in shifts:
            if s < 0.5:
                continue
            for f in fractions:
                if (vb, s, f) not in agg:
                    continue
                cands = [(p, agg[(p, s, f)]["roc_auc"][0]) for p in pcas if (p, s, f) in agg]
                if not cands:
                    continue
                best_name, best = max(cands, key=lambda t: t[1])
                if agg[(vb, s, f)]["roc_auc"][0] < best - TIE:
                    miss.append(
                        f"{s:g} eV/{100 * f:g} % ({agg[(vb, s, f)]['roc_auc'][0]:.3f} < {best:.3f} {best_name.split()[0]})"
                    )
        line += f"AUC >= best PCA variant (ties within {TIE}) at every shift >= 0.5 eV: " + (
            "met." if not miss else "MISSED at " + ", ".join(miss) + "."
        )
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="workbench bench eels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="1 and 2 eV, 3 %%, one seed, 2 VAE epochs")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--shifts", default="0.25,0.5,1,2,4")
    ap.add_argument("--fractions", default="0.01,0.03,0.1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=8, help="VAE-B fine-tuning epochs")
    ap.add_argument("--methods", default="", help="comma-separated substrings of method names")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--rows", default="", help="also write the raw rows to this JSON file")
    ap.add_argument(
        "--from-rows", default="", help="skip the runs: tabulate the rows of this JSON file"
    )
    ap.add_argument(
        "--merge",
        default="",
        help="comma-separated JSON row files of earlier partial runs to include",
    )
    a = ap.parse_args(argv)
    if a.quick:
        shifts, fractions, seeds, epochs = [1.0, 2.0], [0.03], [0], 2
    else:
        shifts = [float(s) for s in a.shifts.split(",")]
        fractions = [float(f) for f in a.fractions.split(",")]
        seeds = [int(s) for s in a.seeds.split(",")]
        epochs = a.epochs
    methods = [m for m in a.methods.split(",") if m]
    log = (
        (lambda s: print(s, file=sys.stderr, flush=True))
        if a.json
        else (lambda s: print(s, flush=True))
    )
    t0 = time.perf_counter()
    if a.from_rows:
        with open(a.from_rows) as fh:
            rows = json.load(fh)
        a.merge = ",".join(x for x in (a.merge, a.from_rows) if x)
    else:
        rows = run(shifts, fractions, seeds, epochs, methods, log, a.rows)
    if a.merge:
        have = {(r["method"], r["shift"], r["fraction"], r["seed"]) for r in rows}
        for path in a.merge.split(","):
            with open(path) as fh:
                for r in json.load(fh):
                    k = (r["method"], r["shift"], r["fraction"], r["seed"])
                    if k not in have:
                        rows.append(r)
                        have.add(k)
        shifts = sorted({r["shift"] for r in rows})
        fractions = sorted({r["fraction"] for r in rows})
        seeds = sorted({r["seed"] for r in rows})
    md = markdown(rows, shifts, fractions, seeds, epochs)
    if a.from_rows:
        runs = {(r["shift"], r["fraction"], r["seed"], round(r["wall_s"], 6)) for r in rows}
        md += f"\n\nSum of per-method wall times over all cells: {sum(k[3] for k in runs) / 60:.0f} min."
    else:
        md += f"\n\nTotal benchmark wall time {time.perf_counter() - t0:.0f} s."
    cmd = "workbench bench eels " + " ".join(argv if argv is not None else sys.argv[1:])
    if not a.no_write:
        from workbench.bench import write_section

        write_section("EELS", md, cmd.strip())
    if a.rows:
        with open(a.rows, "w") as fh:
            json.dump(rows, fh, indent=1)
    if a.json:
        agg = _agg(rows)
        print(
            json.dumps(
                {
                    "domain": "eels",
                    "shifts": shifts,
                    "fractions": fractions,
                    "seeds": seeds,
                    "cells": [
                        {
                            "method": k[0],
                            "shift": k[1],
                            "fraction": k[2],
                            **{m: v[0] for m, v in d.items()},
                        }
                        for k, d in agg.items()
                    ],
                }
            )
        )
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
