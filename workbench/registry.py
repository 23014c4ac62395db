"""Solver and domain registration, and parameter dataclasses that build their own widgets.

Solvers are listed explicitly in catalogs -- :data:`workbench.solvers.SOLVER_MODULES` and
:data:`workbench.datasets.DOMAIN_MODULES` for the built-in ones, named by :func:`add_catalog` from
the package root -- and each listed module exposes ``SPEC`` (a :class:`SolverSpec`) or ``DOMAIN``
(a :class:`DomainSpec`). Modules are imported on first use, so listing them is cheap, and the
registry itself imports no domain.

A solver's ``Params`` is a frozen dataclass whose fields are declared with :func:`param`, which
puts the help text, bounds and choices into the field metadata. The pages build widgets from it and
the CLI parses ``--param key=value`` with :func:`parse_params`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from workbench.errors import InputError

# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------


def param(
    default: Any,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple | list | None = None,
    log: bool = False,
    label: str | None = None,
    advanced: bool = False,
    files: str | None = None,
) -> Any:
    """Declare a solver parameter: a dataclass field with help, bounds and choices in metadata.

    ``files`` makes it a file parameter (a checkpoint, say): ``"module:function"`` of a function
    that lists the names and paths on offer now (shipped files, files under WORKBENCH_HOME). The
    app offers only those, in a list; elsewhere any other value must name an existing file,
    checked by :func:`parse_params` before a run starts.
    """
    meta = {
        "files": files,
        "help": help,
        "min": min,
        "max": max,
        "choices": tuple(choices) if choices is not None else None,
        "log": log,
        "label": label,
        "advanced": advanced,
    }
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints.get(f.name, f.type)


def _base_type(tp: Any) -> tuple[type, bool]:
    """(scalar type, optional?) of an annotation such as ``float``, ``int | None``."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else str
    if typing.get_origin(tp) is typing.Literal:
        tp = type(typing.get_args(tp)[0])
    return (tp if isinstance(tp, type) else str), optional


def params_schema(cls: type) -> list[dict[str, Any]]:
    """Describe the fields of a ``Params`` dataclass as plain dicts (name, type, default, help, ...)."""
    out = []
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(_field_type(cls, f))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        md = dict(f.metadata)
        out.append(
            {
                "name": f.name,
                "type": tp.__name__,
                "optional": optional,
                "default": default,
                "help": md.get("help", ""),
                "min": md.get("min"),
                "max": md.get("max"),
                "choices": list(md["choices"]) if md.get("choices") else None,
                "log": md.get("log", False),
                "label": md.get("label") or f.name,
                "advanced": md.get("advanced", False),
                "files": md.get("files"),
            }
        )
    return out


def file_options(p: Mapping[str, Any]) -> list[str]:
    """What a file parameter (see :func:`param`'s ``files``) offers now, in order."""
    return [str(v) for v in resolve(p["files"])()] if p.get("files") else []


def _coerce(name: str, value: Any, tp: type, optional: bool) -> Any:
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", ""))):
        return None
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return (
                int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
            )
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if tp in (tuple, list):
            seq = json.loads(value) if isinstance(value, str) else value
            return tp(seq)
    except (TypeError, ValueError, json.JSONDecodeError):
        raise InputError(f"parameter {name!r}: cannot read {value!r} as {tp.__name__}") from None
    return value


def parse_params(cls: type, values: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    """Build a ``Params`` instance from strings or values, checking types, bounds and choices.

    Raises
    ------
    InputError
        On an unknown name, a value of the wrong type, out of bounds or not among the choices.
    """
    values = {**(values or {}), **kw}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, raw in values.items():
        f = fields[name]
        tp, optional = _base_type(_field_type(cls, f))
        v = _coerce(name, raw, tp, optional)
        md = f.metadata
        if v is not None and tp in (int, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise InputError(f"parameter {name!r} must be finite")
            if md.get("min") is not None and v < md["min"]:
                raise InputError(f"parameter {name!r} = {v} is below its minimum {md['min']}")
            if md.get("max") is not None and v > md["max"]:
                raise InputError(f"parameter {name!r} = {v} is above its maximum {md['max']}")
        if md.get("files") and v and v not in file_options(md):
            from pathlib import Path

            if not Path(str(v)).is_file():
                offered = ", ".join(repr(o) for o in file_options(md) if o) or "none"
                raise InputError(f"parameter {name!r}: no such file {v!r} (on offer: {offered})")
        if v is not None and md.get("choices") and v not in md["choices"]:
            raise InputError(
                f"parameter {name!r} = {v!r} is not one of {', '.join(map(str, md['choices']))}"
            )
        kwargs[name] = v
    return cls(**kwargs)


def params_to_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params)


# ------------------------------------------------------------------------------------------
# Solvers and domains
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolverSpec:
    """How the workbench knows a solver.

    Attributes
    ----------
    name : str
        Short, stable snake_case name used by the CLI and the store (``"sinkhorn_newton"``).
    domain : str
        Domain name (``"ot"``, ``"mri"``, ``"tumor"``, ``"eels"``, ``"pde"``).
    title : str
        Human-readable name for the pages.
    Params : type
        Frozen dataclass of parameters declared with :func:`param`.
    solve : callable
        ``solve(problem, params, progress=None) -> Result``.
    description : str
        One paragraph: what it does, when to use it.
    reference : str
        Citation of the method.
    paper : bool
        True for the anchor paper's method (shown in bold).
    train : str, optional
        ``"module:function"`` of a training entry point ``f(argv: list[str]) -> int``.
    train_name : str, optional
        Another name ``workbench train`` accepts for it (e.g. ``eels_cvae``).
    """

    name: str
    domain: str
    title: str
    Params: type
    solve: Callable[..., Any]
    description: str = ""
    reference: str = ""
    paper: bool = False
    train: str | None = None
    train_name: str | None = None

    def params(self, values: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return parse_params(self.Params, values, **kw)

    def schema(self) -> list[dict[str, Any]]:
        return params_schema(self.Params)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domain": self.domain,
            "title": self.title,
            "description": self.description,
            "reference": self.reference,
            "paper": self.paper,
            "trainable": self.train is not None,
            "params": self.schema(),
        }


@dataclass(frozen=True)
class Sample:
    """A bundled problem: built on demand, needs no network."""

    name: str
    description: str
    factory: Callable[..., Any]


@dataclass(frozen=True)
class DomainSpec:
    """What a domain brings: samples, a loader for user files, ground-truth metrics, a figure.

    Attributes
    ----------
    load : callable, optional
        ``load(data: bytes, filename: str, **options) -> Problem``; validates and raises
        :class:`~workbench.errors.InputError` with a one-line message on bad input.
    upload_types : tuple of str
        File extensions accepted by ``load`` (without dots), for the upload widgets.
    Options : type, optional
        A ``Params``-style dataclass of problem-building options (e.g. the MRI mask); the CLI
        routes ``--param`` keys that belong to it into ``load``/``sample`` instead of the solver.
    evaluate : callable
        ``evaluate(problem, result) -> dict[str, float]``: metrics against ground truth, computed
        the same way for every solver.
    figure : str
        ``"module:function"`` with signature ``(problem, result) -> plotly.graph_objects.Figure``.
    compare_figure : str, optional
        ``"module:function"`` with signature ``(problem, [(label, result), ...]) -> Figure``: the
        side-by-side view of several runs (one colour scale, error maps). A generic one is used
        when absent.
    commands : dict
        Extra CLI subcommands: ``{"build-db": "module:function"}``, each ``f(argv) -> int``.
    check : callable, optional
        ``check(problem, solver_spec, params) -> None``: refuses, with an
        :class:`~workbench.errors.InputError`, parameters that do not fit the data (an EELS
        energy window outside the axis), before a run starts and is stored.
    """

    name: str
    title: str
    problem_type: type
    samples: tuple[Sample, ...]
    evaluate: Callable[[Any, Any], dict[str, float]]
    figure: str
    description: str = ""
    load: Callable[..., Any] | None = None
    upload_types: tuple[str, ...] = ()
    Options: type | None = None
    compare_figure: str | None = None
    commands: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[Any, Any, Any], None] | None = None

    def sample_names(self) -> list[str]:
        return [s.name for s in self.samples]

    def sample(self, name: str, **options: Any) -> Any:
        for s in self.samples:
            if s.name == name:
                return s.factory(**options)
        raise InputError(
            f"unknown {self.name} sample {name!r}; available: {', '.join(self.sample_names())}"
        )

    def options(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if self.Options is None:
            if values:
                raise InputError(f"{self.name} problems take no options")
            return {}
        return params_to_dict(parse_params(self.Options, values))


def resolve(path: str) -> Any:
    """Import ``"package.module:attr"``."""
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


# The catalogs: modules whose ``SOLVER_MODULES`` / ``DOMAIN_MODULES`` list what the workbench serves.
# The core names none of them; the package root (``workbench/__init__.py``) adds the built-in ones
# and a plug-in package can add its own, so nothing here imports a domain.
_CATALOGS: dict[str, list[str]] = {"solvers": [], "domains": []}


def add_catalog(*, solvers: str | None = None, domains: str | None = None) -> None:
    """Serve the solvers listed in ``solvers.SOLVER_MODULES`` and the domains in ``domains.DOMAIN_MODULES``.

    Both are dotted module names, imported on the first lookup (listing them costs nothing).

    Examples
    --------
    >>> add_catalog(solvers="workbench.solvers", domains="workbench.datasets")  # doctest: +SKIP
    """
    for kind, module in (("solvers", solvers), ("domains", domains)):
        if module and module not in _CATALOGS[kind]:
            _CATALOGS[kind].append(module)
    _solver_specs.cache_clear()
    _domain_specs.cache_clear()


def _listed(kind: str, attr: str) -> list[str]:
    return [m for cat in _CATALOGS[kind] for m in getattr(importlib.import_module(cat), attr)]


@cache
def _solver_specs() -> tuple[SolverSpec, ...]:
    return tuple(importlib.import_module(m).SPEC for m in _listed("solvers", "SOLVER_MODULES"))


@cache
def _domain_specs() -> tuple[DomainSpec, ...]:
    return tuple(importlib.import_module(m).DOMAIN for m in _listed("domains", "DOMAIN_MODULES"))


def domains() -> list[DomainSpec]:
    return list(_domain_specs())


def domain_names() -> list[str]:
    return [m.rsplit(".", 1)[-1] for m in _listed("domains", "DOMAIN_MODULES")]


def get_domain(name: str) -> DomainSpec:
    # Import only the module the catalogs' convention names (``<package>.<name>``, as
    # domain_names assumes): looking a domain up must not import every other domain's
    # dependencies. The full scan stays the fallback for catalogs that name modules otherwise.
    for m in _listed("domains", "DOMAIN_MODULES"):
        if m.rsplit(".", 1)[-1] == name:
            d = getattr(importlib.import_module(m), "DOMAIN", None)
            if d is not None and d.name == name:
                return d
    for d in _domain_specs():
        if d.name == name:
            return d
    raise InputError(f"unknown domain {name!r}; available: {', '.join(domain_names())}")


def solvers(domain: str | None = None) -> list[SolverSpec]:
    return [s for s in _solver_specs() if domain is None or s.domain == domain]


def get_solver(domain: str, name: str) -> SolverSpec:
    # Try the modules the convention points at first -- ``<package>.<domain>.<name>``, then the
    # rest of ``<package>.<domain>`` -- so that one solve imports one solver's dependencies
    # (no torch for a NumPy solver, no POT for Sinkhorn); the full scan is the fallback.
    listed = _listed("solvers", "SOLVER_MODULES")
    exact = [m for m in listed if m.rsplit(".", 2)[-2:] == [domain, name]]
    near = [m for m in listed if m.rsplit(".", 2)[-2:-1] == [domain] and m not in exact]
    for m in exact + near:
        spec = getattr(importlib.import_module(m), "SPEC", None)
        if spec is not None and spec.domain == domain and spec.name == name:
            return spec
    for s in _solver_specs():
        if s.domain == domain and s.name == name:
            return s
    known = ", ".join(s.name for s in solvers(domain)) or "none"
    raise InputError(f"unknown {domain} solver {name!r}; available: {known}")


# ---- ``--param key=value`` pairs: one parser for the CLI and ``workbench batch`` ----------------


def parse_kv(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` → ``{"k": "v"}``; a pair without ``=`` or key is an InputError."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def split_params(domain: str, solver: str, kv: Mapping[str, Any]) -> tuple[dict, dict]:
    """Split ``kv`` into (solver pairs, domain-option pairs) and validate both.

    A key that is neither the solver's parameter nor the domain's option, or a value their
    ``Params``/``Options`` refuse, is an InputError raised here, before any run or batch task
    exists. A key both define goes to the solver.
    """
    dom = get_domain(domain)
    spec = get_solver(domain, solver)
    solver_keys = {p["name"] for p in spec.schema()}
    option_keys = {p["name"] for p in params_schema(dom.Options)} if dom.Options else set()
    s_kv = {k: v for k, v in kv.items() if k in solver_keys}
    o_kv = {k: v for k, v in kv.items() if k in option_keys and k not in solver_keys}
    unknown = sorted(set(kv) - set(s_kv) - set(o_kv))
    if unknown:
        known = sorted(solver_keys | option_keys)
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
    spec.params(s_kv)
    dom.options(o_kv)
    return s_kv, o_kv
