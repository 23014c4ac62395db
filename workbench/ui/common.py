"""Widgets shared by every page. All numerics live below this layer."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
import streamlit as st

from workbench import registry
from workbench.errors import InputError, name_once, without_name
from workbench.export import DATA_FORMATS, FIGURE_FORMATS, MIME, data_bytes, figure_bytes
from workbench.jobs import Job, JobQueue
from workbench.store import RunInfo, RunStore
from workbench.viz.common import convergence_figure, history_keys

UPLOAD_LIMIT_MB = int(os.environ.get("WORKBENCH_MAX_UPLOAD_MB", "1024"))


# ---- shared resources --------------------------------------------------------------------------


@st.cache_resource
def _store(home: str) -> RunStore:
    return RunStore(home)


def store() -> RunStore:
    """The run store under ``WORKBENCH_HOME`` (one per home, shared by every session)."""
    from workbench.store import default_home

    return _store(str(default_home()))


def jobs_backend() -> str:
    """Where the app's runs execute: ``"process"`` (default; a worker process, so a CPU-bound
    solver never holds the server's GIL and every page stays responsive) or ``"thread"``
    (``WORKBENCH_JOBS=thread``: a thread of the server, as before)."""
    backend = os.environ.get("WORKBENCH_JOBS", "process")
    return backend if backend in ("process", "thread") else "process"


@st.cache_resource
def _queue(home: str) -> JobQueue:
    workers = int(os.environ.get("WORKBENCH_WORKERS", "1"))
    return JobQueue(_store(home), workers=workers, backend=jobs_backend())


def job_queue() -> JobQueue:
    from workbench.store import default_home

    return _queue(str(default_home()))


@st.cache_resource(max_entries=32, show_spinner="Building the sample problem…")
def _sample(domain: str, name: str, options_json: str) -> Any:
    return registry.get_domain(domain).sample(name, **json.loads(options_json))


@st.cache_resource(max_entries=16, show_spinner="Reading the file…")
def _loaded(domain: str, digest: str, filename: str, options_json: str, _data: bytes) -> Any:
    return registry.get_domain(domain).load(_data, filename, **json.loads(options_json))


@st.cache_resource(max_entries=256)
def _result(home: str, run_id: str) -> Any:
    return _store(home).load_result(run_id)


@st.cache_resource(max_entries=32)
def _problem(home: str, problem_id: str) -> Any:
    return _store(home).load_problem(problem_id)


def load_result(run_id: str) -> Any:
    return _result(str(store().home), run_id)


def load_problem(problem_id: str) -> Any:
    return _problem(str(store().home), problem_id)


def setup(title: str = "Inverse Workbench") -> None:
    """Page config, and the imports that must not happen lazily in two threads at once.

    Call at the top of app.py. pandas is not safe to import concurrently: plotly picks it up
    from ``sys.modules`` half-initialised, and a solve starting its first import in the worker
    thread while the page drew a chart failed with "partially initialized module 'pandas'".
    Importing pandas and plotly here, in the script thread before any job can be queued, costs
    well under a second once per server. Everything else (torch, SciPy, POT, the solvers) is
    imported by the first run, or ahead of it by the page warm-up (:func:`warm_status`, in the
    worker process; ``WORKBENCH_WARMUP=0`` turns it off), not before the first paint.
    """
    st.set_page_config(page_title=title, page_icon=":material/biotech:", layout="wide")
    _preload()


@st.cache_resource(show_spinner="Loading the plotting libraries…")
def _preload() -> bool:
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401

    return True


WARM_POLL_S = 2.0


def _warmup_enabled() -> bool:
    # On by default with the process backend: the warm-up then runs in the worker process,
    # single-threaded, so no two threads import one package at once. With the thread backend it
    # stays opt-in (WORKBENCH_WARMUP=1): importing a package (POT, say) in a background thread
    # while another thread imports it can hand one of them a half-initialised module that then
    # stays broken ("module 'ot' has no attribute 'emd'", seen in CI).
    default = "1" if jobs_backend() == "process" else "0"
    return os.environ.get("WORKBENCH_WARMUP", default) == "1"


def _warmup(domain: str) -> Any:
    return job_queue().warm(domain)  # once per queue and domain


def warm_status(domain: str) -> None:
    """Start (once per server) the warm-up of what the domain's runs import, and show its
    progress until it is done, so that a first run starts iterating at once.

    The warm-up runs where the jobs run (:meth:`workbench.jobs.JobQueue.warm`: the worker
    process by default), so the page stays usable, and a run started before it ends simply
    starts after it. ``WORKBENCH_WARMUP=0`` turns it off.
    """
    if not _warmup_enabled():
        return
    w = _warmup(domain)
    if w.done.is_set():
        return

    # Poll slowly: every script run (a fragment's too) costs the server a pass over sys.modules,
    # which competes with the warm-up's imports for the interpreter (at 0.5 s the OT warm-up
    # took minutes instead of seconds on a busy machine).
    # When the warm-up ends the bar just goes. It used to rerun the whole page to stop this poll,
    # which replaced every widget under the user's pointer: a download clicked during that rerun
    # was lost. The poll now stops at the page's next rerun; until then it only returns.
    @st.fragment(run_every=WARM_POLL_S)
    def _status() -> None:
        if w.done.is_set():
            return
        total = w.progress.total or 1
        st.progress(
            min(1.0, w.progress.step / total),
            text=f"Preparing the solvers: {w.progress.step}/{total} modules"
            + (f" (loading {w.current})" if w.current else ""),
        )

    _status()


# ---- parameter forms ---------------------------------------------------------------------------


def params_form(cls: type, key: str, exclude: tuple[str, ...] = (), columns: int = 2) -> Any:
    """Widgets for a ``Params``/``Options`` dataclass; returns an instance, or None if invalid."""
    values: dict[str, Any] = {}
    schema = [p for p in registry.params_schema(cls) if p["name"] not in exclude]
    basic = [p for p in schema if not p["advanced"]]
    advanced = [p for p in schema if p["advanced"]]
    cols = st.columns(columns) if basic else []
    for i, p in enumerate(basic):
        with cols[i % columns]:
            values[p["name"]] = _widget(p, f"{key}.{p['name']}")
    if advanced:
        with st.expander("Advanced"):
            for p in advanced:
                values[p["name"]] = _widget(p, f"{key}.{p['name']}")
    try:
        return registry.parse_params(cls, values)
    except InputError as exc:
        st.error(str(exc))
        return None


def _widget(p: dict[str, Any], key: str) -> Any:
    label, help_, default = p["label"], p["help"] or None, p["default"]
    if p.get("files"):  # never a typed server path: the files on offer, in a list
        opts = registry.file_options(p)
        return st.selectbox(
            label,
            opts,
            index=opts.index(default) if default in opts else 0,
            key=key,
            help=help_,
            format_func=lambda v: v or "(bundled default)",
        )
    if p["choices"]:
        opts = list(p["choices"])
        return st.selectbox(
            label, opts, index=opts.index(default) if default in opts else 0, key=key, help=help_
        )
    if p["type"] == "bool":
        return st.checkbox(label, value=bool(default), key=key, help=help_)
    if p["type"] == "int":
        return st.number_input(
            label,
            value=None if default is None else int(default),
            min_value=None if p["min"] is None else int(p["min"]),
            max_value=None if p["max"] is None else int(p["max"]),
            step=1,
            key=key,
            help=help_,
        )
    if p["type"] == "float":
        if p["log"] or (default not in (None, 0) and abs(default) < 1e-3):
            text = st.text_input(
                label, value="" if default is None else f"{default:g}", key=key, help=help_
            )
            return text  # parsed (and bounds-checked) by parse_params
        return st.number_input(
            label,
            value=None if default is None else float(default),
            min_value=None if p["min"] is None else float(p["min"]),
            max_value=None if p["max"] is None else float(p["max"]),
            format="%g",
            key=key,
            help=help_,
        )
    return st.text_input(label, value="" if default is None else str(default), key=key, help=help_)


# ---- problems ----------------------------------------------------------------------------------


def problem_picker(
    domain: str, key: str | None = None, options: dict[str, Any] | None = None
) -> Any:
    """Choose a bundled sample or upload a file; returns the Problem (or None with a message)."""
    if _warmup_enabled():
        _warmup(domain)  # start warming the runs' imports now, while the sample is being built
    dom = registry.get_domain(domain)
    key = key or f"wb.{domain}.picker"
    options = options or {}
    opts_json = json.dumps(options, sort_keys=True, default=str)
    sources = ["Sample"] + (["Upload"] if dom.load is not None else [])
    source = st.radio(
        "Problem", sources, horizontal=True, key=f"{key}.source", label_visibility="collapsed"
    )
    if source == "Sample":
        names = dom.sample_names()
        desc = {s.name: s.description for s in dom.samples}
        name = st.selectbox(
            "Sample problem", names, key=f"{key}.sample", format_func=lambda n: f"{n} — {desc[n]}"
        )
        try:
            return _sample(domain, name, opts_json)
        except InputError as exc:
            st.error(str(exc))
            return None
    # No ``type=`` filter: the browser's refusal of a wrong extension was a red chip with no
    # text that left the previous file's error on screen. The loader refuses it in one line.
    upload = st.file_uploader(
        f"Your file ({', '.join('.' + t for t in dom.upload_types)}; at most {UPLOAD_LIMIT_MB} MB)",
        key=f"{key}.upload",
    )
    batch_panel(domain, f"{key}.batch", options)  # below the one-file uploader, the usual case
    if upload is None:
        st.info("Upload a file to use your own data.")
        return None
    data = upload.getvalue()
    if len(data) > UPLOAD_LIMIT_MB * 2**20:
        st.error(f"{upload.name} is larger than {UPLOAD_LIMIT_MB} MB.")
        return None
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    try:
        return _loaded(domain, digest, upload.name, opts_json, data)
    except InputError as exc:
        st.error(name_once(upload.name, str(exc)))  # readers usually name the file already
    except Exception as exc:  # an unexpected reader error still must not crash the page
        st.error(f"{upload.name} could not be read: {type(exc).__name__}: {exc}")
    return None


@st.cache_resource
def _batches(home: str) -> dict[str, dict[str, Any]]:
    """Batches queued from the pages (shared by the sessions of one server), by id."""
    return {}


def _start_batch(domain, solver, items, params, options, workers, label) -> str:
    """Run :func:`workbench.batch.run_batch` in a background thread; returns the batch id.

    The thread only updates a plain dict (never streamlit); the page polls it."""
    import threading
    import uuid

    from workbench.batch import run_batch
    from workbench.store import default_home

    bid = uuid.uuid4().hex[:8]
    state: dict[str, Any] = {
        "domain": domain, "solver": solver, "done": 0, "total": len(items), "summary": None,
        "error": None, "started": time.time(),
    }  # fmt: skip
    _batches(str(default_home()))[bid] = state

    def progress(task, done, total) -> None:
        state["done"] = done

    def work() -> None:
        try:
            state["summary"] = run_batch(
                domain, solver, items, {**options, **params}, workers=workers, store=store(),
                label=label, progress=progress,
            ).as_dict()  # fmt: skip
        except Exception as exc:  # InputError or a cluster that would not start: shown, not raised
            state["error"] = f"{type(exc).__name__}: {exc}"

    threading.Thread(target=work, name=f"wb-batch-{bid}", daemon=True).start()
    return bid


def batch_panel(domain: str, key: str, options: dict[str, Any] | None = None) -> None:
    """Upload several files and queue them as a batch: one run per file, on Dask workers
    (``workbench batch`` on the page). The runs land in the run store (see **Runs**)."""
    from workbench.store import default_home

    dom = registry.get_domain(domain)
    with st.expander("Batch: one run per file (several files)", expanded=False):
        files = st.file_uploader(
            f"Files ({', '.join('.' + t for t in dom.upload_types)})", accept_multiple_files=True,
            key=f"{key}.files",
        )  # fmt: skip
        specs = registry.solvers(domain)
        name = st.selectbox(
            "Solver", [s.name for s in specs], key=f"{key}.solver",
            format_func={s.name: s.title for s in specs}.get,
        )  # fmt: skip
        spec = registry.get_solver(domain, name)
        params = params_form(spec.Params, f"{key}.{name}")
        workers = st.number_input(
            "Worker processes (1 = in the server process)", 1, max(1, os.cpu_count() or 1), 1,
            key=f"{key}.workers",
        )  # fmt: skip
        if st.button("Queue batch", disabled=not files or params is None, key=f"{key}.go"):
            items = []
            for f in files:
                data = f.getvalue()
                big = len(data) > UPLOAD_LIMIT_MB * 2**20
                items.append(
                    (f.name, InputError(f"larger than {UPLOAD_LIMIT_MB} MB") if big else data)
                )
            bid = _start_batch(
                domain, name, items, dataclasses.asdict(params), dict(options or {}),
                int(workers), "",
            )  # fmt: skip
            st.session_state[f"{key}.ids"] = [*st.session_state.get(f"{key}.ids", []), bid]
        ids = st.session_state.get(f"{key}.ids", [])
        if ids:
            batches = _batches(str(default_home()))
            polling = any(batches.get(b, {}).get("summary") is None for b in ids)

            @st.fragment(run_every=1.0 if polling else None)
            def _watch() -> None:
                for b in ids:
                    stt = batches.get(b)
                    if stt is None:
                        continue
                    head = f"{stt['solver']} on {stt['total']} file(s)"
                    if stt["error"]:
                        st.error(f"{head}: {stt['error']}")
                    elif stt["summary"] is None:
                        st.progress(stt["done"] / max(stt["total"], 1), text=head)
                    else:
                        sm = stt["summary"]
                        st.success(f"{head}: {len(sm['runs'])} run(s), {len(sm['failed'])} failed")
                        rows = [
                            {k: t[k] for k in ("file", "status", "run_id", "reason")}
                            for t in sm["tasks"]
                        ]
                        for r in rows:  # the file has its own column: say its name once
                            r["reason"] = without_name(r["file"], r["reason"] or "")
                        st.dataframe(rows, key=f"{key}.table.{b}")

            _watch()


def options_form(
    domain: str, key: str | None = None, exclude: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Widgets for the domain's problem-building ``Options``; returns them as a dict."""
    dom = registry.get_domain(domain)
    if dom.Options is None:
        return {}
    inst = params_form(dom.Options, key or f"wb.{domain}.options", exclude=exclude)
    return dataclasses.asdict(inst) if inst is not None else {}


# ---- running -----------------------------------------------------------------------------------


def solver_panel(
    domain: str, problem: Any, key: str | None = None, default: list[str] | None = None
) -> None:
    """Pick solvers, set their parameters, queue runs and watch them live."""
    key = key or f"wb.{domain}.solve"
    warm_status(domain)
    specs = registry.solvers(domain)
    names = [s.name for s in specs]
    by_name = {s.name: s for s in specs}
    fmt = {s.name: (f"{s.title} ★" if s.paper else s.title) for s in specs}
    default = (
        default if default is not None else [s.name for s in specs if s.paper][:1] or names[:1]
    )
    chosen = st.multiselect(
        "Solvers",
        names,
        default=[d for d in default if d in names],
        format_func=fmt.get,
        key=f"{key}.chosen",
    )
    params: dict[str, Any] = {}
    for name in chosen:
        spec = by_name[name]
        with st.expander(f"{spec.title} — parameters", expanded=False):
            if spec.description:
                st.caption(spec.description + (f"  \n_{spec.reference}_" if spec.reference else ""))
            params[name] = params_form(spec.Params, f"{key}.{name}")
    label = st.text_input("Run label (optional)", key=f"{key}.label")
    ready = chosen and all(params[n] is not None for n in chosen)
    if st.button(
        "Run", type="primary", disabled=not ready, key=f"{key}.run", icon=":material/play_arrow:"
    ):
        queue = job_queue()
        check = registry.get_domain(domain).check
        queued = 0
        for name in chosen:
            try:  # parameters that do not fit the data are refused before a run is stored
                if check is not None:
                    check(problem, by_name[name], params[name])
            except InputError as exc:
                st.error(str(exc))
                continue
            queue.submit(by_name[name], problem, params[name], label=label or "")
            queued += 1
        if queued:
            st.toast(f"Queued {queued} run(s)")
    run_monitor(problem.id, key)


def run_monitor(problem_id: str, key: str) -> None:
    """Live progress of this problem's jobs (polled every second in a fragment).

    The page is redrawn whenever the number of stored runs of the problem differs from the
    number the page's result views last read (:func:`finished_runs` records it), which is
    idempotent, unlike reacting once to a job's end. Comparing with what the views read, not
    with a count taken here, matters when a page reads its runs *before* the Run button: a
    fast run (PCA) finished between the two reads and was never drawn until a reload.
    The fragment polls only while this problem has queued or running jobs: an idle page does
    not tick, and a full redraw is never overlapped by fragment runs once the jobs are done
    (overlapping ticks left the browser showing the previous full run's elements).
    """
    count_key = _drawn_key(problem_id)
    if count_key not in st.session_state:  # a page that shows no stored runs
        st.session_state[count_key] = len(store().list(problem_id=problem_id))
    polling = bool(job_queue().active(problem_id))

    @st.fragment(run_every=1.0 if polling else None)
    def _monitor() -> None:
        queue = job_queue()
        active = queue.active(problem_id)
        if active:
            st.markdown("**Running**")
            histories = {}
            for job in active:
                _job_row(job, key)
                _job_preview(job)
                recs = job.progress.snapshot()
                if recs:
                    cols = {k for r in recs for k in r}
                    histories[job.title] = {c: [r.get(c, np.nan) for r in recs] for c in cols}
            ykeys = history_keys(list(histories.values()))
            ykeys = sorted(ykeys, key=lambda k: curve_rank(active[0].spec.domain, k))
            if ykeys:
                y = ykeys[0]
                fig = convergence_figure(
                    histories,
                    y=y,
                    x="t",
                    log_y=_positive(histories, y),
                    title=f"live: {curve_label(y)}",
                )
                fig.update_layout(height=300)
                chart(fig, key=f"{key}.live")
        for job in queue.jobs(problem_id):
            if job.error:  # the solver refused the input: nothing was stored, say why
                st.error(f"{job.title}: {job.error}")
                if st.button("Dismiss", key=f"{key}.dismiss.{job.id}"):
                    queue.forget(job.id)
                    st.rerun()
            if job.state in ("done", "cancelled") and time.time() - job.submitted > 600:
                queue.forget(job.id)  # keep the shared queue small; the store has the run
        stored = len(store().list(problem_id=problem_id))
        if stored != st.session_state.get(count_key):
            # once per change, even on a page whose views do not record what they read
            st.session_state[count_key] = stored
            st.rerun()  # the whole page: result views pick up the newly stored runs
        if polling and not active:
            st.rerun()  # the jobs ended (refused, cancelled while queued): stop the ticking

    _monitor()


def _positive(histories: dict, y: str) -> bool:
    vals = [v for h in histories.values() for v in h.get(y, []) if v == v]
    return bool(vals) and min(vals) > 0


def _job_preview(job: Job) -> None:
    """The current estimate a solver reported as ``preview`` (a 2-D image), e.g. a diffusion
    sampler's x̂₀ at the latest step, scaled to [0, 1] for display."""
    img = job.progress.preview
    if img is None:
        return
    img = np.abs(np.asarray(img, dtype=np.float64))
    if img.ndim != 2 or not np.all(np.isfinite(img)):
        return
    top = float(img.max()) or 1.0
    st.image(img / top, caption=f"{job.title}: current estimate", width=220, clamp=True)


def _job_row(job: Job, key: str) -> None:
    c1, c2, c3 = st.columns([3, 6, 1])
    last = job.progress.snapshot()[-1:] or [{}]
    shown = ", ".join(f"{k}={v:.3g}" for k, v in last[0].items() if k not in ("step", "t"))
    c1.markdown(f"{job.title} — _{job.state}_")
    total = job.progress.total
    text = f"step {job.progress.step}/{total}" if total else f"step {job.progress.step}"
    if job.state == "queued" and not job.progress.phase:
        text = "queued (waiting for the run before it)"
    elif job.progress.phase:  # before the first step (or a warm-up import): not "step 0"
        text = f"{job.progress.phase}… {time.time() - job.submitted:.0f} s"
    c2.progress(job.progress.fraction, text=f"{text}  {shown}")
    if c3.button("Cancel", key=f"{key}.cancel.{job.id}"):
        job.cancel()


# ---- results -----------------------------------------------------------------------------------

VERDICT_COLOURS = {
    "converged": "green",
    "by_design": "blue",
    "at_limit": "orange",
    "suspect": "red",
    "cancelled": "gray",
    "failed": "red",
}
VERDICT_ICONS = {
    "converged": ":material/check_circle:",
    "by_design": ":material/flag:",
    "at_limit": ":material/hourglass_bottom:",
    "suspect": ":material/warning:",
    "cancelled": ":material/block:",
    "failed": ":material/error:",
}


def run_verdict(info: RunInfo, result: Any = None) -> tuple[str, str, str]:
    """``(code, label, reason)`` of a stored run's verdict (computed by the package when the run
    was stored; runs stored before verdicts existed read "not judged")."""
    from workbench.result import VERDICTS

    code, reason = info.verdict, info.verdict_reason
    if not code and result is not None:
        v = (getattr(result, "meta", None) or {}).get("verdict") or {}
        code, reason = v.get("code", ""), v.get("reason", "")
    return code, VERDICTS.get(code, "not judged"), reason


def verdict_badge(info: RunInfo, result: Any = None, title: bool = False) -> None:
    """The run's verdict as a coloured badge, its reason as hover help (and the run's title)."""
    code, label, reason = run_verdict(info, result)
    text = f"{info.title}: {label}" if title else label
    st.badge(
        text,
        icon=VERDICT_ICONS.get(code),
        color=VERDICT_COLOURS.get(code, "gray"),
        help=reason or None,
    )


def verdict_badges(runs: list[tuple[RunInfo, Any]]) -> None:
    """One badge per run in a wrapping row, and the reasons of the suspect ones spelt out."""
    if not runs:
        return
    row = st.container(horizontal=True, wrap=True, gap="small", key=None)
    with row:
        for info, result in runs:
            verdict_badge(info, result, title=True)
    for info, result in runs:
        code, _, reason = run_verdict(info, result)
        if code == "suspect":
            st.warning(f"**{info.title}** is suspect: {reason}", icon=":material/warning:")


# characters of st.metric's large value that fit one of n columns at the page's width: 44 / n
_METRIC_CHARS = 44


def facts(items: list[tuple | None]) -> None:
    """A row of facts about a problem, one column each: (label, value) or (label, value, help);
    None leaves its column empty. st.metric cuts a value too long for its column to
    "sqeuclid..."; such a value is shown as its label over the value in bold, which wraps."""
    cols = st.columns(len(items))
    fit = _METRIC_CHARS // len(items)
    for col, item in zip(cols, items, strict=True):
        if item is None:
            continue
        label, value, help_ = (*item, None)[:3]
        value = str(value)
        if len(value) <= fit:
            col.metric(label, value, help=help_)
        else:
            col.caption(label, help=help_)
            col.markdown(f"**{value}**")


def number_columns(rows: list[dict[str, Any]], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Column configs that show every float column in a short scientific-style format (%.4g):
    never 16 digits, never "0.00000000000005"."""
    floats = {
        k
        for r in rows
        for k, v in r.items()
        if k not in skip and isinstance(v, float) and not isinstance(v, bool)
    }
    return {k: st.column_config.NumberColumn(k, format="%.4g") for k in floats}


def table(rows: list[dict[str, Any]], **kw: Any) -> Any:
    """``st.dataframe`` of plain rows with :func:`number_columns` applied."""
    config = {**number_columns(rows), **kw.pop("column_config", {})}
    kw.setdefault("hide_index", True)
    kw.setdefault("width", "stretch")
    return st.dataframe(rows, column_config=config, **kw)


def _drawn_key(problem_id: str) -> str:
    return f"wb.drawn_runs.{problem_id}"


def finished_runs(problem_id: str, include_failed: bool = False) -> list[tuple[RunInfo, Any]]:
    """Stored runs of a problem, newest first, with their Results.

    Records how many runs it read, so that :func:`run_monitor` redraws the page as soon as the
    store holds another one."""
    out = []
    infos = store().list(problem_id=problem_id)
    st.session_state[_drawn_key(problem_id)] = len(infos)
    for info in infos:
        if info.status == "failed" and not include_failed:
            continue
        try:
            out.append((info, load_result(info.run_id)))
        except (OSError, KeyError, ValueError):
            continue  # artifact removed under us: skip, the index row tells the story
    return out


def pick_runs(
    runs: list[tuple[RunInfo, Any]], key: str, max_default: int = 4
) -> list[tuple[RunInfo, Any]]:
    """Multiselect over runs (newest first), defaulting to the latest run of each solver."""
    if not runs:
        return []
    ids = [info.run_id for info, _ in runs]
    labels = {
        info.run_id: f"{info.title} ({run_verdict(info, r)[1]}, "
        f"{time.strftime('%H:%M:%S', time.localtime(info.created))})"
        for info, r in runs
    }
    latest: dict[str, str] = {}
    for info, _ in runs:
        latest.setdefault(info.solver, info.run_id)
    default = list(latest.values())[:max_default]
    # When the set of stored runs changes (a run finished, one was deleted), reset the selection
    # to the default through session_state, before the widget is drawn: a widget keeps its
    # previous value otherwise, which would hide a newly finished run.
    known_key = f"{key}.known"
    preselect = st.session_state.pop(f"{key}.preselect", None)  # set by the Runs page
    if preselect:
        st.session_state[known_key] = ids
        st.session_state[key] = [i for i in preselect if i in ids] or default
    elif st.session_state.get(known_key) != ids:
        st.session_state[known_key] = ids
        st.session_state[key] = default
    else:
        st.session_state[key] = [i for i in st.session_state.get(key, default) if i in ids]
    chosen = st.multiselect("Runs to compare", ids, format_func=labels.get, key=key)
    picked = [r for r in runs if r[0].run_id in chosen]
    verdict_badges(picked)
    return picked


def chart(fig: Any, key: str, **kwargs: Any) -> Any:
    """``st.plotly_chart`` in the workbench figure style, with Streamlit's theme off
    (``theme=None``): the theme would replace the figure's template and colour scales, so the
    page would no longer look like the exported file."""
    from workbench.viz.style import page_width, style

    fig = style(fig)
    kwargs.setdefault("width", page_width(fig) or "stretch")
    return st.plotly_chart(fig, key=key, theme=None, **kwargs)


def show_figure(fig: Any, basename: str, key: str) -> None:
    """A plotly chart with PNG/SVG/PDF downloads under it."""
    chart(fig, key=f"{key}.chart")
    download_figure(fig, basename, key)


def download_row() -> Any:
    """A row for download buttons that never cuts their labels: each button is as wide as its
    label and the row wraps onto a new line when the column is too narrow."""
    return st.container(horizontal=True, wrap=True, gap="small")


def download_figure(fig: Any, basename: str, key: str) -> None:
    """PNG, SVG and PDF buttons; each renders through kaleido only when clicked.

    The buttons sit in a wrapping row at their own width: in equal columns inside a two-column
    view they were cut to "P." "S." "P.".
    """
    row = download_row()
    for fmt in FIGURE_FORMATS:
        row.download_button(
            fmt.upper(),
            data=lambda fmt=fmt: figure_bytes(fig, fmt),
            file_name=f"{basename}.{fmt}",
            mime=MIME[fmt],
            key=f"{key}.dl.{fmt}",
            on_click="ignore",
            icon=":material/download:",
        )


def download_arrays(
    arrays: dict[str, Any], basename: str, key: str, primary: str = "output"
) -> None:
    """NPZ, HDF5 and CSV (the primary array when it is 1-D or 2-D) buttons."""
    fmts = [f for f in DATA_FORMATS if f != "csv" or np.asarray(arrays.get(primary)).ndim in (1, 2)]
    row = download_row()
    for fmt in fmts:
        row.download_button(
            fmt.upper(),
            data=lambda fmt=fmt: data_bytes(arrays, fmt, primary=primary),
            file_name=f"{basename}.{fmt}",
            mime=MIME[fmt],
            key=f"{key}.dl.{fmt}",
            on_click="ignore",
            icon=":material/save:",
        )


@st.cache_resource(max_entries=16, show_spinner="Rendering the 3D view…")
def _rendered(scene_key: str, _scene: Any) -> dict[str, bytes]:
    return _scene.render(png=True, html=True)


def show_scene(scene: Any, key: str, height: int = 560, auto: bool = False) -> None:
    """An interactive vtk.js view of a 3D scene with PNG and HTML downloads.

    Rendering takes seconds, so it waits for a click unless ``auto``.
    """
    skey = scene.key()
    flag = f"{key}.render3d"
    if not auto and st.session_state.get(flag) != skey:
        if st.button("Show 3D view", key=f"{key}.btn3d", icon=":material/view_in_ar:"):
            st.session_state[flag] = skey
        else:
            return
    try:
        out = _rendered(skey, scene)
    except Exception as exc:
        st.error(f"3D view failed: {exc}")
        return
    from workbench.viz.three_d import with_png_fallback

    # the browser's WebGL may fail (the EELS volume drew blank): the guard shows the PNG then
    st.iframe(with_png_fallback(out["html"], out["png"]).decode(), height=height)
    row = download_row()
    row.download_button(
        "PNG",
        out["png"],
        file_name=f"{key.split('.')[-1]}-3d.png",
        mime="image/png",
        key=f"{key}.png3d",
        on_click="ignore",
    )
    row.download_button(
        "HTML",
        out["html"],
        file_name=f"{key.split('.')[-1]}-3d.html",
        mime="text/html",
        key=f"{key}.html3d",
        on_click="ignore",
    )


def metrics_table(runs: list[tuple[RunInfo, Any]], key: str) -> list[dict[str, Any]]:
    """The metrics table of several runs, with a CSV download."""
    from workbench.export import table_csv_bytes
    from workbench.viz.common import metrics_rows

    rows = metrics_rows(runs)
    for row, (info, result) in zip(rows, runs, strict=False):
        row["verdict"] = run_verdict(info, result)[1]
    order = ["run", "solver", "status", "verdict"]
    rows = [
        {**{k: r[k] for k in order if k in r}, **{k: v for k, v in r.items() if k not in order}}
        for r in rows
    ]
    table(rows)
    st.download_button(
        "Metrics CSV",
        table_csv_bytes(rows),
        file_name="metrics.csv",
        mime="text/csv",
        key=f"{key}.metrics_csv",
        on_click="ignore",
    )
    return rows


#: What the terse history columns of the solvers mean, for the curve picker.
CURVE_NAMES = {
    "e": "marginal error",
    "f": "dual objective",
    "df": "objective decrease",
    "evals": "forward-model evaluations",
    "rel_l2": "relative L2 error",
    "rel_l2_best": "best relative L2 error",
    "loss": "training loss",
    "loss_residual": "residual loss",
    "loss_boundary": "boundary loss",
    "psnr": "PSNR (dB)",
    "residual": "data residual ‖Ax − y‖",
    "norm_x": "‖x‖",
    "kept_fraction": "fraction of pixels kept",
    "best_score": "best Dice score",
    "best_dice_wt": "best Dice, whole tumour",
    "best_dice_tc": "best Dice, tumour core",
}

#: Curves that tell how a run went, best first; Compare opens on the first one present.
GOOD_CURVES = (
    "rel_l2",
    "psnr",
    "ssim",
    "best_score",
    "best_dice_wt",
    "loss",
    "e",
    "residual",
    "objective",
    "f",
)


def curve_label(key: str) -> str:
    name = CURVE_NAMES.get(key)
    return f"{name} ({key})" if name and name != key else key


def curve_rank(domain: str, key: str) -> tuple[int, int]:
    """Sort key of history columns: the domain's key metric first, then :data:`GOOD_CURVES`,
    the rest (counters such as ``evals``, step sizes) last, in their own order."""
    dom_key = registry.get_domain(domain).key_metric if domain in registry.domain_names() else None
    if key == dom_key:
        return (0, 0)
    if key in GOOD_CURVES:
        return (1, GOOD_CURVES.index(key))
    return (2, 0)


def convergence_panel(runs: list[tuple[RunInfo, Any]], key: str) -> None:
    """Overlaid convergence curves of several runs: pick the column and the x axis."""
    histories = {info.title: result.history for info, result in runs if result.history}
    ykeys = history_keys(list(histories.values()))
    if not ykeys:
        st.caption("These runs recorded no per-iteration history.")
        return
    domain = runs[0][0].domain
    ykeys = sorted(ykeys, key=lambda k: curve_rank(domain, k))
    c1, c2 = st.columns(2)
    y = c1.selectbox("Curve", ykeys, key=f"{key}.y", format_func=curve_label)
    x = c2.radio("Against", ["step", "time"], horizontal=True, key=f"{key}.x")
    fig = convergence_figure(histories, y=y, x=x, log_y=_positive(histories, y))
    show_figure(fig, f"convergence-{y}", f"{key}.conv")
