"""What limits the RGNP forward error? Short continuations of the shipped random-grid checkpoint
under one change each, scored on the training command's VALIDATION draws (numpy seed 10000, the
same 50 draws as the manifest; never the benchmark's test draws).

    python benchmarks/pde_rgnp_diagnose.py VARIANT SECONDS [--grid random|fixed] [--warmup N]
                                           [--lr LR] [--out FILE.json]

Variants (each continues from the shipped weights with a fresh Adam for the same wall time):

- ``const``: the shipped recipe (Adam 1e-3 constant): does more training alone help?
- ``decay``: learning rate decaying geometrically 1e-3 → 1e-5 over the run (Adam noise floor?);
- ``mean``: the residual of the mean μ only (no sampled field, no entropy): does the ELBO's
  variance term (the noise it injects into the residual) limit the mean?
- ``eps_r=V``: the residual scale ε_r set to V (calibration of the variance; decay as ``decay``).

Prints and writes validation NSE_u (median, mean), the raw ±2σ coverage (no temperature), the
residual RMS of the mean on fresh random points and the steps done.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def validation_scores(model, R, P, x, U) -> dict:
    model.std_scale_u = 1.0
    fm = R.forward_metrics(model, P, x, U)
    r_u = np.abs(fm["mean"] - U)[:, 1:-1] / fm["std"][:, 1:-1]
    return {
        "val_nse_u_median": float(np.median(fm["nse_u"])),
        "val_nse_u_mean": float(np.mean(fm["nse_u"])),
        "val_raw_coverage_u": float(np.mean(r_u <= 2)),
        "val_std_ratio_median": float(np.median(r_u)),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("variant")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--grid", default="random", choices=("random", "fixed"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--warmup", type=int, default=0, help="linear lr warm-up steps")
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from workbench.nets import pde_rgnp as R

    name = "rgnp_nlpoisson1d" + ("_fixed" if a.grid == "fixed" else "")
    model, _ = R.load(R.WEIGHTS_DIR / f"{name}.pt")
    model.train()
    fam = model.fam
    rng = np.random.default_rng(10_000)  # the training command's validation draws
    lo, hi = fam.bounds()
    P = lo + rng.random((50, len(lo))) * (hi - lo)
    x, U = R.reference_fields(fam, P)
    before = validation_scores(model, R, P, x, U)
    lr_final = None
    if a.variant.startswith("eps_r="):
        model.cfg = dataclasses.replace(model.cfg, eps_r=float(a.variant.split("=")[1]))
        lr_final = 1e-5
    elif a.variant == "decay":
        lr_final = 1e-5
    elif a.variant == "mean":
        orig = model.alpha.forward

        def mean_only(s, p):
            mu, lv, C = orig(s, p)
            # σ → 0 and C → 0: the sample is the mean; log q_α becomes a constant
            return mu, torch.full_like(lv, -20.0), torch.zeros_like(C)

        model.alpha.forward = mean_only
    elif a.variant != "const":
        raise SystemExit(f"unknown variant {a.variant}")
    t0 = time.perf_counter()
    res = R.train(
        model,
        steps=10**6,
        seed=123,
        lr=a.lr,
        time_limit=a.seconds,
        lr_final=lr_final,
        lr_warmup=a.warmup,
    )
    wall = time.perf_counter() - t0
    if a.variant == "mean":
        model.alpha.forward = orig
    model.eval()
    after = validation_scores(model, R, P, x, U)
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        Pt = model.sample_params(50, g)
        xt = model.sample_points(50, 30, g)
    _, terms = model.elbo(Pt, xt, g)
    out = {
        "variant": a.variant,
        "warmup": a.warmup,
        "lr": a.lr,
        "grid": a.grid,
        "seconds": a.seconds,
        "wall_s": wall,
        "steps": res["step"],
        "before": before,
        "after": after,
        "residual_rms_sample_after": terms["residual_rms"],
        "loss_last": res["history"]["loss"][-5:],
    }
    print(json.dumps(out, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
