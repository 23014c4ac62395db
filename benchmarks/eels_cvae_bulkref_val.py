"""cvae3d's shift score against the bulk's shift (``shift_ref = bulk``) or against zero (the
default), on validation cubes only.

    python benchmarks/eels_cvae_bulkref_val.py [--seeds 20004,...,20009] [--conds 0,1,2,3,4]

Why: at high counts the network's reconstruction carries an energy bias of its own (-0.039 eV
on validation cube 20001 at 10x the mid dose), which every normal pixel reads as a shift; a
0.1 eV chemical shift against it ranked at ROC AUC 0.29 (0.94 referred to the bulk), while
pca_recon's fitted template has none (0.995). Found while probing a measured high-count line
scan (``benchmarks/eels_cvae_dose_probe.py``); seeds 20001-20003 were used in that probe and
are left out here. One cvae3d run per cube at its defaults; both scores come from its final
shift fit (kept by a spy): the default map, and the same gains through
:func:`workbench.solvers.eels.common.relative_to_bulk`, pooled alike.

Conditions: 0 = shift 0.5 eV, dose 0.3x; 1 = shift 1 eV, dose 0.3x; 2 = the drift null
(0.3 eV); 3 = shift 0.1 eV, dose 10x; 4 = shift 0.1 eV, dose 3x (the benchmark's generator).

Rule, fixed before the run: ``bulk`` becomes cvae3d's default only if its mean ROC AUC over
conditions 3 and 4 rises by >= 0.05, it loses no more than 0.005 on condition 0 or on
condition 1, and it flags <= 2 % of every null cube at the default threshold.
Log: benchmarks/results/eels_cvae_bulkref_val.log.
"""

from __future__ import annotations

import json
import sys

import numpy as np

CONDS = [
    ("shift 0.5 eV, dose 0.3x", None),
    ("shift 1 eV, dose 0.3x", None),
    ("null (no anomaly), drift 0.3 eV", None),
    ("shift 0.1 eV, dose 10x", dict(shift=0.1, dose=10.0)),
    ("shift 0.1 eV, dose 3x", dict(shift=0.1, dose=3.0)),
]


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.eels import BASE, CONDITIONS, MID
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import cvae3d

    torch.set_num_threads(1)
    seeds = list(range(20004, 20010))
    conds = list(range(len(CONDS)))
    for flag, dest in (("--seeds", "seeds"), ("--conds", "conds")):
        if flag in argv:
            vals = [int(x) for x in argv[argv.index(flag) + 1].split(",")]
            seeds, conds = (vals, conds) if dest == "seeds" else (seeds, vals)
    orig, got = C.shift_fit, []

    def spy(*a, **k):
        got.append(orig(*a, **k))
        return got[-1]

    for ci in conds:
        name, extra = CONDS[ci]
        for seed in seeds:
            if extra is None:
                kw = dict(BASE, **CONDITIONS[name], seed=seed)
            else:
                kw = dict(BASE, shift=extra["shift"], n_pk=MID * extra["dose"], seed=seed)
            prob = synthetic(kw, name="val")
            got.clear()
            C.shift_fit = spy
            try:
                p = cvae3d.Params(device="cpu", save=False)
                r = cvae3d.solve(prob, p)
            finally:
                C.shift_fit = orig
            shape = r.output.shape
            zero = C.pool_shift_glr(got[-1].ll.reshape(*shape, -1), got[-1].deltas, p.pool)[0]
            np.testing.assert_allclose(zero, r.output, rtol=1e-5)  # the default map
            rel, b = C.relative_to_bulk(got[-1])
            bulk = C.pool_shift_glr(rel.ll.reshape(*shape, -1), rel.deltas, p.pool)[0]
            row = {"cond": name, "seed": seed, "template_shift_ev": b}
            for label, m in (("zero", zero), ("bulk", bulk)):
                if prob.truth is not None and prob.truth.any():
                    row[f"auc_{label}"] = float(EM.roc_auc(m, prob.truth))
                else:
                    row[f"flag_{label}"] = float(
                        C.threshold(m, "auto", "shift", 0.0)["mask"].mean()
                    )
            print(json.dumps(row), flush=True)
    return 0


def summary(path: str) -> str:
    """The rule's verdict from the log's rows."""
    rows = [json.loads(x) for x in open(path) if x.startswith("{")]

    def mean(cond_idx, key):
        return float(
            np.mean([r[key] for r in rows if r["cond"] in [CONDS[i][0] for i in cond_idx]])
        )

    hi = mean([3, 4], "auc_bulk") - mean([3, 4], "auc_zero")
    d0 = mean([0], "auc_bulk") - mean([0], "auc_zero")
    d1 = mean([1], "auc_bulk") - mean([1], "auc_zero")
    fl = max(r["flag_bulk"] for r in rows if "flag_bulk" in r)
    ok = hi >= 0.05 and d0 >= -0.005 and d1 >= -0.005 and fl <= 0.02
    return (
        f"high dose {mean([3, 4], 'auc_zero'):.3f} -> {mean([3, 4], 'auc_bulk'):.3f} ({hi:+.3f}); "
        f"0.5 eV {d0:+.4f}; 1 eV {d1:+.4f}; null max flagged {100 * fl:.2f} %: "
        + ("adopt" if ok else "not adopted")
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--summary":
        print(summary(sys.argv[2]))
        raise SystemExit(0)
    raise SystemExit(main(sys.argv))
