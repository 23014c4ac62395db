"""Why RecurrentVarNet trails TV on the analytic Shepp–Logan set (``workbench bench mri_diagnose``).

``workbench bench mri`` measures ``rvn_corpus.pt`` 8 dB below the best tuned classical method (TV)
at 4× on the analytic Shepp–Logan set, while it leads on the held-out corpus, on random phantoms
with surface coils and (narrowly) on real scans. This script separates the two possible causes:

* a **data or protocol mismatch** between what the solver feeds the network and what training fed
  it (input scaling, coil maps, analytic versus discretised k-space, reference kind, mask family,
  image phase), which would be a bug to fix in the solver; or
* a **generalisation limit** of the network on this image content.

Each row changes one thing and reports RecurrentVarNet against TV (the solvers' tuned defaults)
on the same problems: mean PSNR (fastMRI convention), the paired difference with its bootstrap
95% interval (``workbench.bench.paired_bootstrap``) and the data residual ‖M(F S x) − y‖/‖y‖
with the noise floor √(#samples)·σ/‖y‖. Nothing here chooses a setting: the Shepp–Logan
instances are used for diagnosis only, the network and the TV defaults are the shipped ones, and
the mask-offset part runs on the corpus ``val`` split.

Parts:

1. **Protocol** on the benchmark's own Shepp–Logan problems (analytic k-space, 8 analytic coils,
   σ_rel 0.005, equispaced 4×/cf 0.08): the shipped path (ACS-RSS maps recomputed from the data,
   y/s with s = max|A^H y|, as in training); the input scaled by c ≠ 1 (is s the right scale?);
   the network fed the classical methods' ESPIRiT maps instead of its ACS-RSS maps; TV given the
   network's ACS-RSS maps; aperiodic (R = 4.3, as training draws R) and random masks.
2. **Generation**: the same phantom simulated the way the training corpus is simulated
   (discretised image with 0.5-px partial-volume blur, normalised birdcage coils, FFT forward
   model, SENSE reference), with and without a smooth image phase.
3. **Content**, simulated the corpus way: the corpus's own phantom families (``val`` seeds)
   against Shepp–Logan and two ablations of it (without its bright shell; the shell alone).
4. **Mask offset** (corpus ``val`` split, equispaced 4×): the four offsets of the periodic
   sampling comb, RecurrentVarNet against CG-SENSE.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _bench_mri():
    spec = importlib.util.spec_from_file_location("_bench_mri", HERE / "mri.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rvn_rows(probs, scale: float = 1.0, maps: str = "own"):
    """RecurrentVarNet on ``probs`` through the solver (``scale == 1``, own maps) or through the
    network directly with the input scale multiplied by ``scale`` or the problem's maps."""
    import torch

    from workbench.datasets.mri import evaluate
    from workbench.physics.mri.coils import acs_rss
    from workbench.physics.mri.fft import ifft2c
    from workbench.physics.mri.metrics import data_consistency, psnr
    from workbench.solvers.mri import recurrentvarnet as R

    rows = []
    if scale == 1.0 and maps == "own":
        for p in probs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = evaluate(p, R.solve(p, R.Params()))
            rows.append(m)
        return rows
    net, _ = R.load_model(R.checkpoint_path("auto", 4.0), "cpu")
    for p in probs:
        y = torch.from_numpy(p.kspace) * torch.from_numpy(p.mask)
        mask = torch.from_numpy(p.mask).float().expand(y.shape[0], 1, *p.mask.shape[-2:])
        S = acs_rss(y, mask) if maps == "own" else torch.from_numpy(p.maps)
        s = (S.conj() * ifft2c(y)).sum(1).abs().amax().item() * scale
        with torch.no_grad():
            k = net(y / s, mask, S) * s
        out = net.image(k).numpy()
        x = (S.conj() * ifft2c(k)).sum(1).numpy()
        d = data_consistency(p.kspace, p.mask, S.numpy(), x, p.noise_sigma)
        rows.append({"psnr": psnr(p.reference, out), **d})
    return rows


def _classical_rows(mod, probs, maps=None):
    from workbench.datasets.mri import evaluate

    rows = []
    for p in probs:
        if maps is not None:
            p = _with_maps(p, maps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows.append(evaluate(p, mod.solve(p, mod.Params())))
    return rows


def _with_maps(p, kind):
    import dataclasses

    from workbench.physics.mri.coils import estimate_maps

    S = estimate_maps(p.kspace, p.mask, kind)
    return dataclasses.replace(p, maps=np.ascontiguousarray(S, np.complex64), maps_source=kind)


def _shepp_logan_image(size: int, shell: str = "full") -> np.ndarray:
    """The discretised phantom with the corpus's 0.5-px partial-volume blur; ``shell``: ``full``
    (as is), ``none`` (the bright outer shell set to the interior's 0.2) or ``only``."""
    from scipy import ndimage

    import workbench.datasets.mri as dm

    ell = dm.ELLIPSES
    outer, inner = ell[0], ell[1]
    if shell == "none":
        ell = ((0.2, *outer[1:]), *ell[2:])
    elif shell == "only":
        ell = (outer, (-outer[0], *inner[1:]))
    c = (np.arange(size) - size // 2) * (2.0 / size)
    y, x = np.meshgrid(-c, c, indexing="ij")
    img = np.zeros((size, size))
    for rho, a, b, x0, y0, th in ell:
        t = np.deg2rad(th)
        xr = (x - x0) * np.cos(t) + (y - y0) * np.sin(t)
        yr = -(x - x0) * np.sin(t) + (y - y0) * np.cos(t)
        img += rho * (((xr / a) ** 2 + (yr / b) ** 2) <= 1)
    img = ndimage.gaussian_filter(np.clip(img, 0, None), 0.5)
    return (img / img.max()).astype(np.float32)


def _corpus_way(images, n: int, size: int, phase: bool = False, seed0: int = 7000):
    """Simulate magnitude images as the corpus does: normalised birdcage coils (8), FFT forward
    model, σ_rel 0.005, SENSE reference of the noisy full data; equispaced 4×/cf 0.08 masks with
    the Shepp–Logan set's seeds; ``phase`` adds the corpus's smooth random image phase."""
    from workbench.physics.mri.acquisition import build_problem, sense_combine, simulate_kspace
    from workbench.physics.mri.coils import birdcage

    S = birdcage(8, size, size)
    out = []
    for i in range(n):
        img = images[i % len(images)]
        rng = np.random.default_rng([seed0, i, 1])
        k, _, sigma = simulate_kspace(img, S, 0.005, rng, phase=phase)
        ref = np.abs(sense_combine(k, S))[None].astype(np.float32)
        out.append(
            build_problem(
                k[None],
                name=f"corpus_way_{i}",
                mask="equispaced",
                acceleration=4.0,
                center_fraction=0.08,
                seed=seed0 + i,
                maps="auto",
                true_maps=S[None],
                reference=ref,
                reference_kind="sense_noisy_full",
                noise_sigma=sigma,
            )
        )
    return out


def _phantoms(family: str, n: int, size: int) -> list[np.ndarray]:
    """The first ``n`` phantoms of ``family`` drawn from the corpus ``val`` split's seeds."""
    from workbench.datasets import mri_corpus as mc

    out, i = [], 0
    while len(out) < n:
        img, meta = mc._phantom(mc._rng("val", 5 * 10**6 + i, 1), size)
        if meta["family"] == family:
            out.append((img / img.max()).astype(np.float32))
        i += 1
    return out


def _offset_problems(n: int, size: int, offset: int):
    """Corpus ``val`` examples re-sampled with a periodic equispaced 4× mask of the given offset."""
    import torch

    from workbench.datasets.mri_corpus import corpus_example
    from workbench.physics.mri.acquisition import build_problem, sense_combine
    from workbench.physics.mri.fft import fft2c
    from workbench.physics.mri.masks import make_mask

    seed = next(
        s
        for s in range(1000)
        if make_mask("equispaced", (size, size), 4.0, 0.08, s).info["offset"] == offset
    )
    out = []
    for i in range(n):
        e = corpus_example("val", i, size=size, accel=4.0)
        rng = np.random.default_rng([55, i])
        k = fft2c(torch.from_numpy(e["maps"] * e["image"][None])).numpy()
        k = k + (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)) * (
            e["sigma"] / math.sqrt(2)
        )
        k = k.astype(np.complex64)
        ref = np.abs(sense_combine(k, e["maps"]))[None].astype(np.float32)
        out.append(
            build_problem(
                k[None],
                name=f"val_{i}_offset{offset}",
                mask="equispaced",
                acceleration=4.0,
                center_fraction=0.08,
                seed=seed,
                maps="auto",
                reference=ref,
                reference_kind="sense_noisy_full",
                noise_sigma=e["sigma"],
            )
        )
    return out


def _row(part, case, rvn, other, other_name, n_fmt=".2f"):
    from workbench.bench import bootstrap_ci, fmt_ci, paired_bootstrap

    a = np.array([r["psnr"] for r in rvn], float)
    b = np.array([r["psnr"] for r in other], float)
    d = paired_bootstrap(a, b)
    return {
        "part": part,
        "case": case,
        "n": len(a),
        "RVN PSNR [95% CI]": fmt_ci(float(a.mean()), *bootstrap_ci(a)),
        "peer": other_name,
        "peer PSNR": float(b.mean()),
        "RVN − peer [95% CI]": fmt_ci(d["diff"], d["lo"], d["hi"]),
        "RVN residual": float(np.mean([r.get("data_residual", np.nan) for r in rvn])),
        "peer residual": float(np.mean([r.get("data_residual", np.nan) for r in other])),
        "noise floor": float(np.mean([r.get("data_residual_noise", np.nan) for r in rvn])),
        "_diff": d["diff"],
        "_ci": (d["lo"], d["hi"]),
        "_vals": [*a.tolist(), *b.tolist()],
    }


def _reading(rows) -> str:
    """The conclusion, with this run's numbers (rows in the order ``main`` builds them)."""
    d = [r["_diff"] for r in rows]
    rvn = [float(np.mean(r["_vals"][: r["n"]])) for r in rows]
    peer = [r["peer PSNR"] for r in rows]
    ratio = rows[0]["RVN residual"] / rows[0]["peer residual"]
    return (
        "**Reading.** *No protocol mismatch:* the solver's path is the training path "
        "(`tests/mri/test_rvn_protocol.py` checks it against the training code and checks "
        f"scale/phase equivariance); moving the input scale off training's s costs "
        f"{rvn[0] - rvn[1]:.1f} dB (×0.5) and {rvn[0] - rvn[2]:.1f} dB (×2); the ESPIRiT maps the "
        f"classical methods use cost the network {rvn[0] - rvn[3]:.1f} dB (it needs its own ACS-RSS "
        f"maps, which it gets); TV with the network's ACS-RSS maps still leads by {-d[4]:.1f} dB; "
        f"masks of the training family (aperiodic R 4.3, random) leave the gap at {d[5]:+.1f} / "
        f"{d[6]:+.1f} dB. *Not the analytic simulation:* the same phantom simulated the corpus's "
        f"way gives {d[7]:+.1f} dB ({d[8]:+.1f} with a smooth phase), "
        + (
            "no smaller a gap, so neither the continuous k-space, the unnormalised analytic coils "
            "nor the RSS reference causes it. "
            if max(d[7:9]) <= d[0] + 1.0
            else "a smaller gap: the analytic simulation accounts for part of it. "
        )
        + f"*Content:* RVN − TV is {min(d[9:12]):+.1f} to {max(d[9:12]):+.1f} dB on the corpus's own "
        f"phantom families, {d[12]:+.1f} dB on Shepp–Logan without its bright shell and "
        f"{d[13]:+.1f} dB on the shell alone. TV is near-ideal on images "
        f"made of a few large flat regions ({min(peer[7:9] + peer[12:14]):.1f}–"
        f"{max(peer[7:9] + peer[12:14]):.1f} dB here against {min(peer[9:12]):.1f}–"
        f"{max(peer[9:12]):.1f} dB on the corpus phantoms), while the network stays at "
        f"{min(rvn[7:9] + rvn[12:14]):.1f}–{max(rvn[7:9] + rvn[12:14]):.1f} dB and worst on the "
        "full phantom, whose shell aliases into ghost arcs over the flat interior that it leaves "
        f"in place; its data residual is {ratio:.1f}× TV's on the benchmark set (the page's "
        "off-distribution warning fires above 2× CG-SENSE's). "
        + (
            "No protocol change closes the gap and it persists under the corpus's own simulation: "
            "a generalisation limit of the small (38 k parameters, 5 blocks) model on this image "
            "class, not a bug; the 4× Shepp–Logan target stays missed. "
            if max(d[1:9]) < 0.5 and min(d[9:12]) > 0
            else "Some row above closes or reverses the gap: read it before calling this a limit. "
        )
        + "*Mask offset (validation):* the network's PSNR spans "
        f"{max(rvn[14:18]) - min(rvn[14:18]):.1f} dB over the four comb offsets and CG-SENSE's "
        f"{max(peer[14:18]) - min(peer[14:18]):.1f} dB; the paired differences' intervals "
        + (
            "all include 0, so no offset-specific weakness of the network is established."
            if all(r["_ci"][0] <= 0 <= r["_ci"][1] for r in rows[14:18])
            else "do not all include 0."
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench mri_diagnose")
    ap.add_argument("--quick", action="store_true", help="64², 2 cases per row; never writes")
    ap.add_argument("--check", action="store_true", help="correctness gate (finite, rows present)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)
    from workbench.bench import check, markdown_table, write_section
    from workbench.solvers.mri import cg_sense, tv

    B = _bench_mri()
    B.SIZE = size = 64 if a.quick else 128
    n = 2 if a.quick else 4
    t0 = time.time()
    rows = []

    # 1. protocol, on the benchmark's own Shepp-Logan problems
    sl = B.shepp_logan_set(n, 4.0, 0.08)
    tv_sl = _classical_rows(tv, sl)
    rvn_sl = _rvn_rows(sl)
    rows.append(
        _row(1, "shipped path (ACS-RSS maps recomputed, y/s as trained)", rvn_sl, tv_sl, "TV")
    )
    for c in (0.5, 2.0):
        rows.append(
            _row(1, f"network input scaled ×{c:g} (s → {c:g}·s)", _rvn_rows(sl, c), tv_sl, "TV")
        )
    rows.append(
        _row(
            1,
            "network fed the ESPIRiT maps (not as trained)",
            _rvn_rows(sl, maps="problem"),
            tv_sl,
            "TV",
        )
    )
    rows.append(
        _row(1, "TV given ACS-RSS maps", rvn_sl, _classical_rows(tv, sl, "acs_rss"), "TV (ACS-RSS)")
    )
    for mask, r in (("equispaced", 4.3), ("random", 4.0)):
        pp = B.shepp_logan_set(n, r, 0.08, mask=mask)
        rows.append(
            _row(
                1,
                f"{mask} mask, R {r:g} (training draws R in [3, 10])",
                _rvn_rows(pp),
                _classical_rows(tv, pp),
                "TV",
            )
        )
    # 2. generation: the same phantom simulated the corpus way
    img = [_shepp_logan_image(size)]
    for phase in (False, True):
        pp = _corpus_way(img, n, size, phase=phase)
        case = "discretised, blurred, normalised birdcage, SENSE reference" + (
            ", smooth phase" if phase else ""
        )
        rows.append(_row(2, case, _rvn_rows(pp), _classical_rows(tv, pp), "TV"))
    # 3. content, simulated the corpus way
    for fam in ("ellipses", "polygons", "textures"):
        pp = _corpus_way(_phantoms(fam, n, size), n, size)
        rows.append(
            _row(
                3,
                f"corpus phantoms: {fam} (val seeds)",
                _rvn_rows(pp),
                _classical_rows(tv, pp),
                "TV",
            )
        )
    for shell, case in (
        ("none", "Shepp–Logan without its bright shell"),
        ("only", "the shell alone"),
    ):
        pp = _corpus_way([_shepp_logan_image(size, shell)], n, size)
        rows.append(_row(3, case, _rvn_rows(pp), _classical_rows(tv, pp), "TV"))
    # 4. mask offset on validation data
    n_off = 2 if a.quick else 8
    for off in range(4):
        pp = _offset_problems(n_off, size, off)
        rows.append(
            _row(
                4,
                f"corpus val, equispaced 4×, comb offset {off}",
                _rvn_rows(pp),
                _classical_rows(cg_sense, pp),
                "CG-SENSE",
            )
        )
    wall = time.time() - t0

    if a.check:
        check(len(rows) == 18, f"expected 18 rows, got {len(rows)}")
        for r in rows:
            check(all(np.isfinite(r["_vals"])), f"non-finite PSNR in {r['case']}")
            check(np.isfinite(r["RVN residual"]), f"non-finite residual in {r['case']}")
    cols = [
        "part",
        "case",
        "n",
        "RVN PSNR [95% CI]",
        "peer",
        "peer PSNR",
        "RVN − peer [95% CI]",
        "RVN residual",
        "peer residual",
        "noise floor",
    ]
    table = markdown_table(
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], cols, ".4g"
    )
    md = (
        f"{size}², 4×. RecurrentVarNet = `rvn_corpus.pt` through the solver unless the row says "
        "otherwise; TV and CG-SENSE = the solvers' validation-tuned defaults with maps=auto (ESPIRiT "
        "at 4×). PSNR in the fastMRI convention against each set's noisy fully sampled reference; "
        "RVN − peer = paired mean difference with its bootstrap 95% interval; residual = "
        "‖M(F S x) − y‖/‖y‖ under the maps each method used; noise floor = √(#samples)·σ/‖y‖. "
        "Parts 1–3 reuse the Shepp–Logan benchmark's noise and mask seeds and are diagnosis only; "
        f"part 4 runs on the corpus `val` split. Wall time {wall / 60:.1f} min on one thread of a "
        "shared 2-core CPU.\n\n" + table + "\n"
    )
    md += "\n" + _reading(rows) + "\n"
    cmd = "workbench bench mri_diagnose" + (" " + " ".join(argv) if argv else "")
    if not a.quick and not a.no_write:
        write_section("MRI: Shepp–Logan diagnosis", md, cmd)
    if a.json:
        print(json.dumps({"rows": rows, "wall_s": wall}, default=float))
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
