"""Time of ``cvae3d``'s per-image fine-tuning at its defaults on a 64 x 64 x 300 cube, one thread
(issue 14's target: at most 2 min on CPU).

    python benchmarks/eels_finetune_time.py [--repeats N]

The cube is the benchmark's generator (``benchmarks/eels.py`` BASE: per-pixel background, plural
scattering, jitter) over 650-739.7 eV at 0.3 eV/channel (300 channels), a 0.5 eV shift at 0.3x
dose, seed 30001 (no test or validation seed). The solver runs from the bundled checkpoint with
its default epochs and schedule; printed per repeat: the solver's own training time (``train_s``,
wall clock), inference time, the whole solve's wall time, and its CPU time
(``time.process_time``: on a shared machine the wall clock also counts the time the process
waited for a core, the CPU time does not), with the load average beside them.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.eels import BASE
    from workbench.datasets.eels import synthetic
    from workbench.solvers.eels import cvae3d

    torch.set_num_threads(1)
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 1
    kw = dict(BASE, shift=0.5, n_pk=13.5, seed=30001, e_min=650.0, e_max=739.9, dispersion=0.3)
    prob = synthetic(kw, name="finetune-timing")
    assert prob.data.shape == (64, 64, 300), prob.data.shape
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        r = cvae3d.solve(prob, cvae3d.Params(device="cpu", save=False))
        row = {
            "cube": list(prob.data.shape),
            "threads": torch.get_num_threads(),
            "epochs": r.metrics["epochs"],
            "steps_per_epoch": r.meta["steps_per_epoch"],
            "train_s": round(r.metrics["train_s"], 2),
            "infer_s": round(r.metrics["infer_s"], 2),
            "solve_wall_s": round(time.perf_counter() - w0, 2),
            "solve_cpu_s": round(time.process_time() - c0, 2),
            "load_avg": [round(x, 1) for x in os.getloadavg()],
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
