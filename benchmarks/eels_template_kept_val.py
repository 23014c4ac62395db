"""pca_recon's "trimmed" template against "dload" (validation cubes only), and the probes that
failed beside it.

    python benchmarks/eels_template_kept_val.py [--seeds 20001,...,20012] [--conds 0,1,8]
    python benchmarks/eels_template_kept_val.py --explore [--seeds 20001,...,20006] [--conds 0,8]
    python benchmarks/eels_template_kept_val.py --pooling [--seeds 20001,...,20012] [--conds 0,1,8]

``--conds``: indices into the benchmark's conditions (:data:`eels.CONDITIONS`; 0 = shift 0.5 eV
/ 0.3x, 1 = shift 1 eV / 0.3x, 8 = the drift null). Every map is the default shift score (the
common-shift likelihood ratio pooled over sd 3 px, k from parallel analysis) with one template:

  dload              the previous default (:func:`workbench.solvers.eels.pca.fit_dload`)
  trimmed            the candidate: a plain PCA fitted on the pixels dload's trimmed regression
                     kept (5 % trimmed, band-pass 3 / 12 px)
  dload on kept      dload refitted on those pixels (untrimmed)
  pca true rows      an oracle bound: the PCA of the truly normal pixels

``--explore`` adds the probes that were tried first, each a plausible cause of the gap to the
bound: ``dload k=+j`` / ``k=K`` (more components than parallel analysis picks: the pooled score
sees systematic template errors far below the per-pixel noise), ``masked`` (each pixel's scores
fitted on the channels outside the edge window only, so its own shift cannot enter them) and
``xfit b=B m=M`` (spatial cross-fitting: every B x B block scored by a fit without the block and
an M px margin, so no pixel is in its own fit).

``--pooling``: the trimmed template's shift score under other poolings -- the common-shift
likelihood ratio at sd 2 / 2.5 / 3 (the default) / 4 px and the Gaussian average of the per-pixel
statistic ("mean") at sd 1.5 / 2 / 3 px -- to check that the default pooling, chosen with the
earlier templates, is still the best one.

Rule, fixed before the run of the candidate (the same as for dload): it becomes the default
only if its mean ROC AUC at 0.5 eV / 0.3x beats dload's by >= 0.01, it does not lose at 1 eV, and
it flags <= 2 % of every drift-null cube at the default threshold. Log:
benchmarks/results/eels_template_kept_val.log.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def masked(fit: dict, out: np.ndarray) -> dict:
    """``fit`` with every pixel's scores refitted on the channels ``out`` only (same basis)."""
    m, V = fit["mean"], fit["V"]
    z = np.linalg.lstsq(V[:, out].T, (fit["Xn"][:, out] - m[out]).T, rcond=None)[0].T
    Xn_hat = m + z @ V
    return dict(fit, z=z, Xn_hat=Xn_hat, X_hat=Xn_hat * fit["row"][:, None] * fit["col"][None, :])


def xfit(prep, k: int, template: str, block: int, margin: int) -> dict:
    """Spatially cross-fitted template: each block's rows from a fit without the block and a
    ``margin`` px border around it."""
    from workbench.solvers.eels import pca as P

    ny, nx = prep.shape
    yy, xx = np.mgrid[:ny, :nx]
    X_hat = np.empty_like(prep.X)
    for by in range(0, ny, block):
        for bx in range(0, nx, block):
            inb = (yy >= by) & (yy < by + block) & (xx >= bx) & (xx < bx + block)
            near = (
                (yy >= by - margin)
                & (yy < by + block + margin)
                & (xx >= bx - margin)
                & (xx < bx + block + margin)
            )
            f = P.fit_template(prep, k, True, template, fit_rows=~near.ravel())
            X_hat[inb.ravel()] = f["X_hat"][inb.ravel()]
    return {"X_hat": X_hat}


def main(argv=None) -> int:
    import eels as B
    import eels_val as V
    import torch

    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca as P
    from workbench.solvers.eels import pca_recon

    torch.set_num_threads(1)
    ap = V.parser(__doc__)
    ap.add_argument("--conds", default="0,1,8", help="indices into eels.CONDITIONS")
    ap.add_argument("--explore", action="store_true", help="the probes that failed, too")
    ap.add_argument("--pooling", action="store_true", help="the trimmed template, other poolings")
    a = ap.parse_args(argv)
    names = list(B.CONDITIONS)
    conds = [names[int(i)] for i in a.conds.split(",")]
    tab = V.Table()
    pool = C.DEFAULT_POOL
    for cond, seed, prob in V.cubes(conds, V.seeds(a)):
        t0 = time.process_time()
        prep = P.prepare_params(prob, pca_recon.Params(template="dload"))
        k, _ = P.choose_k(prep, 0)
        if a.pooling:
            sf = P.shift_scores(prep, P.fit_template(prep, k, True, "trimmed"))
            for how, sds in (("common", (2.0, 2.5, 3.0, 4.0)), ("magnitude", (1.5, 2.0, 3.0))):
                for sd in sds:
                    smap, null_pool, _ = C.detector_map("shift", sf.lr, prep.shape, sd, how, sf)
                    if prob.truth is not None and prob.truth.any():
                        what, v = V.judge(smap, prob, "shift")
                    else:
                        what = "flagged"
                        v = float(C.threshold(smap, "auto", "shift", null_pool)["mask"].mean())
                    name = f"trimmed {'common' if how == 'common' else 'mean'} sd {sd:g}"
                    tab.add(name, cond, v)
                    print(f"{cond[:24]:24s} seed {seed} k={k} {name:22s} {what} {v:.4f}")
            continue
        fits = {"dload": P.fit_template(prep, k, True, "dload")}
        kept = fits["dload"]["kept"]
        fits["trimmed"] = P.fit_template(prep, k, True, "trimmed")
        fits["dload on kept"] = P.fit_template(prep, k, True, "dload", fit_rows=kept, trim=0.0)
        truth = prob.truth is not None and prob.truth.any()
        if truth:
            fits["pca true rows"] = P.fit_template(
                prep, k, True, "pca", fit_rows=~prob.truth.ravel()
            )
            print(f"  trimmed share of the true anomaly {1 - kept[prob.truth.ravel()].mean():.2f}")
        if a.explore:
            for extra in ("+2", "+4", "8", "12"):
                kk = k + int(extra[1:]) if extra.startswith("+") else int(extra)
                fits[f"dload k={extra}"] = P.fit_template(prep, kk, True, "dload")
            out = np.ones(prep.X.shape[1], bool)
            out[prep.edge] = False
            fits["dload masked"] = masked(fits["dload"], out)
            fits["pca masked"] = masked(P.fit_template(prep, k, True, "pca"), out)
            for t, b, m in (("pca", 16, 0), ("pca", 16, 6), ("pca", 8, 6), ("dload", 16, 6)):
                fits[f"xfit {t} b={b} m={m}"] = xfit(prep, k, t, b, m)
        for name, fit in fits.items():
            sf = P.shift_scores(prep, fit)
            smap = C.detector_map("shift", sf.lr, prep.shape, pool, "common", sf)[0]
            what, v = V.judge(smap, prob, "shift")
            tab.add(name, cond, v)
            print(f"{cond[:24]:24s} seed {seed} k={k} {name:22s} {what} {v:.4f}", flush=True)
        print(f"  cube CPU {time.process_time() - t0:.1f} s", flush=True)
    print(tab.summary(conds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
