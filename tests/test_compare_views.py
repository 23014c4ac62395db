"""Every domain's Compare view draws two real runs of one problem side by side."""

import dataclasses

import plotly.graph_objects as go
import pytest

from workbench import registry
from workbench.viz.common import compare_figure as generic

PAIRS = {
    "ot": ("sinkhorn", "emd"),
    "mri": ("zero_filled", "cg_sense"),
    "tumor": ("db_lookup", "db_lookup_fast"),
    "eels": ("pca_recon", "pca_t2"),
    "pde": ("reference", "gp_se"),
}


def _quick(spec):
    fields = {f.name: f for f in dataclasses.fields(spec.Params)}
    kw = {"max_iter": min(fields["max_iter"].default, 4)} if "max_iter" in fields else {}
    return spec.params(kw)


@pytest.mark.parametrize("domain", list(PAIRS))
def test_compare_view(domain):
    dom = registry.get_domain(domain)
    problem = dom.sample(dom.samples[0].name)
    labelled = []
    for name in PAIRS[domain]:
        spec = registry.get_solver(domain, name)
        result = spec.solve(problem, _quick(spec), None)
        assert result.status != "failed", result.message
        labelled.append((name, result))
    if dom.compare_figure:
        fig = registry.resolve(dom.compare_figure)(problem, labelled)
    else:
        fig = generic({label: r.output for label, r in labelled})
    assert isinstance(fig, go.Figure)
    assert len(fig.data) >= 2
