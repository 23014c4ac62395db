"""Validation sweep: pca_recon's shift-score refit leaving out the pixels flagged at the calibrated
threshold of quantile ``q`` (0.999 = the default threshold), grown by a disc of ``dilate`` pixels
so that the rim of a detected region leaves the fit too.

    python benchmarks/eels_refit_dilate_sweep.py [--seeds 20001,...] [--dilates 0,2,4,6] [--qs 0.999,0.99]

Validation cubes only (seeds 20001-20004 of the benchmark's "shift 0.5 eV, dose 0.3x",
"shift 1 eV, dose 0.3x" and "null (no anomaly), drift 0.3 eV" conditions; the test seeds are
0-9). Reports per setting the mean ROC AUC of pca_recon's default output and the
largest fraction of null pixels flagged at its default threshold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import eels as B

    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca as P
    from workbench.solvers.eels import pca_recon

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="20001,20002,20003,20004")
    ap.add_argument("--dilates", default="0,2,4,6")
    ap.add_argument("--qs", default="0.999,0.99")
    ap.add_argument("--rounds", default="2")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    res: dict[tuple, dict[str, list[float]]] = {}
    conds = ("shift 0.5 eV, dose 0.3x", "shift 1 eV, dose 0.3x", "null (no anomaly), drift 0.3 eV")
    for cond in conds:
        for seed in seeds:
            prob = B._problem(cond, seed)
            prep = P.prepare_params(prob, pca_recon.Params())
            k, _ = P.choose_k(prep, 0)
            for rounds in (int(x) for x in a.rounds.split(",")):
                for trim, q in (
                    (float(x), float(y)) for x in a.dilates.split(",") for y in a.qs.split(",")
                ):
                    _, sfit, left = P.shift_refit(
                        prep, k, True, rounds, C.DEFAULT_POOL, dilate=trim, q=q
                    )
                    m, _, _ = C.detector_map(
                        "shift", sfit.lr, prep.shape, C.DEFAULT_POOL, "common", sfit
                    )
                    f = float(C.threshold(m, "auto", "shift", 0.0)["mask"].mean())
                    d = res.setdefault((rounds, trim, q), {})
                    if prob.truth is not None and prob.truth.any():
                        v = float(EM.roc_auc(m, prob.truth))
                        d.setdefault(cond, []).append(v)
                    else:
                        d.setdefault(cond, []).append(f)
                        v = float("nan")
                    print(
                        f"{cond[:24]:24s} seed {seed} rounds {rounds} dilate {trim:g} q {q:g}: AUC {v:.3f} "
                        f"flagged {f:.4f} left out {left:.3f}",
                        flush=True,
                    )
    print("\n(rounds, dilate, q): mean AUC 0.5 eV / 1 eV, worst null flagged")
    for key, d in res.items():
        print(
            f"{key}: {np.mean(d[conds[0]]):.3f} / {np.mean(d[conds[1]]):.3f}, "
            f"null max {max(d[conds[2]]):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
