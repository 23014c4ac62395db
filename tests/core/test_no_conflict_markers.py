"""No tracked text file carries a merge's conflict markers.

BENCHMARKS.md was once committed with ``<<<<<<< ours`` / ``=======`` / ``>>>>>>> theirs`` lines
left from a merge of two branches that both appended sections; nothing else would have noticed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)
TEXT = (".py", ".md", ".toml", ".cfg", ".json", ".txt", ".yml", ".yaml", ".sh", "Makefile", "run")


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (an sdist): nothing to check
        return []
    return [ROOT / p for p in out.stdout.splitlines() if p.endswith(TEXT)]


def test_no_merge_conflict_markers():
    bad = []
    for p in _tracked():
        if not p.is_file():
            continue
        text = p.read_text(errors="replace")
        for m in MARKER.finditer(text):
            bad.append(f"{p.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}")
    assert not bad, f"merge conflict markers left in: {bad}"


def test_the_pattern_catches_a_planted_conflict():
    planted = "a\n<<<<<<< ours\nb\n=======\nc\n>>>>>>> theirs\n"
    assert len(MARKER.findall(planted)) == 3
    assert not MARKER.findall("## Title\n\n| a | b |\n|===|\n=== not a marker\n")
