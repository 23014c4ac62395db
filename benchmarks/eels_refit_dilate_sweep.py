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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import eels_val as V

    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca as P
    from workbench.solvers.eels import pca_recon

    ap = V.parser(__doc__)
    ap.add_argument("--dilates", default="0,2,4,6")
    ap.add_argument("--qs", default="0.999,0.99")
    ap.add_argument("--rounds", default="2")
    a = ap.parse_args(argv)
    tab = V.Table()
    conds = (*V.SHIFT, V.NULL)
    for cond, seed, prob in V.cubes(conds, V.seeds(a)):
        prep = P.prepare_params(prob, pca_recon.Params())
        k, _ = P.choose_k(prep, 0)
        for rounds in (int(x) for x in a.rounds.split(",")):
            for trim in (float(x) for x in a.dilates.split(",")):
                for q in (float(y) for y in a.qs.split(",")):
                    _, sfit, left = P.refit(prep, k, True, rounds, C.DEFAULT_POOL, dilate=trim, q=q)
                    m, _, _ = C.detector_map(
                        "shift", sfit.lr, prep.shape, C.DEFAULT_POOL, "common", sfit
                    )
                    what, v = V.judge(m, prob)
                    tab.add(f"(rounds {rounds}, dilate {trim:g}, q {q:g})", cond, v)
                    print(
                        f"{cond[:24]:24s} seed {seed} rounds {rounds} dilate {trim:g} q {q:g}: "
                        f"{what} {v:.4f} left out {left:.3f}",
                        flush=True,
                    )
    print(tab.summary(conds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
