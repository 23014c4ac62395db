"""Validation check behind the default thresholds of Hotelling's T^2 and the Fe-L3 centroid
(:func:`workbench.solvers.eels.common.robust_threshold`, ``ROBUST_Z``).

    python benchmarks/eels_threshold_sweep.py [OUT.json] [--null-seeds 20001,...] [--seeds 20001,...]

Validation cubes only (neither the benchmark's test seeds 0-9 nor its validation seeds 10000+):
the 0.3 eV drift null of ``benchmarks/eels.py`` (default seeds 20001-20006) and its two target
shift conditions (20001-20003). ``pca_t2`` runs at its defaults (T^2 pooled over the default
Gaussian); the centroid score is |c - median(c)| of the Fe-L3 centroid in 700-716 eV. Prints,
per cube, the fraction of pixels flagged by Otsu (the old default) and by the robust null at
z in {2.5, 2.75, 3.0, 3.29, 3.5, 4.0}, and the ROC AUC on the shift cubes; the rows go to OUT.json.
A score's default z (``ROBUST_Z``) is the two-sided 0.1 % normal point 3.29 (the shift score's
q = 0.999), or the next grid value where that flags more than 2 % of some null cube.
"""

from __future__ import annotations

import json
import sys

import numpy as np

CONDS = ["null (no anomaly), drift 0.3 eV", "shift 0.5 eV, dose 0.3x", "shift 1 eV, dose 0.3x"]
ZS = (2.5, 2.75, 3.0, 3.2905, 3.5, 4.0)


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.eels import BASE, CONDITIONS
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.physics.eels import spectra as SP
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca_t2

    torch.set_num_threads(1)
    opts = {"--null-seeds": "20001,20002,20003,20004,20005,20006", "--seeds": "20001,20002,20003"}
    for o in opts:
        if o in argv:
            opts[o] = argv[argv.index(o) + 1]
            del argv[argv.index(o) : argv.index(o) + 2]
    rows = []
    for cond in CONDS:
        seeds = opts["--null-seeds" if cond.startswith("null") else "--seeds"].split(",")
        for seed in (int(s) for s in seeds):
            prob = synthetic(dict(BASE, **CONDITIONS[cond], seed=seed), name="val")
            r = pca_t2.solve(prob, pca_t2.Params())
            c = SP.centroid_map(prob.data, np.asarray(prob.energy))
            for name, s in (("t2", r.output), ("centroid", np.abs(c - np.median(c)))):
                row = {
                    "condition": cond,
                    "seed": seed,
                    "score": name,
                    "otsu": float((s > C.otsu(s)).mean()),
                    **{f"z={z:g}": float((s > C.robust_threshold(s, name, z)).mean()) for z in ZS},
                }
                if prob.truth is not None and prob.truth.any():
                    row["roc_auc"] = float(EM.roc_auc(s, prob.truth))
                rows.append(row)
                print(json.dumps(row), flush=True)
    for name in ("t2", "centroid"):
        nul = [r for r in rows if r["score"] == name and r["condition"].startswith("null")]
        print(
            f"{name}: largest null flagged fraction -- otsu {max(r['otsu'] for r in nul):.4f}, "
            + ", ".join(f"z={z:g} {max(r[f'z={z:g}'] for r in nul):.4f}" for z in ZS)
        )
    if argv:
        with open(argv[0], "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
