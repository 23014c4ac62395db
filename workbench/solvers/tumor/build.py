"""``workbench tumor build-db``: build or resume a simulation database (see :mod:`.database`)."""

from __future__ import annotations

import argparse
import os
import sys


def build_db_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench tumor build-db", description=__doc__)
    ap.add_argument("--n", type=int, required=True, help="number of parameter draws")
    ap.add_argument("--grid", type=int, default=64, help="simulation grid n (n^3 cells)")
    ap.add_argument("--out", required=True, help="output HDF5 file")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://host:port")
    ap.add_argument(
        "--store-factor", type=int, default=2, help="density stored at grid/store_factor"
    )
    ap.add_argument(
        "--prior",
        choices=("identifiable", "lmi", "banded"),
        default="banded",
        help="parameter prior: banded (default, the shipped database's: the identifiable prior "
        "restricted to the band of λ and √(Dρ) that passes the volume filter, about 25%% "
        "rejected), identifiable (the spec's, about 83%% rejected at 64³) or lmi",
    )
    ap.add_argument("--seed-region", choices=("wm", "tissue"), default="wm")
    ap.add_argument("--R", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="base RNG seed (Sobol scrambling)")
    ap.add_argument("--v-min", type=float, default=5.0, help="min whole-tumour volume (cm^3)")
    ap.add_argument("--v-max", type=float, default=250.0, help="max whole-tumour volume (cm^3)")
    ap.add_argument("--embed-k", type=int, default=64)
    ap.add_argument("--keep-parts", action="store_true")
    ap.add_argument("--max-batches", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from workbench.solvers.tumor.database import BuildConfig, build

    if a.grid % a.store_factor:
        print("error: --grid must be divisible by --store-factor", file=sys.stderr)
        return 2
    cfg = BuildConfig(
        n=a.n,
        grid=a.grid,
        store_factor=a.store_factor,
        prior=a.prior,
        seed_region=a.seed_region,
        R=a.R,
        batch=a.batch,
        rng_seed=a.seed,
        v_min_cm3=a.v_min,
        v_max_cm3=a.v_max,
    )
    try:
        out = build(
            cfg,
            a.out,
            workers=a.workers,
            scheduler=a.scheduler,
            keep_parts=a.keep_parts,
            embed_k=a.embed_k,
            max_batches=a.max_batches,
            log=lambda s: print(s, flush=True),
            command="workbench tumor build-db "
            + " ".join(argv if argv is not None else sys.argv[1:]),
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if out is not None or a.max_batches is not None else 1
