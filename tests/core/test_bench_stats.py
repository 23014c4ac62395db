"""The benchmark statistics helpers: seeded, covering, paired."""

import numpy as np
import pytest

from workbench.bench import CheckFailed, bootstrap_ci, check, fmt_ci, paired_bootstrap


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(3).normal(5.0, 1.0, 40)
    lo, hi = bootstrap_ci(x)
    assert (lo, hi) == bootstrap_ci(x)
    assert lo < x.mean() < hi
    # about 2 * 1.96 / sqrt(40) ~ 0.62 wide
    assert 0.4 < hi - lo < 0.9


def test_bootstrap_ci_needs_two_finite_values():
    assert all(np.isnan(bootstrap_ci([1.0, np.nan])))


def test_paired_bootstrap_sees_a_planted_difference():
    rng = np.random.default_rng(0)
    b = rng.normal(30.0, 3.0, 30)  # large spread between cases ...
    a = b + 0.5 + rng.normal(0, 0.1, 30)  # ... a small, consistent gain
    r = paired_bootstrap(a, b)
    assert r["lo"] > 0.3 and r["hi"] < 0.7 and r["p_better"] == 1.0 and r["n"] == 30


def test_fmt_ci_and_check():
    assert fmt_ci(31.2, 30.85, 31.61) == "31.20 [30.85, 31.61]"
    check(True, "fine")
    with pytest.raises(CheckFailed, match="not converged"):
        check(False, "not converged")


def test_write_section_replaces_its_own_and_drops_superseded_partial_sections(tmp_path):
    from workbench.bench import write_section

    md = tmp_path / "B.md"
    md.write_text(
        "# Benchmarks\n\n## PDE\n\nold main rows\n\n## PDE: rerun of GP1\n\nold GP1 rerun\n\n"
        "## PDE: RGNP\n\nkept\n\n## PDE: rerun of GP2\n\nold GP2 rerun\n"
    )
    write_section("PDE", "new main rows", "workbench bench pde", md, supersedes=("PDE: rerun of ",))
    text = md.read_text()
    assert "new main rows" in text and "old main rows" not in text
    assert "rerun of" not in text  # both partial sections went, with their bodies
    assert "## PDE: RGNP\n\nkept" in text  # a section it does not supersede stays
    assert text.count("## PDE\n") == 1
    # a partial run writes its own section and leaves the others alone
    write_section("PDE: rerun of GP1", "gp1 again", "workbench bench pde --only GP1", md)
    assert "gp1 again" in md.read_text() and "new main rows" in md.read_text()
