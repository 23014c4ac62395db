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

Beyond RG2, the inverse map under other observation designs (10 and 5 uniform points, 10 points
clustered in a quarter of the domain) for both models, and the information limit: the exact
Bayesian posterior over z on the first ``--bayes-draws`` test draws, with the FD reference solver
as the likelihood (batched Newton, adaptive importance sampling), giving the Bayes risk of NSE_z
that no estimator's mean NSE_z can beat.

    workbench bench pde_rgnp [--quick] [--check] [--json] [--no-write] [--draws N]
                             [--bayes-draws K] [--reuse-bayes]

The Bayes posterior depends on the test draws and their observations alone, not on the models:
a full run stores its per-draw results in ``benchmarks/results/pde_rgnp_bayes.json`` (with a hash
of the draws, the observations and the sampler's settings), and ``--reuse-bayes`` reads them
back instead of recomputing (minutes of FD solves) when the hash matches.
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


# observation designs for the inverse map, all with noise σ_y = 0.05 on the reference field:
# name -> (number of points, placement, numpy seed of the observation stream)
PROTOCOLS = {
    "random30": (30, "uniform", SEED + 1),  # RG2: the seed and order of the previous section
    "random10": (10, "uniform", SEED + 2),
    "random5": (5, "uniform", SEED + 3),
    "cluster10": (10, "cluster", SEED + 4),
}
SIGMA_Y = 0.05


def observations(name: str, x: np.ndarray, U: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (x_obs, y_obs) of every draw under one protocol; ``cluster``: the points are uniform
    in a window of width 0.5 centred at c ~ U[−0.75, 0.75] (a quarter of the domain)."""
    n_obs, placement, seed = PROTOCOLS[name]
    rng = np.random.default_rng(seed)
    out = []
    for u in U:
        if placement == "uniform":
            xo = rng.uniform(x[0], x[-1], n_obs)
        else:
            c = rng.uniform(-0.75, 0.75)
            xo = rng.uniform(c - 0.25, c + 0.25, n_obs)
        yo = np.interp(xo, x, u) + SIGMA_Y * rng.standard_normal(n_obs)
        out.append((xo, yo))
    return out


def nse(m: np.ndarray, z: np.ndarray) -> float:
    return float(((m - z) ** 2).sum() / (z**2).sum())


def evaluate(model, P: np.ndarray, x: np.ndarray, U: np.ndarray, obs: dict):
    from workbench.nets import pde_rgnp as R

    fm = R.forward_metrics(model, P, x, U)
    nz = model.nz
    nse_z, cov_z, times = {k: [] for k in obs}, [], []
    for name, ob in obs.items():
        for row, (xo, yo) in zip(P, ob, strict=True):
            if name == "random30":
                best = float("inf")
                for _ in range(3):  # best of 3: the machine is shared, the query is deterministic
                    t0 = time.perf_counter()
                    m, c = R.inverse_query(model, xo, yo, row[nz:])
                    best = min(best, time.perf_counter() - t0)
                times.append(best)
                cov_z.append(np.abs(m - row[:nz]) / np.sqrt(np.diag(c)))
            else:
                m, c = R.inverse_query(model, xo, yo, row[nz:])
            nse_z[name].append(nse(m, row[:nz]))
    r_u = np.abs(fm["mean"] - U)[:, 1:-1] / fm["std"][:, 1:-1]  # the ends are exact
    cov_z = np.array(cov_z)
    return {
        "nse_u_median": float(np.median(fm["nse_u"])),
        "nse_u_mean": float(np.mean(fm["nse_u"])),
        "nse_u_p90": float(np.quantile(fm["nse_u"], 0.9)),
        "coverage_u": fm["coverage_u"],
        "coverage_u_raw": float(np.mean(r_u * model.std_scale_u <= 2)),
        "nse_z_median": float(np.median(nse_z["random30"])),
        "nse_z_mean": float(np.mean(nse_z["random30"])),
        "coverage_z": float(np.mean(cov_z <= 2)),
        "coverage_z_raw": float(np.mean(cov_z * model.std_scale_z <= 2)),
        "query_ms_median": 1e3 * float(np.median(times)),
        "_nse_u": np.asarray(fm["nse_u"], float),
        "_nse_z": {k: np.asarray(v, float) for k, v in nse_z.items()},
    }


def bayes_posterior(
    P: np.ndarray, obs: dict, nz: int, *, n_stage: int, max_stages: int, ess_target: float
) -> dict:
    """The information limit: the exact Bayesian posterior over z given each draw's observations
    and its known w, p(z | y, w) ∝ Π N(yⱼ | u_z,w(xⱼ), σ_y²) · U(z; [−1, 1]⁵), with u_z,w the
    201-node FD reference solution itself (no surrogate), by adaptive importance sampling.

    Per draw and protocol: NSE_z of the posterior mean, and of the estimator that minimises the
    posterior expected NSE_z, m* = E[z / ‖z‖²] / E[1 / ‖z‖²] (no estimator from the same
    observations has a lower expected NSE_z: its average over draws from the prior is the Bayes
    risk, a lower bound for any model's mean NSE_z; ``risk_opt`` is its posterior expectation
    per draw, an estimate of the same risk with less noise).
    """
    from workbench.physics.pde.nlpoisson_batch import (
        importance_posterior,
        interpolate_nodes,
        solve_nl_poisson_batch,
    )

    lo, hi = -np.ones(nz), np.ones(nz)
    out = {k: {"nse_pm": [], "nse_opt": [], "risk_opt": [], "ess": [], "evals": []} for k in obs}
    for i, row in enumerate(P):
        rng = np.random.default_rng(SEED + 100 + i)
        w = row[nz:]

        def fields(Z, w=w):
            x, Uz, res = solve_nl_poisson_batch(Z, np.full(len(Z), w[0]))
            if not np.all(res <= 1e-8):
                raise RuntimeError(f"FD Newton did not converge for {int((res > 1e-8).sum())} rows")
            return x, Uz

        Z0 = lo + rng.random((n_stage, nz)) * (hi - lo)  # prior draws shared by the protocols
        x, U0 = fields(Z0)
        for name, ob in obs.items():
            xo, yo = ob[i]

            def loglik(Z, xo=xo, yo=yo):
                xn, Uz = fields(Z)
                r = interpolate_nodes(xn, Uz, xo) - yo
                return -0.5 * (r * r).sum(1) / SIGMA_Y**2

            ll0 = -0.5 * ((interpolate_nodes(x, U0, xo) - yo) ** 2).sum(1) / SIGMA_Y**2
            post = importance_posterior(
                loglik,
                lo,
                hi,
                rng,
                n_stage=n_stage,
                max_stages=max_stages,
                ess_target=ess_target,
                start=(Z0, ll0),
            )
            Z, wt, z = post["Z"], post["weights"], row[:nz]
            inv = 1.0 / (Z * Z).sum(1)
            m_opt = (wt * inv) @ Z / (wt @ inv)
            out[name]["nse_pm"].append(nse(post["mean"], z))
            out[name]["nse_opt"].append(nse(m_opt, z))
            # the posterior expected NSE_z of m*: the same Bayes risk when averaged over draws
            # from the prior, with less Monte Carlo noise than the realised NSE_z
            out[name]["risk_opt"].append(float(wt @ (((Z - m_opt) ** 2).sum(1) * inv)))
            out[name]["ess"].append(post["ess"])
            out[name]["evals"].append(post["n_evals"])
    return {k: {kk: np.asarray(vv, float) for kk, vv in v.items()} for k, v in out.items()}


BAYES_CACHE = "results/pde_rgnp_bayes.json"


def bayes_key(P: np.ndarray, obs: dict, is_cfg: dict) -> str:
    """sha256 of what the Bayes posterior depends on: the draws, the observations, the sampler."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(P, dtype=np.float64).tobytes())
    for k in sorted(obs):
        for xo, yo in obs[k]:
            h.update(np.ascontiguousarray(xo, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(yo, dtype=np.float64).tobytes())
    h.update(json.dumps(is_cfg, sort_keys=True).encode())
    return h.hexdigest()


def reading(prot_rows: list[dict], bayes_rows: list[dict], rows: list[dict]) -> str:
    """The section's reading, stated from the numbers of this run."""
    b = {r["protocol"]: r for r in bayes_rows}
    p = {r["protocol"]: r for r in prot_rows}
    r30 = b["random30"]
    half = 0.5 * r30["_fixed_mean_all"]
    if half < r30["_risk_hi"]:
        verdict = (
            "below the Bayes risk (or inside its interval), so no estimator can be relied on to "
            "reach it: the 0.5× target is unreachable under this protocol"
        )
    else:
        verdict = "above the Bayes risk, so the bound alone does not rule the 0.5× target out"
    best = min(p.values(), key=lambda r: r["ratio_of_medians"])
    return (
        "Reading: κ depends on z only through u · Σ zₙ Tₙ(x), so where u is small (near the "
        "ends) the data say little about z, and 30 noisy points leave the posterior broad. On the "
        f"test draws the fixed-grid model's mean NSE_z (its risk) is {r30['fixed_mean_all']} "
        f"against a Bayes risk of {r30['bayes_risk']}; half the fixed grid's risk, {half:.3g}, "
        f"is {verdict}. On the Bayes draws the median NSE_z of the posterior mean is "
        f"{r30['bayes_pm_median']:.3g} against {r30['fixed_median']:.3g} for the fixed grid. "
        "Random grids matter where the fixed grid's kernel interpolation degrades: the ratio "
        f"RGNP / fixed of median NSE_z is {p['random30']['ratio_of_medians']:.2f} with 30 "
        f"random points, {p['random10']['ratio_of_medians']:.2f} with 10, "
        f"{p['random5']['ratio_of_medians']:.2f} with 5 and "
        f"{p['cluster10']['ratio_of_medians']:.2f} with 10 clustered points "
        f"(best: {best['protocol']}).\n\n"
    )


def grid_note(models: dict) -> str:
    """Say so when a random-grid checkpoint's last command drew stratified grids."""
    names = [name for name, (m, _) in models.items() if m.cfg.grid == "stratified"]
    if not names:
        return ""
    return (
        f"; {', '.join(names)}: the last command drew stratified random grids (`--grid "
        "stratified`: a fresh uniform point in each of 30 equal cells every step), chosen on "
        'validation draws (section "PDE: RGNP diagnosis")'
    )


def trainable_eps_reading() -> str:
    """The trainable-ε_r continuation of the diagnosis (validation draws), if it was run."""
    from pathlib import Path

    f = Path(__file__).parent / "results" / "pde_rgnp_diag_cont_epstrain.json"
    if not f.exists():
        return "A trainable ε_r was not tried. "
    d = json.loads(f.read_text())
    a = d["after"]
    return (
        "A trainable ε_r does not fix it: the ELBO's maximiser over ε_r is the RMS residual of "
        "the sampled fields, which includes the variance q_α adds, not the mean's residual; in a "
        f"{d['steps']}-step continuation on validation draws a learnt ε_r went from "
        f"{d['before']['eps_r']:.3g} to {a['eps_r']:.3g} (the sampled residual RMS "
        f"was {np.mean(d['residual_rms_last']):.3g}) and the raw coverage stayed "
        f'{a["val_raw_coverage_u"]:.3f} (section "PDE: RGNP diagnosis"), so the training '
        "command does not offer it. "
    )


def shipped_residual(ckpt: str = "rgnp_nlpoisson1d.pt") -> float | None:
    """The mean field's residual RMS of the shipped checkpoint, from the diagnosis's residual
    rows (matched by the checkpoint's sha256); None when the diagnosis has not scored it."""
    import hashlib
    from pathlib import Path

    from workbench.nets.pde_rgnp import WEIGHTS_DIR

    sha = hashlib.sha256((WEIGHTS_DIR / ckpt).read_bytes()).hexdigest()
    for f in sorted(
        (Path(__file__).resolve().parent / "results").glob("pde_rgnp_diag_residual_*.json")
    ):
        d = json.loads(f.read_text())
        if d.get("checkpoint_sha256") == sha:
            return float(d["residual_rms_mean_field"])
    return None


def calibration_reading(rows: list[dict], models: dict) -> str:
    """Why the raw field std is (or was) too small, stated with this run's numbers."""
    (m_rg, _), (m_fx, _) = models.values()
    eps = m_rg.cfg.eps_r
    raw = (
        f"the networks' own field std covers {rows[0]['coverage_u_raw']:.2f} (RGNP) and "
        f"{rows[1]['coverage_u_raw']:.2f} (fixed grid) of the reference values, and the "
        f"temperatures fitted on validation draws are {m_rg.std_scale_u:.2f} and "
        f"{m_fx.std_scale_u:.2f}"
    )
    cause = (
        "The ELBO treats the PDE residual as N(0, ε_r²) noise, so q_α's variance describes "
        "the fields whose residual is about ε_r, and its std scales with ε_r; the trained "
        "mean's approximation error is in no term of the ELBO. With the paper's ε_r = 1e-2 the "
        "mean field's residual was 8.4× ε_r and the raw coverage 0.22 (section \"PDE: RGNP "
        'diagnosis"). '
    )
    if eps > 1e-2:
        c = rows[0]["coverage_u_raw"]
        state = (
            "too large now rather than too small"
            if c > 0.99
            else ("still too small" if c < 0.85 else "inside the target band")
        )
        res = shipped_residual()
        now = f"{res:.3g}" if res is not None else "below it"
        return (
            f"Calibration: {cause}Both checkpoints were continued with ε_r = {eps:g}, about "
            f"the residual the networks had reached before (0.084): {raw}. The raw std is "
            f"{state}: the continuations lowered the residual further (RGNP's mean field: 0.084 → "
            f'{now}, section "PDE: RGNP diagnosis") while ε_r stayed fixed, so '
            "the std followed ε_r, not the error. "
            + trainable_eps_reading()
            + "The temperature stays as the post-hoc calibration, fitted on validation draws.\n"
        )
    return (
        f"Calibration: the targets are met only after the temperature: {raw}. {cause}"
        "The temperature is that factor, fitted post hoc on validation draws.\n"
    )


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
    ap.add_argument(
        "--bayes-draws",
        type=int,
        default=-1,
        help="test draws (the first ones) with the exact Bayesian posterior (default 30; 3 quick)",
    )
    ap.add_argument(
        "--reuse-bayes",
        action="store_true",
        help=f"read the Bayes posterior results from benchmarks/{BAYES_CACHE} when they match",
    )
    ap.add_argument(
        "--bayes-only",
        action="store_true",
        help=f"compute the Bayes posterior, store it in benchmarks/{BAYES_CACHE} and stop",
    )
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
    n_bayes = a.bayes_draws if a.bayes_draws >= 0 else (3 if a.quick else 30)
    n_bayes = min(n_bayes, n)
    is_cfg = (
        dict(n_stage=1000, max_stages=1, ess_target=100.0)
        if a.quick
        else dict(n_stage=6000, max_stages=5, ess_target=500.0)
    )
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
    obs = {k: observations(k, x, U) for k in PROTOCOLS}
    rows = []
    for name, (model, man) in models.items() if not a.bayes_only else ():
        r = evaluate(model, P, x, U, obs)
        rows.append(
            {
                "model": name,
                "train_steps": man["metrics"]["steps"],
                "train_wall_s": man["wall_time_s"],
                **r,
            }
        )
    nz = len(fam.z_names)
    from pathlib import Path

    cache = Path(__file__).parent / BAYES_CACHE
    obs_b = {k: v[:n_bayes] for k, v in obs.items()}
    key = bayes_key(P[:n_bayes], obs_b, is_cfg)
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    if a.reuse_bayes and stored.get("key") == key:
        bayes = {
            k: {kk: np.asarray(vv, float) for kk, vv in v.items()}
            for k, v in stored["bayes"].items()
        }
        t_bayes = float(stored["seconds"])
        bayes_note = f"; stored by the run of {stored['measured']} and reused with --reuse-bayes"
    else:
        t0 = time.perf_counter()
        bayes = bayes_posterior(P[:n_bayes], obs_b, nz, **is_cfg)
        t_bayes = time.perf_counter() - t0
        bayes_note = ""
        if not a.quick:
            cache.write_text(
                json.dumps(
                    {
                        "key": key,
                        "seconds": t_bayes,
                        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "bayes": {
                            k: {kk: vv.tolist() for kk, vv in v.items()} for k, v in bayes.items()
                        },
                    }
                )
            )
    if a.bayes_only:
        print(f"Bayes posterior for {n_bayes} draws: {t_bayes:.0f} s, stored in {cache}")
        return 0
    per_draw = [{"u": r.pop("_nse_u"), **r.pop("_nse_z")} for r in rows]
    for r, d in zip(rows, per_draw, strict=True):
        # seeded bootstrap over the test draws (one training run per model: no seed interval)
        for key, col in (("u", "nse_u"), ("random30", "nse_z")):
            lo_, hi_ = bootstrap_ci(d[key], stat=np.median)
            r[f"{col}_median_95ci"] = f"[{lo_:.3g}, {hi_:.3g}]"
    # paired over the same draws: mean of log10 NSE(fixed) − log10 NSE(RGNP) (> 0: RGNP better)
    paired = {
        k: paired_bootstrap(np.log10(per_draw[1][k]), np.log10(per_draw[0][k]))
        for k in ("u", *PROTOCOLS)
    }
    rg, fx = rows
    b30 = bayes["random30"]
    fx_b30 = per_draw[1]["random30"][:n_bayes]
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
    prot_rows = []
    for k, (n_obs, placement, _) in PROTOCOLS.items():
        a_, b_ = per_draw[0][k], per_draw[1][k]
        d = paired[k]
        prot_rows.append(
            {
                "protocol": k,
                "points": n_obs,
                "placement": placement,
                "rgnp_median": float(np.median(a_)),
                "fixed_median": float(np.median(b_)),
                "ratio_of_medians": float(np.median(a_) / np.median(b_)),
                "paired_log10_fixed_minus_rgnp": fmt_ci(d["diff"], d["lo"], d["hi"], ".3f"),
            }
        )
    bayes_rows = []
    for k in PROTOCOLS:
        bk = bayes[k]
        a_, b_ = per_draw[0][k][:n_bayes], per_draw[1][k][:n_bayes]
        bayes_rows.append(
            {
                "protocol": k,
                "bayes_pm_median": float(np.median(bk["nse_pm"])),
                "rgnp_median": float(np.median(a_)),
                "fixed_median": float(np.median(b_)),
                "bayes_pm_mean": float(np.mean(bk["nse_pm"])),
                "rgnp_mean": float(np.mean(a_)),
                "fixed_mean": float(np.mean(b_)),
                "bayes_risk_realised": float(np.mean(bk["nse_opt"])),
                "bayes_risk": fmt_ci(
                    float(np.mean(bk["risk_opt"])), *bootstrap_ci(bk["risk_opt"]), ".3g"
                ),
                "_risk": float(np.mean(bk["risk_opt"])),
                "_risk_hi": bootstrap_ci(bk["risk_opt"])[1],
                # the models' risks from all test draws (unbiased, tighter than the Bayes subset)
                "rgnp_mean_all": fmt_ci(
                    float(np.mean(per_draw[0][k])), *bootstrap_ci(per_draw[0][k]), ".3g"
                ),
                "fixed_mean_all": fmt_ci(
                    float(np.mean(per_draw[1][k])), *bootstrap_ci(per_draw[1][k]), ".3g"
                ),
                "_fixed_mean_all": float(np.mean(per_draw[1][k])),
                "min_ess": float(bk["ess"].min()),
                "median_evals": float(np.median(bk["evals"])),
            }
        )
    # is RG2's 0.5× target reachable at all? Paired over the Bayes draws: log10 of the
    # fixed-grid model's NSE_z over the Bayes posterior mean's
    head = paired_bootstrap(np.log10(fx_b30), np.log10(b30["nse_pm"]))
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
        "rank 2; GICNet with a 20-point latent grid; batch 50 × 30 points; Adam; "
        "the same wall-time budget, trained side by side on the shared 2-core machine; the last "
        "iterate is scored (no checkpoint selection). `coverage_*` use the checkpoint's "
        "temperature (one scale for the field std and one for the posterior covariance, fitted "
        "by the training command on its validation draws); `*_raw` are the networks' own "
        "variances. Training commands (from the manifests, in order; `--init` continues the "
        "checkpoint the earlier commands wrote)"
        + grid_note(models)
        + ":\n\n"
        + "\n".join(
            f"- {name}: " + "; ".join(f"`{c}`" for c in man["commands"])
            for name, (_, man) in models.items()
        )
        + "\n\n"
        + markdown_table(rows, cols)
        + "\n\n"
        + "\n".join(f"- {k}: **{'met' if v else 'missed'}**" for k, v in checks.items())
        + "\n\nPaired over the same draws, mean of log₁₀ NSE(fixed grid) − log₁₀ NSE(RGNP) "
        "(> 0 favours RGNP) with its seeded bootstrap 95% interval: "
        + "; ".join(
            f"NSE_{'u' if k == 'u' else 'z'} ({k}) {fmt_ci(d['diff'], d['lo'], d['hi'], '.3f')} "
            f"(RGNP better in {d['p_better']:.0%} of resamples)"
            for k, d in paired.items()
            if k in ("u", "random30")
        )
        + "\n\n### Information limit of the inverse map, and other observation designs\n\n"
        f"The same {n} test draws observed under four designs, noise σ_y = {SIGMA_Y} on the "
        "reference field, w known (as the models get it): `random30` is RG2; `random10`, "
        "`random5`: fewer uniform points; `cluster10`: 10 points uniform in a window of width 0.5 "
        "(a quarter of the domain) at a random centre in [−0.75, 0.75], so that the fixed-grid "
        "model's kernel interpolation must extrapolate over most of its grid. NSE_z medians over "
        "all draws and the paired log₁₀ difference (> 0 favours RGNP):\n\n"
        + markdown_table(prot_rows)
        + "\n\n"
        f"**Bayes bound.** For the first {n_bayes} test draws, the exact posterior "
        "p(z | y, w) ∝ Πⱼ N(yⱼ | u_z,w(xⱼ), σ_y²) · U(z; [−1, 1]⁵) with u_z,w the 201-node FD "
        "reference solution itself (no surrogate; a batched Newton solver "
        "`workbench.physics.pde.nlpoisson_batch`, equal to the reference to 1e-12), by adaptive "
        f"importance sampling ({is_cfg['n_stage']} prior draws, then up to "
        f"{is_cfg['max_stages']} defensive-mixture stages of {is_cfg['n_stage']} until the "
        f"effective sample size reaches {is_cfg['ess_target']:.0f}; {t_bayes:.0f} s{bayes_note}). "
        "`bayes_pm`: NSE_z of the posterior mean; m* = E[z/‖z‖²] / E[1/‖z‖²] minimises the "
        "posterior expected NSE_z, so its mean NSE_z over draws from the prior is the Bayes "
        "risk, below which no estimator's mean NSE_z can go, however it is trained: "
        "`bayes_risk_realised` is that mean against the true z, `bayes_risk` the mean of its "
        "posterior expectation per draw (the same quantity, less Monte Carlo noise; bootstrap "
        "95% interval over the draws). Same draws and observations for "
        "every column:\n\n"
        + markdown_table(
            [{k: v for k, v in r.items() if not k.startswith("_")} for r in bayes_rows]
        )
        + "\n\n"
        f"RG2 against the bound ({n_bayes} draws, random30): mean of log₁₀ NSE_z(fixed grid) − "
        f"log₁₀ NSE_z(Bayes posterior mean) {fmt_ci(head['diff'], head['lo'], head['hi'], '.3f')}; "
        "a model at half the fixed grid's error needs this to be ≥ log₁₀ 2 = 0.301 (and a mean "
        "NSE_z below the Bayes risk is impossible).\n\n"
        + reading(prot_rows, bayes_rows, rows)
        + calibration_reading(rows, models)
    )
    cmd = (
        "workbench bench pde_rgnp"
        + (" --quick" if a.quick else "")
        + (f" --draws {a.draws}" if a.draws else "")
        + (f" --bayes-draws {a.bayes_draws}" if a.bayes_draws >= 0 else "")
        + (" --reuse-bayes" if a.reuse_bayes else "")
    )
    if a.check:
        from workbench.bench import CheckFailed, check

        try:
            check(len(rows) == 2, f"expected the RGNP and fixed-grid rows, got {len(rows)}")
            for r in rows + prot_rows + bayes_rows:
                for k, v in r.items():
                    if isinstance(v, float) and not k.startswith("_"):
                        check(
                            bool(np.isfinite(v)), f"{r.get('model', r.get('protocol'))}: {k} is {v}"
                        )
            for r in rows:
                for k in ("coverage_u", "coverage_z"):
                    check(0.0 <= r[k] <= 1.0, f"{r['model']}: {k} = {r[k]} outside [0, 1]")
            check(len(bayes_rows) == len(PROTOCOLS), "a Bayes-bound row is missing")
        except CheckFailed as exc:
            print(f"bench pde_rgnp --check FAILED: {exc}")
            return 1
    # bench-quick convention: a --quick run never writes BENCHMARKS.md
    if not a.no_write and not a.quick:
        write_section("PDE: RGNP (random-grid neural processes)", md, cmd)
    if a.json:
        print(
            json.dumps(
                {"rows": rows, "protocols": prot_rows, "bayes": bayes_rows, "checks": checks},
                default=float,
            )
        )
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
