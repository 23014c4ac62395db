"""RecurrentVarNet inference with the shipped checkpoints (Yiasemis et al., CVPR 2022).

The network (:mod:`.rvn_net`) unrolls T recurrent k-space blocks
``k_{t+1} = k_t − α_t M ⊙ (k_t − y) + F(S · w_t)`` with a ConvGRU regulariser whose hidden state is
carried across blocks and initialised by a learned recurrent-state initialiser. The output image is
the RSS of the final coil k-space. Maps: the problem's maps (ACS-RSS, the networks' training maps,
by default). Input normalisation as in training: y / s with s = max|A^H y|, output × s. Works on
any image size (fully convolutional + FFT). Checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from workbench.errors import InputError
from workbench.physics.mri.operators import cnorm
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.mri.common import Setup

WEIGHTS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "weights", "mri"
)
SHIPPED = ("rvn_4x", "rvn_8x")


@dataclass(frozen=True)
class Params:
    checkpoint: str = param(
        "auto",
        "shipped model (auto picks by acceleration: rvn_4x or rvn_8x) or a path to a .pt with a .json manifest beside it",
        files="workbench.solvers.mri.recurrentvarnet:checkpoint_options",
    )
    max_iter: int = param(
        50, "number of recurrent blocks to run (capped at the model's T)", min=1, max=50
    )
    batch: int = param(4, "slices per forward pass", min=1, max=64, advanced=True)
    device: str = param("auto", "compute device (auto, cpu, cuda)", advanced=True)
    seed: int = param(0, "unused (deterministic)", advanced=True)


def checkpoint_options() -> list[str]:
    """auto, the shipped models, and .pt files under WORKBENCH_HOME/mri/checkpoints."""
    from workbench.store import default_home

    own = sorted((default_home() / "mri" / "checkpoints").glob("*.pt"))
    return ["auto", *SHIPPED, *(str(p) for p in own)]


def checkpoint_path(name: str, acceleration: float) -> str:
    if name == "auto":
        name = "rvn_4x" if acceleration <= 6.0 else "rvn_8x"
    if name in SHIPPED:
        return os.path.join(WEIGHTS_DIR, name + ".pt")
    return name


@lru_cache(maxsize=4)
def load_model(path: str, device: str = "cpu"):
    """Build the network from ``<path>.json``'s config and load ``path`` with ``weights_only=True``."""
    from workbench.nets.mri_rvn import RecurrentVarNet

    man_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(path):
        raise InputError(
            f"RecurrentVarNet checkpoint not found: {path} (train one with `workbench train recurrentvarnet`)"
        )
    if not os.path.exists(man_path):
        raise InputError(
            f"no manifest beside the checkpoint: {man_path} (it holds the network config)"
        )
    with open(man_path) as f:
        manifest = json.load(f)
    cfg = dict(manifest["config"])
    for k in ("initializer_channels", "initializer_dilations"):
        if k in cfg:
            cfg[k] = tuple(cfg[k])
    net = RecurrentVarNet(**cfg)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(
            f"checkpoint does not match its config: {str(e).splitlines()[0]}"
        ) from None
    net.eval().to(device)
    return net, manifest


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()
    progress = ensure(progress)
    st = Setup(problem, params.device)
    path = checkpoint_path(params.checkpoint, problem.acceleration)
    progress.note(f"loading the checkpoint {os.path.basename(str(path))}")
    net, manifest = load_model(path, st.device)
    T = min(params.max_iter, net.num_steps)
    n = st.y.shape[0]
    mask4 = st.A.mask.expand(n, 1, *st.A.mask.shape[-2:]) if st.A.mask.shape[0] == 1 else st.A.mask
    maps = st.A.maps.expand(n, *st.A.maps.shape[1:]) if st.A.maps.shape[0] == 1 else st.A.maps
    hist = {"step": [], "psnr": [], "time": []}
    t0 = time.perf_counter()
    outs = [None] * T
    done = 0
    # run block by block over all slice batches so that progress is reported per block
    with torch.no_grad():
        ks, states = [], []
        batches = [(i, min(i + params.batch, n)) for i in range(0, n, params.batch)]
        for a, b in batches:
            y = st.y[a:b]
            m = net.refine_maps(maps[a:b])
            state = None
            if net.initializer is not None:
                from workbench.nets.mri_rvn import c2r
                from workbench.physics.mri.fft import fft2c, ifft2c

                img = (
                    (m.conj() * ifft2c(y)).sum(1)
                    if net.initializer_initialization == "sense"
                    else ifft2c(y).sum(1)
                )
                state = net.initializer(c2r(fft2c(img)))
            ks.append(y.clone())
            states.append((state, m))
        for t in range(T):
            blk = net.block_list[t if net.no_parameter_sharing else 0]
            for j, (a, b) in enumerate(batches):
                state, m = states[j]
                ks[j], state = blk(ks[j], st.y[a:b], mask4[a:b], m, state)
                states[j] = (state, m)
            x = torch.cat([net.image(k) for k in ks], 0)
            mag = (x * st.scale).cpu().numpy().astype(np.float32)
            from workbench.physics.mri.metrics import center_crop

            mag = np.ascontiguousarray(center_crop(mag, problem.recon_size))
            outs[t] = mag
            p = st.psnr(mag)
            hist["step"].append(t + 1)
            hist["psnr"].append(float("nan") if p is None else p)
            hist["time"].append(time.perf_counter() - t0)
            done = t + 1
            progress(t + 1, T, **({} if p is None else {"psnr": p}))
            if progress.cancelled:
                break
    status = "cancelled" if done < T else ("max_iter" if T < net.num_steps else "converged")
    out = outs[done - 1]
    kfin = torch.cat(ks, 0)
    res = float(cnorm(st.A.mask * kfin - st.y)) * st.scale
    return st.result(
        out,
        status=status,
        iterations=done,
        history=hist,
        params=params,
        extras={
            "checkpoint": os.path.basename(path),
            "trained_acceleration": manifest.get("acceleration"),
            "data_residual": res,
        },
    )


SPEC = SolverSpec(
    name="recurrentvarnet",
    domain="mri",
    title="RecurrentVarNet",
    Params=Params,
    solve=solve,
    description=(
        "Recurrent Variational Network: T unrolled k-space blocks with learned step sizes, a ConvGRU regulariser whose hidden state "
        "is carried across blocks, and a learned recurrent-state initialiser. The shipped models are small validation models trained "
        "on the simulated MNI152 template at 4× and 8× (see workbench/weights/mri/*.json)."
    ),
    reference="Yiasemis, Sonke, Sánchez & Teuwen, CVPR 2022, arXiv:2111.09639",
    paper=True,
    train="workbench.train.mri_rvn:main",
)
