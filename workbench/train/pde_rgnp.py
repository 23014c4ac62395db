"""``workbench train rgnp``: train the random-grid neural process (forward net α and GICNet β
together, physics-only ELBO) on a parametric 1-D PDE sample and write a checkpoint + manifest.

    workbench train rgnp [--problem nlpoisson1d_param] [--grid random|stratified|fixed]
                         [--steps N] [--time-limit S] [--resume] [--init CKPT] [--lr-final LR]
                         [--eps-r E] [--out PATH] ...

``--grid fixed`` trains the spec's PDDLVM baseline (the same ELBO and networks on 30 equispaced
interior points). Progress goes to stdout; a resumable state (weights, Adam, generator, history)
is saved every ``--save-every`` steps beside the checkpoint and picked up with ``--resume``. The
manifest records every command that contributed (resumes included), the data, the seed, the wall
time, the validation metrics on held-out parameter draws and the sha256 of the weights.

``--init CKPT`` continues training from a shipped checkpoint's weights with a fresh optimiser
(its manifest's commands, steps, wall time and history are carried over: ``--steps`` and
``--time-limit`` then count from the start of the first command, as with ``--resume``).
``--lr-final`` decays the learning rate geometrically from ``--lr`` to it over this command's
budget (steps or wall time, whichever ends first); ``--lr-warmup N`` ramps it up over the first
N steps (for ``--init``: a fresh Adam's first steps would knock the trained weights off).
``--resume`` continues both where the interrupted command left them.

``--grid stratified`` draws each step's random grid with one uniform point in each of n equal
cells (lower Monte Carlo variance of the residual sum, still a fresh grid every step).
(A trainable ε_r, ``Config.eps_r_trainable``, is not offered here: on the validation draws it
rose with the sampled fields' residual instead of following the mean's down, and did not help
calibration; BENCHMARKS.md "PDE: RGNP diagnosis".)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

GRIDS = {
    "random": "uniform random",
    "stratified": "stratified random (one uniform point per equal cell)",
    "fixed": "equispaced interior",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="workbench train rgnp", description=__doc__)
    ap.add_argument("--problem", default="nlpoisson1d_param", help="parametric PDE sample")
    ap.add_argument("--grid", default="random", choices=("random", "stratified", "fixed"))
    ap.add_argument("--out", default=None, help="checkpoint (default weights/pde/<name>.pt)")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--time-limit", type=float, default=0.0, help="stop after this many s")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--points", type=int, default=30, help="points per draw")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--rank", type=int, default=2)
    ap.add_argument("--eps-r", type=float, default=1e-2)
    ap.add_argument("--noise-max", type=float, default=0.1)
    ap.add_argument("--val", type=int, default=50, help="held-out parameter draws")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="continue from this checkpoint's weights")
    ap.add_argument("--lr-final", type=float, default=None, help="geometric decay to this lr")
    ap.add_argument("--lr-warmup", type=int, default=0, help="linear lr ramp over N steps")
    a = ap.parse_args(argv)

    import torch

    from workbench.datasets.pde import PRESETS, make_preset
    from workbench.device import versions
    from workbench.errors import InputError
    from workbench.nets import pde_rgnp as R

    torch.set_num_threads(max(1, a.threads))
    if a.problem not in PRESETS:
        raise InputError(f"unknown problem {a.problem!r}")
    problem = make_preset(a.problem)
    fam = R.family_of(problem)
    if not fam.z_names:
        raise InputError(f"{a.problem} has no parameter priors: nothing to learn an inverse map of")
    name = f"rgnp_{a.problem.split('_')[0]}" + ("_fixed" if a.grid == "fixed" else "")
    out = Path(a.out) if a.out else R.WEIGHTS_DIR / f"{name}.pt"
    state_path = out.with_suffix(".state.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = R.Config(
        width=a.width,
        depth=a.depth,
        n_features=a.features,
        rank=a.rank,
        eps_r=a.eps_r,
        grid=a.grid,
        n_points=a.points,
        noise_max=a.noise_max,
    )
    model = R.RGNP(fam, cfg, seed=a.seed)
    start, opt_state, gen_state = 0, None, None
    commands: list[str] = []
    history: dict[str, list[float]] = {}
    wall_before = 0.0
    lr_origin = None  # (step, wall seconds) where this command's lr schedule began
    if a.init and not (a.resume and state_path.exists()):
        init_path = Path(a.init)
        if not init_path.exists():
            raise InputError(f"--init: no checkpoint {init_path}")
        prev, _ = R.load(init_path)
        # the objective's settings (ε_r, input noise, the random grids' sampling and size) may
        # change; the networks, and a fixed grid (its inverse map reads its own grid), may not
        free = ("eps_r", "noise_max", "eps_r_trainable", "n_points", "grid")
        arch = [k for k in R.asdict(cfg) if k not in free]
        if (
            not prev.fam.matches(fam)
            or any(R.asdict(prev.cfg)[k] != R.asdict(cfg)[k] for k in arch)
            or (prev.cfg.grid == "fixed") != (cfg.grid == "fixed")
        ):
            raise InputError("--init: the checkpoint's family or network configuration differ")
        # a learnt ε_r (Config.eps_r_trainable) is not carried over: --eps-r sets ε_r
        sd = {k: v for k, v in prev.state_dict().items() if k != "log_eps_r"}
        model.load_state_dict(sd)
        man0 = json.loads(init_path.with_suffix(".json").read_text())
        start = int(man0["metrics"]["steps"])
        commands, history = list(man0["commands"]), dict(man0["history"])
        wall_before = float(man0["wall_time_s"])
        print(f"continuing from {init_path} at step {start}", flush=True)
    elif a.resume and state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        start, opt_state, gen_state = int(st["step"]), st["opt"], st["gen"]
        commands, history = st["commands"], st["history"]
        wall_before = float(st["wall_s"])
        if "lr_origin" in st:
            lr_origin = (int(st["lr_origin"][0]), float(st["lr_origin"][1]))
        print(f"resuming at step {start}", flush=True)
    if lr_origin is None:
        lr_origin = (start, wall_before)
    cmd = "workbench train rgnp " + " ".join(argv)
    commands = [*commands, cmd.strip()]
    t0 = time.perf_counter()

    def save_state(step, opt_sd, gen_sd):
        torch.save(
            {
                "model": model.state_dict(),
                "step": step,
                "opt": opt_sd,
                "gen": gen_sd,
                "commands": commands,
                "history": history,
                "wall_s": wall_before + time.perf_counter() - t0,
                "lr_origin": list(lr_origin),
            },
            state_path,
        )

    class Report:
        cancelled = False

        def __call__(self, step, total, **m):
            if step % 100 == 0 or step == total:
                print(
                    f"step {step}/{total} loss {m['loss']:.4g} residual_rms {m['residual_rms']:.3g}"
                    f" t {wall_before + time.perf_counter() - t0:.0f}s",
                    flush=True,
                )

    left = a.time_limit - wall_before if a.time_limit else 0.0
    res = R.train(
        model,
        steps=a.steps,
        batch=a.batch,
        lr=a.lr,
        seed=a.seed,
        start=start,
        opt_state=opt_state,
        gen_state=gen_state,
        progress=Report(),
        checkpoint=save_state,
        checkpoint_every=a.save_every,
        time_limit=max(left, 1e-9) if a.time_limit else 0.0,
        lr_final=a.lr_final,
        lr_warmup=a.lr_warmup,
        lr_origin=(lr_origin[0], wall_before - lr_origin[1]),
    )
    for k, v in res["history"].items():
        history.setdefault(k, []).extend(v if k != "time" else [wall_before + t for t in v])
    save_state(res["step"], res["opt_state"], res["gen_state"])
    wall = wall_before + res["wall_s"]

    # validation on held-out draws (seed 10_000 + seed): never the benchmark's test draws
    rng = np.random.default_rng(10_000 + a.seed)
    lo, hi = fam.bounds()
    P = lo + rng.random((a.val, len(lo))) * (hi - lo)
    x, U = R.reference_fields(fam, P)
    cal = R.calibrate(model, P, x, U, np.random.default_rng(20_000 + a.seed))
    fm = R.forward_metrics(model, P, x, U)
    nz = len(fam.z_names)
    zerr = []
    for row, u in zip(P, U, strict=True):
        m, _ = R.inverse_query(model, x[1:-1:3], u[1:-1:3], row[nz:])
        z = row[:nz]
        zerr.append(float(((m - z) ** 2).sum() / (z**2).sum()))
    metrics = {
        "val_nse_u_median": float(np.median(fm["nse_u"])),
        "val_coverage_u": fm["coverage_u"],
        "val_nse_z_median": float(np.median(zerr)),
        "val_nse_z_median_30pts_noise0.05": cal["nse_z_median_noisy"],
        "val_raw_coverage_u": cal["raw_coverage_u"],
        "val_raw_coverage_z": cal["raw_coverage_z"],
        "std_scale_u": cal["std_scale_u"],
        "std_scale_z": cal["std_scale_z"],
        "eps_r": model.eps_r,
        "steps": int(res["step"]),
        "status": res["status"],
    }
    sha = R.save(out, model)
    manifest = {
        "file": out.name,
        "command": commands[0],
        "commands": commands,
        "sha256": sha,
        "family": fam.to_json(),
        "config": R.asdict(cfg),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "data": (
            f"physics only: parameters from the priors of the sample {a.problem!r}, fresh "
            f"{GRIDS[a.grid]} grids of "
            f"{a.points} points per draw"
        ),
        "seed": a.seed,
        "hyperparameters": {
            k: v for k, v in vars(a).items() if k not in ("out", "resume", "problem", "init")
        },
        "optimiser": "Adam, "
        + (
            "constant learning rate"
            if a.lr_final is None
            else f"learning rate decaying geometrically {a.lr} → {a.lr_final} over the last command"
        ),
        "calibration": "temperature scaling of the forward std and the posterior covariance of z so that ±2σ covers 95 % of the validation errors (z: 30 random points, σ_y = 0.05, numpy seed 20000 + seed)",
        "validation": f"{a.val} draws from the priors with numpy seed {10_000 + a.seed}; 201-node FD reference; inverse from every third interior reference node, noise-free",
        "wall_time_s": round(wall, 1),
        "machine": {
            "platform": platform.platform(terse=True),
            "device": "cpu",
            "threads": a.threads,
            "cpus": os.cpu_count(),
        },
        "metrics": metrics,
        "history": {k: v[:: max(1, len(v) // 200)] for k, v in history.items()},
        "versions": versions(),
        "load": "workbench.nets.pde_rgnp.load(path)  (torch.load(..., weights_only=True))",
    }
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=1, default=float))
    print(
        json.dumps(
            {"checkpoint": str(out), "sha256": sha, "wall_time_s": round(wall, 1), **metrics}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
