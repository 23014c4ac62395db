"""RGNP benchmark (issue 16, spec pde.md §5, §8 RG1–RG4): the random-grid neural process against
the fixed-grid physics-informed baseline (PDDLVM: the same networks, ELBO and training time on 30
equispaced interior points) on nlpoisson1d_param.

Both models are the shipped checkpoints (``workbench train rgnp`` and ``workbench train rgnp
--grid fixed``, run side by side for the same wall time; their manifests hold the commands).
Test draws come from the sample's priors with a seed used for nothing else; the reference is
the 201-node finite-difference Newton solve.

- RG1 forward: NSE_u = ‖μ − u‖² / ‖u‖² on the 201 reference nodes (median over draws);
- RG2 inverse: 30 uniformly random (off-grid) points per draw, noise σ_y = 0.05; NSE_z =
  ‖m_z − z‖² / ‖z‖² (median); the fixed-grid model sees the points kernel-interpolated onto its
  grid;
- RG3 calibration: the fraction of reference values inside μ ± 2σ (u, interior nodes) and of
  true parameters inside m ± 2σ (z);
- RG4 inverse query time: one GICNet pass for one set of points, median over draws, one thread.

    workbench bench pde_rgnp [--quick] [--check] [--json] [--no-write] [--draws N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SEED = 20_230_716  # test draws: never used for training, validation or tuning


def evaluate(model, P: np.ndarray, x: np.ndarray, U: np.ndarray, sigma_y: float, n_obs: int):
    from workbench.nets import pde_rgnp as R

    fm = R.forward_metrics(model, P, x, U)
    nz = model.nz
    rng = np.random.default_rng(SEED + 1)
    nse_z, cov_z, times = [], [], []
    for row, u in zip(P, U, strict=True):
        xo = rng.uniform(x[0], x[-1], n_obs)
        yo = np.interp(xo, x, u) + sigma_y * rng.standard_normal(n_obs)
        best = float("inf")
        for _ in range(3):  # best of 3: the machine is shared, the query is deterministic
            t0 = time.perf_counter()
            m, c = R.inverse_query(model, xo, yo, row[nz:])
            best = min(best, time.perf_counter() - t0)
        times.append(best)
        z = row[:nz]
        nse_z.append(float(((m - z) ** 2).sum() / (z**2).sum()))
        cov_z.append(np.abs(m - z) / np.sqrt(np.diag(c)))
    r_u = np.abs(fm["mean"] - U)[:, 1:-1] / fm["std"][:, 1:-1]  # the ends are exact
    cov_z = np.array(cov_z)
    return {
        "nse_u_median": float(np.median(fm["nse_u"])),
        "nse_u_mean": float(np.mean(fm["nse_u"])),
        "nse_u_p90": float(np.quantile(fm["nse_u"], 0.9)),
        "coverage_u": fm["coverage_u"],
        "coverage_u_raw": float(np.mean(r_u * model.std_scale_u <= 2)),
        "nse_z_median": float(np.median(nse_z)),
        "nse_z_mean": float(np.mean(nse_z)),
        "coverage_z": float(np.mean(cov_z <= 2)),
        "coverage_z_raw": float(np.mean(cov_z * model.std_scale_z <= 2)),
        "query_ms_median": 1e3 * float(np.median(times)),
        "_nse_u": np.asarray(fm["nse_u"], float),
        "_nse_z": np.asarray(nse_z, float),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench pde_rgnp")
    ap.add_argument("--quick", action="store_true", help="40 draws instead of 200; never writes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--check",
        action="store_true",
        help="fail (exit 1) when a model row is missing or a metric is not finite or out of "
        "range (coverage in [0, 1]); never on time or on the RG targets",
    )
    ap.add_argument("--draws", type=int, default=0)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from workbench.bench import (
        bootstrap_ci,
        fmt_ci,
        markdown_table,
        paired_bootstrap,
        write_section,
    )
    from workbench.datasets.pde import make_preset
    from workbench.nets import pde_rgnp as R

    n = a.draws or (40 if a.quick else 200)
    fam = R.family_of(make_preset("nlpoisson1d_param"))
    models = {}
    for name, file in (
        ("RGNP (random grids)", "rgnp_nlpoisson1d"),
        ("PDDLVM (fixed grid)", "rgnp_nlpoisson1d_fixed"),
    ):
        path = R.WEIGHTS_DIR / f"{file}.pt"
        if not path.exists():
            print(f"missing checkpoint {path}")
            return 1
        model, _ = R.load(path)
        man = json.loads(path.with_suffix(".json").read_text())
        models[name] = (model, man)
    rng = np.random.default_rng(SEED)
    lo, hi = fam.bounds()
    P = lo + rng.random((n, len(lo))) * (hi - lo)
    t0 = time.perf_counter()
    x, U = R.reference_fields(fam, P)
    t_ref = time.perf_counter() - t0
    rows = []
    for name, (model, man) in models.items():
        r = evaluate(model, P, x, U, sigma_y=0.05, n_obs=30)
        rows.append(
            {
                "model": name,
                "train_steps": man["metrics"]["steps"],
                "train_wall_s": man["wall_time_s"],
                **r,
            }
        )
    per_draw = [{k: r[f"_nse_{k}"] for k in ("u", "z")} for r in rows]
    for r in rows:
        # seeded bootstrap over the test draws (one training run per model: no seed interval)
        for key in ("u", "z"):
            lo_, hi_ = bootstrap_ci(r.pop(f"_nse_{key}"), stat=np.median)
            r[f"nse_{key}_median_95ci"] = f"[{lo_:.3g}, {hi_:.3g}]"
    # paired over the same draws: mean of log10 NSE(fixed) − log10 NSE(RGNP) (> 0: RGNP better)
    paired = {
        k: paired_bootstrap(np.log10(per_draw[1][k]), np.log10(per_draw[0][k])) for k in ("u", "z")
    }
    rg, fx = rows
    checks = {
        "RG1 median NSE_u ≤ 1e-3": rg["nse_u_median"] <= 1e-3,
        "RG1 NSE_u no worse than fixed grid": rg["nse_u_median"] <= fx["nse_u_median"],
        "RG2 NSE_z ≤ 0.5 × fixed grid": rg["nse_z_median"] <= 0.5 * fx["nse_z_median"],
        "RG3 coverage u in [0.85, 0.99]": 0.85 <= rg["coverage_u"] <= 0.99,
        "RG3 coverage z in [0.8, 0.99]": 0.8 <= rg["coverage_z"] <= 0.99,
        "RG4 inverse query ≤ 50 ms": rg["query_ms_median"] <= 50,
    }
    cols = [
        "model",
        "train_steps",
        "train_wall_s",
        "nse_u_median",
        "nse_u_median_95ci",
        "nse_u_p90",
        "coverage_u",
        "coverage_u_raw",
        "nse_z_median",
        "nse_z_median_95ci",
        "coverage_z",
        "coverage_z_raw",
        "query_ms_median",
    ]
    walls = ", ".join(f"{r['train_wall_s']:.0f}" for r in rows)
    md = (
        "**Protocol.** Nothing was tuned on the test draws: the test parameters come from a seed "
        "used for nothing else; both models were trained by the same command for the same wall "
        f"time ({walls} s; one training seed each, so "
        "no interval over training seeds); the only "
        "fitted settings, the two calibration temperatures, were fitted by the training command "
        "on its own validation draws. Intervals: seeded percentile bootstrap of the median over "
        "the test draws (workbench.bench.bootstrap_ci).\n\n"
        f"nlpoisson1d_param, {n} test draws from the priors (numpy seed {SEED}); reference: 201-node "
        f"FD Newton ({t_ref:.1f} s for all draws). Inverse from 30 uniformly random points per "
        "draw with noise σ_y = 0.05. Both models: forward MLP 4×64 swish + 32 Fourier features, "
        "rank 2; GICNet with a 20-point latent grid; batch 50 × 30 points; Adam 1e-3 constant; "
        "the same wall-time budget, trained side by side on the shared 2-core machine; the last "
        "iterate is scored (no checkpoint selection). `coverage_*` use the checkpoint's "
        "temperature (one scale for the field std and one for the posterior covariance, fitted "
        "by the training command on its validation draws); `*_raw` are the networks' own "
        "variances.\n\n"
        + markdown_table(rows, cols)
        + "\n\n"
        + "\n".join(f"- {k}: **{'met' if v else 'missed'}**" for k, v in checks.items())
        + "\n\nPaired over the same draws, mean of log₁₀ NSE(fixed grid) − log₁₀ NSE(RGNP) "
        "(> 0 favours RGNP) with its seeded bootstrap 95% interval: "
        + "; ".join(
            f"NSE_{k} {fmt_ci(d['diff'], d['lo'], d['hi'], '.3f')} "
            f"(RGNP better in {d['p_better']:.0%} of resamples)"
            for k, d in paired.items()
        )
        + "\n\nReading: the fixed-grid baseline receives the scattered points kernel-interpolated "
        "onto its 30-point grid (spec §5.3); for these smooth fields that loses little, so the "
        "two inverse maps are close. The calibration targets are met only after the temperature "
        "fitted on validation draws: the networks' own field variance is about 10× too small "
        "(raw coverage ≈ 0.2), while the posterior over z is calibrated as trained.\n"
    )
    cmd = (
        "workbench bench pde_rgnp"
        + (" --quick" if a.quick else "")
        + (f" --draws {a.draws}" if a.draws else "")
    )
    if a.check:
        from workbench.bench import CheckFailed, check

        try:
            check(len(rows) == 2, f"expected the RGNP and fixed-grid rows, got {len(rows)}")
            for r in rows:
                for k, v in r.items():
                    if isinstance(v, float):
                        check(bool(np.isfinite(v)), f"{r['model']}: {k} is {v}")
                for k in ("coverage_u", "coverage_z"):
                    check(0.0 <= r[k] <= 1.0, f"{r['model']}: {k} = {r[k]} outside [0, 1]")
        except CheckFailed as exc:
            print(f"bench pde_rgnp --check FAILED: {exc}")
            return 1
    # bench-quick convention: a --quick run never writes BENCHMARKS.md
    if not a.no_write and not a.quick:
        write_section("PDE: RGNP (random-grid neural processes)", md, cmd)
    if a.json:
        print(json.dumps({"rows": rows, "checks": checks}, default=float))
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
