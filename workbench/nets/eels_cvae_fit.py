"""Tiles, training loop, posterior-mean inference and checkpoints of the 3-D convolutional VAE
(:mod:`workbench.nets.eels_cvae`), shared by the solver (per-image fine-tuning, ``cvae3d``) and the
``workbench train cvae3d`` entry point that makes the shipped checkpoint.

Tiles of P x P pixels x C energy channels (the analysis window, reflect-padded to a multiple of 16;
padded channels are masked out of the loss and the scores). Checkpoints hold only tensors and
plain types and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.physics.eels import spectra as SP
from workbench.progress import ensure

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "eels"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "cvae3d_default.pt"


@dataclass
class Cube:
    counts: np.ndarray  # (ny, nx, Cpad) float32 counts (padded channels reflect-filled)
    x: np.ndarray  # (ny, nx, Cpad) network input
    valid: np.ndarray  # (Cpad,) bool
    energy: np.ndarray  # (c,) eV of the valid channels
    ny: int
    nx: int
    src_energy: np.ndarray | None = None  # the user's channels in the window (when resampled)


NET_CHANNELS = 192  # the network's energy grid: any window is resampled to this many channels


def make_cube(
    data: np.ndarray,
    energy: np.ndarray,
    lo: float,
    hi: float,
    patch: int,
    scale: float | None = None,
    channels: int | None = None,
) -> Cube:
    """Network input of the window [lo, hi] eV.

    With ``channels`` the window is resampled, count-preservingly
    (:func:`workbench.physics.eels.spectra.rebin_counts`), onto a uniform grid of that many
    channels spanning the same energy extent: the network then sees the edge on its own grid
    whatever the file's dispersion and range (``src_energy`` keeps the user's channels, to map
    reconstructions back with :func:`to_source`). Without it the window's channels are used as
    they are and reflect-padded to a multiple of 16.
    """
    energy = np.asarray(energy, np.float64)
    src = None
    if channels:
        sl, grid = SP.net_grid(energy, lo, hi, int(channels))
        src = energy[sl]
        Y = SP.rebin_counts(np.clip(np.asarray(data[..., sl], np.float64), 0, None), src, grid)
        Y = np.clip(Y, 0, None).astype(np.float32)
        energy, sl = grid, slice(None)
    else:
        sl = SP.window(energy, lo, hi, what="network input window")
        Y = np.clip(np.asarray(data[..., sl], np.float32), 0, None)
    c = Y.shape[-1]
    cp = int(np.ceil(c / 16) * 16)
    ny, nx = Y.shape[:2]
    py, px = max(0, patch - ny), max(0, patch - nx)
    pad_e = cp - c
    if pad_e:
        Y = np.pad(Y, ((0, 0), (0, 0), (0, pad_e)), mode="reflect" if pad_e < c else "edge")
    if py or px:
        Y = np.pad(Y, ((0, py), (0, px), (0, 0)), mode="wrap")
    valid = np.zeros(cp, bool)
    valid[:c] = True
    a = SP.anscombe(Y)
    s = float(np.median(a[..., valid])) if scale is None else scale
    return Cube(
        Y,
        (a / max(s, 1e-6)).astype(np.float32),
        valid,
        np.asarray(energy, np.float64)[sl],
        ny,
        nx,
        src,
    )


def to_source(pi: np.ndarray, cube: Cube) -> tuple[np.ndarray, np.ndarray]:
    """Spectral distribution pi (ny, nx, c) on the network grid mapped back to the user's channels
    (mass-preserving rebinning, renormalised), with that energy axis; unchanged when the cube was
    not resampled."""
    if cube.src_energy is None:
        return pi, cube.energy
    q = np.clip(SP.rebin_counts(pi, cube.energy, cube.src_energy), 0, None)
    return q / np.clip(q.sum(-1, keepdims=True), 1e-300, None), cube.src_energy


def val_squares(ny: int, nx: int, p: int) -> list[tuple[int, int]]:
    """P x P validation squares along the bottom edge (~10% of the map); none on small maps."""
    if ny * nx < 8 * p * p or ny < 2 * p or nx < 2 * p:
        return []
    n = max(1, round(0.1 * ny * nx / (p * p)))
    out = []
    for i in range(n):
        r, c = divmod(i, max(1, nx // p - 1))
        y0, x0 = ny - p * (r + 1), nx - p * (c + 1)
        if y0 < p:
            break
        out.append((y0, x0))
    return out


def _overlaps(y0: int, x0: int, sq: list[tuple[int, int]], p: int) -> bool:
    return any(abs(y0 - a) < p and abs(x0 - b) < p for a, b in sq)


def tile_grid(n: int, p: int) -> list[int]:
    if n <= p:
        return [0]
    starts = list(range(0, n - p + 1, max(1, p // 2)))
    if starts[-1] != n - p:
        starts.append(n - p)
    return starts


def _augment(a: np.ndarray, k: int, fy: bool, fx: bool) -> np.ndarray:
    a = np.rot90(a, k, axes=(0, 1))
    if fy:
        a = a[::-1]
    if fx:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def warm() -> None:
    """The page's warm-up hook (``jobs.warm``): a process's first torch optimiser imports
    ``torch._dynamo`` and sympy (1-3 s on the shared machine); create one ahead of the first
    run instead of inside its set-up."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def fit(
    model,
    cubes: list[Cube],
    *,
    epochs: int,
    lr: float = 1e-3,
    beta: float = 1.0,
    batch: int = 8,
    steps_per_epoch: int = 0,
    warmup: int = 0,
    patience: int = 20,
    clip: float = 3.5,
    seed: int = 0,
    device: str = "cpu",
    progress=None,
    use_validation: bool = True,
    dist: Any = None,
) -> dict[str, Any]:
    """Train ``model`` in place on random tiles of ``cubes``; returns history, status, epochs.

    ``dist`` (a :class:`workbench.train.distributed.Dist`, or None for one process): under
    torchrun every rank draws the same global batch of ``batch`` tiles and the same noise from
    the seeded generators, computes its contiguous shard of ``batch / world_size`` tiles through
    the DistributedDataParallel-wrapped model, and DDP averages the gradients; since the loss is
    a mean over tiles, N processes follow the one-process trajectory to float rounding.
    Validation runs in full on every rank (same model, same numbers, same scheduler steps).
    """
    import torch

    from workbench.nets.eels_cvae import kl_normal, multinomial_nll, saturated_nll

    progress = ensure(progress)
    p = model.patch
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    model.to(device)
    net = dist.wrap(model) if dist is not None else model
    mine = dist.shard(batch) if dist is not None else slice(0, batch)
    progress.note("setting up the optimiser")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10)
    vals = [
        val_squares(c.counts.shape[0], c.counts.shape[1], p) if use_validation else []
        for c in cubes
    ]
    valid = torch.as_tensor(cubes[0].valid, device=device)
    n_train_px = sum(c.counts.shape[0] * c.counts.shape[1] for c in cubes)
    steps = steps_per_epoch or max(2, int(np.ceil(2 * n_train_px / (p * p * batch))))
    counts_per_tile = (
        float(
            np.mean(
                [
                    c.counts[..., c.valid].sum() / (c.counts.shape[0] * c.counts.shape[1])
                    for c in cubes
                ]
            )
        )
        * p
        * p
    )

    def batch_tensors(items):
        xs = np.stack([it[0] for it in items])[:, None]
        ys = np.stack([it[1] for it in items])[:, None]
        return torch.as_tensor(xs, device=device), torch.as_tensor(ys, device=device)

    val_items = []
    for c, sq in zip(cubes, vals, strict=True):
        for y0, x0 in sq:
            val_items.append((c.x[y0 : y0 + p, x0 : x0 + p], c.counts[y0 : y0 + p, x0 : x0 + p]))

    hist: dict[str, list[float]] = {
        k: [] for k in ("step", "loss", "nll", "kl", "val_nll", "lr", "time")
    }
    best, best_state, bad_epochs = np.inf, None, 0
    status = "max_iter"
    t0 = time.perf_counter()
    done = 0
    t_note = -np.inf
    for epoch in range(1, epochs + 1):
        model.train()
        bw = beta * (min(1.0, epoch / warmup) if warmup > 0 else 1.0)
        tot = nll_t = kl_t = 0.0
        for i in range(steps):
            if epoch == 1 and time.perf_counter() - t_note > 0.25:
                # the first report comes after a whole epoch: say how far into it we are
                progress.note(f"training epoch 1 of {epochs}: batch {i + 1} of {steps}")
                t_note = time.perf_counter()
            items = []
            for b in range(batch):
                ci = int(rng.integers(len(cubes)))
                cube, sq = cubes[ci], vals[ci]
                ny, nx = cube.counts.shape[:2]
                for _try in range(100):
                    y0 = int(rng.integers(0, ny - p + 1))
                    x0 = int(rng.integers(0, nx - p + 1))
                    if not _overlaps(y0, x0, sq, p):
                        break
                k, fy, fx = int(rng.integers(4)), bool(rng.integers(2)), bool(rng.integers(2))
                if not mine.start <= b < mine.stop:
                    continue  # another rank's tile: its draws are consumed all the same
                items.append(
                    (
                        _augment(cube.x[y0 : y0 + p, x0 : x0 + p], k, fy, fx),
                        _augment(cube.counts[y0 : y0 + p, x0 : x0 + p], k, fy, fx),
                    )
                )
            xb, yb = batch_tensors(items)
            # the whole batch's noise, as one process draws it; this rank's rows of it
            eps = torch.randn((batch, model.latent), generator=gen, device="cpu")[mine]
            logits, mu, logvar = net(xb, eps=eps)
            nll = multinomial_nll(logits, yb, valid)
            kl = kl_normal(mu, logvar)
            loss = (nll + bw * kl).mean() / counts_per_tile
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            with torch.no_grad():
                sat = saturated_nll(yb, valid)
                nll_t += float((nll - sat).mean()) / counts_per_tile
                kl_t += float(kl.mean())
                tot += float(loss)
        if dist is not None:
            tot, nll_t, kl_t = dist.mean([tot, nll_t, kl_t])
        tr_nll = nll_t / steps
        if val_items:
            model.eval()
            with torch.no_grad():
                xb, yb = batch_tensors(val_items)
                logits, mu, logvar = model(xb, sample=False)
                vn = float(
                    ((multinomial_nll(logits, yb, valid) - saturated_nll(yb, valid)).mean())
                    / counts_per_tile
                )
        else:
            vn = tr_nll
        sched.step(vn)
        done = epoch
        hist["step"].append(float(epoch))
        hist["loss"].append(tot / steps)
        hist["nll"].append(tr_nll)
        hist["kl"].append(kl_t / steps)
        hist["val_nll"].append(vn)
        hist["lr"].append(float(opt.param_groups[0]["lr"]))
        hist["time"].append(time.perf_counter() - t0)
        if vn < best - 1e-6:
            best, bad_epochs = vn, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        progress(epoch, epochs, loss=tot / steps, nll=tr_nll, kl=kl_t / steps, val_nll=vn)
        if progress.cancelled:
            status = "cancelled"
            break
        if bad_epochs >= patience:
            status = "converged"
            break
    if best_state is not None and val_items:
        model.load_state_dict(best_state)
    return {
        "history": hist,
        "status": status,
        "epochs": done,
        "best_val_nll": float(best) if np.isfinite(best) else float("nan"),
        "steps_per_epoch": steps,
    }


def infer(model, cube: Cube, device: str = "cpu", batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-mean reconstruction: pi (ny, nx, c) averaged over overlapping tiles, and the
    per-tile latent means (n_tiles, L)."""
    import torch

    from workbench.nets.eels_cvae import log_pi

    p = model.patch
    ny_p, nx_p = cube.counts.shape[:2]
    acc = np.zeros(cube.counts.shape, np.float64)
    cnt = np.zeros((ny_p, nx_p, 1), np.float64)
    coords = [(y, x) for y in tile_grid(ny_p, p) for x in tile_grid(nx_p, p)]
    valid = torch.as_tensor(cube.valid, device=device)
    lat = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(coords), batch):
            cc = coords[i : i + batch]
            xb = torch.as_tensor(
                np.stack([cube.x[y : y + p, x : x + p] for y, x in cc])[:, None], device=device
            )
            mu, _ = model.encode(xb)
            pi = torch.exp(log_pi(model.decode(mu), valid))[:, 0].cpu().numpy()
            lat.append(mu.cpu().numpy())
            for (y, x), t in zip(cc, pi, strict=True):
                acc[y : y + p, x : x + p] += t
                cnt[y : y + p, x : x + p] += 1
    pi = (acc / np.maximum(cnt, 1))[: cube.ny, : cube.nx][..., cube.valid]
    pi /= pi.sum(-1, keepdims=True)
    return pi, np.concatenate(lat, 0)


def scores_from_pi(
    counts: np.ndarray, pi: np.ndarray, energy: np.ndarray, edge_lo: float, edge_hi: float
):
    """Expected counts N_p pi_p and the Pearson / deviance scores in the edge window."""
    N = counts.sum(-1, keepdims=True)
    yhat = N * pi
    e = SP.window(energy, edge_lo, edge_hi, what="edge window")
    pear = SP.pearson_score(counts[..., e].astype(np.float64), yhat[..., e])
    dev = SP.poisson_deviance(counts[..., e], yhat[..., e])
    return yhat, pear, dev


def save_checkpoint(path: Path, model, meta: dict[str, Any]) -> str:
    """Save {config, state_dict, meta} (tensors and plain types only); return its sha256."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.config(), "state_dict": sd, "meta": meta}, tmp)
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_checkpoint(path: Path | str):
    import torch

    from workbench.nets.eels_cvae import build

    try:
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"checkpoint not found: {path}") from None
    model = build(ck["config"], 0)
    model.load_state_dict(ck["state_dict"])
    return model, ck.get("meta", {})
