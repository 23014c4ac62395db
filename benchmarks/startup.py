"""Start-up latency (issue 24): what a user waits for before any numerics of interest happen.

* CLI: wall time of ``workbench solve`` on a trivial problem of every domain, without and with
  the PNG figure (the figure through the shared renderer: once cold, when the call has to start
  it and Chromium, then warm; the tumour lookup once with its atlas cache cold, the first call
  in a new ``WORKBENCH_HOME``), and ``workbench --help``.
* App: server start to health, time to first paint of the home page and of a domain page in a
  real headless Chromium (Playwright), both on a fresh server; then the same domain page opened
  by a fourth user while three sessions run their uploads and two CLI processes write runs.
* First run: time from submitting a page's default run to its first progress report, in a fresh
  process as the page does it: cold (nothing imported yet), and after the page's background
  warm-up (``workbench.jobs.warm``), which starts when the page opens.

Every time is measured side by side with the floor, ``python -c "import numpy"``, in the same
run (interleaved, medians over the repeats), and reported as a ratio to it too: the build machine
is shared with other jobs, so absolute seconds move with its load; ratios move less.

* Load: the app's health check and a fourth user's first paint while three sessions run OT jobs,
  once per jobs backend (``WORKBENCH_JOBS=thread`` and ``process``), side by side in one run.

    workbench bench startup [--quick] [--json] [--repeats N] [--only cli,app,first,load]
                            [--backends process,thread] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

#: The trivial solve of each domain: a NumPy solver on the smallest bundled sample. MRI's
#: zero-filled baseline is NumPy too since issue 24, so it has the NumPy target (1 s).
CLI_CASES: dict[str, list[str]] = {
    "ot": ["--solver", "sinkhorn", "--input", "{ot10}", "--param", "reg=0.05"],
    "mri": ["--solver", "zero_filled", "--problem", "mni_slice"],
    "tumor": ["--solver", "db_lookup_fast", "--problem", "synthetic_small"],
    "eels": ["--solver", "pca_t2", "--problem", "small_2eV_5pct"],
    "pde": ["--solver", "reference", "--problem", "poisson1d_sin10"],
}
TORCH_DOMAINS: set[str] = set()  # domains whose trivial solve is a torch solver
#: A first call that pays a one-off start, reported as its own row and left out of the median:
#: (figure arm, label). The tumour sample and lookup read the 64³ atlas from the cache under
#: WORKBENCH_HOME, which the first call in a new home builds from the 1 mm templates.
COLD_FIRST: dict[str, tuple[str, str]] = {
    "ot": ("yes", "yes, renderer cold (starts Chromium)"),
    "tumor": ("no", "no, atlas cache cold (first call in a new WORKBENCH_HOME)"),
}
TARGET_NO_FIG, TARGET_NO_FIG_TORCH, TARGET_FIG = 1.0, 2.0, 2.5

#: A page's first run: its default (paper) solver on the picker's first sample.
FIRST_RUN: dict[str, tuple[str, str]] = {
    "ot": ("sinkhorn_newton", "hist1d"),
    "mri": ("recurrentvarnet", "mni_slice"),
    "tumor": ("db_lookup", "synthetic_small"),
    "eels": ("cvae3d", "small_2eV_5pct"),
    "pde": ("gp_hm", "poisson1d_sin10"),
}
TARGET_FIRST_PROGRESS = 1.0
PARTS = "cli,app,first,load"

FIRST_RUN_PROBE = r"""
import json, sys, time
domain, solver, sample, mode, backend = sys.argv[1:6]
t0 = time.perf_counter()
from workbench import jobs, registry
from workbench.store import RunStore
queue = jobs.JobQueue(RunStore(), backend=backend)  # the server's queue
w = queue.warm(domain) if mode != "cold" else None  # the page opens
problem = registry.get_domain(domain).sample(sample)  # ... and builds its sample meanwhile
t_page = time.perf_counter() - t0
if mode == "warm":
    w.done.wait(900)  # the user reads the page until the warm-up is done
t_warm = time.perf_counter() - t0
spec = registry.get_solver(domain, solver)
t_run = time.perf_counter()
job = queue.submit(spec, problem, spec.params())  # Run pressed
first = None
while not job.progress.records and job.state not in ("done", "cancelled"):
    if first is None and job.progress.notes:
        first = time.perf_counter() - t_run
    time.sleep(0.002)
step = time.perf_counter() - t_run
first = step if first is None else first
job.cancel()
queue.wait(900)
queue.close()
# the stages the page showed before the first step, each with when it began (Run = 0)
dt = job.progress.t0 - t_run
stages = [(t + dt, text) for t, text in job.progress.notes if t + dt <= step]
ends = [t for t, _ in stages[1:]] + [step]
longest = max([e - t for (t, _), e in zip(stages, ends)] + [0.0])
print(json.dumps({"first_progress_s": first, "first_step_s": step, "page_s": t_page,
                  "warm_s": t_warm, "stages": stages, "longest_stage_s": longest,
                  "status": job.result.status if job.result else job.state}))
"""


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "WORKBENCH_HOME": str(tmp / "home"), "OMP_WAIT_POLICY": "PASSIVE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _timed(cmd: list[str], env: dict[str, str], timeout: float = 900) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {proc.returncode}: {proc.stderr[-500:]}")
    return wall, proc.stdout


def _floor(env: dict[str, str]) -> float:
    return _timed([PY, "-c", "import numpy"], env)[0]


def _med(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


# ---- CLI ---------------------------------------------------------------------------------------


def bench_cli(tmp: Path, repeats: int, floors: list[float]) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(0)
    ot10 = tmp / "ot10.npz"
    np.savez(ot10, a=np.full(10, 0.1), b=np.full(10, 0.1), C=rng.random((10, 10)))
    # a private renderer, so its first call really starts Chromium; it exits 30 s after the end
    env = _env(
        tmp,
        WORKBENCH_RENDERER_SOCKET=str(tmp / "render.sock"),
        WORKBENCH_RENDERER_IDLE="30",
    )
    rows = []
    floors.append(_floor(env))
    wall, _ = _timed([PY, "-m", "workbench.cli", "--help"], env)
    rows.append({"case": "workbench --help", "figure": "-", "wall_s": wall, "solver_s": None})
    for domain, args in CLI_CASES.items():
        argv = [PY, "-m", "workbench.cli", "solve", domain]
        argv += [a.format(ot10=ot10) for a in args] + ["--json", "--out", str(tmp / domain)]
        for figure, extra in (("no", ["--no-figure"]), ("yes", [])):
            walls, solver_s = [], []
            cold = COLD_FIRST.get(domain)
            cold = cold[1] if cold and cold[0] == figure else None
            for i in range(repeats + (1 if cold else 0)):
                floors.append(_floor(env))
                wall, out = _timed(argv + extra, env)
                obj = json.loads(out.strip().splitlines()[-1])
                if figure == "yes" and "figure" not in obj["artifacts"]:
                    raise RuntimeError(f"{domain}: no figure written")
                if cold and i == 0:  # the one-off start (renderer, cache), its own row
                    rows.append(
                        {
                            "case": f"{domain}: {args[1]}",
                            "figure": cold,
                            "wall_s": wall,
                            "solver_s": obj["wall_s"],
                        }
                    )
                    continue
                walls.append(wall)
                solver_s.append(obj["wall_s"])
            target = TARGET_FIG if figure == "yes" else TARGET_NO_FIG
            if figure == "no" and domain in TORCH_DOMAINS:
                target = TARGET_NO_FIG_TORCH
            rows.append(
                {
                    "case": f"{domain}: {args[1]}",
                    "figure": "yes, renderer warm" if figure == "yes" else "no",
                    "wall_s": _med(walls),
                    "solver_s": _med(solver_s),
                    "target_s": target,
                }
            )
    return rows


# ---- app ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(env: dict[str, str], log_path: Path):
    """A fresh ``streamlit run app.py``; returns (process, url, log, seconds to healthy)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "streamlit", "run", "app.py", "--server.headless=true",
         "--server.address=127.0.0.1", f"--server.port={port}", "--server.fileWatcherType=none",
         "--browser.gatherUsageStats=false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("streamlit did not start")
    except BaseException:
        _stop_server(proc, log)
        raise
    return proc, url, log, time.perf_counter() - t0


def _stop_server(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def bench_app(tmp: Path, floors: list[float], page: str = "ot") -> list[dict[str, Any]]:
    """Fresh server; home page then one domain page, each the first request of its session."""
    from playwright.sync_api import sync_playwright

    env = _env(tmp)
    floors.append(_floor(env))
    proc, url, log, t_health = _start_server(env, tmp / "server.log")
    rows = [{"step": "server start to health", "wall_s": t_health}]
    try:
        args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            for name, path, text in (
                ("home page", "/", "Inverse Workbench"),
                (f"{page} page", f"/{page}", "Optimal transport"),
            ):
                tab = browser.new_page()
                t = time.perf_counter()
                tab.goto(url + path)
                tab.get_by_role("heading", name=re.compile(text)).first.wait_for(timeout=300_000)
                rows.append(
                    {"step": f"{name}: first paint (title)", "wall_s": time.perf_counter() - t}
                )
                if path != "/":
                    tab.get_by_role("button", name=re.compile("Run")).first.wait_for(
                        timeout=300_000
                    )
                    rows.append(
                        {"step": f"{name}: Run button drawn", "wall_s": time.perf_counter() - t}
                    )
                    tab.get_by_text("Preparing the solvers").first.wait_for(
                        state="detached", timeout=300_000
                    )
                    rows.append(
                        {"step": f"{name}: warm-up done", "wall_s": time.perf_counter() - t}
                    )
                tab.close()
            rows += _paint_under_load(browser, url, env, tmp)
            browser.close()
    finally:
        _stop_server(proc, log)
    floors.append(_floor(env))
    return rows


def _ot_upload(n: int, seed: int) -> bytes:
    import io

    import numpy as np

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, a=np.full(n, 1 / n), b=np.full(n, 1 / n), C=rng.random((n, n)))
    return buf.getvalue()


def _paint_under_load(browser, url: str, env: dict[str, str], tmp: Path) -> list[dict[str, Any]]:
    """The OT page opened by a fourth user while three sessions run their own uploads and two
    ``workbench solve`` processes write to the same store (the load of the concurrent-users
    browser test, with 200-point problems so that the jobs last a while)."""
    sessions = [browser.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(3)]
    for i, tab in enumerate(sessions):
        tab.goto(url)
        tab.get_by_text("Inverse Workbench").first.wait_for(timeout=300_000)
        tab.get_by_role("link", name="Optimal transport").click()
        tab.get_by_text("Solvers").first.wait_for(timeout=300_000)
        tab.get_by_text("Upload", exact=True).first.click()
        tab.locator("input[type='file']").first.set_input_files(
            {"name": f"user{i}.npz", "mimeType": "application/octet-stream",
             "buffer": _ot_upload(200, i)}
        )  # fmt: skip
        tab.get_by_text(f"user{i}.npz").first.wait_for(timeout=300_000)
    cli = [PY, "-m", "workbench.cli", "solve", "ot", "--solver", "sinkhorn", "--problem",
           "hist1d", "--no-figure", "--json"]  # fmt: skip
    writers = [
        subprocess.Popen(
            cli, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    for tab in sessions:
        tab.get_by_role("button", name="Run", exact=True).click()
    rows = []
    tab = browser.new_page()
    tab.set_default_navigation_timeout(300_000)
    try:
        t = time.perf_counter()
        tab.goto(url + "/ot")
        tab.get_by_role("heading", name=re.compile("Optimal transport")).first.wait_for(
            timeout=300_000
        )
        step = "ot page, 3 sessions running + 2 CLI writers"
        rows.append({"step": f"{step}: first paint (title)", "wall_s": time.perf_counter() - t})
        tab.get_by_role("button", name=re.compile("Run")).first.wait_for(timeout=300_000)
        running = sum(s.get_by_text("Running", exact=True).count() > 0 for s in sessions)
        rows.append(
            {
                "step": f"{step}: Run button drawn ({running} of 3 still running)",
                "wall_s": time.perf_counter() - t,
            }
        )
    finally:
        for w in writers:
            w.wait(600)
        for s in [*sessions, tab]:
            s.close()
    return rows


# ---- first run ---------------------------------------------------------------------------------


def bench_first_run(
    tmp: Path, floors: list[float], modes: list[str], backends: tuple[str, ...] = ("process",)
) -> list[dict[str, Any]]:
    rows = []
    for domain, (solver, sample) in FIRST_RUN.items():
        for mode in modes:
            for backend in backends:
                env = _env(tmp / f"first-{domain}-{mode}-{backend}")
                floors.append(_floor(env))
                _, out = _timed(
                    [PY, "-c", FIRST_RUN_PROBE, domain, solver, sample, mode, backend], env
                )
                obj = json.loads(out.strip().splitlines()[-1])
                rows.append(
                    {
                        "page": domain,
                        "first run": f"{solver} on {sample}",
                        "jobs": backend,
                        "warm-up": {
                            "cold": "none",
                            "early": "started, Run pressed at once",
                            "warm": "done",
                        }[mode],
                        "page_s": obj["page_s"],
                        "warm_s": obj["warm_s"] if mode == "warm" else None,
                        "first_progress_s": obj["first_progress_s"],
                        "first_step_s": obj["first_step_s"],
                        "longest_stage_s": obj["longest_stage_s"],
                        "stages before the first step": _stage_list(
                            obj["stages"], obj["first_step_s"]
                        ),
                    }
                )
    return rows


def _stage_list(stages: list, end: float, shortest: float = 0.1) -> str:
    """``text (seconds shown)`` of the stages shown for at least ``shortest`` s before the first
    step, in order (shorter ones only flash by)."""
    starts = [t for t, _ in stages]
    ends = starts[1:] + [end]
    out = [
        f"{text} ({e - t:.1f} s)"
        for (t, text), e in zip(stages, ends, strict=True)
        if e - t >= shortest
    ]
    return "; ".join(out)


# ---- responsiveness under load, by jobs backend ------------------------------------------------


def bench_load(tmp: Path, floors: list[float], backends=("thread", "process")) -> list[dict]:
    """The health check's latency and a fourth user's first paint of the OT page while three
    sessions run OT jobs and two CLI processes write (:func:`_paint_under_load`), once per jobs
    backend (``WORKBENCH_JOBS``), each on a fresh server, one after the other in one run."""
    import threading

    from playwright.sync_api import sync_playwright

    rows = []
    for backend in backends:
        env = _env(tmp / f"load-{backend}", WORKBENCH_JOBS=backend)
        floors.append(_floor(env))
        proc, url, log, _ = _start_server(env, tmp / f"server-{backend}.log")
        lat: list[float] = []
        stop = threading.Event()

        def sample_health(url: str = url, lat: list[float] = lat, stop=stop) -> None:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=120).read()
                    lat.append(time.perf_counter() - t)
                except OSError:
                    lat.append(float("inf"))
                stop.wait(0.25)

        try:
            args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
                sampler = threading.Thread(target=sample_health, daemon=True)
                sampler.start()
                for r in _paint_under_load(browser, url, env, tmp):
                    rows.append({"jobs": backend, **r})
                stop.set()
                sampler.join(130)
                browser.close()
        finally:
            _stop_server(proc, log)
        ok = sorted(x for x in lat if x != float("inf"))
        rows.append(
            {
                "jobs": backend,
                "step": f"/_stcore/health during the load ({len(lat)} probes, "
                f"{len(lat) - len(ok)} failed): median",
                "wall_s": _med(ok),
            }
        )
        rows.append(
            {
                "jobs": backend,
                "step": "/_stcore/health during the load: max",
                "wall_s": ok[-1] if ok else float("nan"),
            }
        )
        floors.append(_floor(env))
    return rows


# ---- report ------------------------------------------------------------------------------------


def _ratio(rows: list[dict[str, Any]], floor: float, keys: tuple[str, ...]) -> None:
    for r in rows:
        for k in keys:
            if isinstance(r.get(k), float):
                r[k.replace("_s", "") + " / floor"] = r[k] / floor


def render(cli, app, first, floor, n_floors, repeats, load=(), loadavg=None) -> str:
    from workbench.bench import markdown_table

    machine = ""
    if loadavg is not None:  # measured, not assumed: the same text was printed for quiet runs
        machine = (
            f" Load average (1 min) at the start and the end of the run: {loadavg[0]:.1f} and "
            f"{loadavg[1]:.1f} on {os.cpu_count()} cores; above that count other jobs shared the "
            "machine and absolute seconds carry their load, the ratios to the floor less so."
        )
    out = [
        f'Floor: `python -c "import numpy"` = **{floor:.3f} s** (median of {n_floors} runs '
        "interleaved with those below)." + machine,
        "",
    ]
    if cli:
        for r in cli:
            if "target_s" in r:
                r["met"] = "yes" if r["wall_s"] <= r["target_s"] else "**miss**"
        _ratio(cli, floor, ("wall_s",))
        out += [
            f"### CLI (median of {repeats})",
            "",
            "`solver_s` is the solver's own wall time from the run's JSON; the rest is start-up, "
            "problem building, evaluation and writing.",
            "",
            markdown_table(
                cli, ["case", "figure", "wall_s", "wall / floor", "solver_s", "target_s", "met"]
            ),
            "",
        ]
    if app:
        _ratio(app, floor, ("wall_s",))
        out += [
            "### App (fresh server, headless Chromium)",
            "",
            markdown_table(app, ["step", "wall_s", "wall / floor"]),
            "",
        ]
    if load:
        _ratio(load, floor, ("wall_s",))
        out += [
            "### App under load, by jobs backend (`WORKBENCH_JOBS`), fresh server each",
            "",
            "Three sessions run OT jobs on their 200-point uploads and two CLI processes write "
            "runs while a fourth user opens the OT page; the health check is probed every "
            "0.25 s meanwhile.",
            "",
            markdown_table(list(load), ["jobs", "step", "wall_s", "wall / floor"]),
            "",
        ]
    if first:
        for r in first:
            r["met"] = "yes" if r["first_progress_s"] <= TARGET_FIRST_PROGRESS else "**miss**"
        _ratio(first, floor, ("first_progress_s",))
        out += [
            "### First run of a page: Run pressed to first progress report",
            "",
            "In a fresh process as the page does it (`JobQueue.warm` when the page opens, "
            "`JobQueue.submit`, then the job's `Progress` in the page's process); the page shows "
            "it at its next poll (every 1 s). `first_progress_s`: Run pressed to the first "
            "report, a stage the run noted (`Progress.note`: starting the worker, importing a "
            "package, loading a checkpoint, a solver's own stage) or a step, whichever came "
            "first -- the target; `first_step_s`: to the first step; `longest_stage_s`: the "
            "longest any one stage was shown before the first step (the longest the page "
            "showed no news); the last column lists the stages shown for 0.1 s or more, with how "
            "long each was shown. "
            "`jobs`: the jobs backend; `page_s`: page open to sample built; `warm_s`: page "
            "open to warm-up done.",
            "",
            markdown_table(
                first,
                [
                    "page",
                    "first run",
                    "jobs",
                    "warm-up",
                    "page_s",
                    "warm_s",
                    "first_progress_s",
                    "first_progress / floor",
                    "met",
                    "first_step_s",
                    "longest_stage_s",
                    "stages before the first step",
                ],
            ),  # fmt: skip
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench startup", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="1 repeat, cold and warm first runs")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=PARTS, help=f"comma-separated parts of {PARTS}")
    ap.add_argument(
        "--backends",
        default="process",
        help="jobs backends of the first-run part (comma-separated: process,thread)",
    )
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    parts = set(args.only.split(","))
    if args.quick and args.only == PARTS:  # two servers under load take minutes: ask for it
        parts.discard("load")
    modes = ["cold", "warm"] if args.quick else ["cold", "early", "warm"]
    floors: list[float] = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wb-startup-") as d:
        tmp = Path(d)
        cli = bench_cli(tmp, repeats, floors) if "cli" in parts else []
        app = bench_app(tmp, floors) if "app" in parts else []
        backends = tuple(args.backends.split(","))
        first = bench_first_run(tmp, floors, modes, backends) if "first" in parts else []
        load = bench_load(tmp, floors) if "load" in parts else []
    floor = _med(floors)
    loadavg = (load_start, os.getloadavg()[0])
    md = render(cli, app, first, floor, len(floors), repeats, load, loadavg)
    if args.json:
        out = {"floor_s": floor, "cli": cli, "app": app, "first_run": first, "load": load}
        print(json.dumps(out))
    else:
        print(md)
    if not args.no_write:
        from workbench.bench import write_section

        cmd = "workbench bench startup" + (" --quick" if args.quick else "")
        if args.only != PARTS:
            cmd += f" --only {args.only}"
        if args.backends != "process":
            cmd += f" --backends {args.backends}"
        write_section("Start-up", md, cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
