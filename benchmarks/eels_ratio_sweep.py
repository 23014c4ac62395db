"""Validation sweep of the white-line ratio score's settings (pca_recon, look for = ratio).

    python benchmarks/eels_ratio_sweep.py [--seeds 20001,20002,20003,20004]

Validation cubes only (seeds 20001-20004 of the benchmark's "L3/L2 ratio x1.6, dose 1x" and
"null (no anomaly), drift 0.3 eV" conditions; the benchmark's test seeds are 0-9). For every
setting -- number of components (parallel analysis 'auto', auto + 1, 3, 4, 5) x refit rounds
without the flagged pixels (0, 1, 2) x white-line window half-width (HWHM units) -- the mean ROC
AUC of the pooled ratio likelihood ratio (the detector's output) on the ratio cubes and the
largest fraction of pixels flagged at the calibrated threshold on the null cubes. Rule, fixed
before the run: the highest mean AUC among the settings flagging at most 2 % of every null cube;
a setting within 0.005 of it that is simpler (fewer refit rounds, k = auto) is preferred.
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
    ap.add_argument("--widths", default="2.5")
    ap.add_argument("--ks", default="auto,auto+1,3,4,5")
    ap.add_argument("--refits", default="0,1,2")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    widths = [float(w) for w in a.widths.split(",")]
    auc: dict[tuple, list[float]] = {}
    flag: dict[tuple, list[float]] = {}
    for cond in ("L3/L2 ratio x1.6, dose 1x", "null (no anomaly), drift 0.3 eV"):
        for seed in seeds:
            prob = B._problem(cond, seed)
            prep = P.prepare_params(prob, pca_recon.Params(look_for="ratio"))
            kauto, _ = P.choose_k(prep, 0)
            for kk in a.ks.split(","):
                k = {"auto": kauto, "auto+1": kauto + 1}.get(kk) or int(kk)
                for w in widths:
                    C.WL_HALF_WIDTH = w
                    for rounds in (int(x) for x in a.refits.split(",")):
                        fit, rfit, _ = P.ratio_refit(prep, k, True, rounds, C.DEFAULT_POOL)
                        m, _, _ = C.detector_map(
                            "ratio", rfit.lr, prep.shape, C.DEFAULT_POOL, "common", None, rfit
                        )
                        key = (kk, w, rounds)
                        f = float(C.threshold(m, "auto", "ratio", 0.0)["mask"].mean())
                        line = f"{cond[:20]:20s} seed {seed} k={kk:6s}({k}) w={w:g} refit={rounds}"
                        if prob.truth is not None and prob.truth.any():
                            v = float(EM.roc_auc(m, prob.truth))
                            auc.setdefault(key, []).append(v)
                            print(f"{line} AUC {v:.3f} flagged {f:.4f}", flush=True)
                        else:
                            flag.setdefault(key, []).append(f)
                            print(f"{line} null flagged {f:.4f}", flush=True)
    print("\nsetting (k, half-width, refit): mean AUC [per seed], worst null flagged")
    for key in auc:
        print(
            f"{key}: {np.mean(auc[key]):.3f} {[round(x, 3) for x in auc[key]]} "
            f"null max {max(flag.get(key, [np.nan])):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
