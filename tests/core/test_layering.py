"""The dependency rule of DESIGN.md, checked on the source."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module.split(".")[0])
    return mods


def test_streamlit_only_in_pages_and_ui():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "workbench").rglob("*.py")
        if "streamlit" in _imports(p) and "ui" not in p.relative_to(ROOT / "workbench").parts[:1]
    ]
    assert offenders == []


def test_pages_are_thin():
    numeric = {"numpy", "torch", "scipy", "ot", "sklearn"}
    pages = sorted((ROOT / "app_pages").glob("*.py"))
    assert len(pages) >= 8 and not (ROOT / "pages").exists()  # see workbench/ui/__init__.py
    for page in [ROOT / "app.py", *pages]:
        assert not (_imports(page) & numeric), f"{page.name} imports numerics"
        assert len(page.read_text().splitlines()) < 60, f"{page.name} is not thin"


def test_solvers_do_not_import_other_domains():
    solvers = ROOT / "workbench" / "solvers"
    for domain in [d for d in solvers.iterdir() if d.is_dir() and d.name != "__pycache__"]:
        others = {d.name for d in solvers.iterdir() if d.is_dir()} - {domain.name}
        for path in domain.rglob("*.py"):
            text = path.read_text()
            for other in others:
                assert f"workbench.solvers.{other}" not in text, f"{path} imports {other}"
