"""``workbench train cvae3d`` (alias ``eels_cvae``): train the 3D-CVAE and write a checkpoint + manifest.

Default: anomaly-free synthetic cubes (64 x 64, 650-750 eV at 0.3 eV/ch, several doses and map
seeds) -- the bulk model used to initialise per-image fine-tuning. ``--input`` trains on a user's
file instead (``.npz``/``.hspy``/...). The manifest records the exact command, the data, the seed,
the wall time, the metrics and the sha256 of the weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RICH_EDGES = ("C K", "N K", "O K", "Ti L", "Cr L", "Mn L", "Fe L", "Co L", "Ni L", "Cu L")


def rich_params(seed: int, size: int) -> dict:
    """Generator keywords of one pretraining cube, drawn from ``seed``: a random main edge and
    window around it (40-110 eV, onset 10-35 eV in), dispersion log-uniform 0.05-1 eV/ch, dose
    log-uniform 0.1x-10x the mid dose (N_pk 4.5-450), background exponent 2.5-4 with per-pixel
    spread and amplitude variation, instrument FWHM 0.3-1.5 eV, plural scattering in half the cubes,
    a second edge inside the window in half of them (mixtures), small zero-loss jitter; anomaly-free.
    ``win`` holds the network window."""
    from workbench.physics.eels.synth import EDGE_TABLE

    rng = np.random.default_rng(seed)
    edge = str(rng.choice(RICH_EDGES))
    onset = EDGE_TABLE[edge].onset
    lo = float(onset - rng.uniform(10.0, 35.0))
    hi = float(lo + rng.uniform(40.0, 110.0))
    disp = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
    others = [n for n in RICH_EDGES if n != edge and lo + 3 < EDGE_TABLE[n].onset < hi - 5]
    kw = {
        "ny": size,
        "nx": size,
        "edge": edge,
        "e_min": lo - 2.0,
        "e_max": hi + 2.0,
        "dispersion": disp,
        "n_pk": float(np.exp(rng.uniform(np.log(4.5), np.log(450.0)))),
        "p2b": float(rng.uniform(0.1, 0.6)),
        "bg_exponent": float(rng.uniform(2.5, 4.0)),
        "bg_exponent_sd": float(rng.uniform(0.0, 0.2)),
        "bg_amp_range": (float(rng.uniform(0.7, 1.0)), float(rng.uniform(1.0, 1.3))),
        "fwhm": float(rng.uniform(0.3, 1.5)),
        "c_o": 0.0,
        "others": ((str(rng.choice(others)), float(rng.uniform(0.3, 1.0))),)
        if others and rng.random() < 0.5
        else (),
        "plural": bool(rng.random() < 0.5),
        "t_lambda": (float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.5, 1.2))),
        "jitter": float(rng.uniform(0.0, 0.05)),
        "fraction": 0.0,
        "shift": 0.0,
        "seed": int(seed),
        "win": (lo, hi),
    }
    return kw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench train cvae3d", description=__doc__)
    ap.add_argument(
        "--out",
        default=None,
        help="output .pt (default: the bundled workbench/weights/eels/cvae3d_default.pt)",
    )
    ap.add_argument(
        "--input", default=None, help="train on this spectrum image instead of synthetic cubes"
    )
    ap.add_argument("--init", default=None, help="start from this checkpoint (fine-tuning)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--steps-per-epoch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--cubes", type=int, default=6, help="number of synthetic training cubes")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--doses", default="12,45,180,720", help="N_pk values cycled over the cubes")
    ap.add_argument("--window", default="680,740", help="network input window (eV)")
    ap.add_argument(
        "--sim",
        default="rich",
        choices=("rich", "fe"),
        help="rich: cubes of random edges/elements, windows, dispersions (0.05-1 eV/ch), doses "
        "(0.1x-10x), backgrounds, plural scattering and mixtures, every window resampled to the "
        "network's grid; fe: the historical Fe-L cubes on their own 0.3 eV grid",
    )
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop after the epoch that passes this wall-clock budget (0 = none); fixed in advance",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)

    from workbench.train.distributed import session

    with session(a.device) as dist:
        return _train(a, argv, dist)


def _train(a: argparse.Namespace, argv: list[str] | None, dist) -> int:
    import torch

    from workbench.device import versions
    from workbench.nets import eels_cvae_fit as cvae_fit
    from workbench.nets.eels_cvae import build
    from workbench.physics.eels.synth import generate

    torch.set_num_threads(max(1, a.threads))
    device = dist.device  # auto | cpu | cuda resolved; cuda:LOCAL_RANK under torchrun
    dist.check_batch(a.batch)
    lo, hi = (float(v) for v in a.window.split(","))
    out = Path(a.out) if a.out else cvae_fit.DEFAULT_CHECKPOINT
    t0 = time.perf_counter()
    data_desc: dict = {}
    if a.input:
        from workbench.io.eels import read_any

        raw = Path(a.input).read_bytes()
        d = read_any(raw, a.input)
        cubes = [cvae_fit.make_cube(d.data, d.energy, lo, hi, a.patch)]
        data_desc = {
            "input": str(a.input),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "shape": list(d.data.shape),
        }
    elif a.sim == "rich":
        cubes, gens = [], []
        for i in range(a.cubes):
            kw = rich_params(10_000 + a.seed * 1000 + i, a.size)
            g = generate(**{k: v for k, v in kw.items() if k != "win"})
            cubes.append(
                cvae_fit.make_cube(
                    g["data"],
                    g["energy"],
                    kw["win"][0],
                    kw["win"][1],
                    a.patch,
                    channels=cvae_fit.NET_CHANNELS,
                )
            )
            gens.append({k: v for k, v in kw.items() if k not in ("ny", "nx")})
            if dist.is_main:
                print(f"cube {i + 1}/{a.cubes}: {gens[-1]}", flush=True)
        h = hashlib.sha256()
        for c in cubes:
            h.update(c.counts.tobytes())
        data_desc = {
            "synthetic": "workbench.physics.eels.synth.generate, anomaly-free, random edges "
            "(rich_params in workbench/train/eels_cvae.py), each window resampled to "
            f"{cvae_fit.NET_CHANNELS} channels",
            "size": [a.size, a.size],
            "cubes": gens,
            "sha256_counts": h.hexdigest(),
        }
    else:
        doses = [float(x) for x in a.doses.split(",")]
        cubes, gens = [], []
        for i in range(a.cubes):
            g = generate(
                ny=a.size,
                nx=a.size,
                n_pk=doses[i % len(doses)],
                fraction=0.0,
                shift=0.0,
                seed=10_000 + a.seed * 100 + i,
            )
            cubes.append(cvae_fit.make_cube(g["data"], g["energy"], lo, hi, a.patch))
            gens.append({"seed": g["params"]["seed"], "n_pk": g["params"]["n_pk"]})
        h = hashlib.sha256()
        for c in cubes:
            h.update(c.counts.tobytes())
        data_desc = {
            "synthetic": "workbench.physics.eels.synth.generate, anomaly-free (fraction 0)",
            "size": [a.size, a.size],
            "energy": "650-750 eV at 0.3 eV/ch",
            "cubes": gens,
            "sha256_counts": h.hexdigest(),
        }
    cp = cubes[0].counts.shape[-1]
    if a.init:
        model, _ = cvae_fit.load_checkpoint(a.init)
    else:
        model = build({"channels": cp, "patch": a.patch, "latent": a.latent}, a.seed)

    deadline = t0 + 60.0 * a.max_minutes if a.max_minutes > 0 else None

    def report(step, total, metrics):
        if deadline is not None and time.perf_counter() > deadline:
            prog.cancel()  # the fixed wall-clock budget: stop after this epoch
        if not dist.is_main:
            return
        print(
            f"epoch {step}/{total} loss {metrics.get('loss', 0):.5f} nll/count {metrics.get('nll', 0):.6f} "
            f"kl {metrics.get('kl', 0):.3f} val {metrics.get('val_nll', 0):.6f} t {time.perf_counter() - t0:.0f}s",
            flush=True,
        )

    from workbench.progress import Progress

    prog = Progress(callback=report)

    res = cvae_fit.fit(
        model,
        cubes,
        epochs=a.epochs,
        lr=a.lr,
        beta=a.beta,
        batch=a.batch,
        steps_per_epoch=a.steps_per_epoch,
        seed=a.seed,
        device=device,
        progress=prog,
        patience=1000,
        warmup=max(1, round(0.1 * a.epochs)),
        dist=dist,
    )
    if not dist.is_main:  # rank 0 evaluates and writes the checkpoint and the manifest
        return 0
    wall = time.perf_counter() - t0
    metrics = {
        "final_train_nll_per_count": res["history"]["nll"][-1]
        if res["history"]["nll"]
        else float("nan"),
        "best_val_nll_per_count": res["best_val_nll"],
        "epochs": res["epochs"],
    }
    if not a.input:
        # protocol-A check without fine-tuning: anomalous cubes with new map and noise seeds, on
        # the Fe-L grid of the historical checkpoint and on a Mn-L edge at 0.1 eV/channel
        from workbench.physics.eels import metrics as EM

        rich = a.sim == "rich"
        checks = [
            ("fe", 1.0, {}, (lo, hi), (690.0, 730.0)),
            ("fe", 2.0, {}, (lo, hi), (690.0, 730.0)),
        ]
        if rich:
            mn = dict(edge="Mn L", e_min=600.0, e_max=700.0, dispersion=0.1, c_o=0.0)
            checks.append(("mn", 1.0, mn, (615.0, 675.0), (630.0, 665.0)))
        for tag, shift, extra, (wlo, whi), (elo, ehi) in checks:
            g = generate(
                ny=max(a.size, 32),
                nx=max(a.size, 32),
                shift=shift,
                fraction=0.03,
                seed=777,
                **extra,
            )
            cube = cvae_fit.make_cube(
                g["data"],
                g["energy"],
                wlo,
                whi,
                a.patch,
                channels=cvae_fit.NET_CHANNELS if rich else None,
            )
            pi, _ = cvae_fit.infer(model, cube, device)
            pi, e_src = cvae_fit.to_source(pi, cube)
            sl = slice(*np.searchsorted(g["energy"], [e_src[0], e_src[-1] + 1e-9]))
            counts = np.clip(g["data"][..., sl], 0, None)
            _, pear, dev = cvae_fit.scores_from_pi(counts, pi, e_src, elo, ehi)
            key = "" if tag == "fe" else f"{tag}_"
            metrics[f"roc_auc_pearson_{key}{shift:g}eV_3pct"] = EM.roc_auc(pear, g["truth"])
            metrics[f"roc_auc_nll_{key}{shift:g}eV_3pct"] = EM.roc_auc(dev, g["truth"])
    meta = {
        "resampled": bool(cubes[0].src_energy is not None),
        "dispersion": float(np.median(np.diff(cubes[0].energy))),
        "window": [lo, hi],
        "channels_valid": int(cubes[0].valid.sum()),
        "seed": a.seed,
    }
    sha = cvae_fit.save_checkpoint(out, model, meta)
    cmd = dist.command(
        "workbench train cvae3d " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    manifest = {
        "file": out.name,
        "command": cmd.strip(),
        "sha256": sha,
        "model": model.config(),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "data": data_desc,
        "seed": a.seed,
        "hyperparameters": {
            **{k: v for k, v in vars(a).items() if k not in ("out", "input", "init")},
            "warmup_epochs": max(1, round(0.1 * a.epochs)),
            "clip_grad_norm": 3.5,
            "scheduler": "ReduceLROnPlateau(factor 0.5, patience 10) on validation NLL",
            "validation": "P x P squares along the bottom edge of each cube (~10 %)",
        },
        "wall_time_s": round(wall, 1),
        "machine": {
            "platform": platform.platform(terse=True),
            "device": device,
            "distributed": dist.describe(),
            "threads": a.threads,
            "cpus": os.cpu_count(),
        },
        "metrics": metrics,
        "history": res["history"],
        "versions": versions(),
        "load": "torch.load(path, weights_only=True)",
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
