"""RecurrentVarNet inference with the shipped checkpoints (Yiasemis et al., CVPR 2022).

The network (:mod:`.rvn_net`) unrolls T recurrent k-space blocks
``k_{t+1} = k_t − α_t M ⊙ (k_t − y) + F(S · w_t)`` with a ConvGRU regulariser whose hidden state is
carried across blocks and initialised by a learned recurrent-state initialiser. The output image is
the RSS of the final coil k-space. Maps: recomputed from the data the way training computed them
(the manifest's ``maps``, ACS-RSS for every shipped model), whatever maps the problem carries for
the classical solvers. Input normalisation as in training, per slice: y / s with s = max|A^H y|
under those maps, output × s. Works on any image size (fully convolutional + FFT). A warning is
attached (``extras["warnings"]``, the message, and a ``UserWarning``) when the mask, the coil count
or the size falls outside the model's training family (the manifest's ``training_family``).
Checkpoints are loaded with ``weights_only=True``.
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
SHIPPED = ("rvn_corpus", "rvn_4x", "rvn_8x")


@dataclass(frozen=True)
class Params:
    checkpoint: str = param(
        "auto",
        "shipped model (auto: rvn_corpus, trained on the varied corpus for R 3-10; rvn_4x/rvn_8x: the first template-only models) or a path to a .pt with a .json manifest beside it",
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
        name = "rvn_corpus"
        if not os.path.exists(os.path.join(WEIGHTS_DIR, name + ".pt")):
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


def training_family(manifest: dict) -> dict:
    """The model's training family: the manifest's, or the first models' (one R, 8 coils)."""
    fam = manifest.get("training_family")
    if fam:
        return fam
    r = float(manifest.get("acceleration") or 4.0)
    return {"acceleration": [r, r], "masks": ["equispaced", "random"], "coils": [8, 8]}


def _effective(r: float) -> float:
    """Effective acceleration of a 1-D training mask at nominal R with centre fraction 0.32/R
    (clipped as the corpus does); the first models used 0.08 at 4× and 0.04 at 8×, the same."""
    cf = min(max(0.32 / r, 0.03), 0.12)
    return 1.0 / (1.0 / r + cf * (1.0 - 1.0 / r))


def family_warnings(mask: np.ndarray, n_coils: int, manifest: dict) -> list[str]:
    """Why the data fall outside the model's training family (empty when they do not).

    Checks that the mask is 1-D (whole phase-encode columns, as in training), that its effective
    acceleration lies within 10% of the training range's, that a calibration region exists for
    the ACS-RSS maps (≥ 3 lines), and that the coil count is within the training range.
    """
    fam = training_family(manifest)
    out = []
    m = np.asarray(mask).reshape(-1, *np.asarray(mask).shape[-2:]) > 0
    if not all((mi == mi[:1]).all() for mi in m):
        out.append(
            "the mask is not a set of whole phase-encode columns; the model was trained on 1-D "
            f"{'/'.join(fam.get('masks', ['equispaced', 'random']))} masks"
        )
    lo, hi = (float(v) for v in fam["acceleration"])
    eff = float(m.size / max(m.sum(), 1))
    elo, ehi = _effective(lo) / 1.1, _effective(hi) * 1.1
    if not elo <= eff <= ehi:
        out.append(
            f"effective acceleration {eff:.2f} is outside the training range "
            f"{elo:.2f}–{ehi:.2f} (nominal R {lo:g}–{hi:g})"
        )
    from workbench.physics.mri.coils import acs_region

    rs, cs = acs_region(m[0])
    n_acs = min(rs.stop - rs.start, cs.stop - cs.start)
    if n_acs < 3:
        out.append(
            f"the calibration region has {n_acs} fully sampled lines: the ACS-RSS maps the model "
            "was trained with cannot be estimated from these data"
        )
    clo, chi = (int(v) for v in fam.get("coils", [1, 10**6]))
    if not clo <= n_coils <= chi:
        out.append(f"{n_coils} coils, outside the training range {clo}–{chi}")
    return out


def solve(problem, params: Params | None = None, progress=None):
    import warnings

    from workbench.physics.mri.coils import acs_rss
    from workbench.physics.mri.fft import ifft2c

    params = params or Params()
    progress = ensure(progress)
    st = Setup(problem, params.device)
    path = checkpoint_path(params.checkpoint, problem.acceleration)
    progress.note(f"loading the checkpoint {os.path.basename(str(path))}")
    net, manifest = load_model(path, st.device)
    T = min(params.max_iter, net.num_steps)
    n = st.y.shape[0]
    mask4 = st.A.mask.expand(n, 1, *st.A.mask.shape[-2:]) if st.A.mask.shape[0] == 1 else st.A.mask
    # maps and scaling exactly as in training: ACS-RSS from the masked data, then per slice
    # y / s with s = max|Σ conj(S) F⁻¹ y| — not the problem's maps or Setup's global scale
    if manifest.get("maps", "acs_rss") != "acs_rss":
        raise InputError(f"unsupported training maps {manifest.get('maps')!r} in the manifest")
    maps = acs_rss(st.y_raw, mask4)
    s_i = (maps.conj() * ifft2c(st.y_raw)).sum(1).abs().flatten(1).amax(1).clamp_min(1e-30)
    s_i = s_i.view(-1, 1, 1, 1)
    y_n = st.y_raw / s_i
    warn = family_warnings(problem.mask, int(st.y.shape[1]), manifest)
    for w in warn:
        warnings.warn(f"RecurrentVarNet off its training family: {w}", UserWarning, stacklevel=2)
    hist = {"step": [], "psnr": [], "time": []}
    t0 = time.perf_counter()
    outs = [None] * T
    done = 0
    # run block by block over all slice batches so that progress is reported per block
    with torch.no_grad():
        ks, states = [], []
        batches = [(i, min(i + params.batch, n)) for i in range(0, n, params.batch)]
        for a, b in batches:
            y = y_n[a:b]
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
                ks[j], state = blk(ks[j], y_n[a:b], mask4[a:b], m, state)
                states[j] = (state, m)
            x = torch.cat([net.image(k) for k in ks], 0)
            mag = (x * s_i.view(-1, 1, 1)).cpu().numpy().astype(np.float32)
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
    kfin = torch.cat(ks, 0) * s_i
    # the network's own k-space residual, and its SENSE-combined image for the domain's common
    # residual ‖M(F S x) − y‖/‖y‖ under the maps it used
    res = float(cnorm(st.A.mask * kfin - st.y_raw))
    refined = torch.cat([s[1] for s in states], 0)
    x = (refined.conj() * ifft2c(kfin)).sum(1) / st.scale
    msg = ("Off the training family: " + "; ".join(warn) + ".") if warn else ""
    return st.result(
        out,
        status=status,
        iterations=done,
        history=hist,
        params=params,
        message=msg,
        extras={
            "checkpoint": os.path.basename(path),
            "trained_acceleration": manifest.get("acceleration"),
            "kspace_residual": res,
            "maps_used": "acs_rss recomputed from the data, as in training",
            "warnings": warn,
        },
        estimate=x,
        estimate_maps=refined,
    )


SPEC = SolverSpec(
    name="recurrentvarnet",
    domain="mri",
    title="RecurrentVarNet",
    Params=Params,
    solve=solve,
    description=(
        "Recurrent Variational Network: T unrolled k-space blocks with learned step sizes, a ConvGRU regulariser whose hidden state "
        "is carried across blocks, and a learned recurrent-state initialiser. The default model (rvn_corpus) is a small validation "
        "model trained on the varied simulated corpus (template slices and phantoms, R 3-10); rvn_4x/rvn_8x are the first, "
        "template-only models (see workbench/weights/mri/*.json). Known limit (BENCHMARKS.md, MRI): at 4x with a 10-line "
        "calibration region the tuned classical methods with ESPIRiT maps lead it on every set, by 2 dB on held-out corpus "
        "slices and 6-11 dB off its training distribution (Shepp-Logan, surface-coil phantoms, real scans); at 8x, where "
        "ESPIRiT cannot be calibrated, it leads on three of four sets."
    ),
    reference="Yiasemis, Sonke, Sánchez & Teuwen, CVPR 2022, arXiv:2111.09639",
    paper=True,
    train="workbench.train.mri_rvn:main",
)
