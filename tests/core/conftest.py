import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy(monkeypatch):
    """Registry holding only the toy domain and solver."""
    import workbench.datasets as ds
    import workbench.solvers as sv
    from workbench import registry

    monkeypatch.setattr(ds, "DOMAIN_MODULES", ["toy"])
    monkeypatch.setattr(sv, "SOLVER_MODULES", ["toy"])
    registry._solver_specs.cache_clear()
    registry._domain_specs.cache_clear()
    import toy as toy_module

    yield toy_module
    registry._solver_specs.cache_clear()
    registry._domain_specs.cache_clear()
