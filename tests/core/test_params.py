from dataclasses import dataclass

import pytest

from workbench.errors import InputError
from workbench.registry import param, params_schema, parse_params


@dataclass(frozen=True)
class P:
    max_iter: int = param(100, "iterations", min=1, max=1000)
    reg: float = param(1e-3, "regularisation", min=0.0, log=True)
    method: str = param("a", "method", choices=("a", "b"))
    jacobi: bool = param(False, "preconditioner")
    budget: int | None = param(None, "optional budget")


def test_defaults_and_coercion():
    p = parse_params(
        P, {"max_iter": "7", "reg": "2e-4", "method": "b", "jacobi": "true", "budget": "none"}
    )
    assert p == P(max_iter=7, reg=2e-4, method="b", jacobi=True, budget=None)
    assert parse_params(P, {"max_iter": "1e2"}).max_iter == 100


@pytest.mark.parametrize(
    "values, words",
    [
        ({"max_iter": "0"}, "below its minimum"),
        ({"max_iter": "5000"}, "above its maximum"),
        ({"reg": "nan"}, "finite"),
        ({"method": "c"}, "not one of"),
        ({"jacobi": "maybe"}, "cannot read"),
        ({"max_iter": "1.5"}, "cannot read"),
        ({"nope": "1"}, "unknown parameter"),
    ],
)
def test_rejections(values, words):
    with pytest.raises(InputError, match=words):
        parse_params(P, values)


def test_schema():
    s = {d["name"]: d for d in params_schema(P)}
    assert s["max_iter"]["type"] == "int" and s["max_iter"]["min"] == 1
    assert s["method"]["choices"] == ["a", "b"]
    assert s["budget"]["optional"] and s["budget"]["type"] == "int"
    assert s["reg"]["log"]
