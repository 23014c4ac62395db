"""Start-up latency (issue 24): what a user waits for before any numerics of interest happen.

* CLI: wall time of ``workbench solve`` on a trivial problem of every domain, without and with
  the PNG figure (the figure through the shared renderer: once cold, when the call has to start
  it and Chromium, then warm), and ``workbench --help``.
* App: server start to health, time to first paint of the home page and of a domain page in a
  real headless Chromium (Playwright), both on a fresh server; then the same domain page opened
  by a fourth user while three sessions run their uploads and two CLI processes write runs.
* First run: time from submitting a page's default run to its first progress report, in a fresh
  process as the page does it: cold (nothing imported yet), and after the page's background
  warm-up (``workbench.jobs.warm``), which starts when the page opens.

Every time is measured side by side with the floor, ``python -c "import numpy"``, in the same
run (interleaved, medians over the repeats), and reported as a ratio to it too: the build machine
is shared with other jobs, so absolute seconds move with its load; ratios move less.

    workbench bench startup [--quick] [--json] [--repeats N] [--no-app] [--no-write]
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

#: The trivial solve of each domain: a NumPy solver on the smallest bundled sample (MRI's
#: operators are torch, so its targets are the torch ones).
CLI_CASES: dict[str, list[str]] = {
    "ot": ["--solver", "sinkhorn", "--input", "{ot10}", "--param", "reg=0.05"],
    "mri": ["--solver", "zero_filled", "--problem", "mni_slice"],
    "tumor": ["--solver", "db_lookup_fast", "--problem", "synthetic_small"],
    "eels": ["--solver", "pca_t2", "--problem", "small_2eV_5pct"],
    "pde": ["--solver", "reference", "--problem", "poisson1d_sin10"],
}
TORCH_DOMAINS = {"mri"}
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

FIRST_RUN_PROBE = r"""
import json, sys, time
domain, solver, sample, mode = sys.argv[1:5]
t0 = time.perf_counter()
from workbench import jobs, registry
from workbench.store import RunStore
w = jobs.warm_in_background(domain) if mode != "cold" else None  # the page opens
problem = registry.get_domain(domain).sample(sample)  # ... and builds its sample meanwhile
t_page = time.perf_counter() - t0
if mode == "warm":
    w.done.wait(900)  # the user reads the page until the warm-up is done
t_warm = time.perf_counter() - t0
spec = registry.get_solver(domain, solver)
queue = jobs.JobQueue(RunStore())
t_run = time.perf_counter()
job = queue.submit(spec, problem, spec.params())  # Run pressed
while not job.progress.records and job.state not in ("done", "cancelled"):
    time.sleep(0.002)
first = time.perf_counter() - t_run
job.cancel()
queue.wait(900)
print(json.dumps({"first_progress_s": first, "page_s": t_page, "warm_s": t_warm,
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
            for i in range(repeats + (1 if figure == "yes" and domain == "ot" else 0)):
                floors.append(_floor(env))
                wall, out = _timed(argv + extra, env)
                obj = json.loads(out.strip().splitlines()[-1])
                if figure == "yes" and "figure" not in obj["artifacts"]:
                    raise RuntimeError(f"{domain}: no figure written")
                if figure == "yes" and domain == "ot" and i == 0:  # the renderer's cold start
                    rows.append(
                        {
                            "case": f"{domain}: {args[1]}",
                            "figure": "yes, renderer cold (starts Chromium)",
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


def bench_app(tmp: Path, floors: list[float], page: str = "ot") -> list[dict[str, Any]]:
    """Fresh server; home page then one domain page, each the first request of its session."""
    from playwright.sync_api import sync_playwright

    env = _env(tmp)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "wb")
    floors.append(_floor(env))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "streamlit", "run", "app.py", "--server.headless=true",
         "--server.address=127.0.0.1", f"--server.port={port}", "--server.fileWatcherType=none",
         "--browser.gatherUsageStats=false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    rows = []
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("streamlit did not start")
        rows.append({"step": "server start to health", "wall_s": time.perf_counter() - t0})
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
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
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


def bench_first_run(tmp: Path, floors: list[float], modes: list[str]) -> list[dict[str, Any]]:
    rows = []
    for domain, (solver, sample) in FIRST_RUN.items():
        for mode in modes:
            env = _env(tmp / f"first-{domain}-{mode}")
            floors.append(_floor(env))
            _, out = _timed([PY, "-c", FIRST_RUN_PROBE, domain, solver, sample, mode], env)
            obj = json.loads(out.strip().splitlines()[-1])
            rows.append(
                {
                    "page": domain,
                    "first run": f"{solver} on {sample}",
                    "warm-up": {
                        "cold": "none",
                        "early": "started, Run pressed at once",
                        "warm": "done",
                    }[mode],
                    "page_s": obj["page_s"],
                    "warm_s": obj["warm_s"] if mode == "warm" else None,
                    "first_progress_s": obj["first_progress_s"],
                }
            )
    return rows


# ---- report ------------------------------------------------------------------------------------


def _ratio(rows: list[dict[str, Any]], floor: float, keys: tuple[str, ...]) -> None:
    for r in rows:
        for k in keys:
            if isinstance(r.get(k), float):
                r[k.replace("_s", "") + " / floor"] = r[k] / floor


def render(cli, app, first, floor, n_floors, repeats) -> str:
    from workbench.bench import markdown_table

    out = [
        f'Floor: `python -c "import numpy"` = **{floor:.3f} s** (median of {n_floors} runs '
        "interleaved with those below). The machine was shared with other agents' jobs (2 cores): "
        "absolute seconds carry their load, the ratios to the floor less so.",
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
    if first:
        for r in first:
            r["met"] = "yes" if r["first_progress_s"] <= TARGET_FIRST_PROGRESS else "**miss**"
        _ratio(first, floor, ("first_progress_s",))
        out += [
            "### First run of a page: Run pressed to first progress report",
            "",
            "In a fresh process as the page does it (`JobQueue.submit`, first "
            "`Progress` record); the page shows it at its next poll (every 1 s). `page_s`: "
            "page open to sample built; `warm_s`: page open to warm-up done.",
            "",
            markdown_table(
                first,
                [
                    "page",
                    "first run",
                    "warm-up",
                    "page_s",
                    "warm_s",
                    "first_progress_s",
                    "first_progress / floor",
                    "met",
                ],
            ),  # fmt: skip
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench startup", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="1 repeat, cold and warm first runs")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="cli,app,first", help="comma-separated parts")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    parts = set(args.only.split(","))
    modes = ["cold", "warm"] if args.quick else ["cold", "early", "warm"]
    floors: list[float] = []
    with tempfile.TemporaryDirectory(prefix="wb-startup-") as d:
        tmp = Path(d)
        cli = bench_cli(tmp, repeats, floors) if "cli" in parts else []
        app = bench_app(tmp, floors) if "app" in parts else []
        first = bench_first_run(tmp, floors, modes) if "first" in parts else []
    floor = _med(floors)
    md = render(cli, app, first, floor, len(floors), repeats)
    if args.json:
        print(json.dumps({"floor_s": floor, "cli": cli, "app": app, "first_run": first}))
    else:
        print(md)
    if not args.no_write:
        from workbench.bench import write_section

        cmd = "workbench bench startup" + (" --quick" if args.quick else "")
        if args.only != "cli,app,first":
            cmd += f" --only {args.only}"
        write_section("Start-up", md, cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
