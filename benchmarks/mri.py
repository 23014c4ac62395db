"""MRI benchmark (``workbench bench mri``): classical baselines, RecurrentVarNet and sigpy peers.

Setting (``specs/mri.md`` §13): 128², 8 birdcage coils, σ_rel 0.005; equispaced masks at 4× (cf
0.08) and 8× (cf 0.04); held-out MNI152 test slices and, separately, the out-of-distribution images
(dipy T1 slice, nibabel EPI mid slice). fastMRI convention against ``sense_noisy_full`` (CC
convention alongside). Maps: the best non-oracle choice per method picked on validation slices
(ACS-RSS or ESPIRiT; ESPIRiT needs more ACS lines than its kernel, so only ACS-RSS at 8×);
λ and iterations tuned on validation slices, never on the test slices. The sigpy peers get the
identical inputs (maps, mask, λ scaled to the data, iterations) as our CG-SENSE and L1-wavelet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings

import numpy as np


def _setup_threads():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)


def _problems(images, accel, cf, seeds, name, maps_kinds=("acs_rss",)):
    """One problem per slice and per map kind (same data and mask)."""
    from workbench.physics.mri.acquisition import simulate_problem
    from workbench.physics.mri.coils import estimate_maps

    out = []
    for i, img in enumerate(images):
        p = simulate_problem(
            img[None],
            name=f"{name}{i}",
            slice_seeds=[seeds[i]],
            mask="equispaced",
            acceleration=accel,
            center_fraction=cf,
            seed=seeds[i],
            maps="true",
        )
        d = {"true": p}
        for mk in maps_kinds:
            try:
                S = estimate_maps(p.kspace, p.mask, mk)
            except Exception:
                continue
            d[mk] = dataclasses.replace(p, maps=S, maps_source=mk)
        out.append(d)
    return out


def _run(mod, params, probs):
    from workbench.datasets.mri import evaluate

    ms, ts = [], []
    for p in probs:
        t = time.perf_counter()
        r = mod.solve(p, params)
        ts.append(time.perf_counter() - t)
        ms.append(evaluate(p, r))
    agg = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}
    agg["s_per_slice"] = float(np.median(ts))
    return agg


def _sigpy_run(kind, lam, iters, probs):
    """sigpy peers on identical inputs; λ for L1 scaled by s = max|A^H y| like ours."""
    import sigpy.mri.app as app

    from workbench.datasets.mri import evaluate
    from workbench.result import Result
    from workbench.solvers.mri.common import Setup

    ms, ts = [], []
    for p in probs:
        st = Setup(p, "cpu")
        y = p.kspace[0]
        mps = p.maps[0]
        w = np.broadcast_to(p.mask, y.shape[-2:]).astype(np.float32)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "sense":
                x = app.SenseRecon(
                    y, mps, lamda=lam, weights=w, max_iter=iters, show_pbar=False
                ).run()
            else:
                x = app.L1WaveletRecon(
                    y, mps, lamda=lam * st.scale, weights=w, max_iter=iters, show_pbar=False
                ).run()
        ts.append(time.perf_counter() - t)
        r = Result(output=np.abs(np.asarray(x))[None].astype(np.float32), kind="image")
        ms.append(evaluate(p, r))
    agg = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}
    agg["s_per_slice"] = float(np.median(ts))
    return agg


def _tune(mod, grid, val, key="psnr"):
    best, best_v = None, -np.inf
    for kw in grid:
        v = _run(mod, mod.Params(**kw), val)[key]
        if v > best_v:
            best, best_v = kw, v
    return best, best_v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench mri")
    ap.add_argument(
        "--quick", action="store_true", help="4 test slices, 2 validation slices, small grids"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--slices", type=int, default=None, help="number of test slices (default 20; quick 4)"
    )
    ap.add_argument("--no-sigpy", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    ap.add_argument(
        "--cache",
        default=None,
        help="JSON file caching the classical rows and tuning (RecurrentVarNet always reruns)",
    )
    a = ap.parse_args(argv)
    _setup_threads()

    from workbench.bench import markdown_table, write_section
    from workbench.datasets.mri import mni_slices, ood_dipy, ood_epi
    from workbench.solvers.mri import cg_sense, l1_wavelet, recurrentvarnet, tv, zero_filled

    try:
        import sigpy  # noqa: F401

        have_sigpy = not a.no_sigpy
    except ImportError:
        have_sigpy = False
    n_test = a.slices or (4 if a.quick else 20)
    n_val = 2 if a.quick else 4
    data = mni_slices(128)
    test_imgs = data["test"][np.linspace(0, len(data["test"]) - 1, n_test).astype(int)]
    val_imgs = data["val"][np.linspace(0, len(data["val"]) - 1, n_val).astype(int)]
    ood_imgs = [img for img in (_try(ood_dipy), _try(ood_epi)) if img is not None]
    t_start = time.time()
    rows, summary, misses = [], {}, []
    cache = {}
    if a.cache and os.path.exists(a.cache):
        with open(a.cache) as f:
            cache = json.load(f)

    cache_hits = []

    def cached(key, fn):
        if key in cache:
            cache_hits.append(key)
        else:
            cache[key] = fn()
            if a.cache:
                with open(a.cache, "w") as f:
                    json.dump(cache, f)
        return cache[key]

    for accel, cf in ((4, 0.08), (8, 0.04)):
        kinds = ("acs_rss", "espirit")
        val = _problems(val_imgs, accel, cf, [3000 + i for i in range(len(val_imgs))], "val", kinds)
        test = _problems(
            test_imgs, accel, cf, [1000 + i for i in range(len(test_imgs))], "test", kinds
        )
        ood = _problems(
            np.stack(ood_imgs), accel, cf, [5000 + i for i in range(len(ood_imgs))], "ood", kinds
        )
        avail = [k for k in kinds if all(k in d for d in val + test + ood)]
        # --- tune on validation (maps × λ × iterations) ---
        grids = {
            "cg_sense": [
                {"lam": lam, "max_iter": it} for lam in (0.0, 0.01, 0.05) for it in (5, 10, 20, 40)
            ]
            if not a.quick
            else [{"lam": 0.01, "max_iter": 10}, {"lam": 0.05, "max_iter": 10}],
            "l1_wavelet": [{"lam": lam, "max_iter": 100} for lam in (1e-4, 3e-4, 1e-3, 3e-3)]
            if not a.quick
            else [{"lam": 1e-3, "max_iter": 60}],
            "tv": [{"lam": lam, "max_iter": 150} for lam in (5e-4, 1e-3, 2e-3, 5e-3, 1e-2)]
            if not a.quick
            else [{"lam": 2e-3, "max_iter": 80}],
        }
        mods = {"cg_sense": cg_sense, "l1_wavelet": l1_wavelet, "tv": tv}
        chosen = {}
        for name, mod in mods.items():
            best = (None, None, -np.inf)
            for mk in avail:
                kw, v = cached(
                    f"tune|{accel}|{name}|{mk}|{len(val)}|{json.dumps(grids[name])}",
                    lambda mod=mod, g=grids[name], vp=[d[mk] for d in val]: _tune(mod, g, vp),
                )
                if v > best[2]:
                    best = (mk, kw, v)
            chosen[name] = best
        settings = {"held-out MNI": test, "OOD": ood}
        res = {}
        for sname, probs in settings.items():
            r = {}
            ck = f"{accel}|{sname}|{len(probs)}"
            r[("zero-filled RSS", "-", "")] = cached(
                f"{ck}|zf",
                lambda pp=[d["acs_rss"] for d in probs]: _run(
                    zero_filled, zero_filled.Params(), pp
                ),
            )
            for name, mod in mods.items():
                mk, kw, _ = chosen[name]
                label = {
                    "cg_sense": "CG-SENSE",
                    "l1_wavelet": "L1-wavelet (FISTA)",
                    "tv": "TV (PDHG)",
                }[name]
                r[(label, mk, json.dumps(kw))] = cached(
                    f"{ck}|{name}|{mk}|{json.dumps(kw)}",
                    lambda mod=mod, kw=kw, pp=[d[mk] for d in probs]: _run(
                        mod, mod.Params(**kw), pp
                    ),
                )
            r[("RecurrentVarNet", "acs_rss", f"rvn_{accel}x")] = _run(
                recurrentvarnet, recurrentvarnet.Params(), [d["acs_rss"] for d in probs]
            )
            mk, kw, _ = chosen["cg_sense"]
            r[("CG-SENSE oracle", "true", json.dumps(kw))] = cached(
                f"{ck}|oracle|{json.dumps(kw)}",
                lambda kw=kw, pp=[d["true"] for d in probs]: _run(
                    cg_sense, cg_sense.Params(**kw), pp
                ),
            )
            if have_sigpy:
                mk, kw, _ = chosen["cg_sense"]
                r[("sigpy SenseRecon (peer)", mk, json.dumps(kw))] = cached(
                    f"{ck}|sigpy_sense|{mk}|{json.dumps(kw)}",
                    lambda kw=kw, pp=[d[mk] for d in probs]: _sigpy_run(
                        "sense", kw["lam"], kw["max_iter"], pp
                    ),
                )
                mk, kw, _ = chosen["l1_wavelet"]
                r[("sigpy L1WaveletRecon (peer)", mk, json.dumps(kw))] = cached(
                    f"{ck}|sigpy_l1|{mk}|{json.dumps(kw)}",
                    lambda kw=kw, pp=[d[mk] for d in probs]: _sigpy_run(
                        "l1", kw["lam"], kw["max_iter"], pp
                    ),
                )
            res[sname] = r
            for (meth, mk, kw), m in r.items():
                rows.append(
                    {
                        "R": f"{accel}×",
                        "data": f"{sname} ({len(probs)})",
                        "method": meth,
                        "maps": mk,
                        "params": kw,
                        "PSNR": m["psnr"],
                        "SSIM": m["ssim"],
                        "NMSE": m["nmse"],
                        "CC-PSNR": m["cc_psnr"],
                        "CC-SSIM": m["cc_ssim"],
                        "s/slice": m["s_per_slice"],
                    }
                )
        # --- targets ---
        for sname in settings:
            r = res[sname]
            rvn = r[("RecurrentVarNet", "acs_rss", f"rvn_{accel}x")]
            classical = {
                k: v
                for k, v in r.items()
                if k[0] in ("CG-SENSE", "L1-wavelet (FISTA)", "TV (PDHG)")
            }
            bk, bv = max(classical.items(), key=lambda kv: kv[1]["psnr"])
            best_ssim = max(v["ssim"] for v in classical.values())
            summary[f"{accel}x {sname}"] = {
                "rvn_psnr": rvn["psnr"],
                "rvn_ssim": rvn["ssim"],
                "best_classical": bk[0],
                "best_classical_psnr": bv["psnr"],
                "best_classical_ssim": best_ssim,
            }
            need = 1.0 if sname == "held-out MNI" else 0.0
            ok = rvn["psnr"] >= bv["psnr"] + need and (
                rvn["ssim"] >= best_ssim or sname != "held-out MNI"
            )
            if not ok:
                misses.append(
                    f"{accel}× {sname}: RecurrentVarNet {rvn['psnr']:.2f} dB / {rvn['ssim']:.3f} vs best classical {bk[0]} {bv['psnr']:.2f} dB / SSIM {best_ssim:.3f} (target +{need:g} dB{' and higher SSIM' if need else ''})"
                )
            if rvn["s_per_slice"] > 0.5:
                misses.append(
                    f"{accel}× {sname}: RecurrentVarNet {rvn['s_per_slice']:.2f} s per slice (target < 0.5 s)"
                )
            if have_sigpy:
                for ours, peer in (
                    ("CG-SENSE", "sigpy SenseRecon (peer)"),
                    ("L1-wavelet (FISTA)", "sigpy L1WaveletRecon (peer)"),
                ):
                    o = next(v for k, v in r.items() if k[0] == ours)
                    pr = next(v for k, v in r.items() if k[0] == peer)
                    if abs(o["psnr"] - pr["psnr"]) > 0.2:
                        misses.append(
                            f"{accel}× {sname}: {ours} {o['psnr']:.2f} dB vs sigpy {pr['psnr']:.2f} dB (target within 0.2 dB)"
                        )
                    if o["s_per_slice"] > pr["s_per_slice"]:
                        misses.append(
                            f"{accel}× {sname}: {ours} {o['s_per_slice'] * 1e3:.0f} ms/slice vs sigpy {pr['s_per_slice'] * 1e3:.0f} ms (target: at least as fast)"
                        )
    # --- inverse-crime check: analytic phantom k-space (no discretised forward model), 4× ---
    from workbench.datasets.mri import DOMAIN

    ph_rows = []
    for mk in ("acs_rss", "espirit"):
        try:
            ph = DOMAIN.sample("phantom_analytic", maps=mk, acceleration=4, center_fraction=0.08)
        except Exception as exc:  # noqa: BLE001 - report, do not stop the benchmark
            misses.append(f"phantom with {mk} maps failed: {exc}")
            continue
        for label, mod, kw in (
            ("zero-filled RSS", zero_filled, {}),
            ("CG-SENSE", cg_sense, {"lam": 0.01, "max_iter": 10}),
            ("L1-wavelet (FISTA)", l1_wavelet, {"lam": 1e-3, "max_iter": 100}),
            ("TV (PDHG)", tv, {"lam": 2e-3, "max_iter": 150}),
            ("RecurrentVarNet", recurrentvarnet, {}),
        ):
            m = (
                _run(mod, mod.Params(**kw), [ph])
                if mod is recurrentvarnet
                else cached(
                    f"phantom|{mk}|{label}",
                    lambda mod=mod, kw=kw, ph=ph: _run(mod, mod.Params(**kw), [ph]),
                )
            )
            ph_rows.append(
                {
                    "maps": mk,
                    "method": label,
                    "PSNR": m["psnr"],
                    "SSIM": m["ssim"],
                    "NMSE": m["nmse"],
                    "s/slice": m["s_per_slice"],
                }
            )
    wall = time.time() - t_start
    cols = [
        "R",
        "data",
        "method",
        "maps",
        "params",
        "PSNR",
        "SSIM",
        "NMSE",
        "CC-PSNR",
        "CC-SSIM",
        "s/slice",
    ]
    md = (
        "128², 8 birdcage coils, σ_rel 0.005, equispaced masks (4×/cf 0.08, 8×/cf 0.04). PSNR/SSIM/NMSE: fastMRI convention "
        "(volume max) vs the noisy fully sampled SENSE reference; CC-PSNR/CC-SSIM: Calgary-Campinas convention (per-slice). "
        "Maps, λ and iterations of the classical methods were chosen on validation slices. RecurrentVarNet: the shipped "
        "small checkpoints (see workbench/weights/mri/*.json). Times are medians per slice on 1 thread of a shared 2-core CPU "
        f"(load from other jobs inflates them). Wall time {wall / 60:.1f} min."
        + (
            f" With --cache, the classical, oracle and peer rows are read from {a.cache} where "
            "an earlier run of this script stored them (delete it for a fresh single-process "
            "measurement); the RecurrentVarNet rows are always recomputed."
            if a.cache and cache_hits
            else ""
        )
        + "\n\n"
        + markdown_table(rows, cols, ".4g")
        + "\n\n**Inverse-crime check** (analytic Shepp-Logan k-space with analytic smooth coils, 128², 4× equispaced, "
        "reference = RSS of the fully sampled analytic data; no method sees the simulation's own forward model):\n\n"
        + markdown_table(ph_rows, ["maps", "method", "PSNR", "SSIM", "NMSE", "s/slice"], ".4g")
        + "\n\n**Target misses:**\n\n"
        + ("\n".join(f"- {m}" for m in misses) if misses else "- none")
        + "\n"
    )
    cmd = "workbench bench mri" + (" " + " ".join(argv) if argv else "")
    if not a.no_write:
        write_section("MRI", md, cmd)
    if a.json:
        print(
            json.dumps(
                {"rows": rows, "summary": summary, "misses": misses, "wall_s": wall}, default=float
            )
        )
    else:
        print(md)
    return 0


def _try(fn):
    try:
        return fn(128)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
