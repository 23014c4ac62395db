"""3-D convolutional VAE anomaly detector for EELS spectrum images (Sultanov, Buban & Klie 2024).

Tiles of P x P pixels x C energy channels (the analysis window, reflect-padded to a multiple of 16;
padded channels are masked out of the loss and the scores) are encoded to a small Gaussian latent
and decoded to per-pixel spectral logits. Loss = multinomial NLL of the counts given each pixel's
total (count-weighted cross-entropy, the proper form of the paper's NLL) + beta * KL. Training runs
on the image itself (bulk assumption), initialised from the bundled checkpoint when the energy grid
matches. Inference uses the posterior mean on overlapping tiles (stride P/2 + edge-aligned) and
averages pi. Scores: 1 - Pearson r between counts and the expected counts N_p pi_p in the edge
window (paper) or the Poisson deviance there; larger = more anomalous.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.device import resolve_device, versions
from workbench.errors import InputError
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.eels import common as C

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights" / "eels"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "cvae3d_default.pt"


@dataclass(frozen=True)
class Params:
    max_iter: int = param(
        8,
        "training epochs on this image (fine-tuning when initialised from the checkpoint)",
        min=0,
        max=1000,
        label="epochs",
    )
    init: str = param(
        "checkpoint",
        "start from the bundled checkpoint (when the energy grid matches) or from scratch",
        choices=("checkpoint", "scratch"),
    )
    lr: float = param(1e-3, "Adam learning rate", min=1e-6, max=1e-1, log=True)
    beta: float = param(1.0, "weight of the KL term", min=0.0, max=10.0)
    latent: int = param(
        16, "latent dimension (from scratch only; the checkpoint fixes it)", min=2, max=64
    )
    batch: int = param(8, "tiles per batch", min=1, max=64, advanced=True)
    steps_per_epoch: int = param(
        0, "batches per epoch (0 = about two passes over the map)", min=0, max=10000, advanced=True
    )
    patch: int = param(16, "tile size P (pixels)", choices=(8, 16, 24, 32), advanced=True)
    window_lo: float = param(680.0, "network input window start (eV)", advanced=True)
    window_hi: float = param(740.0, "network input window end (eV)", advanced=True)
    edge_lo: float = param(690.0, "score window start (eV)", label="edge window lo")
    edge_hi: float = param(730.0, "score window end (eV)", label="edge window hi")
    score: str = param(
        "pearson",
        "1 - Pearson r (paper), Poisson deviance, or the likelihood ratio of the best energy shift (+-5 eV) of the reconstruction, in the edge window",
        choices=("pearson", "nll", "shift"),
    )
    threshold: str = param("otsu", "threshold from the score histogram", choices=("otsu", "gmm"))
    warmup: int = param(
        0, "epochs of linear KL warm-up (useful from scratch)", min=0, max=1000, advanced=True
    )
    patience: int = param(
        20,
        "early stopping patience (epochs without validation improvement)",
        min=1,
        max=1000,
        advanced=True,
    )
    checkpoint: str = param(
        "",
        "path of a checkpoint to start from (empty = bundled default; a saved run's checkpoint resumes it)",
        advanced=True,
    )
    save: bool = param(
        True,
        "save the fine-tuned weights under WORKBENCH_HOME/eels/checkpoints (export, resume)",
        advanced=True,
    )
    seed: int = param(0, "seed for initialisation, tiles and latent samples")
    device: str = param("auto", "auto, cpu or cuda")


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


@dataclass
class Cube:
    counts: np.ndarray  # (ny, nx, Cpad) float32 counts (padded channels reflect-filled)
    x: np.ndarray  # (ny, nx, Cpad) network input
    valid: np.ndarray  # (Cpad,) bool
    energy: np.ndarray  # (c,) eV of the valid channels
    ny: int
    nx: int


def make_cube(
    data: np.ndarray,
    energy: np.ndarray,
    lo: float,
    hi: float,
    patch: int,
    scale: float | None = None,
) -> Cube:
    sl = C.window(np.asarray(energy, np.float64), lo, hi, what="network input window")
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
    a = C.anscombe(Y)
    s = float(np.median(a[..., valid])) if scale is None else scale
    return Cube(
        Y, (a / max(s, 1e-6)).astype(np.float32), valid, np.asarray(energy, np.float64)[sl], ny, nx
    )


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


# ------------------------------------------------------------------------------------------
# training and inference
# ------------------------------------------------------------------------------------------


def _augment(a: np.ndarray, k: int, fy: bool, fx: bool) -> np.ndarray:
    a = np.rot90(a, k, axes=(0, 1))
    if fy:
        a = a[::-1]
    if fx:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


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
) -> dict[str, Any]:
    """Train ``model`` in place on random tiles of ``cubes``; returns history, status, epochs."""
    import torch

    from workbench.nets.eels_cvae import kl_normal, multinomial_nll, saturated_nll

    progress = ensure(progress)
    p = model.patch
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    model.to(device)
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
    for epoch in range(1, epochs + 1):
        model.train()
        bw = beta * (min(1.0, epoch / warmup) if warmup > 0 else 1.0)
        tot = nll_t = kl_t = 0.0
        for _ in range(steps):
            items = []
            for _b in range(batch):
                ci = int(rng.integers(len(cubes)))
                cube, sq = cubes[ci], vals[ci]
                ny, nx = cube.counts.shape[:2]
                for _try in range(100):
                    y0 = int(rng.integers(0, ny - p + 1))
                    x0 = int(rng.integers(0, nx - p + 1))
                    if not _overlaps(y0, x0, sq, p):
                        break
                k, fy, fx = int(rng.integers(4)), bool(rng.integers(2)), bool(rng.integers(2))
                items.append(
                    (
                        _augment(cube.x[y0 : y0 + p, x0 : x0 + p], k, fy, fx),
                        _augment(cube.counts[y0 : y0 + p, x0 : x0 + p], k, fy, fx),
                    )
                )
            xb, yb = batch_tensors(items)
            logits, mu, logvar = model(xb, generator=gen)
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
    e = C.window(energy, edge_lo, edge_hi, what="edge window")
    pear = C.pearson_score(counts[..., e].astype(np.float64), yhat[..., e])
    dev = C.poisson_deviance(counts[..., e], yhat[..., e])
    return yhat, pear, dev


def shift_scores(
    counts: np.ndarray, yhat: np.ndarray, energy: np.ndarray, edge_lo: float, edge_hi: float
):
    """GLR statistic for an energy shift of the reconstruction in the edge window, and the best
    shift (eV) per pixel; see :func:`workbench.solvers.eels.common.shift_glr`."""
    return C.shift_glr(counts, yhat, energy, edge_lo, edge_hi)


# ------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# solve
# ------------------------------------------------------------------------------------------


def solve(problem, params: Params, progress=None) -> Result:
    import torch

    from workbench.nets.eels_cvae import build

    progress = ensure(progress)
    t0 = time.perf_counter()
    device = resolve_device(params.device)
    energy = np.asarray(problem.energy, np.float64)
    cube = make_cube(problem.data, energy, params.window_lo, params.window_hi, params.patch)
    C.window(cube.energy, params.edge_lo, params.edge_hi, what="edge window")
    cp = cube.counts.shape[-1]
    disp = float(np.median(np.diff(cube.energy)))
    note = ""
    model = None
    init_from = "scratch"
    if params.init == "checkpoint":
        path = Path(params.checkpoint) if params.checkpoint else DEFAULT_CHECKPOINT
        if path.exists():
            m, meta = load_checkpoint(path)
            ok_grid = (
                m.channels == cp
                and abs(meta.get("dispersion", disp) - disp) < 0.02 * disp
                and m.patch == params.patch
            )
            if ok_grid:
                model, init_from = m, str(path.name)
            else:
                note = f"checkpoint grid ({m.channels} ch, {meta.get('dispersion')} eV/ch, P={m.patch}) does not match this window ({cp} ch, {disp:.3g} eV/ch); trained from scratch"
        else:
            note = "no bundled checkpoint found; trained from scratch"
    if model is None:
        model = build({"channels": cp, "patch": params.patch, "latent": params.latent}, params.seed)
    t_fit = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        out = fit(
            model,
            [cube],
            epochs=params.max_iter,
            lr=params.lr,
            beta=params.beta,
            batch=params.batch,
            steps_per_epoch=params.steps_per_epoch,
            warmup=params.warmup,
            patience=params.patience,
            seed=params.seed,
            device=device,
            progress=progress,
        )
    t_train = time.perf_counter() - t_fit
    t1 = time.perf_counter()
    pi, lat = infer(model, cube, device)
    counts = cube.counts[: cube.ny, : cube.nx][..., cube.valid]
    yhat, pear, dev = scores_from_pi(counts, pi, cube.energy, params.edge_lo, params.edge_hi)
    t_inf = time.perf_counter() - t1
    shift, dmap = shift_scores(counts, yhat, cube.energy, params.edge_lo, params.edge_hi)
    score = {"pearson": pear, "nll": dev, "shift": shift}[params.score]
    extras, metrics = C.finish(score, problem, params.threshold)
    extras.update(
        {
            "score_pearson": pear.astype(np.float32),
            "score_nll": dev.astype(np.float32),
            "score_shift": shift.astype(np.float32),
            "shift_estimate": dmap.astype(np.float32),
            "reconstruction": yhat.astype(np.float32),
            "recon_energy": cube.energy.astype(np.float32),
            "latent_means": lat.astype(np.float32),
            "latent_tiles": np.array(
                [
                    (y, x)
                    for y in tile_grid(cube.counts.shape[0], model.patch)
                    for x in tile_grid(cube.counts.shape[1], model.patch)
                ],
                dtype=np.int32,
            ),
            "init": init_from,
        }
    )
    if params.save and params.max_iter > 0 and out["epochs"] > 0:
        import os

        home = Path(os.environ.get("WORKBENCH_HOME", Path.home() / ".inverse-workbench"))
        tag = hashlib.sha256(f"{problem.id}-{params}".encode()).hexdigest()[:12]
        path = home / "eels" / "checkpoints" / f"cvae3d-{problem.id}-{tag}.pt"
        try:
            meta = {
                "dispersion": disp,
                "window": [params.window_lo, params.window_hi],
                "channels_valid": int(cube.valid.sum()),
                "seed": params.seed,
                "fine_tuned_on": problem.id,
                "init": init_from,
                "epochs": out["epochs"],
            }
            extras["checkpoint_sha256"] = save_checkpoint(path, model, meta)
            extras["checkpoint_path"] = str(path)
        except OSError as exc:
            note = (note + "; " if note else "") + f"could not save the checkpoint ({exc})"
    metrics.update({"train_s": t_train, "infer_s": t_inf, "epochs": float(out["epochs"])})
    if out["history"]["nll"]:
        metrics["final_nll_per_count"] = out["history"]["nll"][-1]
    status = out["status"] if params.max_iter > 0 else "converged"
    return Result(
        output=score.astype(np.float64),
        kind="score_map",
        status=status,
        iterations=out["epochs"],
        metrics=metrics,
        history=out["history"],
        extras=extras,
        meta={
            "seed": params.seed,
            "device": device,
            "wall_s": time.perf_counter() - t0,
            "versions": versions(),
            "init": init_from,
            "model": model.config(),
            "steps_per_epoch": out["steps_per_epoch"],
        },
        message=note,
    )


SPEC = SolverSpec(
    name="cvae3d",
    domain="eels",
    title="3D convolutional VAE",
    Params=Params,
    solve=solve,
    description=(
        "Small 3-D convolutional variational autoencoder over spatial tiles x energy, trained on the "
        "image itself (bulk assumption) with a multinomial NLL + beta KL, initialised from the bundled "
        "checkpoint. Pixels whose edge shape it cannot reconstruct score high: 1 - Pearson r (paper), "
        "Poisson deviance, or a likelihood-ratio test for an energy shift of the reconstruction, all in "
        "the Fe-L window."
    ),
    reference="S. Sultanov, J. P. Buban, R. F. Klie, arXiv:2412.16200 (2024); Small 21 (2025) e2503019",
    paper=True,
    train="workbench.train.eels_cvae:main",
    train_name="eels_cvae",
)
