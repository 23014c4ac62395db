import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy(monkeypatch):
    """Registry holding only the toy domain and solver (toy.py is its own catalog)."""
    from workbench import registry

    monkeypatch.setattr(registry, "_CATALOGS", {"solvers": [], "domains": []})
    registry.add_catalog(solvers="toy", domains="toy")
    import toy as toy_module

    yield toy_module
    registry._solver_specs.cache_clear()
    registry._domain_specs.cache_clear()
