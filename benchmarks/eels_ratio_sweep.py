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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import eels_val as V

    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca as P
    from workbench.solvers.eels import pca_recon

    ap = V.parser(__doc__)
    ap.add_argument("--widths", default="2.5")
    ap.add_argument("--ks", default="auto,auto+1,3,4,5")
    ap.add_argument("--refits", default="0,1,2")
    a = ap.parse_args(argv)
    widths = [float(w) for w in a.widths.split(",")]
    tab = V.Table()
    conds = (V.RATIO, V.NULL)
    for cond, seed, prob in V.cubes(conds, V.seeds(a)):
        prep = P.prepare_params(prob, pca_recon.Params(look_for="ratio"))
        kauto, _ = P.choose_k(prep, 0)
        for kk in a.ks.split(","):
            k = {"auto": kauto, "auto+1": kauto + 1}.get(kk) or int(kk)
            for w in widths:
                C.WL_HALF_WIDTH = w
                for rounds in (int(x) for x in a.refits.split(",")):
                    _, rfit, _ = P.refit(prep, k, True, rounds, C.DEFAULT_POOL, "ratio")
                    m, _, _ = C.detector_map(
                        "ratio", rfit.lr, prep.shape, C.DEFAULT_POOL, "common", None, rfit
                    )
                    what, v = V.judge(m, prob, "ratio")
                    tab.add(f"(k {kk}, half-width {w:g}, refit {rounds})", cond, v)
                    print(
                        f"{cond[:20]:20s} seed {seed} k={kk:6s}({k}) w={w:g} refit={rounds} "
                        f"{what} {v:.4f}",
                        flush=True,
                    )
    print(tab.summary(conds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
