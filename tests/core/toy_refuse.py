"""A toy solver that refuses its input from inside the solve (a bad checkpoint, a window outside
the data). Its SOLVER_MODULES are a catalog of the extra toy solvers, added next to the toy one
by the tests that need them."""

import toy

from workbench.errors import InputError
from workbench.registry import SolverSpec


def solve(problem, params, progress=None):
    progress.note("checking the input")
    raise InputError("the window 900-950 eV lies outside the data (600-700 eV)")


SPEC = SolverSpec("refuse", "toy", "Refuses its input", toy.Params, solve, description="toy")
SOLVER_MODULES = ["toy_refuse", "toy_preview"]
