"""Train a RecurrentVarNet on the varied MRI corpus (default) or on the MNI152 template.

``workbench train recurrentvarnet --minutes 60 --out workbench/weights/mri``

``--data corpus`` (default, issue 12): every step draws a batch from the ``train`` split of
:mod:`workbench.datasets.mri_corpus` (template slices at four contrasts and three orientations,
random-shape phantoms, 4–16 birdcage or surface coils, σ_rel 0.001–0.03, R ∈ [3, 10] — one
model for every acceleration, the mask being its input), crops the readout and estimates
ACS-RSS maps; validation uses fixed examples of the ``val`` split at R = 4 and 8.

``--data mni`` (the first shipped checkpoints): each step draws a batch of training slices (random flips, a fresh smooth random phase, noise
σ_rel·max|x|), 8 birdcage coils, a fresh random 1-D mask at the requested acceleration
(``equispaced`` or ``random``), ACS-RSS maps estimated from the masked data, and takes the image
crop along the readout H (undersampling is along W only, so the aliasing is unchanged). The loss is
L1 + SSIM on the RSS image against the clean magnitude, after normalising by s = max|A^H y|.
Validation (fixed equispaced masks, full 128² slices, fastMRI PSNR against the noisy SENSE
reference) picks the best checkpoint. ``--resume`` continues from the last training state.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def make_batch(images, maps_full, rng, accel, cf, crop_h, sigma_rel, dtype):
    """Simulate one training batch. Returns (y, mask, maps_est, target) torch tensors."""
    import torch

    from workbench.physics.mri.acquisition import smooth_phase
    from workbench.physics.mri.coils import acs_rss
    from workbench.physics.mri.fft import fft2c
    from workbench.physics.mri.masks import make_mask

    b = len(images)
    n = images.shape[-1]
    ys, ms, tg = [], [], []
    for i in range(b):
        img = images[i]
        if rng.uniform() < 0.5:
            img = img[:, ::-1]
        if rng.uniform() < 0.5:
            img = img[::-1, :]
        h0 = int(rng.integers(0, n - crop_h + 1)) if crop_h < n else 0
        x = img[h0 : h0 + crop_h].astype(np.complex128) * np.exp(
            1j * smooth_phase(rng, n, n)[h0 : h0 + crop_h]
        )
        S = maps_full[:, h0 : h0 + crop_h]
        kind = "equispaced" if rng.uniform() < 0.5 else "random"
        m = make_mask(kind, (crop_h, n), accel, cf, int(rng.integers(0, 2**31))).array
        k = fft2c(torch.from_numpy(S * x[None])).numpy()
        sigma = sigma_rel * np.abs(x).max()
        k = k + (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)) * sigma / math.sqrt(2)
        ys.append(k * m[None])
        ms.append(m)
        tg.append(np.abs(x))
    y = torch.from_numpy(np.stack(ys)).to(dtype)
    mask = torch.from_numpy(np.stack(ms))[:, None].float()
    maps = acs_rss(y, mask)
    return y, mask, maps, torch.from_numpy(np.stack(tg)).float()


def corpus_batch(step, seed, batch, crop_h, dtype, accel=None):
    """One training batch from the corpus's ``train`` split (issue 12).

    Example indices are ``(seed·10⁷ + step)·batch + i``; all examples of a step share one image
    size, drawn from the corpus sizes by the step's generator. The readout (H) is cropped in the
    image domain to ``crop_h`` rows: undersampling is along W only, so the aliasing is unchanged,
    and noise that is white in k-space stays white with the same σ after the crop. Maps are
    ACS-RSS estimates from the cropped masked data, as the solver recomputes them at inference.
    Returns ``(y, mask, maps, target)``; the target is the clean magnitude |x|.
    """
    import torch

    from workbench.datasets.mri_corpus import SIZES, corpus_example
    from workbench.physics.mri.coils import acs_rss
    from workbench.physics.mri.fft import fft2c, ifft2c

    rng = np.random.default_rng([seed, step, 7])
    n = int(SIZES[int(rng.integers(len(SIZES)))])
    ys, ms, tg, cmax = [], [], [], 0
    exs = [
        corpus_example("train", (seed * 10**7 + step) * batch + i, size=n, accel=accel)
        for i in range(batch)
    ]
    cmax = max(e["kspace"].shape[0] for e in exs)
    for e in exs:
        h = min(crop_h, n)
        h0 = int(rng.integers(0, n - h + 1))
        img = ifft2c(torch.from_numpy(e["kspace"]))[:, h0 : h0 + h]
        m = np.ascontiguousarray(e["mask"][h0 : h0 + h]).astype(np.float32)
        k = fft2c(img).numpy() * m[None]
        # zero-padded coils keep a batch of different coil counts rectangular: a zero coil has
        # zero data and (after ACS-RSS) zero maps, so it changes nothing
        kp = np.zeros((cmax, h, n), np.complex64)
        kp[: k.shape[0]] = k
        ys.append(kp)
        ms.append(m)
        tg.append(np.abs(e["image"][h0 : h0 + h]))
    y = torch.from_numpy(np.stack(ys)).to(dtype)
    mask = torch.from_numpy(np.stack(ms))[:, None].float()
    maps = acs_rss(y, mask)
    return y, mask, maps, torch.from_numpy(np.stack(tg)).float()


def build_corpus_val(n_val: int, size: int, accels=(4.0, 8.0)):
    """Fixed validation problems from the corpus's ``val`` split: example i at ``size``² and
    acceleration ``accels[i % len(accels)]``, ACS-RSS maps; reference ``sense_noisy_full``."""
    import torch

    from workbench.datasets.mri_corpus import corpus_example
    from workbench.physics.mri.coils import acs_rss

    out = []
    for i in range(n_val):
        e = corpus_example("val", i, size=size, accel=accels[i % len(accels)])
        y = torch.from_numpy(e["kspace"])[None]
        mask = torch.from_numpy(e["mask"].astype(np.float32))[None, None]
        out.append((y, mask, acs_rss(y, mask), e["reference"][None]))
    return out


def normalise(y, maps):
    """s = max|A^H y| per sample (the solvers' scaling); returns (y/s, s)."""
    from workbench.physics.mri.fft import ifft2c

    z = (maps.conj() * ifft2c(y)).sum(1)
    s = z.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return y / s, s


def validate(net, val, device):
    import torch

    from workbench.physics.mri.metrics import psnr, ssim

    ps, ss = [], []
    with torch.no_grad():
        for y, mask, maps, ref in val:
            yn, s = normalise(y.to(device), maps.to(device))
            out = net.image(net(yn, mask.to(device), maps.to(device))) * s.view(-1, 1, 1)
            out = out.cpu().numpy()
            ps.append(psnr(ref, out))
            ss.append(ssim(ref, out))
    return float(np.mean(ps)), float(np.mean(ss))


def build_val(images, accel, cf, n_coils=8, sigma_rel=0.005):
    """Fixed validation problems: full slices, equispaced masks with per-slice seeds."""
    import torch

    from workbench.physics.mri.acquisition import simulate_problem

    out = []
    for i in range(len(images)):
        p = simulate_problem(
            images[i : i + 1],
            name=f"val{i}",
            slice_seeds=[3000 + i],
            sigma_rel=sigma_rel,
            n_coils=n_coils,
            mask="equispaced",
            acceleration=accel,
            center_fraction=cf,
            seed=i,
            maps="acs_rss",
        )
        y = torch.from_numpy(p.kspace)
        mask = torch.from_numpy(p.mask)[None, None]
        out.append((y, mask, torch.from_numpy(p.maps), p.reference))
    return out


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="workbench train recurrentvarnet", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--accel",
        type=float,
        default=4.0,
        help="acceleration R (4 → cf 0.08, 8 → cf 0.04 unless --cf)",
    )
    ap.add_argument("--cf", type=float, default=None, help="centre fraction")
    ap.add_argument("--size", type=int, default=128, help="image size N of the simulated slices")
    ap.add_argument("--crop-h", type=int, default=64, help="readout crop height used in training")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100000, help="maximum number of steps")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-time budget")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--num-steps", type=int, default=4, help="T, recurrent blocks")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--init-channels", type=str, default="8,8,16,16")
    ap.add_argument("--no-rsi", action="store_true", help="no learned recurrent state initialiser")
    ap.add_argument("--ser", action="store_true", help="sensitivity refinement U-Net")
    ap.add_argument(
        "--state-relu",
        action="store_true",
        help="keep ReLU(h) as the ConvGRU state (the first shipped checkpoints); default: the reference's pre-ReLU state",
    )
    ap.add_argument(
        "--data",
        choices=("corpus", "mni"),
        default="corpus",
        help="corpus: the varied corpus of workbench.datasets.mri_corpus (random R in [3, 10] unless --accel-fixed); mni: the MNI T1 template with 8 birdcage coils (the first shipped models)",
    )
    ap.add_argument(
        "--accel-fixed",
        action="store_true",
        help="with --data corpus: train at --accel only (default: R drawn in [3, 10] per example; the mask is the network's input)",
    )
    ap.add_argument("--n-val", type=int, default=12, help="validation examples (corpus)")
    ap.add_argument(
        "--init-from",
        default=None,
        help="warm start: a checkpoint (.pt, same config) whose weights initialise the network",
    )
    ap.add_argument("--sigma-rel", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device", default="auto", help="auto, cpu or cuda (cuda:LOCAL_RANK under torchrun)"
    )
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.dirname(__file__)), "weights", "mri")
    )
    ap.add_argument("--name", default=None, help="checkpoint base name (default rvn_<R>x)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/<name>.state.pt")
    a = ap.parse_args(argv)

    from workbench.train.distributed import session

    with session(a.device) as dist:
        return _train(a, argv, dist)


def _train(a: argparse.Namespace, argv: list[str] | None, dist) -> int:
    """The training loop; under torchrun each of the N ranks simulates the same global batch
    (same seeded generator) and trains on its shard of it through DistributedDataParallel;
    rank 0 decides the learning rate and when to stop (both follow its wall clock), validates,
    and writes the checkpoint, the training state and the manifest."""
    import torch

    from workbench.datasets.mri import mni_slices
    from workbench.datasets.mri_corpus import CORPUS_VERSION
    from workbench.nets.mri_rvn import RecurrentVarNet, rvn_loss
    from workbench.physics.mri.coils import birdcage

    torch.set_num_threads(a.threads)
    a.device = dist.device  # auto | cpu | cuda resolved; cuda:LOCAL_RANK under torchrun
    mine = dist.shard(a.batch)
    log = _log if dist.is_main else (lambda msg: None)  # one log, rank 0's
    cf = a.cf if a.cf is not None else (0.08 if a.accel <= 4 else 0.04)
    corpus = a.data == "corpus"
    name = a.name or ("rvn_corpus" if corpus and not a.accel_fixed else f"rvn_{int(a.accel)}x")
    os.makedirs(a.out, exist_ok=True)
    state_path = os.path.join(a.out, name + ".state.pt")
    ckpt_path = os.path.join(a.out, name + ".pt")
    config = dict(
        num_steps=a.num_steps,
        recurrent_hidden_channels=a.hidden,
        recurrent_num_layers=a.layers,
        no_parameter_sharing=True,
        learned_initializer=not a.no_rsi,
        initializer_initialization="sense",
        initializer_channels=tuple(int(c) for c in a.init_channels.split(",")),
        initializer_dilations=(1, 1, 2, 4),
        initializer_multiscale=1,
        ser=a.ser,
        gru_state_relu=a.state_relu,
    )
    gen = torch.Generator().manual_seed(a.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(a.seed)  # parameter init only; restored below so callers' RNG is untouched
    net = RecurrentVarNet(**config).to(a.device)
    torch.random.set_rng_state(torch_state)
    del gen
    init_note = None
    if a.init_from and not (a.resume and os.path.exists(state_path)):
        net.load_state_dict(torch.load(a.init_from, map_location=a.device, weights_only=True))
        init_note = {"file": os.path.basename(a.init_from), "sha256": sha256(a.init_from)}
        log(f"warm start from {a.init_from}")
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    ddp_net = dist.wrap(net)
    if corpus:
        from workbench.datasets.mri_corpus import slice_index

        train = slice_index("train")
        val = build_corpus_val(a.n_val, a.size, (a.accel,) if a.accel_fixed else (4.0, 8.0))
    else:
        data = mni_slices(a.size)
        train = data["train"]
        val = build_val(data["val"], a.accel, cf, sigma_rel=a.sigma_rel)
        maps_full = birdcage(8, a.size, a.size).astype(np.complex128)
    step, elapsed, best, hist = 0, 0.0, -1.0, []
    if a.resume and os.path.exists(state_path):
        st = torch.load(state_path, map_location=a.device, weights_only=True)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, elapsed, best = int(st["step"]), float(st["elapsed"]), float(st["best"])
        hist = json.loads(st["history"])
        log(f"resumed at step {step}, {elapsed / 60:.1f} min")
    nparams = sum(p.numel() for p in net.parameters())
    log(
        f"{name}: R={a.accel} cf={cf} params={nparams} train={len(train)} val={len(val)} budget={a.minutes} min"
    )
    t_start = time.time() - elapsed

    def write_manifest(final=None):
        el = time.time() - t_start
        best_entry = max(hist, key=lambda h: h["val_psnr"])
        manifest = {
            "model": "RecurrentVarNet (Yiasemis et al., CVPR 2022), workbench implementation",
            "file": os.path.basename(ckpt_path),
            "sha256": sha256(ckpt_path),
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
            "parameters": nparams,
            "command": dist.command(
                "workbench train recurrentvarnet "
                + " ".join(argv if argv is not None else sys.argv[1:])
            ),
            "data": (
                f"workbench.datasets.mri_corpus v{CORPUS_VERSION} 'train' split ({len(train)} template slices in 3 orientations x 4 contrasts + random-shape phantoms), sizes 64-192 (readout crop {a.crop_h}), 4-16 birdcage/surface coils, sigma_rel 0.001-0.03, equispaced/random masks "
                + (f"R={a.accel}" if a.accel_fixed else "R in [3, 10]")
                + ", cf 0.32/R; maps acs_rss"
                if corpus
                else f"MNI152 2009 T1 template (nilearn), {len(train)} training slices at {a.size}², readout crop {a.crop_h}, 8 birdcage coils, sigma_rel {a.sigma_rel}, random smooth phase, flips; masks equispaced/random R={a.accel} cf={cf} redrawn per sample; maps acs_rss"
            ),
            "validation": (
                f"{len(val)} examples of the corpus 'val' split at {a.size}², R alternating "
                + (f"{a.accel}" if a.accel_fixed else "4 and 8")
                + ", fastMRI convention vs sense_noisy_full"
                if corpus
                else f"{len(val)} validation slices (full {a.size}²), equispaced R={a.accel} cf={cf}, fastMRI convention vs sense_noisy_full"
            ),
            "maps": "acs_rss",
            "training_family": (
                {
                    "acceleration": [a.accel, a.accel] if a.accel_fixed else [3.0, 10.0],
                    "masks": ["equispaced", "random"],
                    "coils": [4, 16],
                    "sizes": [64, 192],
                    "sigma_rel": [0.001, 0.03],
                }
                if corpus
                else {
                    "acceleration": [a.accel, a.accel],
                    "masks": ["equispaced", "random"],
                    "coils": [8, 8],
                    "sizes": [a.size, a.size],
                    "sigma_rel": [a.sigma_rel, a.sigma_rel],
                }
            ),
            "normalisation": "input k-space divided by s = max|A^H y| (SENSE combination with acs_rss maps); output RSS multiplied by s",
            "loss": "L1 + (1 - SSIM 7x7) on the RSS image vs the clean magnitude",
            "optimizer": f"Adam lr {a.lr} cosine to 5% over the time budget, batch {a.batch}, grad clip 1.0",
            "init_from": init_note or (a.init_from and os.path.basename(a.init_from)),
            "seed": a.seed,
            "acceleration": None if corpus and not a.accel_fixed else a.accel,
            "center_fraction": "0.32/R" if corpus and not a.accel_fixed else cf,
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
            "label": "validation model trained on a template; not for clinical use",
        }
        with open(os.path.join(a.out, name + ".json"), "w") as f:
            json.dump(manifest, f, indent=1)

    budget = a.minutes * 60
    losses = []
    while True:
        frac = min(1.0, (time.time() - t_start) / budget)
        lr = a.lr * max(0.05, 0.5 * (1 + math.cos(math.pi * frac)))
        stop = step >= a.steps or (time.time() - t_start) >= budget
        # the ranks' clocks differ: rank 0's decides (identity with one process)
        lr, stop = dist.broadcast([lr, float(stop)])
        if stop:
            break
        for g in opt.param_groups:
            g["lr"] = lr
        if corpus:
            y, mask, maps, target = corpus_batch(
                step,
                a.seed,
                a.batch,
                a.crop_h,
                torch.complex64,
                accel=a.accel if a.accel_fixed else None,
            )
        else:
            rng = np.random.default_rng([a.seed, step])
            idx = rng.integers(0, len(train), size=a.batch)
            y, mask, maps, target = make_batch(
                train[idx], maps_full, rng, a.accel, cf, a.crop_h, a.sigma_rel, torch.complex64
            )
        # every rank simulated the whole batch from the same generator; this rank's shard of it
        y, mask, maps, target = (
            y[mine].to(a.device),
            mask[mine].to(a.device),
            maps[mine].to(a.device),
            target[mine].to(a.device),
        )
        yn, s = normalise(y, maps)
        pred = net.image(ddp_net(yn, mask, maps))
        loss = rvn_loss(pred, target / s.view(-1, 1, 1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(dist.mean([float(loss.detach())])[0])
        if step % a.val_every == 0 and dist.is_main:
            vp, vs = validate(net, val, a.device)
            el = time.time() - t_start
            hist.append(
                {
                    "step": step,
                    "minutes": el / 60,
                    "loss": float(np.mean(losses)),
                    "val_psnr": vp,
                    "val_ssim": vs,
                    "lr": lr,
                }
            )
            losses = []
            log(
                f"step {step} loss {hist[-1]['loss']:.4f} val PSNR {vp:.2f} SSIM {vs:.4f} lr {lr:.2e} ({el / 60:.1f} min)"
            )
            if vp > best:
                best = vp
                torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, ckpt_path)
                write_manifest()
            torch.save(
                {
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step,
                    "elapsed": el,
                    "best": best,
                    "history": json.dumps(hist),
                },
                state_path,
            )
    if not dist.is_main:
        return 0
    el = time.time() - t_start
    vp, vs = validate(net, val, a.device)
    hist.append(
        {
            "step": step,
            "minutes": el / 60,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "val_psnr": vp,
            "val_ssim": vs,
            "lr": 0.0,
        }
    )
    if vp > best or not os.path.exists(ckpt_path):
        best = vp
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, ckpt_path)
    write_manifest(final={"psnr": vp, "ssim": vs})
    log(f"done: {step} steps, best val PSNR {best:.2f}, wrote {ckpt_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
