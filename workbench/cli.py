"""The ``workbench`` command: one contract for every domain.

    workbench problems <domain>
    workbench solvers [<domain>] [--json]
    workbench solve <domain> --solver NAME (--problem SAMPLE | --input FILE) [--param k=v ...]
                    [--out DIR] [--json] [--label TEXT]
    workbench runs list|show|export|delete|vacuum ...
    workbench bench <domain>[_<part>]|startup [--quick] [--json]
    workbench train <solver> ...
    workbench app [--port N]
    workbench batch <domain> --solver NAME --inputs DIR [--param k=v ...]
                    [--workers N | --scheduler tcp://HOST:PORT] [--json]
    workbench <domain> <command> ...      (domain commands, e.g. ``workbench tumor build-db``)

Bad input (a missing or malformed file, an unknown name, a parameter out of bounds) prints one
line on stderr and exits with code 2; nothing is computed or stored. A solver failure is stored
as a ``failed`` run and exits with code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from workbench import registry
from workbench.errors import InputError

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
#: Benchmarks that are not a domain's: ``workbench bench startup`` (benchmarks/startup.py) and
#: ``workbench bench scale`` (benchmarks/scale.py, the batch runner).
BENCH_EXTRA = ("startup", "scale")


def _clean(v: Any) -> Any:
    """JSON-safe: non-finite floats become null, arrays become lists."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_clean(obj)) + "\n")
    sys.stdout.flush()


# ---- commands -------------------------------------------------------------------------------


def cmd_problems(args: argparse.Namespace) -> int:
    dom = registry.get_domain(args.domain)
    if args.json:
        _print_json([{"name": s.name, "description": s.description} for s in dom.samples])
        return EXIT_OK
    width = max(len(n) for n in dom.sample_names())
    for s in dom.samples:
        print(f"{s.name:<{width}}  {s.description}")
    return EXIT_OK


def cmd_solvers(args: argparse.Namespace) -> int:
    if args.domain:
        registry.get_domain(args.domain)
    specs = registry.solvers(args.domain)
    if args.json:
        _print_json([s.as_dict() for s in specs])
        return EXIT_OK
    for s in specs:
        mark = " (paper)" if s.paper else ""
        print(f"{s.domain}/{s.name}: {s.title}{mark}")
        if s.description:
            print(f"    {s.description}")
        for p in s.schema():
            bounds = ""
            if p["choices"]:
                bounds = f" one of {p['choices']}"
            elif p["min"] is not None or p["max"] is not None:
                bounds = f" in [{p['min']}, {p['max']}]"
            print(f"    --param {p['name']}={p['default']}  ({p['type']}{bounds}) {p['help']}")
    return EXIT_OK


def build_problem(
    dom: registry.DomainSpec, sample: str | None, path: str | None, options: dict
) -> Any:
    """The problem named by ``--problem`` or read from ``--input``, validated."""
    from workbench.io.validate import read_input

    if (sample is None) == (path is None):
        raise InputError("give exactly one of --problem SAMPLE or --input FILE")
    if sample is not None:
        return dom.sample(sample, **options)
    if dom.load is None:
        raise InputError(f"{dom.name} does not read files")
    name = Path(path).name
    if Path(path).is_dir():  # a case or a series as a folder: read as the zip of its files
        from workbench.io.archive import zip_folder

        data, name = zip_folder(path), f"{name}.zip"
    else:
        data = read_input(path)
    try:
        return dom.load(data, name, **options)
    except InputError:
        raise
    except Exception as exc:  # a reader bug or an unreadable file: still one line, exit 2
        raise InputError(f"cannot read {name}: {type(exc).__name__}: {exc}") from None


def attach_low_loss(problem: Any, path: str, options: dict) -> Any:
    """``--low-loss``: the EELS problem with the low-loss image of the same scan attached."""
    from workbench.io.validate import read_input

    if problem.domain != "eels":
        raise InputError("--low-loss is an EELS option (the low-loss image of a DualEELS scan)")
    from workbench.datasets.eels import attach_low_loss as attach

    try:
        return attach(problem, read_input(path), Path(path).name, **options)
    except InputError:
        raise
    except Exception as exc:  # a reader bug or an unreadable file: still one line, exit 2
        raise InputError(f"cannot read {Path(path).name}: {type(exc).__name__}: {exc}") from None


def cmd_solve(args: argparse.Namespace) -> int:
    from workbench.jobs import execute
    from workbench.store import RunStore

    dom = registry.get_domain(args.domain)
    spec = registry.get_solver(args.domain, args.solver)
    s_kv, o_kv = registry.split_params(args.domain, args.solver, registry.parse_kv(args.param))
    params = spec.params(s_kv)
    options = dom.options(o_kv)
    problem = build_problem(dom, args.problem, args.input, options)
    if args.low_loss:
        problem = attach_low_loss(problem, args.low_loss, options)
    if dom.check is not None:  # parameters that do not fit the data: refused before the run
        dom.check(problem, spec, params)
    if args.out:
        _writable_dir(Path(args.out), "--out")

    # Everything above validated the input; from here on a run exists.
    from workbench.progress import Progress

    def report(step: int, total: int | None, metrics: dict) -> None:
        if args.verbose:
            shown = " ".join(
                f"{k}={v:.3g}" for k, v in metrics.items() if isinstance(v, (int, float))
            )
            print(f"[{spec.name}] {step}/{total or '?'} {shown}", file=sys.stderr)

    store = RunStore()
    with contextlib.redirect_stdout(sys.stderr):  # solvers' chatter never pollutes --json
        result, run_id = execute(
            spec, problem, params, Progress(report), store, label=args.label or ""
        )
        artifacts = _write_outputs(args, store, run_id, problem, result, dom)
    summary = {
        "run_id": run_id,
        "domain": dom.name,
        "solver": spec.name,
        "problem": problem.name,
        "problem_id": problem.id,
        "status": result.status,
        "verdict": result.meta.get("verdict", {}),
        "iterations": result.iterations,
        "metrics": result.metrics,
        "wall_s": result.meta.get("wall_s"),
        "artifacts": artifacts,
        "message": result.message,
        "notices": list(problem.meta.get("notices", [])),
    }
    if args.json:
        _print_json(summary)
    else:
        verdict = summary["verdict"]
        print(
            f"run {run_id}: {spec.name} on {problem.name} -> {result.status} "
            f"in {summary['wall_s']:.3g} s, {result.iterations} iterations"
        )
        if verdict:
            print(
                f"  verdict: {verdict.get('label')}"
                + (f" ({verdict['reason']})" if verdict.get("reason") else "")
            )
        for k, v in result.metrics.items():
            print(f"  {k} = {v}")
        for k, v in artifacts.items():
            print(f"  {k}: {v}")
        if result.message:
            print(f"  message: {result.message}")
        for note in summary["notices"]:
            print(f"  notice: {note}")
    return EXIT_FAILED if result.status == "failed" else EXIT_OK


def _writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` as a folder (with parents) or refuse in one line: before any run starts."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be created ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path} is not writable")
    return path


def _write_outputs(args, store, run_id, problem, result, dom) -> dict[str, str]:
    from workbench.export import figure_bytes_shared, npz_bytes

    out = Path(args.out) if args.out else store.home / "exports" / run_id
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"output": result.output}
    for k, v in result.extras.items():
        if isinstance(v, np.ndarray) and v.dtype != object and k != "output":
            arrays[k] = v
    artifacts = {}
    (out / "result.npz").write_bytes(npz_bytes(arrays))
    artifacts["result"] = str(out / "result.npz")
    (out / "metrics.json").write_text(json.dumps(_clean(result.metrics), indent=2))
    artifacts["metrics"] = str(out / "metrics.json")
    if result.output.size and not args.no_figure:
        try:
            fig = registry.resolve(dom.figure)(problem, result)
            # one warm renderer serves every CLI call: no browser start per figure
            png = _within(_figure_timeout(), lambda: figure_bytes_shared(fig, "png"))
            (out / "figure.png").write_bytes(png)
            artifacts["figure"] = str(out / "figure.png")
        except Exception as exc:  # no browser for kaleido, say: the data is still there
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            print(f"warning: figure not written ({why})", file=sys.stderr)
    return artifacts


def _figure_timeout() -> float:
    """Deadline for one CLI figure (``WORKBENCH_FIGURE_TIMEOUT``, default 120 s)."""
    try:
        return float(os.environ.get("WORKBENCH_FIGURE_TIMEOUT", "120"))
    except ValueError:
        return 120.0


def _within(seconds: float, fn):
    """``fn()`` on a daemon thread, or TimeoutError after ``seconds`` (a browser that never
    starts must not hang the CLI; the run is already stored)."""
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=target, name="wb-figure", daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise TimeoutError(f"no renderer answered within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def cmd_batch(args: argparse.Namespace) -> int:
    from workbench import batch  # the logic lives there; Dask is imported only when used

    return batch.main(args)


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.store import RunStore

    store = RunStore()
    if args.action == "vacuum":
        n = store.vacuum(older_than_s=args.older_than)
        print(f"removed {n} orphan file(s) from {store.home}")
        return EXIT_OK
    if args.action == "list":
        runs = store.list(
            domain=args.domain,
            solver=args.solver,
            status=args.status,
            limit=args.limit,
            verdict=args.verdict,
        )
        if args.json:
            _print_json([r.as_dict() for r in runs])
            return EXIT_OK
        for r in runs:
            wall = f"{r.wall_s:.3g}s" if r.wall_s is not None else "-"
            print(
                f"{r.run_id}  {r.domain:<6} {r.solver:<18} {r.status:<10} "
                f"{r.verdict_label:<20} {wall:>9}  {r.problem}"
            )
        return EXIT_OK
    if not args.ids:
        raise InputError(f"runs {args.action} needs a run id")
    for rid in args.ids:
        try:
            info = store.get(rid)
        except KeyError:
            raise InputError(f"no run {rid!r}") from None
        if args.action == "show":
            _print_json(info.as_dict()) if args.json else print(
                json.dumps(_clean(info.as_dict()), indent=2)
            )
        elif args.action == "export":
            from workbench.export import run_bundle

            path = Path(args.out or f"{rid}.zip")
            if path.is_dir() or (args.out or "").endswith(("/", os.sep)):
                path = _writable_dir(path, "--out") / f"{rid}.zip"
            else:
                _writable_dir(path.parent, "the folder of --out")
            path.write_bytes(run_bundle(store, rid))
            print(str(path))
        elif args.action == "delete":
            store.delete(rid)
            print(f"deleted {rid}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from workbench.bench import benchmarks_dir

    if args.domain not in BENCH_EXTRA:
        # "<domain>_<part>" runs one part of a domain's benchmarks (e.g. pde_rgnp)
        registry.get_domain(args.domain.split("_", 1)[0])
    script = benchmarks_dir() / f"{args.domain}.py"
    if not script.exists():
        raise InputError(f"no benchmark for {args.domain} (needs a source checkout: {script})")
    import runpy

    mod = runpy.run_path(str(script), run_name="workbench_bench")
    argv = (["--quick"] if args.quick else []) + (["--json"] if args.json else []) + rest
    return int(mod["main"](argv) or 0)


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    specs = [s for s in registry.solvers() if s.train and args.solver in (s.name, s.train_name)]
    if not specs:
        trainable = (
            ", ".join(s.train_name or s.name for s in registry.solvers() if s.train) or "none"
        )
        raise InputError(f"{args.solver!r} has no training entry point; trainable: {trainable}")
    return int(registry.resolve(specs[0].train)(rest) or 0)


def cmd_app(args: argparse.Namespace) -> int:
    app = Path(__file__).resolve().parents[1] / "app.py"
    if not app.exists():
        raise InputError(f"the app needs a source checkout ({app} not found)")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
        "--server.headless",
        "true",
    ]
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    return subprocess.call(cmd, env=env, cwd=app.parent)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Inverse Workbench command line")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("problems", help="list a domain's bundled sample problems")
    sp.add_argument("domain")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("solvers", help="list solvers and their parameters")
    sp.add_argument("domain", nargs="?")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("solve", help="run one solver on one problem and store the run")
    sp.add_argument("domain")
    sp.add_argument("--solver", required=True)
    sp.add_argument("--problem", help="a bundled sample (see `workbench problems <domain>`)")
    sp.add_argument("--input", help="a file of your own")
    sp.add_argument(
        "--low-loss",
        help="EELS: the low-loss image of the same scan (DualEELS); alignment uses its zero-loss peak",
    )
    sp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--out", help="folder for result.npz, metrics.json, figure.png")
    sp.add_argument("--label", help="a name for the run in the store")
    sp.add_argument("--json", action="store_true", help="print exactly one JSON object")
    sp.add_argument("--no-figure", action="store_true", help="skip the PNG figure")
    sp.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")

    sp = sub.add_parser("batch", help="solve every file of a folder as its own run (Dask)")
    sp.add_argument("domain")
    sp.add_argument("--solver", required=True)
    sp.add_argument("--inputs", required=True, help="a folder; each file becomes one run")
    sp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--workers", type=int, help="local worker processes (a Dask LocalCluster)")
    sp.add_argument("--scheduler", help="a running Dask scheduler, tcp://HOST:PORT")
    sp.add_argument("--label", help="a name for the runs in the store")
    sp.add_argument("--json", action="store_true", help="print exactly one JSON object")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")

    sp = sub.add_parser("runs", help="list, show, export or delete stored runs")
    sp.add_argument("action", choices=["list", "show", "export", "delete", "vacuum"])
    sp.add_argument("ids", nargs="*")
    sp.add_argument("--domain")
    sp.add_argument("--solver")
    sp.add_argument("--status")
    sp.add_argument(
        "--verdict",
        choices=["converged", "at_limit", "by_design", "suspect", "cancelled", "failed"],
    )
    sp.add_argument("--limit", type=int)
    sp.add_argument("--out")
    sp.add_argument("--json", action="store_true")
    sp.add_argument(
        "--older-than", type=float, default=3600.0, help="vacuum: only files older than this (s)"
    )

    sp = sub.add_parser("bench", help="run a domain's benchmark (writes BENCHMARKS.md)")
    sp.add_argument("domain", help=f"a domain, or one of: {', '.join(BENCH_EXTRA)}")
    sp.add_argument("--quick", action="store_true")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("train", help="train a learned solver", add_help=False)
    sp.add_argument("solver")

    sp = sub.add_parser("app", help="serve the web app")
    sp.add_argument("--port", type=int, default=8501)
    sp.add_argument("--address", default="127.0.0.1")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not os.environ.get("WORKBENCH_WARNINGS"):
        # readers' library warnings (nibabel, PIL) would make a refusal span several lines;
        # the one-line InputError says what matters. WORKBENCH_WARNINGS=1 shows them.
        warnings.simplefilter("ignore")
    try:
        # Domain commands: `workbench <domain> <command> ...`
        if argv and argv[0] in registry.domain_names():
            dom = registry.get_domain(argv[0])
            if len(argv) < 2 or argv[1] not in dom.commands:
                cmds = ", ".join(dom.commands) or "none"
                raise InputError(f"{dom.name} commands: {cmds}")
            return int(registry.resolve(dom.commands[argv[1]])(argv[2:]) or 0)
        parser = build_parser()
        args, rest = parser.parse_known_args(argv)
        if args.command in ("bench", "train"):
            return {"bench": cmd_bench, "train": cmd_train}[args.command](args, rest)
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        handler = {
            "problems": cmd_problems,
            "solvers": cmd_solvers,
            "solve": cmd_solve,
            "runs": cmd_runs,
            "batch": cmd_batch,
            "app": cmd_app,
        }[args.command]
        return handler(args)
    except InputError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout left (``workbench problems pde | head``): stop quietly, and keep
        # Python's exit-time flush of stdout from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
