"""Diagnosis of ``pca_recon``'s gap to the oracle (validation cubes only): which template the
common-shift likelihood ratio uses, how it is pooled, and the trial-shift range.

    python benchmarks/eels_template_diag.py [--seeds 20001,20002,20003,20004]

Per cube of the two target shift conditions and the drift null of ``benchmarks/eels.py``, the
per-shift log-likelihood gains ll_i(delta) of :func:`workbench.solvers.eels.common.shift_fit` are
computed against three templates -- ``pca``: ``pca_recon``'s own rank-k reconstruction at its
defaults with ``refit = 0`` (one fit on every pixel); ``true``: the simulator's noiseless spectra
without the anomaly; ``nbr``: the neighbourhood-mean spectrum (Gaussian, sd 2 px) -- and pooled by
:func:`workbench.solvers.eels.common.pool_shift_glr` over sd 1-4 px, with the trial shifts cut to
+-2 and +-1.5 eV, and as the maximum over several sds. Prints the mean ROC AUC per shift
condition and the largest null flagged fraction at the calibrated threshold.
"""

from __future__ import annotations

import sys

import numpy as np

CONDS = {
    "s05": "shift 0.5 eV, dose 0.3x",
    "s1": "shift 1 eV, dose 0.3x",
    "null": "null (no anomaly), drift 0.3 eV",
}


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.eels import BASE, CONDITIONS
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.physics.eels.synth import gaussian_filter1d, generate
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca_recon

    torch.set_num_threads(1)
    seeds = (20001, 20002, 20003, 20004)
    if "--seeds" in argv:
        seeds = tuple(int(x) for x in argv[argv.index("--seeds") + 1].split(","))
    orig, got = C.shift_fit, []

    def spy(*a, **k):  # keep the solver's own shift fit (its per-shift gains)
        got.append(orig(*a, **k))
        return got[-1]

    def T(ll, deltas, pool, dmax=None):
        if dmax is not None:
            keep = np.abs(deltas) <= dmax + 1e-9
            ll, deltas = ll[..., keep], deltas[keep]
        return C.pool_shift_glr(ll, deltas, pool)[0]

    variants = {f"common {p:g} px": (lambda ll, d, p=p: T(ll, d, p)) for p in (1, 1.5, 2, 3, 4)}
    variants["common 3 px, |delta| <= 2 eV"] = lambda ll, d: T(ll, d, 3.0, 2.0)
    variants["common 3 px, |delta| <= 1.5 eV"] = lambda ll, d: T(ll, d, 3.0, 1.5)
    variants["max over 1.5, 3 px"] = lambda ll, d: np.maximum(T(ll, d, 1.5), T(ll, d, 3.0))
    variants["max over 2, 3, 4 px"] = lambda ll, d: np.maximum.reduce(
        [T(ll, d, p) for p in (2.0, 3.0, 4.0)]
    )
    res: dict[tuple[str, str, str], list[float]] = {}
    for tag, cond in CONDS.items():
        for seed in seeds:
            kw = dict(BASE, **CONDITIONS[cond], seed=seed)
            prob = synthetic(kw, name="val")
            E = np.asarray(prob.energy, np.float64)
            Y = np.asarray(prob.data, np.float64)
            ny, nx = Y.shape[:2]
            got.clear()
            C.shift_fit = spy
            try:
                pca_recon.solve(prob, pca_recon.Params(refit=0))
            finally:
                C.shift_fit = orig
            none = dict(shift=0.0, ratio_factor=1.0, phase_split=0.0)
            l0 = generate(**dict(kw, keep_clean=True, **none))["clean"].astype(np.float64)
            M = gaussian_filter1d(Y, 2.0, axis=0, mode="reflect")
            M = gaussian_filter1d(M, 2.0, axis=1, mode="reflect")
            fits = {"pca": got[-1]}
            for name, tmpl in (("true", l0), ("nbr", M)):
                fits[name] = orig(Y.reshape(ny * nx, -1), tmpl.reshape(ny * nx, -1), E, 690, 730)
            truth = prob.truth if prob.truth is not None else np.zeros((ny, nx), bool)
            for tname, sf in fits.items():
                ll = sf.ll.reshape(ny, nx, -1)
                for vname, f in variants.items():
                    m = f(ll, sf.deltas)
                    if truth.any():
                        v = float(EM.roc_auc(m, truth))
                    else:
                        v = float(C.threshold(m, "auto", "shift", 0.0)["mask"].mean())
                    res.setdefault((tname, vname, tag), []).append(v)
            print(f"{tag} {seed} done", flush=True)
    for tname in ("pca", "true", "nbr"):
        for vname in variants:
            a = [np.mean(res[(tname, vname, t)]) for t in ("s05", "s1")]
            print(
                f"{tname:4s} {vname:32s} AUC 0.5 eV {a[0]:.4f}  1 eV {a[1]:.4f}  "
                f"null flagged max {max(res[(tname, vname, 'null')]):.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
