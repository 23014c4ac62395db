"""Train the ε-prediction U-Net prior of the diffusion samplers (DDS, DPS) on complex MR images.

``workbench train diffusion_prior --minutes 60 --out workbench/weights/mri``

Data: the MRI training corpus's coil-combined complex images
(:func:`workbench.datasets.mri_corpus.coil_combined_images`, ``max|x| = 1`` each; template slices
and phantoms with a smooth phase), a pool of ``--n-train`` images at ``--size`` drawn once, from
which every step takes random ``--crop``² crops with random flips and a random global phase
``e^{iθ}`` (the prior should not care about the absolute phase). ``--data mni`` swaps in MNI152
slices with a smooth random phase: a small stand-in for tests only.

Objective (DDPM, Ho et al. 2020): ``E_{t, x₀, ε} ‖ε_θ(√ᾱ_t x₀ + √(1 − ᾱ_t) ε, t) − ε‖²`` with
t uniform on 0..999 and the linear-β VP schedule. An exponential moving average (EMA) of the
weights is the model that ships. Validation: the same loss for the EMA model on fixed validation
crops, at 10 fixed timesteps with fixed noise (a deterministic number), which selects the saved
checkpoint. The budget is fixed in advance (``--minutes`` and ``--steps``, whichever ends first);
the learning rate follows a cosine over it. ``--resume`` continues from ``<out>/<name>.state.pt``.
Under ``torchrun`` each rank trains on its shard of the same global batch
(:mod:`workbench.train.distributed`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from workbench.train.mri_rvn import sha256


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def image_pool(source: str, split: str, n: int, size: int, seed: int) -> np.ndarray:
    """``n`` complex images ``(n, size, size)`` complex64 with max|x| = 1 from ``source``.

    ``corpus``: the MRI training corpus (coil-combined images of ``split``). ``mni``: MNI152
    slices of ``split`` times a smooth random phase (a small stand-in used by the tests).
    """
    if source == "corpus":
        from workbench.datasets.mri_corpus import coil_combined_images

        return coil_combined_images(split, n, size=size, seed=seed)
    if source != "mni":
        raise ValueError(f"unknown data source {source!r} (corpus or mni)")
    from workbench.datasets.mri import mni_slices
    from workbench.physics.mri.acquisition import smooth_phase

    imgs = mni_slices(size)[split]
    rng = np.random.default_rng([seed, 17])
    idx = rng.integers(0, len(imgs), size=n)
    out = np.stack([imgs[i] * np.exp(1j * smooth_phase(rng, size, size)) for i in idx])
    return (out / np.abs(out).reshape(n, -1).max(1)[:, None, None]).astype(np.complex64)


def corpus_provenance(source: str) -> dict | None:
    """Which corpus revision the pool came from: its version and the template slabs of every split.

    Recorded in the manifest so that a benchmark (and a test) can prove the prior never saw a
    test voxel: the corpus once moved its slabs (version 1 → 2), and a prior trained on an older
    revision's ``train`` slab may overlap the current ``test`` slab.
    """
    if source != "corpus":
        return None
    from workbench.datasets.mri_corpus import CORPUS_VERSION, SLABS

    return {
        "version": CORPUS_VERSION,
        "split": "train",
        "slabs_z": {k: [list(s) for s in v] for k, v in SLABS.items()},
        "phantom_seeds": "split-specific streams (workbench.datasets.mri_corpus._rng)",
    }


def crops(pool: np.ndarray, rng: np.random.Generator, batch: int, crop: int) -> np.ndarray:
    """A batch of random crops with random flips and a random global phase, ``(B, 2, c, c)``."""
    n, h, w = pool.shape
    out = np.empty((batch, 2, crop, crop), np.float32)
    for b in range(batch):
        x = pool[int(rng.integers(0, n))]
        i0 = int(rng.integers(0, h - crop + 1))
        j0 = int(rng.integers(0, w - crop + 1))
        x = x[i0 : i0 + crop, j0 : j0 + crop]
        if rng.uniform() < 0.5:
            x = x[::-1]
        if rng.uniform() < 0.5:
            x = x[:, ::-1]
        x = x * np.exp(1j * rng.uniform(0, 2 * np.pi))
        out[b, 0], out[b, 1] = x.real, x.imag
    return out


def val_loss(net, xval, device) -> float:
    """ε-MSE of ``net`` on fixed crops at 10 fixed timesteps with fixed noise (deterministic)."""
    import torch

    from workbench.nets.mri_diffusion import alpha_bar

    ab = alpha_bar().float()
    g = torch.Generator().manual_seed(1234)
    losses = []
    with torch.no_grad():
        for t in np.linspace(0, 999, 10).astype(int):
            eps = torch.randn(xval.shape, generator=g)
            xt = ab[t].sqrt() * xval + (1 - ab[t]).sqrt() * eps
            tt = torch.full((len(xval),), int(t), dtype=torch.long)
            pred = net(xt.to(device), tt.to(device)).cpu()
            losses.append(float(((pred - eps) ** 2).mean()))
    return float(np.mean(losses))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="workbench train diffusion_prior", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--data", default="corpus", choices=("corpus", "mni"))
    ap.add_argument("--size", type=int, default=128, help="image size of the pool")
    ap.add_argument("--crop", type=int, default=64, help="training crop size")
    ap.add_argument("--n-train", type=int, default=1024, help="training images in the pool")
    ap.add_argument("--n-val", type=int, default=32, help="validation images")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1_000_000, help="maximum number of steps")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-time budget")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=100, help="linear learning-rate warm-up steps")
    ap.add_argument("--ema", type=float, default=0.999, help="EMA decay of the weights")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--mult", default="1,2,4,4", help="width multipliers per level")
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fp32", action="store_true", help="store fp32 weights (default fp16)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.dirname(__file__)), "weights", "mri")
    )
    ap.add_argument("--name", default="diffusion_prior", help="checkpoint base name")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/<name>.state.pt")
    a = ap.parse_args(argv)
    if a.crop > a.size:
        ap.error("--crop must not exceed --size")

    from workbench.train.distributed import session

    with session(a.device) as dist:
        return _train(a, argv, dist)


def _train(a: argparse.Namespace, argv: list[str] | None, dist) -> int:
    import copy

    import torch

    from workbench.nets.mri_diffusion import EpsUNet, alpha_bar, n_params

    torch.set_num_threads(a.threads)
    a.device = dist.device
    mine = dist.shard(a.batch)
    log = _log if dist.is_main else (lambda msg: None)
    os.makedirs(a.out, exist_ok=True)
    state_path = os.path.join(a.out, a.name + ".state.pt")
    ckpt_path = os.path.join(a.out, a.name + ".pt")
    config = dict(channels=a.channels, mult=[int(m) for m in a.mult.split(",")], blocks=a.blocks)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(a.seed)  # parameter init only; restored so callers' RNG is untouched
    net = EpsUNet(**config).to(a.device)
    torch.random.set_rng_state(torch_state)
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    ddp_net = dist.wrap(net)
    t0 = time.time()
    pool = image_pool(a.data, "train", a.n_train, a.size, a.seed)
    vpool = image_pool(a.data, "val", a.n_val, a.size, a.seed)
    c0 = (a.size - a.crop) // 2
    vc = vpool[:, c0 : c0 + a.crop, c0 : c0 + a.crop]
    xval = torch.from_numpy(np.stack([vc.real, vc.imag], 1).astype(np.float32))
    log(f"data: {len(pool)} train + {len(vpool)} val images ({a.data}) in {time.time() - t0:.0f} s")
    ab = alpha_bar().float().to(a.device)
    step, elapsed, best, hist = 0, 0.0, float("inf"), []
    if a.resume and os.path.exists(state_path):
        st = torch.load(state_path, map_location=a.device, weights_only=True)
        net.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["optimizer"])
        step, elapsed, best = int(st["step"]), float(st["elapsed"]), float(st["best"])
        hist = json.loads(st["history"])
        log(f"resumed at step {step}, {elapsed / 60:.1f} min")
    nparams = n_params(net)
    log(f"{a.name}: params={nparams} budget={a.minutes} min / {a.steps} steps")
    t_start = time.time() - elapsed

    def save_weights():
        dtype = torch.float32 if a.fp32 else torch.float16
        torch.save({k: v.detach().cpu().to(dtype) for k, v in ema.state_dict().items()}, ckpt_path)

    def write_manifest(final=None):
        el = time.time() - t_start
        best_entry = min(hist, key=lambda h: h["val_loss"]) if hist else None
        manifest = {
            "model": "ε-prediction U-Net (GroupNorm, SiLU, sinusoidal time embedding, no attention), EMA weights",
            "file": os.path.basename(ckpt_path),
            "sha256": sha256(ckpt_path),
            "config": config,
            "parameters": nparams,
            "dtype": "float32" if a.fp32 else "float16 (stored; loaded into float32)",
            "schedule": "VP/DDPM, beta linear 1e-4..0.02, 1000 steps",
            "command": dist.command(
                "workbench train diffusion_prior "
                + " ".join(argv if argv is not None else sys.argv[1:])
            ),
            "data": (
                f"{len(pool)} coil-combined complex training images at {a.size}² from "
                + (
                    "workbench.datasets.mri_corpus.coil_combined_images('train', ...)"
                    if a.data == "corpus"
                    else "MNI152 training slices with a smooth random phase (test stand-in)"
                )
                + f", max|x| = 1; random {a.crop}² crops, flips, global phase"
            ),
            "corpus": corpus_provenance(a.data),
            "validation": f"EMA ε-MSE on {len(vpool)} validation images ({a.data} 'val'), centre {a.crop}² crops, 10 fixed t, fixed noise",
            "normalisation": "images max|x| = 1; at inference y is scaled so that max|A^H y| = 1",
            "loss": "ε-MSE (DDPM simple loss), t uniform on 0..999",
            "optimizer": f"Adam lr {a.lr}, {a.warmup}-step warm-up then cosine to 5% over the budget, batch {a.batch}, grad clip 1.0, EMA {a.ema}",
            "budget": {"minutes": a.minutes, "steps": a.steps},
            "seed": a.seed,
            "steps": step,
            "wall_minutes": round(el / 60, 2),
            "threads": a.threads,
            "device": a.device,
            "distributed": dist.describe(),
            "best_val": best_entry,
            "final_val": final,
            "history": hist,
            "torch": torch.__version__,
            "notice": "Trained on data derived from the MNI152 2009 template: Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill University.",
            "label": "validation model trained on a template and phantoms; not for clinical use",
        }
        with open(os.path.join(a.out, a.name + ".json"), "w") as f:
            json.dump(manifest, f, indent=1)

    def validate_and_save(lr):
        nonlocal best, losses
        vl = val_loss(ema, xval, a.device)
        el = time.time() - t_start
        hist.append(
            {
                "step": step,
                "minutes": el / 60,
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "val_loss": vl,
                "lr": lr,
            }
        )
        losses = []
        log(f"step {step} loss {hist[-1]['loss']:.4f} val {vl:.4f} lr {lr:.2e} ({el / 60:.1f} min)")
        if vl < best or not os.path.exists(ckpt_path):
            best = vl
            save_weights()
            write_manifest()
        torch.save(
            {
                "model": net.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "elapsed": el,
                "best": best,
                "history": json.dumps(hist),
            },
            state_path,
        )

    budget = a.minutes * 60
    losses: list[float] = []
    lr = a.lr
    while True:
        frac = min(1.0, (time.time() - t_start) / budget)
        lr = a.lr * max(0.05, 0.5 * (1 + math.cos(math.pi * frac)))
        lr *= min(1.0, (step + 1) / max(a.warmup, 1))
        stop = step >= a.steps or (time.time() - t_start) >= budget
        lr, stop = dist.broadcast([lr, float(stop)])
        if stop:
            break
        for g in opt.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([a.seed, step])
        x0 = torch.from_numpy(crops(pool, rng, a.batch, a.crop))
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        t = torch.randint(0, len(ab), (a.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x0, t, eps = x0[mine].to(a.device), t[mine].to(a.device), eps[mine].to(a.device)
        sa = ab[t].sqrt().view(-1, 1, 1, 1)
        sb = (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
        loss = ((ddp_net(sa * x0 + sb * eps, t) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(a.ema, (1 + step) / (10 + step))  # short EMA early on (ADM/score_sde warm-up)
            for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        step += 1
        losses.append(dist.mean([float(loss.detach())])[0])
        if step % a.val_every == 0 and dist.is_main:
            validate_and_save(lr)
    if not dist.is_main:
        return 0
    if not hist or hist[-1]["step"] != step:
        validate_and_save(0.0)
    write_manifest(final={"val_loss": hist[-1]["val_loss"], "step": step})
    log(f"done: {step} steps, best val {best:.4f}, wrote {ckpt_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
