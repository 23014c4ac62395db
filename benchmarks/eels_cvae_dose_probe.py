"""cvae3d against pca_recon at high dose and small shifts (validation cubes only): a probe of
where the 3D-CVAE's default per-image schedule (8 epochs fine-tuned from the bundled checkpoint)
fails, and whether training on the image from scratch for longer cures it.

    python benchmarks/eels_cvae_dose_probe.py DOSE,SHIFT[,NY] ... [--seeds 20001,20002]

Each cube is the benchmark's generator (``benchmarks/eels.py`` BASE, 64 px wide, NY rows
(default 64), the dose in multiples of its mid dose N_pk = 45, a chemical shift of SHIFT eV in
3 % of the pixels; seeds >= 20001, never the benchmark's test or validation seeds). Per cube:
pca_recon at its defaults, cvae3d at its defaults, cvae3d from scratch for 40 epochs; ROC AUC
and CPU seconds, one JSON line each. Found on a measured high-count line scan (section "EELS:
measured spectrum images"), where cvae3d did not respond to a planted 2 eV shift; nothing here
was chosen on that image. Log: benchmarks/results/eels_cvae_dose_probe.log.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.eels import BASE, MID
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import cvae3d, pca_recon

    torch.set_num_threads(1)
    seeds = [20001]
    if "--seeds" in argv:
        seeds = [int(x) for x in argv[argv.index("--seeds") + 1].split(",")]
        del argv[argv.index("--seeds") : argv.index("--seeds") + 2]
    runs = {
        "pca_recon": (pca_recon, {}),
        "cvae3d": (cvae3d, {"device": "cpu", "save": False}),
        "cvae3d scratch 40": (
            cvae3d,
            {"device": "cpu", "save": False, "init": "scratch", "max_iter": 40},
        ),
    }
    for spec in argv[1:]:
        parts = spec.split(",")
        dose, shift = float(parts[0]), float(parts[1])
        ny = int(parts[2]) if len(parts) > 2 else 64
        for seed in seeds:
            kw = dict(BASE, shift=shift, n_pk=MID * dose, seed=seed, ny=ny, nx=64)
            prob = synthetic(kw, name="probe")
            for label, (mod, p) in runs.items():
                t = time.process_time()
                r = mod.solve(prob, mod.Params(**p))
                row = {
                    "dose": dose,
                    "shift": shift,
                    "ny": ny,
                    "seed": seed,
                    "detector": label,
                    "auc": float(EM.roc_auc(np.asarray(r.output), prob.truth)),
                    "cpu_s": time.process_time() - t,
                }
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
