"""The CUDA path, proven: every torch solver and training step on CUDA against CPU, and GPU timings.

    python benchmarks/gpu.py [--quick] [--only DOMAIN/SOLVER ...] [--allow-cpu] [--json]
    benchmarks/gpu.sh           (the same, after the `gpu`-marked tests)

1. **Parity.** Every registered solver with a ``device`` parameter runs on a small bundled sample
   twice, ``device=cpu`` and ``device=cuda``, with the same seed and a short, fixed iteration
   budget (a long run of a chaotic optimiser would measure chaos, not the device); the outputs
   must agree in relative L2, ‖x_cuda − x_cpu‖ / ‖x_cpu‖, within the tolerance stated per solver
   in ``PARITY`` (float64 solvers tighter than float32 networks). Then the training steps: a tiny
   ``workbench train cvae3d`` and ``workbench train recurrentvarnet`` on each device, parameters
   compared the same way (the CVAE's output bias, which the softmax over channels ignores, aside).
2. **Timings** (CUDA against CPU, one thread): MRI seconds per slice at 320² (15 coils, R = 4)
   for every MRI solver, EELS 3D-CVAE training steps per second, PINN optimiser steps per second,
   and diffusion sampling, for which the registry has no solver (the row says so).

Writes the "GPU" section of BENCHMARKS.md. Without CUDA it prints why and exits 0 (a CPU-only
machine skips, it does not fail); ``--allow-cpu`` runs the whole harness with CPU standing in
for CUDA (every parity is then exact) and writes nothing, which is how the script is tested.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: (sample, parameter overrides, relative-L2 tolerance) per solver.
PARITY: dict[str, tuple[str, dict, float]] = {
    "ot/sinkhorn": ("random_200", {"reg": "0.01", "max_iter": "2000"}, 1e-6),
    "ot/sinkhorn_newton": ("random_200", {"reg": "0.01"}, 1e-6),
    "mri/zero_filled": ("mni_slice", {}, 1e-5),
    "mri/sense_adj": ("mni_slice", {}, 1e-5),
    "mri/cg_sense": ("mni_slice", {"max_iter": "10"}, 1e-4),
    "mri/l1_wavelet": ("mni_slice", {"max_iter": "20"}, 1e-4),
    "mri/tv": ("mni_slice", {"max_iter": "20"}, 1e-4),
    "mri/recurrentvarnet": ("mni_slice", {}, 1e-3),
    # noise drawn on the CPU (same numbers on every device); float32 U-Net over 10 steps
    "mri/dds": ("mni_slice", {"nfe": "10", "n_samples": "2"}, 1e-2),
    "mri/dps": ("mni_slice", {"nfe": "10", "n_samples": "2"}, 1e-2),
    "eels/cvae3d": ("small_2eV_5pct", {"max_iter": "2", "save": "false"}, 1e-2),
    "pde/gp_hm": ("poisson1d_sin10", {"max_iter": "50"}, 1e-4),
    "pde/gp_se": ("poisson1d_sin10", {"max_iter": "50"}, 1e-4),
    "pde/gp_matern": ("poisson1d_sin10", {"max_iter": "50"}, 1e-4),
    "pde/pinn": ("poisson1d_sin10", {"max_iter": "50"}, 1e-3),
    "pde/pinn_fourier": ("poisson1d_sin10", {"max_iter": "50"}, 1e-3),
    # the samplers draw collocation points from seeded generators on the CPU, so the points
    # agree; the tolerance is the PINN's (never yet run on CUDA)
    "pde/pinn_uniform": ("poisson1d_sin10", {"max_iter": "50"}, 1e-3),
    "pde/pinn_rar": ("poisson1d_sin10", {"max_iter": "50"}, 1e-3),
    "pde/pinn_rad": ("poisson1d_sin10", {"max_iter": "50"}, 1e-3),
    "pde/pinn_aas": ("poisson1d_sin10", {"max_iter": "50"}, 1e-3),
}
TRAIN_TOL = {"cvae3d": 1e-3, "recurrentvarnet": 1e-3}


def rel_l2(a, b) -> float:
    a = np.asarray(a, dtype=np.complex128 if np.iscomplexobj(a) else np.float64)
    b = np.asarray(b, dtype=a.dtype)
    if a.shape != b.shape:
        return float("inf")
    den = float(np.linalg.norm(a.ravel()))
    return float(np.linalg.norm((a - b).ravel())) / (den if den > 0 else 1.0)


def device_solvers() -> list[str]:
    """``domain/name`` of every registered solver whose ``device`` parameter can say cuda."""
    from workbench import registry

    out = []
    for s in registry.solvers():
        dev = [p for p in s.schema() if p["name"] == "device"]
        if dev and (not dev[0]["choices"] or "cuda" in dev[0]["choices"]):
            out.append(f"{s.domain}/{s.name}")
    return out


def _solve(key: str, device: str, home: Path):
    from workbench import registry
    from workbench.jobs import execute

    os.environ["WORKBENCH_HOME"] = str(home)
    domain, name = key.split("/")
    sample, over, _ = PARITY[key]
    spec = registry.get_solver(domain, name)
    problem = registry.get_domain(domain).sample(sample)
    params = spec.params({**over, "device": device, "seed": "0"})
    t0 = time.perf_counter()
    result, _ = execute(spec, problem, params)
    return result, time.perf_counter() - t0


def parity(keys: list[str], dev_b: str, home: Path) -> list[dict]:
    rows = []
    for key in keys:
        if key not in PARITY:
            rows.append({"what": key, "ok": False, "note": "no parity case: add it to PARITY"})
            continue
        tol = PARITY[key][2]
        ra, ta = _solve(key, "cpu", home)
        rb, tb = _solve(key, dev_b, home)
        err = rel_l2(ra.output, rb.output)
        ok = ra.status != "failed" and rb.status != "failed" and err <= tol
        rows.append(
            {
                "what": key,
                "sample": PARITY[key][0],
                "rel_l2": err,
                "tol": tol,
                "ok": ok,
                "cpu_s": ta,
                f"{dev_b}_s": tb,
                "note": "; ".join(m for m in (ra.message, rb.message) if m)[:120],
            }
        )
        print(json.dumps(rows[-1], default=str), file=sys.stderr, flush=True)
    return rows


def _state(path: Path) -> dict:
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=True)
    sd = ck["state_dict"] if "state_dict" in ck else ck
    return {k: v.double().numpy() for k, v in sd.items()}


def _state_gap(a: dict, b: dict, skip=()) -> float:
    return max(
        float(np.abs(a[k] - b[k]).max()) / (float(np.abs(a[k]).max()) or 1.0)
        for k in a
        if k not in skip
    )


def training_parity(dev_b: str, tmp: Path) -> list[dict]:
    """A tiny run of each ``workbench train`` command on CPU and on ``dev_b``."""
    from workbench.train import eels_cvae, mri_rvn

    rows = []
    eels = ["--epochs", "2", "--steps-per-epoch", "2", "--batch", "4", "--cubes", "2"]
    eels += ["--size", "48", "--latent", "4", "--seed", "1"]
    mri = ["--size", "64", "--crop-h", "32", "--batch", "2", "--steps", "3", "--val-every"]
    mri += ["1000", "--minutes", "1000", "--num-steps", "2", "--hidden", "4", "--layers", "1"]
    mri += ["--init-channels", "4,4,4,4"]
    for what, run, args, ckpt, skip in (
        ("train cvae3d", eels_cvae.main, eels, "{d}/cvae.pt", ("dec.9.bias",)),
        ("train recurrentvarnet", mri_rvn.main, mri, "{d}/rvn.pt", ()),
    ):
        paths = {}
        t = {}
        for i, dev in enumerate(("cpu", dev_b)):
            d = tmp / f"{what.split()[1]}-{i}-{dev.replace(':', '')}"
            d.mkdir(parents=True, exist_ok=True)
            out = ["--out", str(d / "cvae.pt")] if "cvae" in what else ["--out", str(d)]
            if "recurrentvarnet" in what:
                out += ["--name", "rvn"]
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the trainers' logs; stdout is --json
                run([*args, *out, "--device", dev])
            t[dev] = time.perf_counter() - t0
            paths[i] = Path(ckpt.format(d=d))
        gap = _state_gap(_state(paths[0]), _state(paths[1]), skip)
        tol = TRAIN_TOL[what.split()[1]]
        rows.append(
            {
                "what": what,
                "rel_l2": gap,
                "tol": tol,
                "ok": gap <= tol,
                "cpu_s": t["cpu"],
                f"{dev_b}_s": t[dev_b],
                "note": "max over tensors of max|Δθ| / max|θ|"
                + (" (output bias aside)" if skip else ""),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _sync(dev: str) -> None:
    if dev.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def mri_320(quick: bool):
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    from workbench.physics.mri.acquisition import simulate_problem

    n = 96 if quick else 320
    img = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)[None]
    return simulate_problem(
        img, name=f"phantom_{n}", slice_seeds=[0], n_coils=15, mask="equispaced",
        acceleration=4, center_fraction=0.08, seed=0, maps="acs_rss",
    )  # fmt: skip


def timings(dev_b: str, quick: bool, home: Path) -> list[dict]:
    """Seconds per MRI slice at 320², CVAE training steps/s, PINN steps/s, on CPU and dev_b."""
    import torch

    from workbench import registry
    from workbench.jobs import execute

    os.environ["WORKBENCH_HOME"] = str(home)
    torch.set_num_threads(1)
    rows = []
    prob = mri_320(quick)
    for s in registry.solvers("mri"):
        row = {"what": f"MRI {s.name}, {prob.kspace.shape[-1]}², 15 coils, R 4", "unit": "s/slice"}
        for dev in ("cpu", dev_b):
            params = s.params({"device": dev})
            execute(s, prob, params)  # warm-up: kernels, cuFFT plans, checkpoint load
            _sync(dev)
            t0 = time.perf_counter()
            execute(s, prob, params)
            _sync(dev)
            row[dev] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    from workbench.nets import eels_cvae_fit as F
    from workbench.nets.eels_cvae import build
    from workbench.physics.eels.synth import generate

    g = generate(ny=32 if quick else 64, nx=32 if quick else 64, fraction=0.0, seed=5)
    cube = F.make_cube(g["data"], g["energy"], 680.0, 740.0, 16)
    steps = 4 if quick else 32
    c = cube.counts.shape[-1]
    row = {"what": f"EELS 3D-CVAE training, batch 8, 16² x {c} tiles", "unit": "steps/s"}
    for dev in ("cpu", dev_b):
        model = build({"channels": cube.counts.shape[-1], "patch": 16, "latent": 16}, 0)
        F.fit(model, [cube], epochs=1, batch=8, steps_per_epoch=2, device=dev)  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        F.fit(model, [cube], epochs=1, batch=8, steps_per_epoch=steps, device=dev)
        _sync(dev)
        row[dev] = steps / (time.perf_counter() - t0)
    rows.append(row)
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    pde_name = "poisson1d_sin100" if quick else "poisson2d_sin6cos20"
    pde = registry.get_domain("pde").sample(pde_name)
    for name in ("pinn", "pinn_fourier"):
        s = registry.get_solver("pde", name)
        row = {"what": f"PDE {name} Adam steps, {pde_name}", "unit": "steps/s"}
        for dev in ("cpu", dev_b):
            # a CPU step on the 2-D grid takes seconds: fewer of them measure its rate as well
            n_it = 3 if quick else (10 if dev == "cpu" else 300)
            execute(s, pde, s.params({"device": dev, "max_iter": "2"}))
            t0 = time.perf_counter()
            r, _ = execute(s, pde, s.params({"device": dev, "max_iter": str(n_it)}))
            _sync(dev)
            row[dev] = r.iterations / (time.perf_counter() - t0)
        rows.append(row)
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    rows.append(
        {"what": "diffusion sampling", "unit": "-", "note": "no diffusion solver in the registry"}
    )
    for r in rows:
        if "cpu" in r and dev_b in r and dev_b != "cpu":
            fast = r[dev_b] / r["cpu"] if r["unit"] == "steps/s" else r["cpu"] / r[dev_b]
            r["speed-up"] = fast
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/gpu.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller timing problems, no write")
    ap.add_argument("--only", nargs="*", help="parity for these domain/solver keys only")
    ap.add_argument("--no-train", action="store_true", help="skip the training-step parity")
    ap.add_argument("--no-timings", action="store_true")
    ap.add_argument("--allow-cpu", action="store_true", help="without CUDA, compare CPU to CPU")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import torch

    if torch.cuda.is_available():
        dev_b = "cuda"
        name = torch.cuda.get_device_name(0)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif a.allow_cpu:
        dev_b, name = "cpu", "none (CPU stands in for CUDA: harness check only)"
    else:
        msg = f"no CUDA device (torch {torch.__version__}): GPU benchmark skipped"
        print(json.dumps({"skipped": msg}) if a.json else msg)
        return 0
    keys = a.only or device_solvers()
    with tempfile.TemporaryDirectory(prefix="wb-gpu-") as tmp:
        tmp = Path(tmp)
        rows = parity(keys, dev_b, tmp / "home")
        if not a.no_train:
            rows += training_parity(dev_b, tmp / "train")
        times = [] if a.no_timings else timings(dev_b, a.quick, tmp / "home")
    out = {
        "device": name,
        "compared": dev_b,
        "parity": rows,
        "timings": times,
        "all_ok": all(r["ok"] for r in rows),
    }
    if a.json:
        print(json.dumps(out, default=str))
    if dev_b != "cpu" and not a.quick and not a.only:
        from workbench.bench import markdown_table, write_section

        md = (
            f"Device: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; TF32 off; "
            "CPU side one thread.\n\n### Parity: the same seed on CPU and CUDA\n\n"
            + markdown_table(rows, ["what", "sample", "rel_l2", "tol", "ok", "cpu_s", "cuda_s"])
            + "\n\n### Timings\n\n"
            + markdown_table(times, ["what", "unit", "cpu", "cuda", "speed-up", "note"])
            + "\n"
        )
        cmd = "benchmarks/gpu.sh " + " ".join(argv if argv is not None else sys.argv[1:])
        write_section("GPU", md, cmd.strip())
    return 0 if out["all_ok"] else 1


if __name__ == "__main__":
    # `python benchmarks/gpu.py` puts benchmarks/ first on sys.path, where ot.py would shadow POT
    sys.path[0] = str(ROOT)
    raise SystemExit(main())
