"""A toy solver that shows a live estimate: it reports a ``preview`` image with each step, the way
an image solver hands the page its current iterate."""

import numpy as np
import toy


def solve(problem, params, progress=None):
    progress.note("loading the trained model")
    for k in range(1, params.max_iter + 1):
        progress(k, params.max_iter, loss=1.0 / k, preview=np.full((2, 3), float(k)))
    return toy.solve(problem, toy.Params(max_iter=1), None)


SPEC = toy.SolverSpec("preview", "toy", "Shows a preview", toy.Params, solve, description="toy")
