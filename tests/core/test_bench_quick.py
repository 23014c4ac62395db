"""`make bench-quick` covers every domain, and every domain's benchmark takes --quick --check.

The CI gate (`.ci/run`: `make test`, then `make bench-quick`) runs
`workbench bench <domain> --quick --check` for each name in the Makefile's DOMAINS; these tests
keep that list equal to the registered domains and check that each script's own argument parser
accepts both flags (so the gate cannot fail on a usage error instead of a correctness check).
"""

from __future__ import annotations

import argparse
import re
import runpy
from pathlib import Path

import pytest

from workbench import registry

ROOT = Path(__file__).resolve().parents[2]


def _make_var(name: str) -> list[str]:
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{name}\s*\?=\s*(.*)$", text, re.M)
    assert m, f"Makefile has no {name}"
    return m.group(1).split()


def test_make_bench_quick_covers_every_domain_and_runs_in_ci():
    assert sorted(_make_var("DOMAINS")) == sorted(registry.domain_names())
    text = (ROOT / "Makefile").read_text()
    rule = text[text.index("\nbench-quick:") :]
    rule = rule[: rule.index("\n\n")]
    assert "for d in $(DOMAINS)" in rule and "--quick --check" in rule and "exit" in rule
    steps = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert steps.index("make bench-quick") > steps.index("make test")


def test_make_bench_names_a_script_for_every_section():
    """`make bench` regenerates the file: every part it names has a script, and each section of
    BENCHMARKS.md is written by one of the scripts it runs (gpu.py excepted: needs a GPU)."""
    runs = _make_var("DOMAINS") + _make_var("BENCH_PARTS")
    scripts = {n: ROOT / "benchmarks" / f"{n}.py" for n in runs}
    assert all(p.exists() for p in scripts.values()), scripts
    titles = set()
    for p in scripts.values():
        src = p.read_text()
        titles |= set(re.findall(r'write_section\(\s*"([^"]+)"', src))
        titles |= set(re.findall(r'\(\s*"([^"]+)",\s*\[r for r in', src))  # pde's two tables
    sections = re.findall(r"^## (.+)$", (ROOT / "BENCHMARKS.md").read_text(), re.M)
    # sections written under a computed title are matched by their script's literal prefix
    missing = [s for s in sections if s not in titles and not any(s.startswith(t) for t in titles)]
    assert not missing, f"sections no `make bench` script writes: {missing}"


class _Built(Exception):
    def __init__(self, parser):
        self.parser = parser


def _parser_of(script: Path, monkeypatch) -> argparse.ArgumentParser:
    """The script's argument parser, captured at its ``parse_args`` call (nothing else runs)."""

    def capture(self, *a, **k):
        raise _Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    mod = runpy.run_path(str(script), run_name="workbench_bench")
    with pytest.raises(_Built) as got:
        mod["main"]([])
    return got.value.parser


@pytest.mark.parametrize("domain", _make_var("DOMAINS"))
def test_domain_benchmark_accepts_quick_and_check(domain, monkeypatch):
    parser = _parser_of(ROOT / "benchmarks" / f"{domain}.py", monkeypatch)
    ns, extra = parser.parse_known_args(["--quick", "--check"])
    assert extra == [] and ns.quick is True and ns.check is True
