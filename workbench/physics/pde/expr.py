"""Safe parsing of user expressions and symbolic derivation of sources and boundary data.

Expressions are checked with Python's :mod:`ast` against a whitelist of names, functions and node
types *before* sympy sees them, then built with sympy from the checked tree (no ``eval`` of user
text anywhere). Unknown names, attribute access, dunder names, subscripts, keyword arguments,
huge constant powers and over-long inputs raise :class:`~workbench.errors.InputError`.

A budget is enforced on the syntax tree before any symbolic work, so that no input can cost
seconds of sympy time or gigabytes of integers: at most ``MAX_NODES`` nodes, ``MAX_CALL_DEPTH``
nested function calls and ``MAX_DEPTH`` levels in all; every constant sub-expression (``10**64``,
``(2 + 3)**4``) is evaluated in floating point with its magnitude bounded by ``MAX_CONST`` at every
step; and a derived source larger than ``MAX_DERIVED_OPS`` operations is refused.

Examples
--------
>>> e = parse("sin(50*x) + x**2", ("x",))
>>> f = derive_source("poisson", e, ("x",), {})
>>> str(f)
'2 - 2500*sin(50*x)'
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import numpy as np
import sympy as sp

from workbench.errors import InputError

MAX_LEN = 500
MAX_CONST_POW = 64
MAX_CONST = 1e12
MAX_NODES = 400
MAX_DEPTH = 40
MAX_CALL_DEPTH = 10
MAX_DERIVED_OPS = 20_000

FUNCTIONS: dict[str, Callable] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "atan": sp.atan,
    "asin": sp.asin,
    "acos": sp.acos,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "erf": sp.erf,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}
RESERVED_COEFFS = set(FUNCTIONS) | set(CONSTANTS)


def _fail(text: str, why: str) -> InputError:
    short = text if len(text) <= 60 else text[:57] + "..."
    return InputError(f"expression {short!r}: {why}")


def _check_name(name: str, text: str, allowed: set[str]) -> None:
    if "__" in name or name.startswith("_"):
        raise _fail(text, f"name {name!r} is not allowed")
    if name not in allowed:
        raise _fail(
            text,
            f"unknown name {name!r}; allowed: {', '.join(sorted(allowed))} "
            f"and functions {', '.join(sorted(set(FUNCTIONS) - {'Abs'}))}",
        )


def _numeric_value(node: ast.AST) -> float | None:
    """Value of a purely numeric subtree (numbers, +-*/ and unary minus), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _numeric_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    return None


def _constant(node: ast.AST, text: str) -> float | None:
    """Float value of a subtree without symbols (None when it has some), magnitude-checked.

    Every intermediate result is bounded by ``MAX_CONST`` before the next operation, so a
    constant tower such as ``((10**64)**64)**64`` is refused after one cheap float step instead
    of being expanded into an integer with 10^16 digits.
    """
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if isinstance(v, int) and v.bit_length() > 64:
            raise _fail(text, f"constant is out of range (|c| <= {MAX_CONST:g})")
        v = float(v)
    elif isinstance(node, ast.Name):
        if node.id not in CONSTANTS:
            return None
        v = float(CONSTANTS[node.id])
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        a = _constant(node.operand, text)
        if a is None:
            return None
        v = -a if isinstance(node.op, ast.USub) else a
    elif isinstance(node, ast.BinOp):
        a, b = _constant(node.left, text), _constant(node.right, text)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Pow):
            if abs(b) > MAX_CONST_POW:
                raise _fail(text, f"constant exponents must be at most {MAX_CONST_POW} in size")
            if a == 0 and b < 0:
                raise _fail(text, "division by zero in a constant")
            if a < 0 and b != int(b):
                raise _fail(text, "a negative constant to a fractional power is not real")
            if a != 0 and b * np.log10(abs(a)) > np.log10(MAX_CONST):
                raise _fail(text, f"constant is out of range (|c| <= {MAX_CONST:g})")
            v = abs(a) ** b * (-1.0 if a < 0 and int(b) % 2 else 1.0)
        elif isinstance(node.op, ast.Div):
            if b == 0:
                raise _fail(text, "division by zero in a constant")
            v = a / b
        elif isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            v = (
                a + b
                if isinstance(node.op, ast.Add)
                else a - b
                if isinstance(node.op, ast.Sub)
                else a * b
            )
        else:
            return None
    else:
        return None
    if not np.isfinite(v) or abs(v) > MAX_CONST:
        raise _fail(text, f"constant is out of range (|c| <= {MAX_CONST:g})")
    return v


def _check_budget(tree: ast.AST, text: str) -> None:
    """Size, depth and constant-magnitude budget of a parsed expression (no sympy involved)."""
    nodes = 0
    stack: list[tuple[ast.AST, int, int]] = [(tree, 0, 0)]
    while stack:
        node, depth, calls = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise _fail(text, f"too complex (more than {MAX_NODES} syntax nodes)")
        if depth > MAX_DEPTH:
            raise _fail(text, f"nested too deeply (more than {MAX_DEPTH} levels)")
        calls += isinstance(node, ast.Call)
        if calls > MAX_CALL_DEPTH:
            raise _fail(text, f"more than {MAX_CALL_DEPTH} nested function calls")
        stack.extend((c, depth + 1, calls) for c in ast.iter_child_nodes(node))
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Constant)):
            _constant(node, text)


def _build(node: ast.AST, text: str, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
    """Turn a whitelisted AST into a sympy expression (never evaluates user code)."""
    if isinstance(node, ast.Expression):
        return _build(node.body, text, symbols)
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(text, "only numbers are allowed as constants")
        if not np.isfinite(float(v)) or abs(float(v)) > 1e12:
            raise _fail(text, f"constant {v!r} is out of range")
        return sp.Integer(v) if isinstance(v, int) else sp.Float(repr(v))
    if isinstance(node, ast.Name):
        if node.id in symbols:
            return symbols[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        _check_name(node.id, text, set(symbols) | set(CONSTANTS))
    if isinstance(node, ast.UnaryOp):
        a = _build(node.operand, text, symbols)
        if isinstance(node.op, ast.USub):
            return -a
        if isinstance(node.op, ast.UAdd):
            return a
        raise _fail(text, "only unary + and - are allowed")
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            e = _numeric_value(node.right)
            right_has_names = any(isinstance(n, ast.Name) for n in ast.walk(node.right))
            if e is not None and abs(e) > MAX_CONST_POW:
                raise _fail(text, f"constant exponents must be at most {MAX_CONST_POW} in size")
            if e is None and not right_has_names:
                # a compound numeric exponent such as 9**9**9: refuse rather than evaluate
                raise _fail(text, "write constant exponents as plain numbers")
        a = _build(node.left, text, symbols)
        b = _build(node.right, text, symbols)
        ops = {
            ast.Add: lambda: a + b,
            ast.Sub: lambda: a - b,
            ast.Mult: lambda: a * b,
            ast.Div: lambda: a / b,
            ast.Pow: lambda: a**b,
        }
        for op_type, fn in ops.items():
            if isinstance(node.op, op_type):
                return fn()
        raise _fail(text, "only + - * / ** (or ^) are allowed")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _fail(text, "only plain function calls such as sin(x) are allowed")
        name = node.func.id
        if "__" in name or name not in FUNCTIONS:
            raise _fail(
                text,
                f"unknown function {name!r}; allowed: {', '.join(sorted(set(FUNCTIONS) - {'Abs'}))}",
            )
        if node.keywords or len(node.args) != 1:
            raise _fail(text, f"{name}() takes exactly one argument")
        return FUNCTIONS[name](_build(node.args[0], text, symbols))
    if isinstance(node, ast.Attribute):
        raise _fail(text, "attribute access is not allowed")
    raise _fail(text, f"{type(node).__name__} is not allowed in an expression")


@lru_cache(maxsize=512)
def _parse_cached(text: str, names: tuple[str, ...]) -> sp.Expr:
    symbols = {n: sp.Symbol(n, real=True) for n in names}
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as e:
        raise _fail(text, f"does not parse ({e.msg})") from None
    except (ValueError, MemoryError, RecursionError):
        raise _fail(text, "does not parse") from None
    _check_budget(tree, text)
    return _build(tree, text, symbols)


def parse(text: str, variables: Sequence[str], coefficients: Sequence[str] = ()) -> sp.Expr:
    """Parse ``text`` into a sympy expression in ``variables`` and named ``coefficients``.

    Raises
    ------
    InputError
        Empty, over-long, unparsable or unsafe input, or names outside the whitelist.
    """
    if not isinstance(text, str):
        raise InputError(f"expression must be a string, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise InputError("expression is empty")
    if len(text) > MAX_LEN:
        raise InputError(f"expression is too long ({len(text)} > {MAX_LEN} characters)")
    if any(ord(c) < 32 or ord(c) > 126 for c in text) or any(c in text for c in "[]{};:'\"@`\\"):
        raise _fail(text, "contains characters that are not allowed")
    if "__" in text:
        raise _fail(text, "double underscores are not allowed")
    for c in coefficients:
        if c in RESERVED_COEFFS or not c.isidentifier() or c.startswith("_"):
            raise InputError(f"coefficient name {c!r} is not allowed")
    names = tuple(dict.fromkeys([*variables, *coefficients]))
    return _parse_cached(text, names)


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def laplacian(u: sp.Expr, variables: Sequence[str]) -> sp.Expr:
    return sum((sp.diff(u, sym(v), 2) for v in variables), sp.Integer(0))


def apply_operator(
    operator: str, u: sp.Expr, variables: Sequence[str], coeffs: Mapping[str, float]
) -> sp.Expr:
    """N[u] symbolically, for the operators of :class:`~workbench.problems.PDEProblem`."""
    v = list(variables)
    if operator == "poisson":
        return laplacian(u, v)
    if operator == "allen_cahn":
        return laplacian(u, v) + u * (u**2 - 1)
    if operator == "advection":
        beta = sp.Float(coeffs.get("beta", 1.0))
        return beta * sp.diff(u, sym(v[0])) + sp.diff(u, sym(v[1]))
    if operator == "drift_poisson":
        phi = sum((sym(s) ** 2 for s in v), sp.Integer(0))
        drift = sum((sp.diff(u * sp.diff(phi, sym(s)), sym(s)) for s in v), sp.Integer(0))
        return laplacian(u, v) - drift
    if operator == "burgers":
        x, t = sym(v[0]), sym(v[1])
        z0 = sp.Float(coeffs.get("z0", 0.05))
        z1 = sp.Float(coeffs.get("z1", 1.0))
        return sp.diff(u, t) + z1 * u * sp.diff(u, x) - z0 * sp.diff(u, x, 2)
    if operator == "nl_poisson":
        x = sym(v[0])
        a = sum(
            (sp.Float(coeffs.get(f"z{n}", 0.0)) * sp.chebyshevt(n, x) for n in range(5)),
            sp.Integer(0),
        )
        kappa = sp.log(1 + sp.exp(u * a)) + sp.Rational(1, 10)
        return sp.diff(kappa * sp.diff(u, x), x)
    raise InputError(f"unknown operator {operator!r}; known: {', '.join(OPERATORS)}")


OPERATORS = ("poisson", "allen_cahn", "advection", "drift_poisson", "nl_poisson", "burgers")


def derive_source(
    operator: str, u: sp.Expr, variables: Sequence[str], coeffs: Mapping[str, float]
) -> sp.Expr:
    """f = N[u_exact], simplified cheaply (``expand`` is avoided: it can blow up)."""
    f = apply_operator(operator, u, variables, coeffs)
    if sp.count_ops(f) > MAX_DERIVED_OPS:
        raise InputError(
            f"the derived source has more than {MAX_DERIVED_OPS} operations; give the source "
            "explicitly or simplify the exact solution"
        )
    return f if f.is_number else sp.together(f) if len(str(f)) < 200 else f


def lambdify(expr: sp.Expr, variables: Sequence[str], coeffs: Mapping[str, float]) -> Callable:
    """Numpy function of the coordinate arrays; coefficients substituted, broadcast to shape."""
    subs = {sym(k): float(v) for k, v in coeffs.items()}
    e = expr.subs(subs) if subs else expr
    free = {s.name for s in e.free_symbols} - set(variables)
    if free:
        raise InputError(f"expression uses undefined coefficient(s): {', '.join(sorted(free))}")
    fn = sp.lambdify([sym(v) for v in variables], e, modules="numpy")

    def call(*xs: np.ndarray) -> np.ndarray:
        arrays = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in xs])
        with np.errstate(all="ignore"):
            out = np.asarray(fn(*arrays), dtype=float)
        return np.broadcast_to(out, arrays[0].shape).copy()

    return call


def warm() -> None:
    """The page's warm-up hook (``jobs.warm``): sympy imports its code printers and the NumPy
    namespace it translates to on the first :func:`lambdify` (about 0.6 s, most of a GP solve's
    set-up on a small problem); do that once before the first run."""
    x = sym("x")
    lambdify(sp.sin(x) * x**2, ["x"], {})(np.zeros(2))
