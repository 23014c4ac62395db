"""The dependency rule of the README's architecture section, checked on the source's AST.

    pages → ui, cli → {solvers, datasets, io, viz, export, train, bench} → nets → physics → core

Every import counts, at module level or inside a function (a lazy import is still a dependency).
Besides the order of the layers: the core imports no domain code; io never imports datasets;
datasets, train, nets and physics never import solvers; a domain's solvers and a domain's physics
never import another domain's; only ui and the pages import streamlit; and the module graph inside
``workbench/`` has no cycles.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "workbench"

CORE = {"problems", "result", "progress", "registry", "store", "jobs", "errors", "device"}
MIDDLE = {"solvers", "datasets", "io", "viz", "export", "train", "bench", "batch"}
RANK = {"core": 0, "physics": 1, "nets": 2, "middle": 3, "top": 4, "pages": 5}
# Imports between packages of one layer that the rule forbids: (importer, imported).
FORBIDDEN_SIDEWAYS = {("io", "datasets"), ("datasets", "solvers"), ("train", "solvers")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def workbench_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports(path: Path, modules: dict[str, Path] | None = None) -> set[str]:
    """Absolute names of the ``workbench`` modules that ``path`` imports (relative ones resolved)."""
    modules = workbench_modules() if modules is None else modules
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the module pkg.sub when there is one
            found |= {
                f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
            }
    out = set()
    for mod in found:
        if mod != "workbench" and not mod.startswith("workbench."):
            continue
        while mod not in modules and "." in mod:
            mod = mod.rpartition(".")[0]
        if mod != name:
            out.add(mod)
    return out


def third_party(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module.split(".")[0])
    return mods


def package_of(module: str) -> str:
    """The package of a module for the rule: 'solvers', 'physics', 'registry', ... or 'pages'."""
    parts = module.split(".")
    if parts[0] != "workbench":
        return "pages"  # app.py, app_pages/*
    return parts[1] if len(parts) > 1 else "workbench"


def layer(module: str) -> str:
    pkg = package_of(module)
    if module == "workbench" or pkg in CORE:
        return "core"
    if pkg in ("physics", "nets"):
        return pkg
    if pkg in MIDDLE:
        return "middle"
    if pkg in ("ui", "cli"):
        return "top"
    if pkg == "pages":
        return "pages"
    raise AssertionError(f"{module}: not placed in any layer; add its package to the rule")


def domain_of(module: str, pkg: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == pkg else None


def violations(importer: str, imported: str) -> list[str]:
    """Why ``importer`` may not import ``imported`` (empty when it may)."""
    src, dst = layer(importer), layer(imported)
    why = []
    if RANK[dst] > RANK[src]:
        why.append(f"{src} layer imports the {dst} layer above it")
    if src == "core" and dst != "core":
        why.append("the core imports domain code")
    if src == "pages" and dst not in ("top", "core"):
        why.append("a page reaches past ui")
    if (package_of(importer), package_of(imported)) in FORBIDDEN_SIDEWAYS:
        why.append(f"{package_of(importer)} imports {package_of(imported)}")
    for pkg in ("solvers", "physics"):
        a, b = domain_of(importer, pkg), domain_of(imported, pkg)
        if a and b and a != b:
            why.append(f"{pkg} of {a} imports {pkg} of {b}")
    return why


def source_files() -> list[Path]:
    return [
        *sorted(PKG.rglob("*.py")),
        ROOT / "app.py",
        *sorted((ROOT / "app_pages").glob("*.py")),
        *sorted((ROOT / "benchmarks").glob("*.py")),
    ]


def as_module(path: Path) -> str:
    if (ROOT / "benchmarks") in path.parents:
        return "workbench.bench." + path.stem  # the benchmark scripts sit with bench
    return module_name(path)


def graph() -> dict[str, set[str]]:
    return {name: imports(p) for name, p in workbench_modules().items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


# ------------------------------------------------------------------------------------------------


def test_every_import_follows_the_layers():
    broken = [
        f"{as_module(p)} -> {dst}: {'; '.join(why)}"
        for p in source_files()
        for dst in sorted(imports(p))
        if (why := violations(as_module(p), dst))
    ]
    assert broken == [], "\n".join(broken)


def test_no_import_cycles_inside_workbench():
    found = cycles(graph())
    assert found == [], "\n".join("import cycle among: " + ", ".join(c) for c in found)


def test_streamlit_only_in_pages_and_ui():
    offenders = [
        as_module(p)
        for p in source_files()
        if "streamlit" in third_party(p) and layer(as_module(p)) not in ("top", "pages")
    ]
    assert offenders == []
    assert "streamlit" not in third_party(PKG / "cli.py")


def test_pages_are_thin():
    numeric = {"numpy", "torch", "scipy", "ot", "sklearn"}
    pages = sorted((ROOT / "app_pages").glob("*.py"))
    assert len(pages) >= 8 and not (ROOT / "pages").exists()  # see workbench/ui/__init__.py
    for page in [ROOT / "app.py", *pages]:
        assert not (third_party(page) & numeric), f"{page.name} imports numerics"
        assert len(page.read_text().splitlines()) < 60, f"{page.name} is not thin"


# --- the checker itself: each kind of violation is caught on a planted example ---------------


@pytest.mark.parametrize(
    ("importer", "imported", "reason"),
    [
        ("workbench.problems", "workbench.physics.mri.operators", "core imports domain code"),
        ("workbench.registry", "workbench.solvers", "core imports domain code"),
        ("workbench.physics.pde.compiled", "workbench.solvers.pde.reference", "layer above"),
        ("workbench.nets.mri_rvn", "workbench.solvers.mri.common", "layer above"),
        ("workbench.io.mri_npy", "workbench.datasets.mri", "io imports datasets"),
        ("workbench.datasets.eels", "workbench.solvers.eels.common", "datasets imports solvers"),
        ("workbench.train.mri_rvn", "workbench.solvers.mri.recurrentvarnet", "train imports"),
        ("workbench.solvers.pde.pinn", "workbench.solvers.ot.sinkhorn", "solvers of pde"),
        ("workbench.physics.eels.synth", "workbench.physics.mri.fft", "physics of eels"),
        ("workbench.solvers.ot.sinkhorn", "workbench.ui.common", "layer above"),
        ("pages", "workbench.solvers.ot.sinkhorn", "page reaches past ui"),
    ],
)
def test_checker_flags_each_kind_of_violation(importer, imported, reason):
    assert any(reason in why for why in violations(importer, imported))


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("workbench.solvers.mri.cg_sense", "workbench.physics.mri.operators"),
        ("workbench.train.mri_rvn", "workbench.nets.mri_rvn"),
        ("workbench.viz.eels", "workbench.solvers.eels.common"),
        ("workbench.datasets.mri", "workbench.io.mri_npy"),
        ("workbench.ui.mri", "workbench.solvers.mri.zero_filled"),
        ("workbench.physics.mri.coils", "workbench.errors"),
    ],
)
def test_checker_allows_the_rule(importer, imported):
    assert violations(importer, imported) == []


def test_checker_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "workbench"
    (pkg / "physics").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "physics/__init__.py": "",
        "physics/a.py": "def f():\n    from . import b\n",
        "physics/b.py": "from workbench.physics.a import f\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    global ROOT
    saved = ROOT
    try:
        ROOT = tmp_path
        mods = {module_name(p): p for p in pkg.rglob("*.py")}
        edges = {m: imports(p, mods) for m, p in mods.items()}
    finally:
        ROOT = saved
    assert edges["workbench.physics.a"] == {"workbench.physics.b"}
    assert cycles(edges) == [["workbench.physics.a", "workbench.physics.b"]]
