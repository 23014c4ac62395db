"""The Runs page: every stored run in a sortable, filterable table; select rows to compare or
export them, open one to see its verdict, metrics, parameters and figure."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import streamlit as st

from workbench import registry
from workbench.export import run_bundle, table_csv_bytes
from workbench.result import VERDICTS
from workbench.ui import PAGES_DIR, common

K = "wb.runs"


def _key_metric(domain: str, metrics: dict) -> tuple[str, float | None]:
    """The domain's key metric (name, value) of one run, or ("", None)."""
    try:
        name = registry.get_domain(domain).key_metric or ""
    except Exception:  # a run of a domain no longer registered
        return "", None
    v = metrics.get(name) if name else None
    return name, float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def rows_of(runs) -> list[dict]:
    """One table row per run (plain values: the table sorts them)."""
    rows = []
    for r in runs:
        name, value = _key_metric(r.domain, r.metrics)
        rows.append(
            {
                "started": dt.datetime.fromtimestamp(r.created),
                "domain": r.domain,
                "solver": r.solver,
                "problem": r.problem,
                "status": r.status,
                "verdict": r.verdict_label,
                "wall time (s)": r.wall_s,
                "key metric": name,
                "value": value,
                "iterations": r.iterations,
                "label": r.label,
                "run": r.run_id,
            }
        )
    return rows


def _bundles(store, run_ids: list[str], figures: bool = True) -> bytes:
    """One zip holding each selected run's bundle (``<run_id>.zip``) and the table as CSV."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for rid in run_ids:
            z.writestr(f"{rid}.zip", run_bundle(store, rid, figures=figures))
        z.writestr("runs.csv", table_csv_bytes(rows_of([store.get(rid) for rid in run_ids])))
    return buf.getvalue()


def render() -> None:
    st.title("Runs")
    store = common.store()
    domains = registry.domain_names()
    if not store.list(limit=1):
        st.info("No runs yet. Open a domain page, pick a sample and press Run.")
        return
    c1, c2, c3, c4, c5 = st.columns([2, 2, 2, 3, 3])
    domain = c1.selectbox("Domain", ["all", *domains], key=f"{K}.domain")
    solver_names = sorted({s.name for s in registry.solvers(None if domain == "all" else domain)})
    solver = c2.selectbox("Solver", ["all", *solver_names], key=f"{K}.solver")
    status = c3.selectbox(
        "Status", ["all", "converged", "max_iter", "cancelled", "failed"], key=f"{K}.status"
    )
    verdicts = c4.multiselect(
        "Verdict", [*VERDICTS.values(), "not judged"], key=f"{K}.verdicts", placeholder="any"
    )
    text = c5.text_input("Problem or label contains", key=f"{K}.text")
    runs = store.list(
        domain=None if domain == "all" else domain,
        solver=None if solver == "all" else solver,
        status=None if status == "all" else status,
    )
    if verdicts:
        runs = [r for r in runs if r.verdict_label in verdicts]
    if text:
        low = text.lower()
        runs = [r for r in runs if low in r.problem.lower() or low in r.label.lower()]
    st.caption(
        f"{len(runs)} run(s) in `{store.home}`. Click a column to sort; tick rows to compare "
        "or export them; the first ticked row opens below."
    )
    if not runs:
        st.info("No runs match these filters.")
        return
    rows = rows_of(runs)
    event = common.table(
        rows,
        key=f"{K}.table",
        on_select="rerun",
        selection_mode="multi-row",
        column_config={
            "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
            "wall time (s)": st.column_config.NumberColumn("wall time (s)", format="%.3g"),
            "value": st.column_config.NumberColumn("value", format="%.4g"),
        },
    )
    picked = [rows[i]["run"] for i in (event.selection.rows if event is not None else [])]
    _selection_actions(store, runs, picked)
    run_id = picked[0] if picked else None
    if run_id is None:
        ids = [r.run_id for r in runs]
        labels = {r.run_id: f"{r.title} · {r.problem} · {r.verdict_label}" for r in runs}
        run_id = st.selectbox("Open run", ids, format_func=labels.get, key=f"{K}.open")
    _detail(store, run_id)


def _selection_actions(store, runs, picked: list[str]) -> None:
    if not picked:
        return
    by_id = {r.run_id: r for r in runs}
    problems = {by_id[i].problem_id for i in picked}
    row = st.container(horizontal=True, wrap=True)
    same = len(problems) == 1
    if row.button(
        f"Compare the {len(picked)} selected",
        disabled=not same,
        help=None if same else "Compare shows runs of one problem: select runs of one problem",
        key=f"{K}.compare_sel",
        icon=":material/compare:",
    ):
        info = by_id[picked[0]]
        st.session_state["wb.compare.domain"] = info.domain
        st.session_state["wb.compare.problem"] = info.problem_id
        st.session_state[f"wb.compare.runs.{info.problem_id}.preselect"] = picked
        st.switch_page(str(PAGES_DIR / "compare.py"))
    row.download_button(
        f"Export the {len(picked)} selected (zip)",
        data=lambda: _bundles(store, picked),
        file_name="runs.zip",
        mime="application/zip",
        key=f"{K}.export_sel",
        on_click="ignore",
        icon=":material/archive:",
    )


def _kv_rows(d: dict) -> list[dict]:
    out = []
    for k, v in d.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append({"name": k, "value": float(v), "text": ""})
        else:
            out.append({"name": k, "value": None, "text": json.dumps(v, default=str)})
    return out


def _detail(store, run_id: str) -> None:
    info = store.get(run_id)
    st.subheader(f"{info.solver} on {info.problem}")
    common.verdict_badge(info)
    code, label, reason = common.run_verdict(info)
    if reason:
        (st.warning if code in ("suspect", "failed") else st.caption)(f"{label}: {reason}")
    wall = "–" if info.wall_s is None else f"{info.wall_s:.3g} s"
    st.markdown(f"**Status:** {info.status} · **Iterations:** {info.iterations} · **Wall:** {wall}")
    if info.message and info.message != reason:
        st.caption(info.message)
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Metrics**")
        common.table(
            _kv_rows(info.metrics),
            column_config={"text": st.column_config.TextColumn("vector / text")},
        )
    with c2:
        st.markdown("**Parameters**")
        common.table(_kv_rows(info.params))
        with st.expander("Versions"):
            common.table(_kv_rows(info.versions))
    if info.status != "failed":
        try:
            result = common.load_result(run_id)
            problem = common.load_problem(info.problem_id)
            fig = registry.resolve(registry.get_domain(info.domain).figure)(problem, result)
            common.show_figure(fig, f"{info.solver}-{run_id}", f"{K}.fig.{run_id}")
        except Exception as exc:
            st.error(f"Could not draw this run: {type(exc).__name__}: {exc}")
    row = st.container(horizontal=True, wrap=True)
    if row.button("Compare with its siblings", key=f"{K}.compare", icon=":material/compare:"):
        st.session_state["wb.compare.domain"] = info.domain
        st.session_state["wb.compare.problem"] = info.problem_id
        st.switch_page(str(PAGES_DIR / "compare.py"))
    row.download_button(
        "Run bundle (zip)",
        data=lambda: run_bundle(store, run_id),
        file_name=f"run-{run_id}.zip",
        mime="application/zip",
        key=f"{K}.bundle",
        on_click="ignore",
        icon=":material/archive:",
    )
    confirm = row.checkbox("Yes, delete this run", key=f"{K}.confirm.{run_id}")
    if row.button("Delete run", disabled=not confirm, key=f"{K}.delete", icon=":material/delete:"):
        store.delete(run_id)
        st.toast(f"Deleted {run_id}")
        st.rerun()
