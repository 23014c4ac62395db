"""The exact optimal transport cost of small problems without POT, for the ground-truth metrics.

``min_P <C, P>`` s.t. ``P 1 = a``, ``P^T 1 = b``, ``P >= 0``. POT's network simplex (``ot.emd``)
is the reference, but importing POT costs more than a second (it pulls in scikit-learn and
torch), which a small solve should not pay for one metric. Two exact methods stand in for it on
small problems; ``tests/ot/test_np_sinkhorn.py`` checks both against ``ot.emd`` to 1e-12:

* :func:`exact_cost_ssp`, successive shortest paths, NumPy only (tiny problems: no import at all);
* :func:`exact_cost_lp`, the HiGHS dual simplex through SciPy (small problems).
"""

from __future__ import annotations

import numpy as np


def exact_cost_ssp(a: np.ndarray, b: np.ndarray, C: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact OT by successive shortest paths with node potentials; returns (cost, plan).

    The transportation problem as a min-cost flow from the sources ``i`` (supply ``a_i``) to the
    sinks ``j`` (demand ``b_j``) over uncapacitated edges of cost ``C_ij``. Each step finds, by a
    dense Dijkstra on the reduced costs ``C_ij + u_i - v_j >= 0`` of the residual graph (forward
    edges, and backward edges where ``P_ij > 0``), a shortest path from a source with supply
    left to the nearest sink with demand left, pushes the bottleneck along it and adds the
    distances to the potentials, which keeps every reduced cost non-negative. The flow is
    optimal for the masses pushed so far at every step (Busacker--Gowen), so the last one is
    an optimal plan. Each push exhausts a supply, a demand or a backward edge.

    O((n + m)^2) per push and O(n + m) to O(nm) pushes: for problems of a few hundred entries.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    b = b / b.sum() * a.sum()  # masses equal up to round-off: make them equal exactly
    n, m = C.shape
    Cs = C - C.min()  # non-negative costs, so zero potentials start feasible
    P = np.zeros((n, m))
    supply, demand = a.copy(), b.copy()
    eps = 1e-14 * a.sum()  # masses below this are round-off of earlier pushes
    u, v = np.zeros(n), np.zeros(m)
    for _ in range(4 * (n + m) * (n * m + 1)):
        if supply.max() <= eps or demand.max() <= eps:
            break
        du = np.where(supply > eps, 0.0, np.inf)
        dv = np.full(m, np.inf)
        from_u = np.full(m, -1)  # the source that reaches sink j
        from_v = np.full(n, -1)  # the sink that reaches source i by a backward edge
        done_u, done_v = np.zeros(n, bool), np.zeros(m, bool)
        while True:
            iu = np.where(done_u, np.inf, du)
            iv = np.where(done_v, np.inf, dv)
            ku, kv = int(iu.argmin()), int(iv.argmin())
            if iu[ku] == np.inf and iv[kv] == np.inf:
                break
            if iu[ku] <= iv[kv]:
                done_u[ku] = True
                nd = du[ku] + Cs[ku] + u[ku] - v
                better = (nd < dv) & ~done_v
                dv[better], from_u[better] = nd[better], ku
            else:
                done_v[kv] = True
                nd = dv[kv] - Cs[:, kv] + v[kv] - u
                better = (P[:, kv] > eps) & (nd < du) & ~done_u
                du[better], from_v[better] = nd[better], kv
        reach_u, reach_v = np.isfinite(du), np.isfinite(dv)
        cand = np.where(demand > eps, dv, np.inf)
        t = int(cand.argmin())
        if not np.isfinite(cand[t]):
            raise RuntimeError("exact cost: no augmenting path (masses do not balance)")
        path, j, delta = [], t, demand[t]
        while True:
            i = int(from_u[j])
            path.append((i, j, 1.0))
            if from_v[i] < 0:  # a source with supply left: the start of the path
                delta = min(delta, supply[i])
                break
            j = int(from_v[i])
            path.append((i, j, -1.0))
            delta = min(delta, P[i, j])
        for i_, j_, sign in path:
            P[i_, j_] += sign * delta
        supply[i] -= delta
        demand[t] -= delta
        # unreachable nodes get the largest distance: their reduced costs stay >= 0
        top = max(du[reach_u].max(initial=0.0), dv[reach_v].max(initial=0.0))
        u += np.where(reach_u, du, top)
        v += np.where(reach_v, dv, top)
    np.maximum(P, 0.0, out=P)
    return float(np.sum(P * C)), P


def exact_cost_lp(a: np.ndarray, b: np.ndarray, C: np.ndarray) -> float:
    """min_P <C, P> s.t. P 1 = a, P^T 1 = b, P >= 0, by the HiGHS dual simplex (SciPy).

    The transportation polytope as a linear programme in vec(P) (row-major): equality
    constraints ``(I_n kron 1_m^T) vec(P) = a`` and ``(1_n^T kron I_m) vec(P) = b``. A simplex
    method ends on a vertex, so the value is exact up to rounding, like the network simplex.
    """
    import scipy.sparse as sps
    from scipy.optimize import linprog

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n, m = C.shape
    rows = sps.kron(sps.eye(n), np.ones((1, m)))
    cols = sps.kron(np.ones((1, n)), sps.eye(m))
    b = b / b.sum() * a.sum()  # the LP is infeasible for masses that differ by round-off
    res = linprog(
        np.ravel(C),
        A_eq=sps.vstack([rows, cols]).tocsr(),
        b_eq=np.concatenate([a, b]),
        bounds=(0, None),
        method="highs-ds",
    )
    if res.status != 0:
        raise RuntimeError(f"exact cost: HiGHS status {res.status}: {res.message}")
    return float(res.fun)
